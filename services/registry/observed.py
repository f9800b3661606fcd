"""What an operator watches of the registry beyond every service's series: how long a partition's batch takes to
fold, how deep the outbox is and how long its oldest change has waited, and how old the last checkpoint is."""

from __future__ import annotations

import time
from collections.abc import Callable

import asyncpg
from prometheus_client import Gauge, Histogram

from shared.platform.metrics import Metrics

OUTBOX = "SELECT count(*) AS depth, coalesce(extract(epoch FROM now() - min(created_at)), 0) AS oldest FROM outbox"
FOLD_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, float("inf"))


class RegistryMetrics:
    def __init__(self, metrics: Metrics, pool: Callable[[], asyncpg.Pool], checked_at: Callable[[], float]) -> None:
        registry = metrics.registry
        self.fold_seconds = Histogram(
            "ledger_fold_batch_seconds",
            "Time to fold one fetch's batches (every partition in it) into the ledger, reading and judging included",
            buckets=FOLD_BUCKETS,
            registry=registry,
        )
        self.outbox_depth = Gauge("ledger_outbox_depth", "License changes not yet published", registry=registry)
        self.outbox_oldest = Gauge(
            "ledger_outbox_oldest_seconds",
            "How long the oldest unpublished license change has waited (0: none waits)",
            registry=registry,
        )
        self.checkpoint_age = Gauge(
            "ledger_checkpoint_age_seconds",
            "Seconds since the registry last checkpointed its ledger (taken and checked, published if new)",
            registry=registry,
        )
        self._pool, self._checked_at = pool, checked_at
        metrics.on_scrape.append(self.refresh)

    async def refresh(self) -> None:
        row = await self._pool().fetchrow(OUTBOX)
        assert row is not None
        self.outbox_depth.set(row["depth"])
        self.outbox_oldest.set(float(row["oldest"]))
        self.checkpoint_age.set(time.monotonic() - self._checked_at())
