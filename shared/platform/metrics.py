"""What operators watch, as Prometheus metrics: events flowing, input refused, consumers behind.

Each service has a registry of its own (several services can share a process in tests). Lag is
measured when scraped: the end offset of each partition a consumer group reads, less the offset it
has reached. The registry reports the offsets stored with its ledger, which is where it resumes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import (
    GC_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

from shared.platform.kafka_access import KafkaConnection

Positions = Callable[[], Awaitable[dict[TopicPartition, int]]]  # where a consumer has got to


Refresh = Callable[[], Awaitable[None]]  # sets gauges that are read when scraped (an outbox's depth, say)


class Metrics:
    """The service's metrics, in a registry of its own with the process's; ``render`` refreshes what is read when
    scraped (the lag gauges, and each ``on_scrape`` hook), then writes the text format.

    A series that only some services can move is made by those services only (``events_applied``: the registry;
    ``events_followed``: the services that follow the cases), so that none reports a zero by construction."""

    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.registry.register(GC_COLLECTOR)
        self.events_appended = Counter(
            "ledger_events_appended",
            "Events this service appended to the case stream",
            ["type"],
            registry=self.registry,
        )
        self._events_applied: Counter | None = None
        self._events_followed: Counter | None = None
        self.on_scrape: list[Refresh] = []
        self.dead_letters = Counter(
            "ledger_dead_letters", "Input refused to the dead-letter topic", ["reason"], registry=self.registry
        )
        self.lag = Gauge(
            "ledger_consumer_lag",
            "Records a consumer group has yet to read",
            ["group", "topic", "partition"],
            registry=self.registry,
        )
        self.service = service
        self._positions: dict[str, Positions] = {}

    @property
    def events_applied(self) -> Counter:
        """Events folded into the ledger (the registry's)."""
        if self._events_applied is None:
            self._events_applied = Counter(
                "ledger_events_applied",
                "Events folded into the ledger (new ones; duplicates are not counted)",
                registry=self.registry,
            )
        return self._events_applied

    @property
    def events_followed(self) -> Counter:
        """Events of the case stream a service folded into its own view of the cases (applications, review)."""
        if self._events_followed is None:
            self._events_followed = Counter(
                "ledger_events_followed",
                "Case events this service folded into its own view of the cases, to judge commands against",
                registry=self.registry,
            )
        return self._events_followed

    def watch(self, group: str, positions: Positions) -> None:
        """Report the lag of ``group``, whose positions ``positions`` tells."""
        self._positions[group] = positions

    async def behind(self, kafka: KafkaConnection) -> dict[str, int]:
        """Each watched group's records yet to read, summed over its partitions (the lag gauges set too)."""
        totals: dict[str, int] = {}
        for group, positions in self._positions.items():
            reached = await positions()
            totals[group] = 0
            for tp, end in (await end_offsets(kafka, reached)).items():
                lag = max(end - reached[tp], 0)
                self.lag.labels(group, tp.topic, str(tp.partition)).set(lag)
                totals[group] += lag
        return totals

    async def render(self, kafka: KafkaConnection) -> bytes:
        await self.behind(kafka)
        for refresh in self.on_scrape:
            await refresh()
        return generate_latest(self.registry)


async def end_offsets(kafka: KafkaConnection, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
    partitions = list(partitions)
    if not partitions:
        return {}
    consumer = AIOKafkaConsumer(**kafka.options(), enable_auto_commit=False)
    await consumer.start()
    try:
        ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
        return ends
    finally:
        await consumer.stop()


async def topic_partitions(admin: AIOKafkaAdminClient, topic: str) -> list[TopicPartition]:
    described = await admin.describe_topics([topic])
    return sorted(TopicPartition(topic, p["partition"]) for d in described for p in d["partitions"])


def committed_positions(kafka: KafkaConnection, group: str, topic: str) -> Positions:
    """The positions a group has committed to Kafka, for each partition of ``topic`` (0 if none)."""

    async def positions() -> dict[TopicPartition, int]:
        admin = AIOKafkaAdminClient(**kafka.options())
        await admin.start()
        try:
            committed = await admin.list_consumer_group_offsets(group)
            partitions = await topic_partitions(admin, topic)
        finally:
            await admin.close()
        return {tp: committed[tp].offset if tp in committed and committed[tp].offset >= 0 else 0 for tp in partitions}

    return positions


def stored_positions(kafka: KafkaConnection, topic: str, stored: Callable[[], Awaitable[dict[int, int]]]) -> Positions:
    """Positions kept outside Kafka (the ledger's own offsets), for each partition of ``topic`` (0 if none)."""

    async def positions() -> dict[TopicPartition, int]:
        admin = AIOKafkaAdminClient(**kafka.options())
        await admin.start()
        try:
            partitions = await topic_partitions(admin, topic)
        finally:
            await admin.close()
        offsets = await stored()
        return {tp: offsets.get(tp.partition, 0) for tp in partitions}

    return positions
