"""Replay: rebuild the ledger from the case stream alone, and prove it equals the live one.

The live ledger's stored offsets and its checksum are read in one snapshot; the log is folded from
offset 0 up to exactly those offsets into a fresh schema; the two checksums are compared. ``swap``
then makes the rebuilt ledger live, atomically, after catching it up with the live one.

A partition's fold is independent of every other's (a case lives in one partition, and each batch
holds the ledger lock shared), so a long replay folds with one process per core, each on its share of
the partitions (``fold_in_processes``, ``services/registry/fold_process.py``): one Python process folds
at about the rate one core allows (docs/performance.md).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from aiokafka import TopicPartition
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from services.registry import chain, checkpoints, seal, store
from services.registry.checksum import Checksum, RowDifference, checksum, differences
from services.registry.projector import fold_all
from shared.contract import signatures
from shared.contract.checkpoints import Checkpoint
from shared.contract.topics import TRUST, sibling
from shared.platform import signing, trust
from shared.platform.db import create_pool, migrate_async
from shared.platform.kafka_access import KafkaConnection, started_consumer, stop_consumer
from shared.platform.kafka_admin import partition_count
from shared.platform.ranges import RangeStalled, read_range

Progress = Callable[[int, int], None]  # (events read so far, events to read)
STALL_SECONDS = 30


ReplayStalled = RangeStalled
"""The log ends before the offsets the live ledger has applied: it cannot be replayed whole."""


class LogIncomplete(RuntimeError):
    """The log no longer holds records the live ledger applied (deleted, or cut short): it cannot be replayed."""


@dataclass(frozen=True)
class CaseLog:
    """The case stream to fold, and what its records are judged against: the trust list folded from the trust
    topic's statements (signed by a pinned root key), and the stream's partition count (placement)."""

    kafka: KafkaConnection
    topic: str
    trust_topic: str
    roots: tuple[str, ...]  # the pinned root keys, base64: a fold process reads the trust topic with them
    partitions: int
    trust: signing.TrustList = field(compare=False, repr=False)
    skipped: tuple[tuple[int, str], ...] = ()  # trust-topic records no pinned root signed: (offset, why)


async def open_log(
    kafka: KafkaConnection,
    topic: str,
    *,
    trust_topic: str | None = None,
    roots: Mapping[str, Ed25519PublicKey] | None = None,
) -> CaseLog:
    """The case stream ``topic``, with the trust its namespace's trust topic gives under ``roots`` (by default
    the pinned ones of ``LEDGER_TRUST_ROOT_KEYS``)."""
    trust_topic = trust_topic or sibling(topic, TRUST)
    roots = dict(roots) if roots is not None else trust.root_keys(os.environ.get("LEDGER_TRUST_ROOT_KEYS"))
    folded = await trust.read_log(kafka, trust_topic, roots)
    partitions = await partition_count(kafka, topic)
    texts = tuple(signatures.public_b64(k) for k in roots.values())
    return CaseLog(kafka, topic, trust_topic, texts, partitions, folded.trust, tuple(folded.skipped))


@dataclass
class ReplayResult:
    live: Checksum
    rebuilt: Checksum
    events: int
    seconds: float
    schema: str
    offsets: dict[int, int]
    differences: list[RowDifference] = field(default_factory=list)
    swapped: bool = False
    chain_breaks: list[chain.ChainBreak] = field(default_factory=list)
    fold_seconds: float = 0.0  # of ``seconds``, the time spent folding (the rest: checksums, migrations)
    checkpoint: Checkpoint | None = None  # the trusted checkpoint the fold relied on, if any
    notes: list[str] = field(default_factory=list)

    @property
    def matches(self) -> bool:
        return self.live.digest == self.rebuilt.digest and not self.chain_breaks


async def whole(log: CaseLog, positions: Mapping[int, store.Position]) -> None:
    """Raise :class:`LogIncomplete`, naming the offsets, if the log no longer holds every record the ledger
    applied: records deleted at a partition's start, or a partition ending before the ledger's offset."""
    consumer = await started_consumer(log.kafka, enable_auto_commit=False)
    try:
        tps = [TopicPartition(log.topic, p) for p in positions]
        starts = await consumer.beginning_offsets(tps) if tps else {}
        ends = await consumer.end_offsets(tps) if tps else {}
    finally:
        await stop_consumer(consumer)
    missing = []
    for tp in tps:
        position = positions[tp.partition]
        if starts[tp] > position.chain_start:
            missing.append(f"partition {tp.partition}: offsets {position.chain_start} to {starts[tp] - 1} were deleted")
        if ends[tp] < position.next_offset:
            missing.append(
                f"partition {tp.partition}: offsets {ends[tp]} to {position.next_offset - 1} are gone (it ends early)"
            )
    if missing:
        raise LogIncomplete(f"{log.topic} no longer holds records the live ledger applied: " + "; ".join(missing))


def _q(name: str) -> str:
    return store.in_schema(name)[:-1]


async def seed_positions(connection: asyncpg.Connection, live_schema: str, schema: str, topic: str) -> None:
    """A ledger older than the chain hashes (or than kept refusals) does so from where it started: the
    rebuild must too."""
    await connection.execute(
        f"INSERT INTO {_q(schema)}.partition_offsets (topic, partition, next_offset, chain_start, refusals_from) "
        f"SELECT topic, partition, 0, chain_start, refusals_from FROM {_q(live_schema)}.partition_offsets "
        "WHERE topic = $1 AND (chain_start > 0 OR refusals_from > 0)",
        topic,
    )


# Indexes the queries read and the fold never does: a replay into a fresh schema builds them once, after its last
# row, in one sorted pass each, instead of adding every row to each of them (about a tenth of a replay's time on
# the dev box, docs/performance.md). The fold's own look-ups (``licenses_case``, ``exports_case_vins``,
# ``applied_events``' key, which finds the events applied already) stay, and so do the keys its upserts name.
QUERY_ONLY_INDEXES = (
    "licenses_applicant",
    "exports_declaration",
    "exports_with_vins",
    "license_history_position",
    "license_history_time",
    "applied_events_case",
)
# The keys of the tables a replay only appends to (binary COPY, no ``ON CONFLICT``): added back after the last row
# too, in one sorted pass, where each row's random key went into its B-tree on the way in. A duplicate key, which
# the fold's check of the events applied already leaves none of, fails the replay there, before its checksums.
APPEND_ONLY_KEYS = ("exports_pkey", "license_history_pkey")
# Each index build's sort memory: a 1M-event log's history key (1.6M rows) sorts in memory, not in files.
BUILD_MEMORY = "256MB"


async def defer_indexes(connection: asyncpg.Connection, schema: str) -> list[str]:
    """Drop ``schema``'s ``QUERY_ONLY_INDEXES`` and ``APPEND_ONLY_KEYS``; return the statements that build them
    again (``build_indexes``), the keys first (the largest)."""
    rows = await connection.fetch(
        "SELECT i.tablename, i.indexname, i.indexdef, k.conname IS NOT NULL AS key FROM pg_indexes i "
        "LEFT JOIN (pg_constraint k JOIN pg_namespace n ON n.oid = k.connamespace AND n.nspname = $1) "
        "ON k.conname = i.indexname AND k.contype = 'p' "
        "WHERE i.schemaname = $1 AND i.indexname = ANY($2::text[]) ORDER BY key DESC, i.indexname",
        schema,
        [*APPEND_ONLY_KEYS, *QUERY_ONLY_INDEXES],
    )
    statements = []
    for row in rows:
        table, index = f"{_q(schema)}.{_q(row['tablename'])}", _q(row["indexname"])
        if row["key"]:
            await connection.execute(f"ALTER TABLE {table} DROP CONSTRAINT {index}")
            # Built as a unique index first, which other indexes of its table may be built beside (a key added
            # whole would lock the table), then made the key it was.
            statements.append(
                f"{row['indexdef']}; ALTER TABLE {table} ADD CONSTRAINT {index} PRIMARY KEY USING INDEX {index}"
            )
        else:
            await connection.execute(f"DROP INDEX {_q(schema)}.{index}")
            statements.append(row["indexdef"])
    return statements


async def build_indexes(database_url: str, definitions: list[str], connections: int = 1) -> None:
    """Run the statements ``defer_indexes`` gave (each builds one schema-qualified index or key) over as many as
    ``connections`` connections at once: each index is one core's work for PostgreSQL, sorted in memory where it
    fits (``BUILD_MEMORY``)."""
    waiting = list(definitions)

    async def build() -> None:
        connection = await asyncpg.connect(database_url)
        try:
            await connection.execute(f"SET maintenance_work_mem = '{BUILD_MEMORY}'")
            while waiting:
                await connection.execute(waiting.pop(0))
        finally:
            await connection.close()

    # Every connection finishes before a failure is raised: none is left building into a schema its caller drops.
    outcomes = await asyncio.gather(*(build() for _ in range(min(connections, len(waiting)))), return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome


async def live_refusals(connection: asyncpg.Connection, schema: str, topic: str) -> set[tuple[int, int]]:
    rows = await connection.fetch(
        f'SELECT partition, "offset" FROM {_q(schema)}.refused_events WHERE topic = $1', topic
    )
    return {(r["partition"], r["offset"]) for r in rows}


@dataclass(frozen=True)
class Vouched:
    """The records a trusted checkpoint vouches for: those below its offsets, except the ones the live ledger
    says it refused. Their signatures are not checked one by one; the fold up to the checkpoint is held to
    the checkpoint's chain heads and ledger checksum instead, which cover the refusals too."""

    below: dict[int, int]
    refused: frozenset[tuple[int, int]] = frozenset()

    def covers(self, partition: int, offset: int) -> bool:
        return offset < self.below.get(partition, 0) and (partition, offset) not in self.refused

    def to_json(self) -> dict[str, Any]:
        return {"below": self.below, "refused": sorted(self.refused)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Vouched:
        below = {int(p): o for p, o in data["below"].items()}
        return cls(below, frozenset((p, o) for p, o in data["refused"]))


def chain_breaks(recorded: dict[int, store.Position], rebuilt: dict[int, store.Position]) -> list[chain.ChainBreak]:
    """The partitions whose recorded head differs from the one the log gives at the same offset."""
    breaks = []
    for partition, position in sorted(recorded.items()):
        again = rebuilt.get(partition)
        head = again.head if again is not None else chain.GENESIS
        if head != position.head:
            breaks.append(
                chain.ChainBreak(partition, position.next_offset, position.head.hex(), head.hex(), position.chain_start)
            )
    return breaks


async def replay(
    *,
    database_url: str,
    kafka: KafkaConnection,
    topic: str,
    live_schema: str = "registry",
    swap: bool = False,
    repair: bool = False,
    keep: bool = False,
    progress: Progress | None = None,
    processes: int | None = None,
    checkpoints_topic: str | None = None,
    checkpoint_keys: Mapping[str, Ed25519PublicKey] | None = None,
    trust_topic: str | None = None,
    roots: Mapping[str, Ed25519PublicKey] | None = None,
    seal_key: bytes | None = None,
) -> ReplayResult:
    """Fold ``topic`` into a fresh schema up to the live ledger's offsets and compare the two.

    ``processes`` folds with that many processes; by default one per core for a long log, else one.
    With ``checkpoint_keys``, the latest checkpoint in ``checkpoints_topic`` signed by one of them that the
    live ledger has passed vouches for the records below it (``Vouched``): they are folded without checking
    each signature, and the fold is then held to the checkpoint's chain heads and checksum. If it does not
    hold, the fold starts again checking every signature, and ``notes`` says why.

    ``swap`` makes the rebuilt ledger live if it equals the live one; ``repair`` makes it live if it does not
    (the live ledger was altered), naming every row that changed, as long as the log itself is intact. Either
    seals the rebuilt ledger with ``seal_key`` (the registry's), so that the registry resumes on it. A failed
    replay leaves no schema behind.
    """
    started = time.perf_counter()
    log = await open_log(kafka, topic, trust_topic=trust_topic, roots=roots)
    connection = await asyncpg.connect(database_url)
    schema: str | None = None
    fold: _Fold | None = None
    swapped = False
    try:
        async with connection.transaction(isolation="repeatable_read", readonly=True):
            positions = await store.stored_positions(connection, topic, live_schema)
            offsets = {p: position.next_offset for p, position in positions.items()}
            count = processes or processes_for(sum(offsets.values()), len(offsets))
            fold = _Fold(database_url, log, count, sum(offsets.values()), progress)
            await fold.start()  # its processes load the fold while the live ledger is summed, the schema made
            live = await checksum(connection, live_schema)
            refusals = await live_refusals(connection, live_schema, topic)
        await whole(log, positions)
        anchor = None
        if checkpoint_keys and checkpoints_topic:
            anchor = await checkpoints.latest_trusted(
                kafka, checkpoints_topic, checkpoint_keys, topic=topic, within=positions
            )
        schema, notes = await fold.fresh(connection, live_schema), []
        at_end: Checksum | None = None  # the rebuilt ledger's checksum, if the anchor check took it at the end
        if anchor is not None:
            vouched = Vouched(anchor.offsets, frozenset(r for r in refusals if r[1] < anchor.offsets.get(r[0], 0)))
            await fold.run(schema, start={}, end=anchor.offsets, vouched=vouched)
            problem, at_anchor = await _anchor_problem(connection, schema, topic, anchor)
            if problem is None and anchor.offsets == offsets:
                at_end = at_anchor
            elif problem is None:
                await fold.run(schema, start=anchor.offsets, end=offsets)
            else:
                notes.append(f"{anchor.label} does not hold ({problem}): every signature was checked instead")
                anchor = None
                await connection.execute(f"DROP SCHEMA {_q(schema)} CASCADE")
                schema = await fold.fresh(connection, live_schema)
                await fold.run(schema, start={}, end=offsets)
        else:
            await fold.run(schema, start={}, end=offsets)
        await fold.finish()
        async with connection.transaction(readonly=True):
            rebuilt = at_end or await checksum(connection, schema)
            rebuilt_positions = await store.stored_positions(connection, topic, schema)
        result = ReplayResult(live, rebuilt, fold.events, time.perf_counter() - started, schema, offsets)
        result.fold_seconds, result.checkpoint, result.notes = fold.seconds, anchor, notes
        # The log itself, not only the ledger: a record changed after it was applied breaks the chain.
        result.chain_breaks = chain_breaks(positions, rebuilt_positions)
        result.notes += [f"trust topic record {o} skipped: {why}" for o, why in log.skipped]
        if not result.matches:
            async with connection.transaction(readonly=True):
                result.differences = await differences(connection, live=live_schema, rebuilt=schema)
        if (swap and result.matches) or (repair and not result.chain_breaks):
            await _swap(connection, database_url, log, live_schema, schema, offsets, seal_key)
            result.swapped = swapped = True
        return result
    finally:
        if fold is not None:
            await fold.close()
        if schema is not None and not (keep or swapped):
            await connection.execute(f"DROP SCHEMA IF EXISTS {_q(schema)} CASCADE")
        await connection.close()


class _Fold:
    """Folds parts of the log into a schema, with one process or several, counting what it folded."""

    def __init__(self, url: str, log: CaseLog, processes: int, total: int, progress: Progress | None) -> None:
        self._url, self._log, self._processes = url, log, processes
        self._total, self._progress = total, progress
        self.events = 0
        self.seconds = 0.0  # folding only, with the indexes built after it
        self._indexes: list[str] = []
        self._started: list[asyncio.subprocess.Process] = []

    async def start(self) -> None:
        """Start the fold's processes ahead of the first ``run`` (if it folds with several), so that they load the
        fold while the caller prepares; ``close`` stops any that ``run`` did not take."""
        if self._processes > 1:
            self._started = await start_fold_processes(self._processes, self._url, self._log.kafka)

    async def close(self) -> None:
        await stop_fold_processes(self._started)
        self._started = []

    async def fresh(self, connection: asyncpg.Connection, live_schema: str) -> str:
        """A freshly migrated schema to fold into, positioned as the live one starts, without the indexes only
        the queries read until ``finish``."""
        schema = f"{live_schema}_rebuilt_{uuid.uuid4().hex[:8]}"
        await migrate_async("registry", self._url, schema=schema)
        await seed_positions(connection, live_schema, schema, self._log.topic)
        self._indexes = await defer_indexes(connection, schema)
        self.events, self.seconds = 0, 0.0
        return schema

    async def finish(self) -> None:
        """Build the indexes and keys ``fresh`` left out: the rebuilt ledger then has every index and key a migrated one
        has."""
        started = time.perf_counter()
        await build_indexes(self._url, self._indexes, connections=self._processes)
        self._indexes = []
        self.seconds += time.perf_counter() - started

    async def run(
        self, schema: str, *, start: dict[int, int], end: dict[int, int], vouched: Vouched | None = None
    ) -> None:
        started = time.perf_counter()
        try:
            await self._run(schema, start=start, end=end, vouched=vouched)
        finally:
            self.seconds += time.perf_counter() - started

    async def _run(self, schema: str, *, start: dict[int, int], end: dict[int, int], vouched: Vouched | None) -> None:
        before = self.events

        def progress(done: int, _: int) -> None:
            if self._progress:
                self._progress(before + done, self._total)

        if self._processes > 1:
            self.events += await fold_in_processes(
                database_url=self._url,
                schema=schema,
                log=self._log,
                start=start,
                end=end,
                processes=self._processes,
                progress=progress,
                vouched=vouched,
                started=self._started,
            )
            self._started = []
            return
        pool = await create_pool(self._url, schema=schema, max_size=2)
        try:
            self.events += await fold_log(pool, self._log, start=start, end=end, progress=progress, vouched=vouched)
        finally:
            await pool.close()


async def _anchor_problem(
    connection: asyncpg.Connection, schema: str, topic: str, anchor: Checkpoint
) -> tuple[str | None, Checksum]:
    """Why the fold up to exactly ``anchor``'s offsets does not give what it signed (None if it does), and the
    checksum of the ledger so folded."""
    async with connection.transaction(readonly=True):
        rebuilt = await checksum(connection, schema)
        folded = await store.stored_positions(connection, topic, schema)
    signed = {
        h.partition: store.Position(h.next_offset, bytes.fromhex(h.head), h.chain_start) for h in anchor.partitions
    }
    breaks = chain_breaks(signed, folded)
    if breaks:
        return "; ".join(b.describe() for b in breaks), rebuilt
    if rebuilt.digest != anchor.ledger_checksum:
        return "the ledger folded up to its offsets has another checksum than it signed", rebuilt
    return None, rebuilt


async def fold_log(
    pool: asyncpg.Pool,
    log: CaseLog,
    *,
    start: dict[int, int],
    end: dict[int, int],
    progress: Progress | None = None,
    max_records: int = 5000,
    vouched: Vouched | None = None,
) -> int:
    """Fold each partition's records from ``start`` (default 0) up to ``end`` into the pool's ledger.

    Records ``vouched`` for are read without checking their signatures."""
    todo = {p: e for p, e in end.items() if e > start.get(p, 0)}
    if not todo:
        return 0
    total, read = sum(e - start.get(p, 0) for p, e in todo.items()), 0
    batches = read_range(
        log.kafka,
        log.topic,
        start=start,
        end=todo,
        max_records=max_records,
        stall_seconds=STALL_SECONDS,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    async with aclosing(batches):
        async for partition, records in batches:
            await fold_all(
                pool,
                log.topic,
                {partition: records},
                log.trust,
                log.partitions,
                unchecked=vouched.covers if vouched else None,
                outbox=False,  # the live ledger published these changes when they happened
            )
            read += len(records)
            if progress:
                progress(read, total)
    return read


# Below this many events a second process costs more (its start-up, its connections) than it saves.
PARALLEL_FROM_EVENTS = 20_000


class FoldFailed(RuntimeError):
    """A fold process ended without folding its share; the message carries its last words."""


def processes_for(events: int, partitions: int) -> int:
    if events < PARALLEL_FROM_EVENTS:
        return 1
    return max(1, min(os.cpu_count() or 1, partitions))


def share_out(partitions: list[int], processes: int) -> list[list[int]]:
    """The partitions each of up to ``processes`` fold processes takes: in turn, so that each gets as many as it can
    (none is left without)."""
    return [partitions[i::processes] for i in range(processes) if partitions[i::processes]]


async def fold_in_processes(
    *,
    database_url: str,
    schema: str,
    log: CaseLog,
    start: dict[int, int],
    end: dict[int, int],
    processes: int,
    progress: Progress | None = None,
    vouched: Vouched | None = None,
    started: list[asyncio.subprocess.Process] | None = None,
) -> int:
    """Fold ``start``..``end`` of the log into ``schema`` with ``processes`` processes; return the events folded.
    The processes ``started`` (``start_fold_processes``) are given work first, and stopped if there is none."""
    partitions = sorted(p for p, e in end.items() if e > start.get(p, 0))
    shares = share_out(partitions, processes)
    total = sum(end[p] - start.get(p, 0) for p in partitions)
    done = [0] * len(shares)
    waiting = list(started or ())
    given = [waiting.pop() if waiting else None for _ in shares]
    await stop_fold_processes(waiting)

    async def run(index: int, share: list[int]) -> int:
        work: dict[str, Any] = {"schema": schema, "topic": log.topic, "start": {p: start.get(p, 0) for p in share}}
        work |= {"trust_topic": log.trust_topic, "roots": list(log.roots)}
        work["end"] = {p: end[p] for p in share}
        if vouched is not None:
            work["vouched"] = Vouched(
                {p: o for p, o in vouched.below.items() if p in share},
                frozenset(r for r in vouched.refused if r[0] in share),
            ).to_json()
        child = given[index] or (await start_fold_processes(1, database_url, log.kafka))[0]
        assert child.stdin is not None and child.stdout is not None and child.stderr is not None
        child.stdin.write(json.dumps(work).encode())
        await child.stdin.drain()
        child.stdin.close()
        folded: int | None = None
        async for line in child.stdout:
            word, _, number = line.decode().partition(" ")
            if word in ("progress", "done"):
                done[index] = int(number)
                if progress:
                    progress(sum(done), total)
                if word == "done":
                    folded = int(number)
        errors = await child.stderr.read()
        if await child.wait() != 0 or folded is None:
            last = errors.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise FoldFailed(f"the fold of partitions {share} failed: {last[0]}")
        return folded

    return sum(await asyncio.gather(*(run(i, share) for i, share in enumerate(shares))))


async def start_fold_processes(
    count: int, database_url: str, kafka: KafkaConnection
) -> list[asyncio.subprocess.Process]:
    """``count`` fold processes (``services/registry/fold_process.py``), started before their work is known: each
    loads its modules (0.4 s, a tenth of a 100k-event fold on two cores) and then waits for its work on stdin."""
    return [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "services.registry.fold_process",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            # This process's own KAFKA_* variables are left out: the child logs in as ``kafka`` does, no other way.
            env={k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}
            | {"DATABASE_URL": database_url, **kafka.environment()},
        )
        for _ in range(count)
    ]


async def stop_fold_processes(children: list[asyncio.subprocess.Process]) -> None:
    """Stop fold processes that were given no work."""
    for child in children:
        if child.returncode is None:
            child.kill()
        await child.wait()


async def _swap(
    connection: asyncpg.Connection,
    database_url: str,
    log: CaseLog,
    live_schema: str,
    schema: str,
    folded: dict[int, int],
    seal_key: bytes | None,
) -> None:
    """Make ``schema`` the live ledger: catch it up, seal it, then rename both schemas under the ledger lock."""
    retired = f"{live_schema}_retired_{time.strftime('%Y%m%d%H%M%S')}"
    pool = await create_pool(database_url, schema=schema, max_size=2)
    try:
        while True:
            current = await store.stored_offsets(connection, log.topic, live_schema)
            if current != folded:
                await fold_log(pool, log, start=folded, end=current)
                folded = current
                continue
            async with connection.transaction():
                await connection.execute(store.LEDGER_LOCK_EXCLUSIVE)
                if await store.stored_offsets(connection, log.topic, live_schema) != folded:
                    continue  # the live ledger moved on while we waited for the lock: catch up again
                await _carry_intake_state(connection, live_schema, schema)
                if seal_key is not None:
                    sums = await checksum(connection, schema, seal_key)
                    await seal.reseal(connection, log.topic, sums.sealed or 0, schema)
                await connection.execute(f"ALTER SCHEMA {_q(live_schema)} RENAME TO {_q(retired)}")
                await connection.execute(f"ALTER SCHEMA {_q(schema)} RENAME TO {_q(live_schema)}")
                return
    finally:
        await pool.close()


async def _carry_intake_state(connection: asyncpg.Connection, live_schema: str, schema: str) -> None:
    """The intake's own tables are not ledger content (a pending VIN claim, a declaration admitted, precede
    their events): the rebuilt ledger takes the live ones as they stand, under the lock the intake also holds
    while it admits."""
    for table in INTAKE_TABLES:
        await connection.execute(f"DELETE FROM {_q(schema)}.{table}")
        await connection.execute(f"INSERT INTO {_q(schema)}.{table} SELECT * FROM {_q(live_schema)}.{table}")
    # The refusals' ids go on from where the live ones stood.
    await connection.execute(
        f"SELECT setval(pg_get_serial_sequence('{_q(schema)}.refusals', 'id'), "
        f"(SELECT coalesce(max(id), 0) + 1 FROM {_q(schema)}.refusals), false)"
    )


INTAKE_TABLES = ("vin_claims", "declarations", "log_identity", "refusals")
