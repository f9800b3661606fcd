"""Reading a stretch of a topic (``shared/platform/ranges.py``), as a replay's fold, the checkpoints and the trust
statements are read: every record from the start asked for, or an error naming the ones the log no longer holds."""

from __future__ import annotations

from contextlib import aclosing

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

from shared.contract.topics import Topics
from shared.platform.ranges import RangeStalled, read_range
from tests.infra import Infrastructure
from tests.support import producer


async def _read(infrastructure: Infrastructure, topic: str, start: dict[int, int]) -> dict[int, list[bytes]]:
    read: dict[int, list[bytes]] = {}
    async with aclosing(read_range(infrastructure.kafka, topic, start=start, stall_seconds=5)) as batches:
        async for partition, records in batches:
            read.setdefault(partition, []).extend(r.value or b"" for r in records)
    return read


async def test_a_range_is_read_from_its_start_and_a_start_the_log_no_longer_holds_is_an_error(
    infrastructure: Infrastructure, topics: Topics
) -> None:
    async with producer(infrastructure.kafka) as send:
        for partition in (0, 1):
            for n in range(5):
                await send.send_and_wait(topics.cases, f"{partition}-{n}".encode(), partition=partition)
    whole = {p: [f"{p}-{n}".encode() for n in range(5)] for p in (0, 1)}
    assert await _read(infrastructure, topics.cases, {}) == whole
    assert await _read(infrastructure, topics.cases, {0: 3, 1: 5}) == {0: whole[0][3:]}

    admin = AIOKafkaAdminClient(**infrastructure.kafka.options())
    await admin.start()
    try:
        await admin.delete_records({TopicPartition(topics.cases, 1): RecordsToDelete(before_offset=2)})
    finally:
        await admin.close()
    # Read from where the log now starts, the records were never there; from before it, the range is not whole.
    with pytest.raises(RangeStalled, match="partition 1 starts at offset 2: records 0 to 1 were deleted"):
        await _read(infrastructure, topics.cases, {})
    with pytest.raises(RangeStalled, match="records 1 to 1 were deleted"):
        await _read(infrastructure, topics.cases, {0: 4, 1: 1})
    assert await _read(infrastructure, topics.cases, {0: 4, 1: 2}) == {0: whole[0][4:], 1: whole[1][2:]}
