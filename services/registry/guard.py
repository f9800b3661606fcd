"""The log the ledger follows is still that log: the registry checks it before every batch it folds.

A ledger follows one log: one topic (its topic id, which a deleted and recreated topic does not keep),
with its partitions, from their first records. If the topic is replaced, or records the ledger has
applied are deleted (``DeleteRecords``), or the log ends before offsets the ledger has applied, the ledger
no longer follows from the log: folding on would build on a log it did not come from, and admitting
exports would append to it. The guard says so, and the registry stops folding and admitting (503) until
an operator restores the log or rebuilds the ledger from the one there is (docs/guarantees.md).
"""

from __future__ import annotations

import asyncio
import time

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from confluent_kafka import TopicCollection
from confluent_kafka.admin import AdminClient

from services.registry import store
from shared.platform.kafka_access import KafkaConnection, started_consumer, stop_consumer

IDENTITY = "SELECT topic_id, partitions FROM log_identity WHERE topic = $1"
RECORD_IDENTITY = """
INSERT INTO log_identity (topic, topic_id, partitions) VALUES ($1, $2, $3) ON CONFLICT (topic) DO NOTHING
"""


class LogReplaced(RuntimeError):
    """The log is not the one the ledger follows (another topic, deleted records, an end before the ledger's)."""


class LogGuard:
    """Checks, at most every ``every`` seconds (and whenever asked to), that the case stream is the ledger's."""

    def __init__(self, kafka: KafkaConnection, topic: str, pool: asyncpg.Pool, every: float = 1.0) -> None:
        self._kafka, self._topic, self._pool, self._every = kafka, topic, pool, every
        self._admin: AdminClient | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._checked = 0.0
        # At the last check: each partition whose log holds records past those the ledger applied, with the
        # ledger's next offset and the log's end. What the projector watches to tell a reader stopped.
        self.behind: dict[int, tuple[int, int]] = {}

    async def start(self) -> None:
        self._admin = AdminClient({**self._kafka.librdkafka(), "log_level": 4})
        self._consumer = await started_consumer(self._kafka, enable_auto_commit=False)

    async def stop(self) -> None:
        if self._consumer is not None:
            await stop_consumer(self._consumer)

    async def check(self, *, force: bool = False) -> None:
        """Raise :class:`LogReplaced` naming what changed, if the log is not the ledger's any more."""
        if not force and time.monotonic() - self._checked < self._every:
            return
        topic_id, partitions = await asyncio.to_thread(self._describe)
        recorded = await self._pool.fetchrow(IDENTITY, self._topic)
        if recorded is None:
            await self._pool.execute(RECORD_IDENTITY, self._topic, topic_id, partitions)
        elif recorded["topic_id"] != topic_id:
            raise LogReplaced(
                f"{self._topic} is not the topic the ledger follows (topic id {topic_id}, the ledger's is "
                f"{recorded['topic_id']}): it was deleted and created again"
            )
        elif recorded["partitions"] != partitions:
            raise LogReplaced(
                f"{self._topic} has {partitions} partitions, the ledger's had {recorded['partitions']}: a case's "
                "partition would change, and so would the order of its events"
            )
        await self._check_offsets(partitions)
        self._checked = time.monotonic()

    async def _check_offsets(self, partitions: int) -> None:
        assert self._consumer is not None
        positions = await store.stored_positions(self._pool, self._topic)
        tps = [TopicPartition(self._topic, p) for p in range(partitions)]
        starts = await self._consumer.beginning_offsets(tps)
        ends = await self._consumer.end_offsets(tps)
        problems = []
        self.behind = {}
        for tp in tps:
            position = positions.get(tp.partition)
            applied = max(position.next_offset if position else 0, starts[tp])
            if ends[tp] > applied:
                self.behind[tp.partition] = (applied, ends[tp])
            if position is None:
                continue
            if ends[tp] < position.next_offset:
                problems.append(
                    f"partition {tp.partition} ends at {ends[tp]}; the ledger applied up to {position.next_offset}"
                )
            if starts[tp] > position.chain_start:
                problems.append(
                    f"partition {tp.partition} begins at {starts[tp]}: records {position.chain_start} to "
                    f"{starts[tp] - 1} the ledger applied were deleted"
                )
        if problems:
            raise LogReplaced(f"{self._topic} is not the log the ledger follows: " + "; ".join(problems))

    async def members_hold(self, group_id: str, partitions: set[int]) -> set[int]:
        """Which of ``partitions`` of the case stream a member of consumer group ``group_id`` holds, as the
        group's coordinator describes it (a group that lost its members holds none)."""
        return await asyncio.to_thread(self._held, group_id, partitions)

    def _held(self, group_id: str, partitions: set[int]) -> set[int]:
        assert self._admin is not None
        [described] = self._admin.describe_consumer_groups([group_id]).values()
        group = described.result(timeout=10)
        held = {
            tp.partition
            for member in group.members
            for tp in member.assignment.topic_partitions
            if tp.topic == self._topic
        }
        return held & partitions

    def _describe(self) -> tuple[str, int]:
        assert self._admin is not None
        described = self._admin.describe_topics(TopicCollection([self._topic]))[self._topic].result(timeout=10)
        return str(described.topic_id), len(described.partitions)
