"""A fold leaves no garbage in reference cycles as it goes: what it drops, reference counting frees. That is what
lets a fold process leave its garbage collector nearly idle (``shared/platform/collector.py``): should an event
leave a cycle behind, a long replay's memory would grow with the log until a collection, and each collection would
walk every object alive. The garbage a fold leaves is measured with the collector off, for a short fold and a
fold four times as long of the same log: the longer one may not leave more (bar a few objects per event batch)."""

from __future__ import annotations

import gc
import uuid

import asyncpg
import pytest
from aiokafka import TopicPartition

from services.registry.replay import Vouched, fold_log, open_log
from shared.contract.topics import Topics
from shared.platform import db
from shared.platform.kafka_access import KafkaConnection, started_consumer, stop_consumer
from shared.platform.kafka_admin import partition_count
from tests.histories import many_cases, publish
from tests.infra import Infrastructure

CASES = 80  # five events each


async def _ends(kafka: KafkaConnection, topic: str) -> dict[int, int]:
    consumer = await started_consumer(kafka, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in range(await partition_count(kafka, topic))]
        return {tp.partition: end for tp, end in (await consumer.end_offsets(tps)).items()}
    finally:
        await stop_consumer(consumer)


async def _garbage_of_a_fold(
    infrastructure: Infrastructure, database_url: str, topic: str, end: dict[int, int], *, vouched: bool
) -> tuple[int, int]:
    """The events folded up to ``end`` into a schema of their own, and the objects in cycles the fold left."""
    schema = f"garbage_{uuid.uuid4().hex[:8]}"
    await db.migrate_async("registry", database_url, schema=schema)
    pool = await db.create_pool(database_url, schema=schema, max_size=2)
    try:
        log = await open_log(infrastructure.kafka, topic)
        gc.collect()
        gc.disable()
        try:
            folded = await fold_log(pool, log, start={}, end=end, vouched=Vouched(end) if vouched else None)
            left = gc.collect()
        finally:
            gc.enable()
    finally:
        await pool.close()
        connection = await asyncpg.connect(database_url)
        await connection.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await connection.close()
    return folded, left


@pytest.mark.parametrize("vouched", [False, True], ids=["every signature checked", "vouched by a checkpoint"])
async def test_a_fold_leaves_no_garbage_in_cycles_per_event(
    infrastructure: Infrastructure, database_url: str, topics: Topics, vouched: bool
) -> None:
    await publish(infrastructure.kafka, topics.cases, many_cases(CASES))
    end = await _ends(infrastructure.kafka, topics.cases)
    assert sum(end.values()) == CASES * 5
    quarter = {partition: offset // 4 for partition, offset in end.items()}

    short = await _garbage_of_a_fold(infrastructure, database_url, topics.cases, quarter, vouched=vouched)
    long = await _garbage_of_a_fold(infrastructure, database_url, topics.cases, end, vouched=vouched)

    assert short[0] == sum(quarter.values()) and long[0] == CASES * 5
    more_events = long[0] - short[0]
    # The same batches (one a partition) either way; one object in a cycle per event would be 300 more.
    assert long[1] - short[1] <= more_events // 20, (short, long)
