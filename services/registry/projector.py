"""Folding the case stream into the ledger, exactly once in effect, without Kafka transactions.

The projector reads with aiokafka directly, not through a faststream subscriber: it needs to seek
each assigned partition to the offset stored in PostgreSQL and to apply a whole fetched batch per
partition in one database transaction, which is the consumer's own API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition

from services.registry import chain, outbox, store
from services.registry.checkpoints import LedgerAltered
from services.registry.guard import LogGuard, LogReplaced
from shared.contract.events import Reason
from shared.platform import signing
from shared.platform.kafka_access import KafkaConnection, stop_consumer
from shared.platform.kafka_admin import partition_count
from shared.platform.trust import TrustLog

if TYPE_CHECKING:  # a fold process imports this module, and needs nothing of the readers
    from shared.platform.reading import Reader

log = logging.getLogger(__name__)

DeadLetter = Callable[[Any, Reason], Awaitable[None]]
GROUP_ID = "registry"


class LedgerAheadOfLog(RuntimeError):
    """The ledger has applied offsets the log does not have: the topic was recreated or truncated.

    Reading on would skip the new log's first events without a trace, so the projector stops instead.
    """


class ProjectorStalled(RuntimeError):
    """No records were handed to the projector for a while, though some wait past the ledger's offsets in
    partitions no other member of its group holds: its consumer has stopped fetching without an error (seen once
    while two brokers were down). The projector starts again with a new consumer."""


STALL_SECONDS = 20.0
COMMIT_HINT_SECONDS = 1.0
ASSIGNED_SECONDS = 60.0


class ProjectorNotAssigned(RuntimeError):
    """The projector's consumer joined its group but was given no partitions in time: a join that does not
    complete (a member of the group that stopped answering, the coordinator moving). aiokafka waits for the
    assignment without bound, which would leave the projector silent, folding nothing, with nothing on /health;
    so the wait is bounded, the reader waits the failure out, and a new consumer joins."""


class PartitionsNotPositioned(RuntimeError):
    """Partitions were assigned but could not be positioned at the ledger's offsets; the projector starts again."""


class SeekToStoredOffsets(ConsumerRebalanceListener):  # type: ignore[misc]
    """On assignment, resume each partition where the ledger's own last commit left it."""

    def __init__(self, consumer: AIOKafkaConsumer, pool: asyncpg.Pool) -> None:
        self._consumer = consumer
        self._pool = pool
        self.ahead: list[str] = []  # aiokafka swallows a listener's exceptions: the projector reads this
        # Where each partition was positioned. The fetcher may hand over records before the listener is
        # done (it awaits the database and the broker): those of unpositioned partitions are dropped.
        self.start: dict[TopicPartition, int] = {}
        # Why positioning assigned partitions failed (the database restarting, say): the projector starts again,
        # and is assigned them again. Left alone, their records would be dropped by ``wanted`` for ever.
        self.unpositioned: str | None = None

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        for tp in revoked:
            self.start.pop(tp, None)

    def wanted(
        self, tp: TopicPartition, records: list[ConsumerRecord[bytes, bytes]]
    ) -> list[ConsumerRecord[bytes, bytes]]:
        """The records to fold: none before the partition is positioned, none before its stored offset."""
        start = self.start.get(tp)
        return [] if start is None else [r for r in records if r.offset >= start]

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        try:
            await self._position(assigned)
        except Exception as exc:  # aiokafka would swallow it, and the partitions stay unpositioned: read nothing
            self.unpositioned = f"partitions {sorted(tp.partition for tp in assigned)} not positioned: {exc!r}"

    async def _position(self, assigned: list[TopicPartition]) -> None:
        for topic in {tp.topic for tp in assigned}:
            offsets = await store.stored_offsets(self._pool, topic)
            mine = [tp for tp in assigned if tp.topic == topic]
            ends = await self._consumer.end_offsets(mine)
            for tp in mine:
                stored = offsets.get(tp.partition, 0)
                if stored > ends[tp]:
                    self.ahead.append(f"{tp.topic}/{tp.partition}: applied up to {stored}, log ends at {ends[tp]}")
                    continue
                self._consumer.seek(tp, stored)
                self.start[tp] = stored


class Projector:
    """Reads ``topic`` in batches and applies each fetch's batches, of every partition in it, in one transaction."""

    def __init__(
        self,
        *,
        kafka: KafkaConnection,
        topic: str,
        pool: asyncpg.Pool,
        dead_letter: DeadLetter,
        group_id: str = GROUP_ID,
        instance_id: str | None = None,
        max_records: int = 2000,
        publish: outbox.Publish | None = None,
        on_applied: Callable[[int, float], None] | None = None,  # events folded, and in how many seconds
        reader: Reader | None = None,
        trust: TrustLog,
        guard: LogGuard | None = None,
        seal_key: bytes | None = None,
        altered: Callable[[], str | None] = lambda: None,
        assigned_within: float = ASSIGNED_SECONDS,
    ) -> None:
        self._assigned_within = assigned_within
        self._seal_key = seal_key
        self._altered = altered
        self._reader = reader
        self._trust = trust
        self._guard = guard
        self._publish = publish
        self._on_applied = on_applied
        self._group_id = group_id
        self._instance_id = instance_id
        self._kafka = kafka
        self._topic = topic
        self._pool = pool
        self._dead_letter = dead_letter
        self._max_records = max_records
        self.applied = 0
        self._partitions = 0  # how many the case stream has: asked of the broker before the first batch
        self.failure: str | None = None  # why the ledger cannot follow the log, for /health
        self._waiting: dict[int, tuple[int, float]] = {}  # partition -> (the ledger's offset, since when) while behind
        self._moved = time.monotonic()  # when records were last handed over (or the consumer started)

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(
            **self._kafka.options(),
            group_id=self._group_id,
            # A static member that restarts under the same id gets its partitions back at once.
            group_instance_id=self._instance_id,
            client_id="registry-projector",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        listener = SeekToStoredOffsets(consumer, self._pool)
        self._waiting, self._moved = {}, time.monotonic()
        consumer.subscribe([self._topic], listener=listener)
        hint: dict[TopicPartition, int] = {}  # offsets folded, not yet committed to the group (a hint)
        hinted = time.monotonic()
        try:
            await self._start(consumer)  # inside: one that fails to start (the broker away) is closed too
            while True:
                batches = await consumer.getmany(timeout_ms=200, max_records=self._max_records)
                if listener.ahead:
                    self.failure = (
                        "the ledger is ahead of the log (" + "; ".join(listener.ahead) + "): the topic was recreated "
                        "or truncated. The ledger no longer follows from this log; restore the log, or rebuild the "
                        "ledger from it into an empty database."
                    )
                    raise LedgerAheadOfLog(self.failure)
                if listener.unpositioned:
                    # Waited out (the database or the broker failing): /health shows the projector's reader
                    # failing meanwhile. Not the ledger's failure to follow its log: exports are still admitted.
                    raise PartitionsNotPositioned(listener.unpositioned)
                await self._check_log(force=bool(batches))
                if (altered := self._altered()) is not None:
                    self.failure = altered
                    raise LedgerAltered(altered)  # waited out: the fold resumes once the ledger is repaired
                self.failure = None
                applied = {tp: wanted for tp, records in batches.items() if (wanted := listener.wanted(tp, records))}
                if applied:
                    await self._apply_all(applied, await self._partitions_covering(applied))
                    hint |= {tp: records[-1].offset + 1 for tp, records in applied.items()}
                if hint and time.monotonic() - hinted >= COMMIT_HINT_SECONDS:
                    # Only a hint for tools that show lag: the ledger resumes from its own offsets. So it is sent
                    # once a second at most, not after each batch (a round trip to the group's coordinator), and
                    # never holds the fold up: aiokafka retries a commit for as long as the coordinator is away.
                    try:
                        await asyncio.wait_for(consumer.commit(hint), COMMIT_HINT_SECONDS * 5)
                    except Exception as exc:  # the next hint carries these offsets too
                        log.warning("the projector's lag hint was not committed (%r); it is sent again", exc)
                    else:
                        hint = {}
                    hinted = time.monotonic()
                await self._check_moving(consumer, set(applied))
                if self._reader is not None:
                    self._reader.recovered()
        finally:
            await stop_consumer(consumer)

    async def _start(self, consumer: AIOKafkaConsumer) -> None:
        """Start ``consumer``, which joins the group and returns once it is assigned its partitions (perhaps
        none); else, after ``assigned_within`` seconds, :class:`ProjectorNotAssigned`."""
        try:
            await asyncio.wait_for(consumer.start(), self._assigned_within)
        except TimeoutError:
            raise ProjectorNotAssigned(
                f"the projector's consumer was assigned no partitions of {self._topic} within "
                f"{self._assigned_within:g} s of joining group {self._group_id}: a new consumer joins"
            ) from None

    async def _check_moving(self, consumer: AIOKafkaConsumer, fetched: set[TopicPartition]) -> None:
        """Raise :class:`ProjectorStalled` if no records at all were handed over for ``STALL_SECONDS`` while a
        partition's records waited past the ledger's offset all that time, and no other member of the group holds
        the partition: this one does (as far as it knows), or nobody does (the group lost it). Partitions another
        instance holds are that instance's to fold; a consumer catching up a long log, handing over some
        partitions while others wait their turn, is moving."""
        if self._guard is None:
            return
        now, behind = time.monotonic(), self._guard.behind
        done = {tp.partition for tp in fetched}
        if done:
            self._moved = now
        self._waiting = {
            p: self._waiting[p] if p in self._waiting and self._waiting[p][0] == behind[p][0] else (behind[p][0], now)
            for p in behind
            if p not in done
        }
        stalled = {p for p, (_, since) in self._waiting.items() if now - since >= STALL_SECONDS}
        if not stalled or now - self._moved < STALL_SECONDS:
            return
        mine = {tp.partition for tp in consumer.assignment() if tp.topic == self._topic}
        others = await self._guard.members_hold(self._group_id, stalled - mine)
        stuck = sorted(p for p in stalled if p in mine or p not in others)
        if stuck:
            self._waiting.clear()
            raise ProjectorStalled(
                "; ".join(f"partition {p}: records {behind[p][0]} to {behind[p][1] - 1}" for p in stuck)
                + f" have waited {STALL_SECONDS:.0f} s, none handed over, and no other member of the group holds "
                "them: reading again with a new consumer"
            )

    async def _partitions_covering(self, batches: dict[TopicPartition, Any]) -> int:
        """How many partitions the case stream has, as the broker describes it: what placement is judged
        against. Asked once, and again only if a batch comes from a partition beyond the count (the topic
        grew). Never the consumer's cached metadata, which may lack the topic for a moment: a count of 0 or
        a short one would refuse genuine events as misplaced. A broker that cannot say raises, and the
        projector starts again."""
        highest = max(tp.partition for tp in batches)
        if self._partitions <= highest:
            self._partitions = await partition_count(self._kafka, self._topic)
            if self._partitions <= highest:
                raise LookupError(
                    f"{self._topic} is described with {self._partitions} partitions, but partition {highest} was read"
                )
        return self._partitions

    async def _check_log(self, *, force: bool) -> None:
        """Stop (``LogReplaced``, named on /health) if the log is no longer the one the ledger follows."""
        if self._guard is None:
            return
        try:
            await self._guard.check(force=force)
        except LogReplaced as replaced:
            self.failure = f"{replaced}. Nothing is folded or admitted: restore the log, or rebuild the ledger"
            raise

    async def _apply_all(
        self, batches: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]], partitions: int
    ) -> None:
        """Apply the partitions' batches of one fetch in one transaction (``fold_all``), as if one partition after
        another; dead-letter what the fold itself refused once it is committed. Then relay the changes."""
        started = time.monotonic()
        # Brought up to the end of the trust topic after the batch was fetched: a key trusted before an event
        # was appended is known when the event is judged, as in any replay.
        trust = await self._trust.current(0)
        by_partition = {tp.partition: records for tp, records in batches.items()}
        applied = await fold_all(
            self._pool,
            self._topic,
            by_partition,
            trust,
            partitions,
            on_refused=self._dead_letter,
            seal_key=self._seal_key,
        )
        for partition, done in applied.items():
            by_offset = {r.offset: r for r in by_partition[partition]}
            for positioned, reason in done.refused:  # refused by the fold itself: told once it is committed
                await self._dead_letter(by_offset[positioned.offset], reason)
        events = sum(done.events for done in applied.values())
        self.applied += events
        if self._on_applied is not None:
            self._on_applied(events, time.monotonic() - started)
        if any(done.changes for done in applied.values()) and self._publish is not None:
            await outbox.relay(self._pool, self._publish)


async def fold_all(
    pool: asyncpg.Pool,
    topic: str,
    batches: Mapping[int, list[ConsumerRecord[bytes, bytes]]],
    trust: signing.TrustList,
    partitions: int,
    *,
    on_refused: DeadLetter | None = None,
    unchecked: Callable[[int, int], bool] | None = None,
    seal_key: bytes | None = None,
    outbox: bool = True,
) -> dict[int, store.Applied]:
    """Fold each partition's records (``batches``, by partition) into the pool's ledger, all in one transaction:
    read (and judge) every record first, then apply the partitions' events, refusals, chains and offsets together
    (``store.apply_batches``). Live, one fetch holds records of most partitions, a few each: one transaction and
    one statement per table for all of them, not one each, is a fifth of the commits and statements. A replay
    folds one partition's long batch at a time, the same way, without the outbox (``outbox``) and relying on a
    checkpoint for the records it vouches for (``unchecked``: (partition, offset) -> the signature goes
    unchecked)."""
    read = {
        p: await read_batch(records, trust, partitions, on_refused=on_refused, unchecked=unchecked)
        for p, records in batches.items()
    }
    applying = [
        store.Batch(
            partition,
            events=read[partition][0],
            next_offset=records[-1].offset + 1,
            records=raw_records(records),
            refused=read[partition][1],
        )
        for partition, records in batches.items()
    ]
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute(store.LEDGER_LOCK_SHARED)
        return await store.apply_batches(connection, topic=topic, batches=applying, seal_key=seal_key, outbox=outbox)


async def read_batch(
    records: list[ConsumerRecord[bytes, bytes]],
    trust: signing.TrustList,
    partitions: int,
    *,
    on_refused: DeadLetter | None = None,
    unchecked: Callable[[int, int], bool] | None = None,
) -> tuple[list[store.Positioned], list[store.Refused]]:
    """The events of a batch's records to fold, and the records refused (``on_refused`` is told of each), as
    the fold reads them live and in replay. A record ``unchecked`` names (partition, offset) is read without
    checking its signature (a replay from a trusted checkpoint)."""
    events: list[store.Positioned] = []
    refused: list[store.Refused] = []
    for index, record in enumerate(records, 1):
        verify = unchecked is None or not unchecked(record.partition, record.offset)
        read = signing.read_case_event(record, trust, partitions=partitions, verify=verify)
        if isinstance(read, Reason):
            if on_refused is not None:
                await on_refused(record, read)
            refused.append(store.Refused(record.offset, read.code))
        else:
            events.append(store.Positioned(record.offset, read))
        if index % store.YIELD_EVERY == 0:
            await asyncio.sleep(0)  # the queries share this loop: none waits for a whole batch's signatures
    return events, refused


def raw_records(records: list[ConsumerRecord[bytes, bytes]]) -> list[chain.Raw]:
    """Every record as read, readable or not: what the partition's hash chain covers."""
    return [chain.Raw(r.offset, r.value) for r in records]


async def relay_forever(pool: asyncpg.Pool, publish: outbox.Publish, reader: Reader, interval: float = 1.0) -> None:
    """Publish what a crash or a failed publish left in the outbox; the projector relays the rest. A failure
    leaves the changes in the outbox and waits (growing, jittered, capped) before the next try."""
    while True:
        with contextlib.suppress(Exception):  # reader.run logged it and waited; the changes stay in the outbox
            await reader.run(lambda: outbox.relay(pool, publish))
        await asyncio.sleep(interval)


async def run_forever(projector: Projector, reader: Reader) -> None:
    """Run the projector, restarting it after a failure, after a wait that grows (jittered, capped), rather than
    letting the ledger stall or spin; ``/health`` shows the failure meanwhile."""
    while True:
        with contextlib.suppress(Exception):  # reader.run logged it and waited: resume from the stored offsets
            await reader.run(projector.run)
