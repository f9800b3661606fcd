"""Consumer lag as `/metrics` and `/health/ready` report it, against the real broker: each watched group's
records yet to read, from the partitions' ends less its committed (or stored) positions; asked again and
again through the same clients, and asked again after they were closed or could not connect."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaConnectionError
from aiokafka.structs import OffsetAndMetadata

from shared.contract.topics import Topics
from shared.platform.kafka_access import KafkaConnection
from shared.platform.metrics import Metrics, committed_positions, stored_positions
from tests.infra import Infrastructure


async def _produce(kafka: KafkaConnection, topic: str, per_partition: dict[int, int]) -> None:
    producer = AIOKafkaProducer(**kafka.options(), acks="all")
    await producer.start()
    try:
        for partition, count in per_partition.items():
            for n in range(count):
                await producer.send_and_wait(topic, f"{partition}-{n}".encode(), partition=partition)
    finally:
        await producer.stop()


async def _commit(kafka: KafkaConnection, group: str, offsets: dict[TopicPartition, int]) -> None:
    consumer = AIOKafkaConsumer(**kafka.options(), group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(list(offsets))
        await consumer.commit({tp: OffsetAndMetadata(offset, "") for tp, offset in offsets.items()})
    finally:
        await consumer.stop()


def _gauge(metrics: Metrics, group: str, topic: str, partition: int) -> float | None:
    labels = {"group": group, "topic": topic, "partition": str(partition)}
    return metrics.registry.get_sample_value("ledger_consumer_lag", labels)


async def test_lag_is_the_log_end_less_each_groups_position_and_is_asked_through_kept_clients(
    infrastructure: Infrastructure, topics: Topics
) -> None:
    kafka, topic = infrastructure.kafka, topics.intake_applications
    partitions = [tp.partition for tp in await Metrics("test", kafka).offsets.partitions(topic)]
    assert len(partitions) >= 2, partitions
    first, second = partitions[:2]
    await _produce(kafka, topic, {first: 5, second: 3})
    committing, silent, stored = f"{topics.namespace}-a", f"{topics.namespace}-b", f"{topics.namespace}-c"
    await _commit(kafka, committing, {TopicPartition(topic, first): 2, TopicPartition(topic, second): 3})

    async def ledger_offsets() -> dict[int, int]:
        return {first: 4}

    metrics = Metrics("test", kafka)
    metrics.watch(committing, committed_positions(committing, topic))
    metrics.watch(silent, committed_positions(silent, topic))  # a group that never committed: everything is ahead
    metrics.watch(stored, stored_positions(topic, ledger_offsets))
    try:
        behind = await metrics.behind()
        assert behind == {committing: 3, silent: 8, stored: 4}
        assert _gauge(metrics, committing, topic, first) == 3 and _gauge(metrics, committing, topic, second) == 0
        assert _gauge(metrics, stored, topic, first) == 1 and _gauge(metrics, stored, topic, second) == 3

        await _produce(kafka, topic, {second: 2})
        assert await metrics.behind() == {committing: 5, silent: 10, stored: 6}  # the same clients see new ends
        text = (await metrics.render()).decode()
        assert f'ledger_consumer_lag{{group="{silent}",partition="{second}",topic="{topic}"}} 5.0' in text

        await metrics.offsets.stop()  # closed (as at a service's stop): a later question makes them again
        assert await metrics.behind() == {committing: 5, silent: 10, stored: 6}
    finally:
        await metrics.offsets.stop()


async def test_a_broker_that_cannot_be_reached_raises_and_the_next_question_tries_again(topics: Topics) -> None:
    unreachable = Metrics("test", KafkaConnection(bootstrap_servers="127.0.0.1:9"))
    unreachable.watch("g", committed_positions("g", topics.intake_applications))
    for _ in range(2):  # no half-started client is kept: each question fails the same way, none hangs
        with pytest.raises(KafkaConnectionError):
            await unreachable.behind()
    await unreachable.offsets.stop()
