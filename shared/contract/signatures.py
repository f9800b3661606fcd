"""Signing a record: Ed25519 over the value's exact bytes, the signature and key id in its headers.

A producer signs a record's value exactly as published (the canonical bytes are the bytes on the wire:
nothing is re-serialised before verifying). Who may sign what is the platform's trust list
(``shared/platform/signing.py``, ``docs/signing.md``).
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

SIGNATURE_HEADER = "ledger-signature"
KEY_ID_HEADER = "ledger-key-id"


def public_bytes(key: Ed25519PublicKey) -> bytes:
    """The 32 raw bytes of a public key."""
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def public_b64(key: Ed25519PublicKey) -> str:
    """A public key as base64 of its raw bytes: how it is given to operators and stored."""
    return base64.b64encode(public_bytes(key)).decode()


def key_id(key: Ed25519PublicKey) -> str:
    """The SHA-256 of the raw public key, hex: how a signature names its key."""
    return hashlib.sha256(public_bytes(key)).hexdigest()


def public_key_from(text: str) -> Ed25519PublicKey:
    """A public key given as base64 of its 32 raw bytes, or as the path of a file holding that."""
    path = Path(text).expanduser()
    encoded = path.read_text().strip() if path.is_file() else text.strip()
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(encoded, validate=True))


def private_key_from(encoded: str) -> Ed25519PrivateKey:
    """A private key given as base64 of its 32 raw bytes."""
    return Ed25519PrivateKey.from_private_bytes(base64.b64decode(encoded.strip(), validate=True))


def private_b64(key: Ed25519PrivateKey) -> str:
    """A private key as base64 of its 32 raw bytes: how a key file holds it."""
    return base64.b64encode(key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())).decode()


def signature_headers(value: bytes, key: Ed25519PrivateKey) -> list[tuple[str, bytes]]:
    """The headers that sign ``value``: the base64 signature over its exact bytes, and the key's id."""
    signature = base64.b64encode(key.sign(value))
    return [(SIGNATURE_HEADER, signature), (KEY_ID_HEADER, key_id(key.public_key()).encode())]
