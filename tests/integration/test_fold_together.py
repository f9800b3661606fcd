"""The projector folds every partition of a fetch in one transaction, with one statement per table for them all
(``store.apply_batches``): over generated fetches of generated partition logs, that gives exactly the ledger of
folding the same batches one partition after another, each in a transaction of its own. The logs mix what makes
partitions meet: a license number two partitions' cases open, an event id two partitions carry, records refused
before the fold, and batches delivered again (overlapping what was applied)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from services.registry import chain, seal, store
from services.registry.checksum import checksum
from shared.contract.events import Envelope
from shared.platform import db
from tests.histories import case, deliveries

PARTITIONS = 3
TOPIC = "licensing.cases"
ONE_BY_ONE, TOGETHER = "registry", "together"
SEAL_KEY = bytes(range(32))
NUMBERS = ("26-44-000001", "26-44-000002", "26-44-000003", "26-44-000004")


@dataclass(frozen=True)
class Slot:
    """One record of a partition's log: an event to fold, or a record refused before the fold (code)."""

    envelope: Envelope | None = None
    refused: str | None = None

    def raw(self, offset: int) -> chain.Raw:
        return chain.Raw(offset, self.envelope.to_bytes() if self.envelope else f"refused {offset}".encode())


Fetch = dict[int, tuple[int, int]]  # partition -> the [start, end) of its log in this fetch


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[list[Slot]], list[Fetch], bool, bool]:
    """Each partition's log, the fetches that deliver it, and whether the fold seals and fills the outbox."""
    logs: list[list[Slot]] = []
    for partition in range(PARTITIONS):
        slots: list[Slot] = []
        for _ in range(draw(st.integers(1, 2))):
            number = draw(st.sampled_from(NUMBERS))  # two partitions' cases may open the same number
            exports = draw(st.lists(st.tuples(st.integers(1, 10**6), st.integers(1, 6)), max_size=3))
            slots += [Slot(e) for e in case(number, *exports, partition=partition)]
        logs.append(slots)
    for partition, slots in enumerate(logs):
        for _ in range(draw(st.integers(0, 2))):
            at = draw(st.integers(0, len(slots)))
            if draw(st.booleans()):
                slots.insert(at, Slot(refused=draw(st.sampled_from(("unsigned_event", "unreadable_event")))))
            else:  # an event another partition carries too: its id is that partition's, whichever folds it first
                other = logs[draw(st.sampled_from([p for p in range(PARTITIONS) if p != partition]))]
                slots.insert(at, Slot(draw(st.sampled_from([s.envelope for s in other if s.envelope]))))
    fetches = deliveries(draw, [len(slots) for slots in logs])
    return logs, fetches, draw(st.booleans()), draw(st.booleans())


def _batch(log: Sequence[Slot], partition: int, start: int, end: int) -> store.Batch:
    offsets = range(start, end)
    return store.Batch(
        partition,
        events=[store.Positioned(o, s.envelope) for o in offsets if (s := log[o]).envelope is not None],
        next_offset=end,
        records=[log[o].raw(o) for o in offsets],
        refused=[store.Refused(o, s.refused) for o in offsets if (s := log[o]).refused is not None],
    )


def _outcome(applied: store.Applied) -> tuple[Any, ...]:
    refused = sorted((p.offset, reason.code) for p, reason in applied.refused)
    return applied.events, applied.changes, refused, sorted(e.declaration_number for e in applied.exports)


async def _state(connection: asyncpg.Connection, schema: str) -> tuple[Any, ...]:
    async with connection.transaction():
        sums = await checksum(connection, schema, SEAL_KEY)
        stored = await seal.stored(connection, TOPIC, schema)
        positions = await store.stored_positions(connection, TOPIC, schema)
    applied = await connection.fetch(f'SELECT event_id, partition, case_id, "offset" FROM {schema}.applied_events')
    outbox = await connection.fetch(f"SELECT license_number, state::text FROM {schema}.outbox")
    return sums.digest, sums.sealed, stored, positions, {tuple(r) for r in applied}, Counter(tuple(r) for r in outbox)


async def test_folding_a_fetchs_partitions_together_gives_the_ledger_of_folding_them_one_by_one(
    database_url: str,
) -> None:
    await db.migrate_async("registry", database_url, schema=TOGETHER)
    one, together = await asyncpg.connect(database_url), await asyncpg.connect(database_url)
    await one.execute(f"SET search_path TO {ONE_BY_ONE}")
    await together.execute(f"SET search_path TO {TOGETHER}")
    tables = [
        r["tablename"] for r in await one.fetch(f"SELECT tablename FROM pg_tables WHERE schemaname = '{ONE_BY_ONE}'")
    ]
    loop = asyncio.get_running_loop()

    async def example(logs: list[list[Slot]], fetches: list[Fetch], sealed: bool, outbox: bool) -> None:
        for connection, schema in ((one, ONE_BY_ONE), (together, TOGETHER)):
            names = ", ".join(f"{schema}.{t}" for t in tables)
            await connection.execute(f"TRUNCATE {names}")
        key = SEAL_KEY if sealed else None
        for fetch in fetches:
            batches = [_batch(logs[p], p, start, end) for p, (start, end) in fetch.items()]
            alone = {}
            for batch in sorted(batches, key=lambda b: b.partition):
                async with one.transaction():
                    alone[batch.partition] = await store.apply_batches(
                        one, topic=TOPIC, batches=[batch], seal_key=key, outbox=outbox
                    )
            async with together.transaction():
                both = await store.apply_batches(together, topic=TOPIC, batches=batches, seal_key=key, outbox=outbox)
            assert {p: _outcome(a[p]) for p, a in alone.items()} == {p: _outcome(a) for p, a in both.items()}
        assert await _state(one, ONE_BY_ONE) == await _state(together, TOGETHER)

    def run() -> None:
        @given(history=histories())
        @settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def together_as_one_by_one(history: tuple[list[list[Slot]], list[Fetch], bool, bool]) -> None:
            logs, fetches, sealed, outbox = history
            note(f"fetches {fetches}, sealed {sealed}, outbox {outbox}")
            asyncio.run_coroutine_threadsafe(example(logs, fetches, sealed, outbox), loop).result(timeout=120)

        together_as_one_by_one()

    try:
        await asyncio.to_thread(run)
    finally:
        await one.close()
        await together.close()
