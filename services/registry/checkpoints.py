"""Signed checkpoints: the registry's periodic, signed statement of where its chains and ledger stand.

A checkpoint holds, from one database snapshot, each partition's chain head with its offset and the
ledger checksum at exactly those offsets, signed with the registry's Ed25519 key. Published to their
own topic, kept forever, they let an auditor check the log and the ledger later against a replay
(``licensectl audit verify``): a record changed before a checkpoint's offset breaks its chain head, a
ledger row changed breaks the checksum of the next checkpoint.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import aclosing
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiokafka import ConsumerRecord
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from services.registry import seal, store
from services.registry.checksum import checksum
from shared.contract import signatures
from shared.contract.checkpoints import ChainHead, Checkpoint, SignedCheckpoint, canonical
from shared.contract.refusal import readable
from shared.contract.signatures import key_id, public_bytes, public_key_from
from shared.platform.cancelling import cancelled_within
from shared.platform.db import Connection
from shared.platform.kafka_access import KafkaConnection
from shared.platform.ranges import read_range
from shared.platform.signing import load_signing_key

__all__ = ["key_id", "load_signing_key", "public_bytes", "public_key_from"]  # the keys live in shared.platform.signing

log = logging.getLogger(__name__)

Publish = Callable[[bytes], Awaitable[None]]


def sign(checkpoint: Checkpoint, key: Ed25519PrivateKey) -> SignedCheckpoint:
    signature = signatures.sign(key, canonical(checkpoint.model_dump(mode="json")))
    return SignedCheckpoint(checkpoint=checkpoint, signature=base64.b64encode(signature).decode())


def to_bytes(signed: SignedCheckpoint) -> bytes:
    return canonical(signed.model_dump(mode="json"))


class Unreadable(ValueError):
    """A record of the checkpoint topic that is not a signed checkpoint."""


def read(value: bytes | None) -> tuple[Checkpoint, dict[str, Any], bytes]:
    """The checkpoint in a record, with its content as signed (the raw JSON object) and its signature."""
    try:
        document = json.loads(value or b"")
        signed = SignedCheckpoint.model_validate(document)
        return signed.checkpoint, document["checkpoint"], base64.b64decode(signed.signature, validate=True)
    except Exception as exc:  # whatever the record holds (nesting too deep, say), it is no checkpoint, and said so
        raise Unreadable(readable(f"{type(exc).__name__}: {exc}", 500)) from exc


def signature_problem(
    checkpoint: Checkpoint, content: dict[str, Any], signature: bytes, trusted: Mapping[str, Ed25519PublicKey]
) -> str | None:
    """Why the checkpoint's signature does not hold (None if it does), against the ``trusted`` keys by id.

    With no trusted key, the key the checkpoint carries is used: that proves integrity, not origin.
    """
    try:
        key = trusted[checkpoint.key_id] if trusted else public_key_from(checkpoint.public_key)
    except KeyError:
        return f"signed by key {checkpoint.key_id[:16]}…, which is not a trusted key"
    except ValueError:
        return "carries an unreadable public key"
    if key_id(key) != checkpoint.key_id:
        return "its key id is not the SHA-256 of its public key"
    if not signatures.holds(key, signature, canonical(content)):
        return "signature invalid"
    return None


# Reading them back.


async def read_all(
    kafka: KafkaConnection, topic: str, each: Callable[[ConsumerRecord[bytes, bytes]], None]
) -> dict[int, int]:
    """Call ``each`` on every record of ``topic`` from offset 0 to its end as of now; return the ends."""
    ends: dict[int, int] = {}
    batches = read_range(kafka, topic, ends=ends)
    async with aclosing(batches):
        async for _, records in batches:
            for record in records:
                each(record)
    return ends


async def latest_trusted(
    kafka: KafkaConnection,
    checkpoints_topic: str,
    trusted: Mapping[str, Ed25519PublicKey],
    *,
    topic: str,
    within: Mapping[int, store.Position],
) -> Checkpoint | None:
    """The latest checkpoint of ``topic`` validly signed by a ``trusted`` key that lies within ``within``:
    every partition it names at or before that position, on the same chain (None if there is none)."""
    if not trusted:
        return None  # a checkpoint checked only against the key it carries proves nothing about who signed it
    found: list[Checkpoint] = []

    def each(record: ConsumerRecord[bytes, bytes]) -> None:
        try:
            checkpoint, content, signature = read(record.value)
        except Unreadable:
            return
        if checkpoint.topic == topic and signature_problem(checkpoint, content, signature, trusted) is None:
            found.append(checkpoint)

    await read_all(kafka, checkpoints_topic, each)

    def fits(checkpoint: Checkpoint) -> bool:
        return all(
            (position := within.get(head.partition)) is not None
            and head.next_offset <= position.next_offset
            and head.chain_start == position.chain_start
            for head in checkpoint.partitions
        )

    return max((c for c in found if fits(c)), key=lambda c: (sum(c.offsets.values()), c.created_at), default=None)


# Taking and publishing.


class LedgerAltered(RuntimeError):
    """The ledger's rows are not the ones the fold wrote (its seal does not hold), or an audit found it differs
    from the log: the registry must not build on it, nor sign a checkpoint of it."""


ALARMS = "SELECT raised_at, reason FROM ledger_alarms ORDER BY raised_at LIMIT 3"
RAISE_ALARM = "INSERT INTO ledger_alarms (reason) VALUES ($1)"


async def alarms(connection: Connection | asyncpg.Pool) -> list[str]:
    """What audits found wrong with the live ledger and raised (``licensectl audit verify --live``), if anything."""
    return [f"{r['raised_at'].isoformat()}: {r['reason']}" for r in await connection.fetch(ALARMS)]


async def take(
    pool: asyncpg.Pool,
    topic: str,
    *,
    instance: str,
    key: Ed25519PrivateKey,
    now: datetime | None = None,
    sealed: bool = True,
) -> SignedCheckpoint:
    """A signed checkpoint of the ledger in the pool's schema, its heads and checksum from one snapshot; or
    :class:`LedgerAltered`, if the ledger's seal does not hold in that snapshot (or an audit raised an alarm).
    ``sealed=False``: of a ledger no registry keeps a seal of (a replay's, a benchmark's), checked for nothing."""
    async with pool.acquire() as connection, connection.transaction(isolation="repeatable_read", readonly=True):
        positions = await store.stored_positions(connection, topic)
        schema = await connection.fetchval("SELECT current_schema()")
        ledger = await checksum(connection, schema, seal.key_of(key) if sealed else None)
        kept = await seal.stored(connection, topic) if sealed else None
        raised = await alarms(connection)
    if ledger.sealed != kept:
        raise LedgerAltered(
            "the ledger's rows are not the ones the fold wrote (its seal does not hold): a row was inserted, "
            "changed or deleted outside the fold. Nothing is folded or admitted until `licensectl replay --repair` "
            "rebuilds it from the log"
        )
    if raised:
        raise LedgerAltered(
            "an audit found the live ledger differs from its log (" + "; ".join(raised) + "). Nothing is folded or "
            "admitted until `licensectl replay --repair` rebuilds it from the log"
        )
    public = key.public_key()
    checkpoint = Checkpoint(
        topic=topic,
        partitions=[
            ChainHead(partition=p, next_offset=pos.next_offset, head=pos.head.hex(), chain_start=pos.chain_start)
            for p, pos in sorted(positions.items())
        ],
        ledger_checksum=ledger.digest,
        ledger_rows=ledger.rows,
        created_at=now or datetime.now(UTC),
        instance=instance,
        key_id=key_id(public),
        public_key=base64.b64encode(public_bytes(public)).decode(),
    )
    return sign(checkpoint, key)


def default_instance() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Checkpointer:
    """Publishes a checkpoint every ``interval`` seconds, or sooner after ``every_batches`` batches; and holds the
    ledger to its seal as it does (``altered`` says why the ledger must not be built on, while it must not).

    A checkpoint that would say what the last one said (same heads, same checksum) is not published:
    an idle ledger adds nothing to the topic, while a ledger row changed with no event does. No checkpoint is
    signed over an altered ledger; while it is altered, it is checked again every few seconds, and audits'
    alarms are looked for as often.
    """

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        topic: str,
        publish: Publish,
        key: Ed25519PrivateKey,
        instance: str,
        interval: float,
        every_batches: int,
        recheck: float = 3.0,
    ) -> None:
        self._pool = pool
        self._topic = topic
        self._publish = publish
        self._key = key
        self._instance = instance
        self._interval = interval
        self._every_batches = every_batches
        self._recheck = recheck
        self._batches = 0
        self._due = asyncio.Event()
        self._last: tuple[Any, ...] | None = None
        self.altered: str | None = None
        self.checked_at = time.monotonic()  # when the ledger was last checkpointed (taken, its seal checked)

    def batch_applied(self) -> None:
        self._batches += 1
        if self._every_batches and self._batches >= self._every_batches:
            self._due.set()

    def check_now(self) -> None:
        """Take a checkpoint (and so check the seal) at once."""
        self._due.set()

    async def checkpoint(self) -> SignedCheckpoint | None:
        """Take a checkpoint and publish it if it says something new; return it if published."""
        self._batches = 0
        try:
            signed = await take(self._pool, self._topic, instance=self._instance, key=self._key)
        except LedgerAltered as altered:
            if self.altered is None:
                log.error("%s", altered)
            self.altered = str(altered)
            return None
        self.altered = None
        self.checked_at = time.monotonic()
        said = (tuple(signed.checkpoint.partitions), signed.checkpoint.ledger_checksum)
        if said == self._last:
            return None
        await self._publish(to_bytes(signed))
        self._last = said
        return signed

    async def run(self) -> None:
        waited = 0.0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._due.wait(), self._recheck)
            waited += self._recheck
            due = self._due.is_set() or waited >= self._interval or self.altered is not None
            if not due and await self._alarmed():
                due = True
            if not due:
                continue
            self._due.clear()
            waited = 0.0
            try:
                await self.checkpoint()
            except asyncio.CancelledError as cancelled:
                if cancelled_within(cancelled) is None:
                    raise  # the service is stopping
                log.exception("checkpoint cancelled under it; the next one is taken in %s s", self._interval)
            except Exception:
                log.exception("checkpoint failed; the next one is taken in %s s", self._interval)

    async def _alarmed(self) -> bool:
        try:
            return bool(await alarms(self._pool))
        except Exception:  # the next full checkpoint tells; a failed look for alarms is no alarm
            return False
