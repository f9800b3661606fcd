"""Reading a range of a topic: each partition's records from a start offset up to an end, batch by batch.

One reader for every job that reads a stretch of the log rather than following it (a replay's fold, the
checkpoints, the trust statements): the ends default to where the topic ends now, a partition that
stops short of its end for ``stall_seconds`` is an error, never a wait without end, and so is one that no longer
starts where the range does.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord

from shared.platform.kafka_access import KafkaConnection, stop_consumer

Records = list[ConsumerRecord[bytes, bytes]]
STALL_SECONDS = 30.0


class RangeStalled(RuntimeError):
    """The range cannot be read whole: the topic gave no records for a while although partitions are short of their
    ends, or it no longer holds records from the start asked for (deleted)."""


async def read_range(
    kafka: KafkaConnection,
    topic: str,
    *,
    start: Mapping[int, int] | None = None,
    end: Mapping[int, int] | None = None,
    max_records: int = 5000,
    stall_seconds: float = STALL_SECONDS,
    ends: dict[int, int] | None = None,
    **consumer_options: Any,
) -> AsyncGenerator[tuple[int, Records], None]:
    """Yield ``(partition, records)`` in offset order per partition, from ``start`` (default 0) to ``end``
    (default: each partition's end now, which ``ends``, if given, is filled with). Close it with
    ``contextlib.aclosing`` when leaving early, so its consumer stops."""
    start = start or {}
    # Subscribed with no group: the consumer is assigned every partition of the topic once it has its metadata, and
    # starts fetching before the seeks below. From the partitions' starts: from their ends (the default reset), the
    # broker would hold that first fetch for its whole wait (500 ms) before the seeks' fetch went out.
    consumer_options = {"auto_offset_reset": "earliest", **consumer_options}
    consumer = AIOKafkaConsumer(topic, **kafka.options(), enable_auto_commit=False, **consumer_options)
    try:
        await consumer.start()  # inside: one that fails to start is closed too
        assigned = consumer.assignment()
        if not assigned:
            raise LookupError(f"no topic {topic} on {kafka.bootstrap_servers}")
        if end is None:
            end = {tp.partition: offset for tp, offset in (await consumer.end_offsets(list(assigned))).items()}
            if ends is not None:
                ends.update(end)
        todo = {p: e for p, e in end.items() if e > start.get(p, 0)}
        # A start the log no longer holds would be read from the log's new start on (that reset), missing records.
        for tp, first in (await consumer.beginning_offsets([tp for tp in assigned if tp.partition in todo])).items():
            if first > start.get(tp.partition, 0):
                raise RangeStalled(
                    f"{topic}: partition {tp.partition} starts at offset {first}: records "
                    f"{start.get(tp.partition, 0)} to {first - 1} were deleted, and the range cannot be read whole"
                )
        for tp in assigned:
            if tp.partition in todo:
                consumer.seek(tp, start.get(tp.partition, 0))
            else:
                consumer.pause(tp)
        last_read = time.monotonic()
        while todo:
            batches = await consumer.getmany(timeout_ms=1000, max_records=max_records)
            if batches:
                last_read = time.monotonic()
            elif time.monotonic() - last_read > stall_seconds:
                raise RangeStalled(f"{topic}: no records for {stall_seconds:.0f}s; partitions still short: {todo}")
            for tp, records in batches.items():
                if tp.partition not in todo:
                    continue
                wanted = [r for r in records if r.offset < todo[tp.partition]]
                if records[-1].offset + 1 >= todo[tp.partition]:
                    del todo[tp.partition]
                    consumer.pause(tp)
                if wanted:
                    yield tp.partition, wanted
    finally:
        await stop_consumer(consumer)
