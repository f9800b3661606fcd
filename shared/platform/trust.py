"""Who is trusted to sign what, kept in the log: signed statements on ``licensing.trust``, never database rows.

Every key that may sign events of the case stream or commands of an intake topic is trusted by a
:class:`TrustStatement`, signed by an operator's **root key**. The root's public half is pinned where the
statements are read: in the services' settings (``LEDGER_TRUST_ROOT_KEYS``) and by the auditor
(``licensectl audit verify --root-key``). The trust list is the fold of the statements a pinned root
signed, in their order: so the registry, a replay and an audit derive who was trusted when from the log
alone, and a key written into a database trusts nothing. A statement that no pinned root signed is
skipped (and named by the audit).

A statement trusts a key for one producer and one use (:class:`KeyScope`): our services' keys sign
events (of the event types the contract gives them), agencies' and customs' keys sign commands, an
agency's for its own agency's applications only, customs' for its ports if any are named. Keys are valid
from the statement's ``effective_at``; a later statement revokes one from its own ``effective_at``
(docs/signing.md).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import ValidationError

from shared.contract import signatures
from shared.contract.refusal import readable
from shared.contract.signatures import (
    KEY_ID_HEADER,
    SIGNATURE_HEADER,
    key_id,
    public_b64,
    public_key_from,
    signature_headers,
)
from shared.contract.trust import KeyScope, Kind, TrustStatement
from shared.platform.kafka_access import KafkaConnection, started_consumer, stop_consumer
from shared.platform.ranges import read_range
from shared.platform.signing import ALWAYS, TrustedKey, TrustList, header

log = logging.getLogger(__name__)

EVENTS_OF: dict[str, tuple[str, ...]] = {
    "applications": ("ApplicationSubmitted", "ApplicationResubmitted", "ApplicationWithdrawn"),
    "review": (
        "ApplicationEscalated",
        "ApplicationRejected",
        "ApplicationReturned",
        "LicenseGranted",
        "LicenseSuspended",
        "LicenseReinstated",
        "LicenseRevoked",
        "LicenseReplaced",
        "LicenseExpired",
    ),
    "registry": ("ExportRecorded", "ExportRefused"),
}
"""The event types each of our services appends: what its key is trusted to sign, and nothing else."""


def statement(kind: Kind, *, at: datetime | None = None, **fields: Any) -> TrustStatement:
    """A new statement of ``kind``, effective ``at`` (now by default)."""
    now = datetime.now(UTC)
    return TrustStatement(statement_id=uuid.uuid4(), kind=kind, effective_at=at or now, issued_at=now, **fields)


def trusting(producer: str, key: Ed25519PublicKey, scope: KeyScope, *, at: datetime | None = None) -> TrustStatement:
    """The statement that trusts ``key`` to sign for ``producer`` within ``scope``, from ``at`` (now)."""
    return statement("trust", at=at, producer=producer, key_id=key_id(key), public_key=public_b64(key), scope=scope)


def service_scope(service: str) -> KeyScope:
    """What one of our services' keys signs: the events the contract gives it."""
    return KeyScope(use="events", event_types=EVENTS_OF[service])


def signed(statement_: TrustStatement, root: Ed25519PrivateKey) -> tuple[bytes, list[tuple[str, bytes]]]:
    """The record value of a statement and the headers that sign it with ``root``."""
    value = statement_.model_dump_json().encode()
    return value, signature_headers(value, root)


async def publish(
    kafka: KafkaConnection, topic: str, statements: Sequence[TrustStatement], root: Ed25519PrivateKey
) -> None:
    """Append ``statements``, signed by ``root``, to the trust topic (one partition: one order)."""
    producer = AIOKafkaProducer(**kafka.options(), acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for each in statements:
            value, headers = signed(each, root)
            await producer.send_and_wait(topic, value, key=b"trust", headers=headers, partition=0)
    finally:
        await producer.stop()


@dataclass
class Folded:
    """The trust list the statements of a log give, and the records of the log that are not statements a
    pinned root signed (offset, why)."""

    trust: TrustList = field(default_factory=TrustList)
    skipped: list[tuple[int, str]] = field(default_factory=list)
    statements: list[TrustStatement] = field(default_factory=list)


def read_statement(record: Any, roots: Mapping[str, Ed25519PublicKey]) -> TrustStatement | str:
    """The statement in a record of the trust topic, or why it is none (never an exception)."""
    try:
        value, headers = record.value or b"", list(record.headers or ())
        signer = header(headers, KEY_ID_HEADER)
        signature = header(headers, SIGNATURE_HEADER)
        if signer is None or signature is None:
            return "not signed by a root key"
        root = roots.get(signer.decode(errors="replace"))
        if root is None:
            return f"signed by key {readable(signer.decode(errors='replace'), 16)}…, which is no pinned root key"
        try:
            holds = signatures.holds(root, base64.b64decode(signature, validate=True), value)
        except ValueError:  # not base64
            holds = False
        if not holds:
            return "the root key's signature does not hold"
        return TrustStatement.model_validate_json(value)
    except ValidationError as invalid:
        return readable(f"not a trust statement: {invalid.errors(include_url=False)[0]['msg']}", 300)
    except Exception as exc:  # whatever the record holds, the reader is told why and moves on
        return readable(f"unreadable: {type(exc).__name__}: {exc}", 300)


def apply(folded: Folded, offset: int, read: TrustStatement | str) -> None:
    """The trust list after one more record of the trust topic."""
    if isinstance(read, str):
        folded.skipped.append((offset, read))
        return
    folded.statements.append(read)
    trust = folded.trust
    if read.kind == "trust":
        assert read.producer and read.key_id and read.public_key and read.scope
        known = trust.keys.setdefault(read.key_id, [])
        if any(k.producer == read.producer for k in known):
            folded.skipped.append((offset, f"key {read.key_id[:16]}… is trusted for {read.producer} already"))
            return
        public = public_key_from(read.public_key)
        known.append(TrustedKey(read.producer, read.key_id, public, read.effective_at, scope=read.scope))
    elif read.kind == "revoke":
        mine = [k for k in trust.keys.get(read.key_id or "", []) if k.producer == read.producer]
        if not mine or mine[0].revoked_at is not None:
            folded.skipped.append((offset, f"no key {str(read.key_id)[:16]}… in force for {read.producer}"))
            return
        revoked = mine[0].revoked(read.effective_at)
        trust.keys[revoked.key_id] = [revoked if k is mine[0] else k for k in trust.keys[revoked.key_id]]
    else:
        assert read.topic is not None and read.partition is not None and read.first_offset is not None
        trust.signed_from[(read.topic, read.partition)] = read.first_offset


def fold(records: Iterable[Any], roots: Mapping[str, Ed25519PublicKey]) -> Folded:
    """The trust list of a whole trust log's records, in order."""
    folded = Folded()
    for record in records:
        apply(folded, record.offset, read_statement(record, roots))
    return folded


CATCH_UP_SECONDS = 30.0
"""How long bringing the trust list up to the topic's end may take before the read fails (and is tried again
by its reader, which ``/health`` shows): an await without end would stop the case stream's fold silently."""


class TrustLogBehind(RuntimeError):
    """The trust topic could not be read up to its end in time: nothing is judged against an older list."""


class TrustLog:
    """A service's view of the trust topic: read from its start, brought up to its end before a decision.

    The case stream's readers bring it up to the end once per batch, after the batch is fetched: a key
    trusted before an event was appended is known when the event is judged, live as in any replay.
    """

    def __init__(self, kafka: KafkaConnection, topic: str, roots: Mapping[str, Ed25519PublicKey]) -> None:
        self._kafka, self._topic, self._roots = kafka, topic, dict(roots)
        self._tp = TopicPartition(topic, 0)
        self._consumer: AIOKafkaConsumer | None = None
        self._folded = Folded()
        self._position = 0
        self._synced = 0.0
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        self._consumer = await started_consumer(self._kafka, enable_auto_commit=False)
        self._consumer.assign([self._tp])
        self._consumer.seek(self._tp, 0)
        # Paused between reads: a fetch waiting on the broker for new statements would hold up the request for
        # the topic's end that each batch of the case stream makes (the broker answers a client in order).
        self._consumer.pause(self._tp)
        await self.current(0)

    async def stop(self) -> None:
        if self._consumer is not None:
            await stop_consumer(self._consumer)

    async def current(self, max_age: float = 0.0) -> TrustList:
        """The trust list as of the end of the trust topic, read at most ``max_age`` seconds ago."""
        if time.monotonic() - self._synced <= max_age and self._synced:
            return self._folded.trust
        async with self._lock:
            if self._consumer is None:
                raise RuntimeError("the trust log is read before start-up")
            try:
                async with asyncio.timeout(CATCH_UP_SECONDS):
                    await self._catch_up(self._consumer)
            except TimeoutError:
                raise TrustLogBehind(
                    f"{self._topic} was not read up to its end within {CATCH_UP_SECONDS:g} s (read up to offset "
                    f"{self._position}): is the broker reachable?"
                ) from None
            self._synced = time.monotonic()
            return self._folded.trust

    async def _catch_up(self, consumer: AIOKafkaConsumer) -> None:
        end = (await consumer.end_offsets([self._tp]))[self._tp]
        if self._position >= end:
            return
        consumer.resume(self._tp)
        try:
            while self._position < end:
                batch = await consumer.getmany(self._tp, timeout_ms=1000, max_records=1000)
                for record in batch.get(self._tp, []):
                    self._apply(record)
                # Past what holds no statement (a transaction's marker, a record compacted away) as well.
                self._position = max(self._position, await consumer.position(self._tp))
        finally:
            consumer.pause(self._tp)

    def _apply(self, record: ConsumerRecord[bytes, bytes]) -> None:
        skipped = len(self._folded.skipped)
        apply(self._folded, record.offset, read_statement(record, self._roots))
        self._position = record.offset + 1
        for offset, why in self._folded.skipped[skipped:]:
            log.warning("trust statement at %s/0/%s skipped: %s", self._topic, offset, why)

    @property
    def skipped(self) -> list[tuple[int, str]]:
        return list(self._folded.skipped)


async def read_log(kafka: KafkaConnection, topic: str, roots: Mapping[str, Ed25519PublicKey]) -> Folded:
    """The whole trust topic folded, up to its end as of now (replay, audit, ``licensectl keys trusted``)."""
    records: list[ConsumerRecord[bytes, bytes]] = []
    batches = read_range(kafka, topic)
    async with aclosing(batches):
        async for _, batch in batches:
            records.extend(batch)
    return fold(records, roots)


def root_keys(given: str | Iterable[str] | None) -> dict[str, Ed25519PublicKey]:
    """The pinned root keys by key id, each given as base64 of the raw public key or as a file holding that
    (several separated by commas)."""
    if given is None:
        return {}
    texts = [t for t in (given.split(",") if isinstance(given, str) else given) if t.strip()]
    keys = [public_key_from(t.strip()) for t in texts]
    return {key_id(k): k for k in keys}


__all__ = [  # with signing
    "ALWAYS",
    "EVENTS_OF",
    "Folded",
    "KeyScope",
    "TrustLog",
    "TrustLogBehind",
    "TrustStatement",
    "root_keys",
]
