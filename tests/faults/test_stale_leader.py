"""A reader whose view of the cluster names the wrong leader of its partition reads within seconds, not minutes.

Seen in the fault run (seed 82698): a broker paused past its session timeout, then back, left a registry's intake
reader with a view in which that broker still led a partition. Looking up where to start reading it, aiokafka
asked that broker, was told it no longer leads the partition, and asked it again, ten times a second, until its
periodic refresh of the cluster's metadata, five minutes by default: customs' exports on that partition had no
verdict all that time, and nothing failed that /health could show. Every client of ours refreshes that view every
``METADATA_MAX_AGE_MS``. Here the stale view is made by hand (a follower named as the leader), then the reader
is sent back to the start of the partition: it must read the record there within a few refreshes."""

from __future__ import annotations

import asyncio
import time
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from shared.contract.topics import Topics
from shared.platform.kafka_access import METADATA_MAX_AGE_MS, KafkaConnection
from tests.faults.cluster import partition_leaders


async def test_a_reader_told_its_leader_is_not_the_leader_reads_within_seconds(
    cluster_kafka: KafkaConnection, cluster_topics: Topics
) -> None:
    tp = TopicPartition(cluster_topics.intake_exports, 0)
    producer = AIOKafkaProducer(**cluster_kafka.options(), acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(tp.topic, b"the record to read", partition=tp.partition)
    finally:
        await producer.stop()
    leader, in_sync = (await partition_leaders(cluster_kafka, tp.topic))[tp.partition]
    follower = next(node for node in in_sync if node != leader)

    consumer = AIOKafkaConsumer(
        **cluster_kafka.options(),
        group_id=f"{cluster_topics.namespace}.stale-{uuid.uuid4().hex[:6]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        consumer.assign([tp])
        await asyncio.wait_for(consumer.position(tp), 30)  # the view of the cluster as it is, the position found
        cluster = consumer._client.cluster  # the stale view a paused broker leaves, made by hand
        partitions = cluster._partitions[tp.topic]
        partitions[tp.partition] = partitions[tp.partition]._replace(leader=follower)
        assert cluster.leader_for_partition(tp) == follower

        started = time.monotonic()
        await consumer.seek_to_beginning(tp)  # where to start is asked of the "leader": the follower refuses
        record = await asyncio.wait_for(consumer.getone(tp), 4 * METADATA_MAX_AGE_MS / 1000)
        assert record.value == b"the record to read"
        assert cluster.leader_for_partition(tp) == leader, "the view was refreshed"
        print(f"\n[stale leader] read {time.monotonic() - started:.1f} s after the stale view was made")
    finally:
        await consumer.stop()
