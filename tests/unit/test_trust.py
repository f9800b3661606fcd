"""The trust list as the fold of root-signed statements: only a pinned root's statements count, in their order."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared.contract import signatures
from shared.contract.trust import KeyScope
from shared.platform import trust
from shared.platform.kafka_access import KafkaConnection

ROOT = Ed25519PrivateKey.from_private_bytes(bytes(range(100, 132)))
INSIDER = Ed25519PrivateKey.from_private_bytes(bytes(range(7, 39)))
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
ROOTS = trust.root_keys(signatures.public_b64(ROOT.public_key()))
T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = datetime(2026, 6, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Record:
    offset: int
    value: bytes | None
    headers: Sequence[tuple[str, bytes | None]]


def _records(*signed: tuple[trust.TrustStatement, Ed25519PrivateKey]) -> list[Record]:
    records = []
    for offset, (statement, key) in enumerate(signed):
        value, headers = trust.signed(statement, key)
        records.append(Record(offset, value, list(headers)))
    return records


def _trusting(**scope: Any) -> trust.TrustStatement:
    return trust.trusting("gd-commerce", KEY.public_key(), KeyScope(**scope), at=T0)


def test_a_key_is_trusted_from_its_statement_and_revoked_from_its_revocation() -> None:
    key_id = signatures.key_id(KEY.public_key())
    folded = trust.fold(
        _records(
            (_trusting(use="commands", agency_code="44"), ROOT),
            (trust.statement("revoke", producer="gd-commerce", key_id=key_id, at=T1), ROOT),
        ),
        ROOTS,
    )
    [key] = folded.trust.keys[key_id]
    assert (key.added_at, key.revoked_at, key.scope.agency_code) == (T0, T1, "44")
    assert folded.skipped == []


def test_a_statement_no_pinned_root_signed_trusts_nothing_and_is_named() -> None:
    insider = _records((_trusting(use="events"), INSIDER))
    folded = trust.fold(insider, ROOTS)
    assert folded.trust.keys == {}
    assert [(o, "no pinned root key" in why) for o, why in folded.skipped] == [(0, True)]


def test_any_bytes_on_the_trust_topic_are_skipped_with_a_reason() -> None:
    value, headers = trust.signed(_trusting(use="events"), ROOT)
    junk = [
        Record(0, None, []),
        Record(1, b"\x00\xff", list(headers)),
        Record(2, value + b" ", list(headers)),
        Record(3, value, [(signatures.SIGNATURE_HEADER, b"\x00"), (signatures.KEY_ID_HEADER, b"\x00")]),
        Record(4, b'{"statement_id": 1}', trust.signed(_trusting(use="events"), ROOT)[1]),
    ]
    folded = trust.fold(junk, ROOTS)
    assert folded.trust.keys == {} and [o for o, _ in folded.skipped] == [0, 1, 2, 3, 4]


def test_a_scope_fits_its_use() -> None:
    for wrong in ({"use": "events", "agency_code": "44"}, {"use": "commands", "event_types": ("LicenseGranted",)}):
        try:
            KeyScope(**wrong)
        except ValueError:
            continue
        raise AssertionError(f"{wrong} was taken")


class _Consumer:
    """A consumer of the trust topic as ``TrustLog`` uses it: ``records`` up to ``end``, then (if ``hang``) a
    fetch that never answers, as with a broker that stopped replying."""

    def __init__(self, records: list[Record], end: int, *, hang: bool = False) -> None:
        self.records, self.end, self.hang = records, end, hang
        self.at = 0
        self.paused = True

    async def end_offsets(self, tps: list[Any]) -> dict[Any, int]:
        return {tp: self.end for tp in tps}

    def resume(self, _: Any) -> None:
        self.paused = False

    def pause(self, _: Any) -> None:
        self.paused = True

    async def getmany(self, tp: Any, *, timeout_ms: int, max_records: int) -> dict[Any, list[Record]]:
        batch = [r for r in self.records if r.offset >= self.at][:max_records]
        if not batch and self.hang:
            await asyncio.Event().wait()
        self.at = self.end if not batch else batch[-1].offset + 1
        return {tp: batch}

    async def position(self, _: Any) -> int:
        return self.at


def _log(consumer: _Consumer) -> trust.TrustLog:
    log = trust.TrustLog(KafkaConnection(bootstrap_servers="unused:9092"), "licensing.trust", ROOTS)
    log._consumer = consumer  # the reads it makes, without a broker (the attribute is typed Any)
    return log


async def test_a_trust_topic_that_never_reaches_its_end_fails_the_read_in_time(monkeypatch: Any) -> None:
    monkeypatch.setattr(trust, "CATCH_UP_SECONDS", 0.2)
    consumer = _Consumer(_records((_trusting(use="commands", agency_code="44"), ROOT)), end=3, hang=True)
    log = _log(consumer)
    with pytest.raises(trust.TrustLogBehind, match="read up to offset 1"):
        await asyncio.wait_for(log.current(0), 5)
    assert consumer.paused  # left as the case stream's reads need it


async def test_offsets_that_hold_no_statement_at_the_end_still_end_the_read() -> None:
    # The end offset lies past the last statement (a transaction marker, a compacted record): the read ends.
    consumer = _Consumer(_records((_trusting(use="commands", agency_code="44"), ROOT)), end=2)
    listed = await asyncio.wait_for(_log(consumer).current(0), 5)
    assert list(listed.keys) == [signatures.key_id(KEY.public_key())]
