"""The registry's signed checkpoints, as they cross the wire on ``licensing.checkpoints``.

Each says where the ledger stood, from one snapshot: every partition's hash-chain head and next offset,
and the ledger's checksum there, signed with Ed25519 over the canonical JSON of the checkpoint (sorted
keys, no spaces). An auditor checks them against the log (``licensectl audit verify``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC
from typing import Any

from pydantic import AwareDatetime, BaseModel


class ChainHead(BaseModel):
    """One partition's chain head: it covers the records from ``chain_start`` up to ``next_offset``."""

    partition: int
    next_offset: int
    head: str  # hex
    chain_start: int = 0


class Checkpoint(BaseModel):
    """Where the ledger stood, from one snapshot: the chain heads and the ledger checksum at their offsets."""

    version: int = 1
    topic: str
    partitions: list[ChainHead]
    ledger_checksum: str
    ledger_rows: int
    created_at: AwareDatetime
    instance: str
    key_id: str  # SHA-256 of the raw public key, hex
    public_key: str  # the raw Ed25519 public key, base64; an auditor trusts it only if given out of band

    @property
    def offsets(self) -> dict[int, int]:
        return {p.partition: p.next_offset for p in self.partitions}

    @property
    def label(self) -> str:
        return f"checkpoint {self.created_at.astimezone(UTC).isoformat().replace('+00:00', 'Z')}"


class SignedCheckpoint(BaseModel):
    """A checkpoint and the Ed25519 signature over its canonical JSON (sorted keys, no spaces)."""

    checkpoint: Checkpoint
    signature: str  # base64


def canonical(data: Mapping[str, Any]) -> bytes:
    """The bytes a signature covers: one JSON text per content, whoever serialises it."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
