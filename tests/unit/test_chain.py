"""The hash chain over a partition, and the signatures of checkpoints."""

from __future__ import annotations

import base64
import hashlib
import struct
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from services.registry import chain, checkpoints
from services.registry.chain import GENESIS, Raw
from shared.contract.checkpoints import ChainHead, Checkpoint, SignedCheckpoint

RECORDS = [Raw(offset, f"event {offset}".encode()) for offset in range(6)]


def test_a_link_hashes_the_previous_head_the_position_and_the_values_digest() -> None:
    value_digest = hashlib.sha256(b"event").digest()
    expected = hashlib.sha256(GENESIS + struct.pack(">IQ", 3, 17) + value_digest).digest()
    assert chain.link(GENESIS, 3, 17, b"event") == expected


def test_the_head_changes_if_a_record_is_altered_deleted_or_reordered() -> None:
    head = chain.extend(GENESIS, 0, RECORDS)
    altered = [*RECORDS[:2], Raw(2, b"event 2 (altered)"), *RECORDS[3:]]
    deleted = [Raw(o, r.value) for o, r in enumerate(RECORDS[:2] + RECORDS[3:])]  # offsets close up in a copy
    reordered = [*RECORDS[:2], Raw(2, RECORDS[3].value), Raw(3, RECORDS[2].value), *RECORDS[4:]]
    assert chain.extend(GENESIS, 0, RECORDS) == head  # deterministic
    for tampered in (altered, deleted, reordered):
        assert chain.extend(GENESIS, 0, tampered) != head
    assert chain.extend(GENESIS, 1, RECORDS) != head  # the partition is part of each link


def test_a_record_without_a_value_is_not_one_with_an_empty_value() -> None:
    assert chain.link(GENESIS, 0, 0, None) != chain.link(GENESIS, 0, 0, b"")


def test_the_walker_gives_the_head_before_each_wanted_offset_from_each_start() -> None:
    walker = chain.Walker(0, {0: {0, 3, 6, 9}, 2: {4}})
    for record in RECORDS:
        walker.feed(record)
    found = walker.finish(end=6)
    assert found[(0, 0)] == GENESIS
    assert found[(0, 3)] == chain.extend(GENESIS, 0, RECORDS[:3])
    assert found[(0, 6)] == chain.extend(GENESIS, 0, RECORDS)
    assert found[(2, 4)] == chain.extend(GENESIS, 0, RECORDS[2:4])  # a chain that starts at offset 2
    assert (0, 9) not in found  # past the end of the log: no head, the records are missing


def _checkpoint(key: Ed25519PrivateKey) -> SignedCheckpoint:
    public = key.public_key()
    return checkpoints.sign(
        Checkpoint(
            topic="licensing.cases",
            partitions=[ChainHead(partition=0, next_offset=6, head=chain.extend(GENESIS, 0, RECORDS).hex())],
            ledger_checksum="ab" * 32,
            ledger_rows=12,
            created_at=datetime(2026, 5, 1, 10, 0, tzinfo=UTC),
            instance="registry-0",
            key_id=checkpoints.key_id(public),
            public_key=base64.b64encode(checkpoints.public_bytes(public)).decode(),
        ),
        key,
    )


def _problem(value: bytes, trusted: dict[str, Ed25519PublicKey]) -> str | None:
    checkpoint, content, signature = checkpoints.read(value)
    return checkpoints.signature_problem(checkpoint, content, signature, trusted)


def test_a_checkpoint_verifies_against_its_key_and_fails_if_altered_or_signed_by_another() -> None:
    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    value = checkpoints.to_bytes(_checkpoint(key))
    trusted = {checkpoints.key_id(key.public_key()): key.public_key()}
    assert _problem(value, trusted) is None
    assert _problem(value, {}) is None  # against the key it carries
    assert _problem(value.replace(b'"ledger_rows":12', b'"ledger_rows":13'), trusted) == "signature invalid"
    untrusted = _problem(value, {checkpoints.key_id(other.public_key()): other.public_key()})
    assert untrusted is not None and "not a trusted key" in untrusted
    assert _checkpoint(key).checkpoint.label == "checkpoint 2026-05-01T10:00:00Z"


def test_a_signing_key_is_made_once_and_kept(tmp_path: Path) -> None:
    first = checkpoints.load_signing_key(key=None, key_file=None, key_dir=str(tmp_path / "keys"))
    again = checkpoints.load_signing_key(key=None, key_file=None, key_dir=str(tmp_path / "keys"))
    assert checkpoints.key_id(first.public_key()) == checkpoints.key_id(again.public_key())
    assert (tmp_path / "keys" / "registry-signing.key").stat().st_mode & 0o777 == 0o600
