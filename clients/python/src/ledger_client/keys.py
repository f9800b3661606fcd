"""The Ed25519 key a sender signs its commands with: made once, kept private (mode 600), its public half given
to the ledger's operators to trust (``licensectl keys trust``)."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger_client.contract.signatures import key_id, private_b64, private_key_from, public_b64


def new_key(path: str | Path) -> str:
    """Make a key at ``path`` (never over an existing file); return its public half, base64, for the operator.
    ``licensectl keys signing new`` does the same and prints the operator's trust command."""
    target = Path(path).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(private_b64(key) + "\n")
    return public_b64(key.public_key())


def load_key(path: str | Path) -> Ed25519PrivateKey:
    """The key in ``path``: base64 of its 32 raw bytes, as ``new_key`` and ``licensectl`` write it."""
    return private_key_from(Path(path).expanduser().read_text())


__all__ = ["key_id", "load_key", "new_key", "public_b64"]
