"""What a failed fault run leaves behind to be read after it: the case stream and the intake topics as the cluster
holds them, record by record, each consumer group's committed offsets, and the whole database (``pg_dump``), written
before the test's topics and database are dropped. A replay
that disagrees with the live ledger names a partition and an offset; these are the records and rows to compare."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from shared.contract.topics import Topics
from shared.platform.kafka_access import KafkaConnection


async def preserve(kafka: KafkaConnection, topics: Topics, database_url: str, directory: Path) -> Path:
    """Write the evidence into ``directory`` (made if need be) and return it."""
    directory.mkdir(parents=True, exist_ok=True)
    kept = (topics.cases, topics.checkpoints, topics.dead_letter, topics.intake_applications, topics.intake_exports)
    for topic in kept:
        await _dump_topic(kafka, topic, directory / f"{topics.base(topic)}.jsonl")
    (directory / "groups.json").write_text(json.dumps(await _group_offsets(kafka, topics.namespace), indent=1))
    pg_dump = shutil.which("pg_dump") or next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_dump"))), None)
    if pg_dump is not None:
        with (directory / "database.sql").open("wb") as out:
            subprocess.run([str(pg_dump), "--dbname", database_url], stdout=out, stderr=subprocess.PIPE, timeout=300)
    return directory


async def _group_offsets(kafka: KafkaConnection, namespace: str) -> dict[str, dict[str, int]]:
    """Each consumer group of the run's namespace: its committed offset of each topic's partition."""
    admin = AIOKafkaAdminClient(**kafka.options())
    await admin.start()
    try:
        groups = sorted(g[0] for g in await admin.list_consumer_groups() if g[0].startswith(f"{namespace}."))
        return {
            group: {f"{tp.topic}/{tp.partition}": meta.offset for tp, meta in sorted(offsets.items())}
            for group in groups
            if (offsets := await admin.list_consumer_group_offsets(group)) is not None
        }
    finally:
        await admin.close()


async def _dump_topic(kafka: KafkaConnection, topic: str, path: Path) -> None:
    consumer = AIOKafkaConsumer(**kafka.options(), enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        await consumer.topics()  # the cluster's metadata, every topic's partitions among it
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        ends = await consumer.end_offsets(partitions)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        with path.open("w") as out:
            remaining = {tp for tp in partitions if ends[tp] > 0}
            while remaining:
                batches = await consumer.getmany(*remaining, timeout_ms=2000)
                if not batches:
                    break
                for tp, records in batches.items():
                    for record in records:
                        out.write(json.dumps(_described(record)) + "\n")
                    if records and records[-1].offset + 1 >= ends[tp]:
                        remaining.discard(tp)
    finally:
        await consumer.stop()


def _described(record: ConsumerRecord[bytes, bytes]) -> dict[str, object]:
    value = record.value or b""
    try:
        text: str | None = value.decode()
    except UnicodeDecodeError:
        text = None
    return {
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": record.timestamp,
        "key": (record.key or b"").decode(errors="replace"),
        "headers": {name: raw.decode(errors="replace") for name, raw in record.headers or ()},
        "value": text if text is not None else base64.b64encode(value).decode(),
    }
