"""What operators watch, as Prometheus metrics: events flowing, input refused, consumers behind.

Each service has a registry of its own (several services can share a process in tests). Lag is
measured when scraped: the end offset of each partition a consumer group reads, less the offset it
has reached. The registry reports the offsets stored with its ledger, which is where it resumes.
"""

from __future__ import annotations

import asyncio
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

from shared.platform.kafka_access import KafkaConnection, started_consumer, stop_consumer

Positions = Callable[["Offsets"], Awaitable[dict[TopicPartition, int]]]  # where a consumer has got to


Refresh = Callable[[], Awaitable[None]]  # sets gauges that are read when scraped (an outbox's depth, say)


class Metrics:
    """The service's metrics, in a registry of its own with the process's; ``render`` refreshes what is read when
    scraped (the lag gauges, and each ``on_scrape`` hook), then writes the text format.

    A series that only some services can move is made by those services only (``events_applied``: the registry;
    ``events_followed``: the services that follow the cases), so that none reports a zero by construction."""

    def __init__(self, service: str, kafka: KafkaConnection) -> None:
        self.registry = CollectorRegistry()
        self.offsets = Offsets(kafka)
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
        self.readers_restarted = Counter(
            "ledger_readers_restarted",
            "Topic readers started again with a new consumer because they fetched nothing while records waited",
            ["topics"],
            registry=self.registry,
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

    async def behind(self) -> dict[str, int]:
        """Each watched group's records yet to read, summed over its partitions (the lag gauges set too)."""
        totals: dict[str, int] = {}
        for group, positions in self._positions.items():
            reached = await positions(self.offsets)
            totals[group] = 0
            for tp, end in (await self.offsets.ends(reached)).items():
                lag = max(end - reached[tp], 0)
                self.lag.labels(group, tp.topic, str(tp.partition)).set(lag)
                totals[group] += lag
        return totals

    async def render(self) -> bytes:
        await self.behind()
        for refresh in self.on_scrape:
            await refresh()
        return generate_latest(self.registry)


class Offsets:
    """Where partitions end and where consumer groups have got to, asked of Kafka through two clients made on
    first use and kept (a login per scrape or health check cost most of its time, and more on a loaded broker).
    A client that failed to start is made again on the next question; :meth:`stop` closes both."""

    def __init__(self, kafka: KafkaConnection) -> None:
        self._kafka = kafka
        self._consumer: AIOKafkaConsumer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._starting = asyncio.Lock()

    async def ends(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        partitions = list(partitions)
        if not partitions:
            return {}
        ends: dict[TopicPartition, int] = await (await self._started_consumer()).end_offsets(partitions)
        return ends

    async def partitions(self, topic: str) -> list[TopicPartition]:
        described = await (await self._started_admin()).describe_topics([topic])
        return sorted(TopicPartition(topic, p["partition"]) for d in described for p in d["partitions"])

    async def committed(self, group: str) -> dict[TopicPartition, int]:
        """The offsets ``group`` has committed (a partition it never committed is absent)."""
        found = await (await self._started_admin()).list_consumer_group_offsets(group)
        return {tp: meta.offset for tp, meta in found.items() if meta.offset >= 0}

    async def stop(self) -> None:
        consumer, admin, self._consumer, self._admin = self._consumer, self._admin, None, None
        if consumer is not None:
            await stop_consumer(consumer)
        if admin is not None:
            await admin.close()

    async def _started_consumer(self) -> AIOKafkaConsumer:
        async with self._starting:
            if self._consumer is None:
                self._consumer = await started_consumer(self._kafka, enable_auto_commit=False)
            return self._consumer

    async def _started_admin(self) -> AIOKafkaAdminClient:
        async with self._starting:
            if self._admin is None:
                admin = AIOKafkaAdminClient(**self._kafka.options())
                try:
                    await admin.start()
                except BaseException:
                    await admin.close()
                    raise
                self._admin = admin
            return self._admin


def committed_positions(group: str, topic: str) -> Positions:
    """The positions a group has committed to Kafka, for each partition of ``topic`` (0 if none)."""

    async def positions(offsets: Offsets) -> dict[TopicPartition, int]:
        committed = await offsets.committed(group)
        return {tp: committed.get(tp, 0) for tp in await offsets.partitions(topic)}

    return positions


def stored_positions(topic: str, stored: Callable[[], Awaitable[dict[int, int]]]) -> Positions:
    """Positions kept outside Kafka (the ledger's own offsets), for each partition of ``topic`` (0 if none)."""

    async def positions(offsets: Offsets) -> dict[TopicPartition, int]:
        partitions = await offsets.partitions(topic)
        found = await stored()
        return {tp: found.get(tp.partition, 0) for tp in partitions}

    return positions
