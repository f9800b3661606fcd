"""A follower folds every partition of a delivery with one statement per table for them all
(``following.follow_all``, the applications service's follower): over generated deliveries of generated partition
logs, that gives exactly the case states, events and positions of following the same batches one partition after
another. The logs mix what makes partitions meet: an event id two partitions carry, records refused on reading,
exports (which the applications service skips), and batches delivered again, in part or whole."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import asyncpg
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from shared import following
from shared.contract.events import Envelope
from tests.histories import case, deliveries

PARTITIONS = 3
ONE_BY_ONE, TOGETHER = "follow_one_by_one", "follow_together"
NUMBERS = ("26-44-000001", "26-44-000002", "26-44-000003")

Log = list[Envelope | None]  # a partition's records: an event, or a record refused on reading (None)
Delivery = dict[int, tuple[int, int]]  # partition -> the [start, end) of its log in this delivery


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[Log], list[Delivery], bool]:
    """Each partition's log, the deliveries that bring it, and whether exports are skipped."""
    logs: list[Log] = []
    for partition in range(PARTITIONS):
        log: Log = []
        for _ in range(draw(st.integers(1, 2))):
            number = draw(st.sampled_from(NUMBERS))
            exports = draw(st.lists(st.tuples(st.integers(1, 10**6), st.integers(1, 6)), max_size=3))
            log += case(number, *exports, partition=partition)
        logs.append(log)
    for partition, log in enumerate(logs):
        for _ in range(draw(st.integers(0, 2))):
            at = draw(st.integers(0, len(log)))
            if draw(st.booleans()):
                log.insert(at, None)
            else:  # an event another partition carries too: the first followed counts, the other is seen
                other = logs[draw(st.sampled_from([p for p in range(PARTITIONS) if p != partition]))]
                log.insert(at, draw(st.sampled_from([e for e in other if e is not None])))
    delivered = deliveries(draw, [len(log) for log in logs], whole_again=True)
    return logs, delivered, draw(st.booleans())


def _batch(log: Sequence[Envelope | None], partition: int, start: int, end: int) -> following.Batch:
    return following.Batch(partition, [following.Followed(o, log[o]) for o in range(start, end)], end)


async def _state(connection: asyncpg.Connection) -> tuple[Any, ...]:
    states = await connection.fetch("SELECT case_id, state::text, application::text FROM case_states")
    events = await connection.fetch('SELECT event_id, case_id, type, changed, partition, "offset" FROM case_events')
    positions = await connection.fetch("SELECT partition, next_offset FROM followed_positions")
    licenses = await connection.fetch("SELECT license_number, case_id FROM case_licenses")
    return tuple({tuple(r) for r in rows} for rows in (states, events, positions, licenses))


async def test_following_a_deliverys_partitions_together_gives_the_states_of_following_them_one_by_one(
    database_url: str,
) -> None:
    one, together = await asyncpg.connect(database_url), await asyncpg.connect(database_url)
    for connection, schema in ((one, ONE_BY_ONE), (together, TOGETHER)):
        await connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}")
        await connection.execute(f"SET search_path TO {schema}")
        for table in following.TABLES:
            await connection.execute(table)
    tables = "case_states, followed_positions, case_events, case_licenses"
    loop = asyncio.get_running_loop()

    async def example(logs: list[Log], delivered: list[Delivery], skip_exports: bool) -> None:
        for connection in (one, together):
            await connection.execute(f"TRUNCATE {tables}")
        for delivery in delivered:
            batches = [_batch(logs[p], p, start, end) for p, (start, end) in delivery.items()]
            alone = 0
            async with one.transaction():
                for batch in sorted(batches, key=lambda b: b.partition):
                    alone += await following.follow(
                        one,
                        partition=batch.partition,
                        records=batch.records,
                        next_offset=batch.next_offset,
                        skip_exports=skip_exports,
                    )
            async with together.transaction():
                both = await following.follow_all(together, batches, skip_exports=skip_exports)
            assert alone == both
        assert await _state(one) == await _state(together)

    def run() -> None:
        @given(history=histories())
        @settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def together_as_one_by_one(history: tuple[list[Log], list[Delivery], bool]) -> None:
            logs, delivered, skip_exports = history
            note(f"deliveries {delivered}, skip exports {skip_exports}")
            asyncio.run_coroutine_threadsafe(example(logs, delivered, skip_exports), loop).result(timeout=120)

        together_as_one_by_one()

    try:
        await asyncio.to_thread(run)
    finally:
        for connection, schema in ((one, ONE_BY_ONE), (together, TOGETHER)):
            await connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await one.close()
        await together.close()


async def test_one_delivery_brings_each_partition_once(database_url: str) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        async with connection.transaction():
            batch = following.Batch(0, [], 1)
            try:
                await following.follow_all(connection, [batch, batch], skip_exports=True)
            except ValueError as error:
                assert "one batch per partition" in str(error)
            else:
                raise AssertionError("two batches of one partition were followed")
    finally:
        await connection.close()
