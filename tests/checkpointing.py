"""The registry's signed checkpoints in tests: a registry that takes them often, and waiting for one."""

from __future__ import annotations

from pathlib import Path

from aiokafka import ConsumerRecord

from services.registry.app import Settings
from services.registry.checkpoints import read
from shared.contract.checkpoints import Checkpoint
from shared.contract.topics import Topics
from shared.platform.kafka_access import KafkaConnection
from tests.infra import Infrastructure
from tests.support import read_topic


def checkpointing_settings(
    infrastructure: Infrastructure, database_url: str, topics: Topics, key_dir: Path
) -> Settings:
    """The registry's settings for a test, taking a checkpoint every 0.3 s, its key kept in ``key_dir``."""
    return Settings(
        **infrastructure.service_kafka(),
        database_url=database_url,
        topic_namespace=topics.namespace,
        checkpoint_interval_seconds=0.3,
        key_dir=str(key_dir),
    )


async def checkpoint_at(kafka: KafkaConnection, topics: Topics, events: int, *, other_than: str = "") -> Checkpoint:
    """The first checkpoint covering ``events`` records (and, if given, with another ledger checksum)."""

    def found(records: list[ConsumerRecord[bytes, bytes]]) -> Checkpoint | None:
        for record in records:
            checkpoint = read(record.value)[0]
            if sum(checkpoint.offsets.values()) == events and checkpoint.ledger_checksum != other_than:
                return checkpoint
        return None

    records = await read_topic(kafka, topics.checkpoints, until=lambda rs: found(rs) is not None, timeout=30)
    checkpoint = found(records)
    assert checkpoint is not None
    return checkpoint
