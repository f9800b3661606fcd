"""The peer: the same ledger fold, built the way the ``eventsourcing`` library (9.x) builds a projection.

Each case is an ``Aggregate`` whose one command, ``fold``, triggers a ``Folded`` domain event holding the
case event as read from Kafka; applying it runs the registry's own pure fold (``ledger.apply``), so the two
sides compute the same state and the comparison is about persistence and plumbing. Aggregates are loaded
through the library's repository (with its aggregate cache, no deep copy: its fastest documented settings)
and each Kafka batch is saved with one ``Application.save`` (one transaction) into the PostgreSQL recorder
(``PERSISTENCE_MODULE=eventsourcing.postgres``, psycopg 3) in a schema of its own.
"""

from __future__ import annotations

import time
import uuid
from typing import Any
from urllib.parse import urlparse

from aiokafka import AIOKafkaConsumer, TopicPartition
from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate, event

from shared import fold as ledger
from shared.contract.events import Envelope
from shared.fold import ExportEntry
from shared.platform.kafka_access import KafkaConnection


class CaseAggregate(Aggregate):
    """One license case, event-sourced by the library: its state is the registry's ``ledger.Case``."""

    @staticmethod
    def create_id(case_id: uuid.UUID) -> uuid.UUID:
        return case_id

    @event("Opened")
    def __init__(self, case_id: uuid.UUID) -> None:
        self.case = ledger.Case(case_id=case_id)
        self.exports: list[ExportEntry] = []

    @event("Folded")
    def fold(self, raw: str) -> None:
        self.case, export = ledger.apply(self.case, Envelope.from_bytes(raw.encode()))
        if export is not None:
            self.exports.append(export)


class PeerLedger(Application[uuid.UUID]):
    name = "PeerLedger"


def peer_env(database_url: str, schema: str) -> dict[str, str]:
    url = urlparse(database_url)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": url.path.lstrip("/"),
        "POSTGRES_HOST": url.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(url.port or 5432),
        "POSTGRES_USER": url.username or "",
        "POSTGRES_PASSWORD": url.password or "",
        "POSTGRES_SCHEMA": schema,
        "CREATE_TABLE": "y",
        "AGGREGATE_CACHE_MAXSIZE": "50000",
        "DEEPCOPY_FROM_AGGREGATE_CACHE": "n",
    }


async def run_peer(
    *,
    bootstrap: str,
    topic: str,
    end: dict[int, int],
    database_url: str,
    schema: str,
    seconds: float,
    max_records: int = 5000,
) -> dict[str, Any]:
    """Fold the topic with the peer until done or ``seconds`` have passed; the events/s of what it did."""
    app = PeerLedger(env=peer_env(database_url, schema))
    consumer = AIOKafkaConsumer(
        **KafkaConnection(bootstrap_servers=bootstrap).options(),
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    total = sum(end.values())
    done = 0
    started = time.perf_counter()
    try:
        todo = dict(end)
        consumer.assign([TopicPartition(topic, p) for p in todo])
        for p in todo:
            consumer.seek(TopicPartition(topic, p), 0)
        while todo and time.perf_counter() - started < seconds:
            batches = await consumer.getmany(timeout_ms=1000, max_records=max_records)
            for tp, records in batches.items():
                if tp.partition not in todo:
                    continue
                touched: dict[uuid.UUID, CaseAggregate] = {}
                for record in records:
                    if record.offset >= todo[tp.partition]:
                        break
                    case_id = uuid.UUID(record.key.decode())
                    aggregate = touched.get(case_id)
                    if aggregate is None:
                        try:
                            aggregate = app.repository.get(case_id)
                        except AggregateNotFoundError:
                            aggregate = CaseAggregate(case_id)
                        touched[case_id] = aggregate
                    aggregate.fold((record.value or b"").decode())
                    done += 1
                app.save(*touched.values())
                if records[-1].offset + 1 >= todo[tp.partition]:
                    del todo[tp.partition]
                    consumer.pause(tp)
    finally:
        await consumer.stop()
        app.close()
    elapsed = time.perf_counter() - started
    return {
        "events": done,
        "of": total,
        "seconds": elapsed,
        "events_per_s": done / elapsed if elapsed else 0.0,
        "complete": done >= total,
    }
