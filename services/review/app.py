"""The review service: decides each submitted application against the rules and reference data."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from fastapi import FastAPI
from faststream import AckPolicy
from faststream.kafka.annotations import KafkaMessage
from pydantic_settings import SettingsConfigDict

from services.review import cases, expiry, reference
from services.review.decisions import SUBMISSIONS, decide_once
from services.review.officer_api import add_officer_routes
from services.review.reference import ReferenceData
from services.review.reference_api import add_reference_routes
from services.review.reference_store import ReferenceCache
from services.review.rules import decide
from shared.events import CHINA, ApplicationWithdrawn, Envelope, Reason, china_today
from shared.intake import keep_batch_bodies, parse_record_batch, records_by_partition
from shared.reading import Reader
from shared.refusal import Refusal
from shared.service import Runtime, create_service
from shared.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="REVIEW_", extra="ignore", populate_by_name=True)
    port: int = 8002
    reference_version: str = reference.CURRENT_VERSION
    expiry_interval_seconds: float = 60.0
    batch_size: int = 500  # case events read, decided and committed together


def create_app(settings: Settings | None = None, *, clock: expiry.Clock = china_today) -> FastAPI:
    settings = settings or Settings()
    app, runtime = create_service(
        "review",
        settings,
        title="Export license review",
        description="Applies the eligibility rules to each submitted application; grants or rejects it.",
    )
    references = _add_reference_data(runtime, settings.reference_version)
    add_reference_routes(app, runtime, references)

    @runtime.broker.subscriber(
        settings.topics.cases,
        group_id=runtime.consumes(settings.topics.group("review"), settings.topics.cases),
        group_instance_id=settings.instance_id,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        batch=True,
        max_records=settings.batch_size,
        parser=parse_record_batch,  # a record with a binary or null header is read, not dropped with its batch
        decoder=keep_batch_bodies,
        title="cases-review",
        description="Review decides (re)submissions and keeps each license's validity (granted, expired).",
    )
    async def on_case_events(message: KafkaMessage) -> None:
        # The reference data as the batch starts: a change committed meanwhile counts from the next batch.
        data = await references.current()
        reader = runtime.reader("cases-review")
        # A case lives in one partition: each partition's records are decided in order, the partitions at
        # once, each on its own connection, so one waiting on PostgreSQL does not hold the others back.
        async with asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(decide_in_order(reader, records, data)) for records in records_by_partition(message)
            ]
        # The batch is committed when this returns, so only once the log holds every decision in it. A crash
        # before that delivers the batch again, and decide_once answers with the decisions it recorded.
        acknowledged = [ack for task in tasks for ack in task.result()]
        await reader.run(lambda: asyncio.gather(*acknowledged))

    async def decide_in_order(reader: Reader, records: list[Any], data: ReferenceData) -> list[Awaitable[Any]]:
        """Act on one partition's records in order; the acknowledgements of the decisions sent."""
        acknowledged: list[Awaitable[Any]] = []
        async with runtime.pool.acquire() as connection:

            async def decide_record(record: Any) -> None:
                envelope = await runtime.case_event(record)
                if isinstance(envelope, Reason):  # unreadable or unsigned: a forged submission, say
                    raise Refusal(422, envelope.code, envelope.message)
                decision = await on_case_event(connection, envelope, data)
                if decision is not None:
                    acknowledged.append(await runtime.send(decision))

            for record in records:
                await reader.each(record, decide_record)
        return acknowledged

    async def on_case_event(connection: cases.Connection, envelope: Envelope, data: ReferenceData) -> Envelope | None:
        await expiry.remember(connection, envelope)
        if isinstance(envelope.payload, ApplicationWithdrawn):
            await cases.close_withdrawn(connection, envelope.case_id)
        if not isinstance(envelope.payload, SUBMISSIONS):
            return None
        today = china_today()
        submitted = envelope.occurred_at.astimezone(CHINA).date()
        decision = decide(envelope.payload.application, data, today, submitted=submitted)
        return await decide_once(connection, envelope, decision, today)

    _add_expiry(runtime, settings.expiry_interval_seconds, clock)
    add_officer_routes(app, runtime, clock)
    return app


def _add_reference_data(runtime: Runtime, version: str) -> ReferenceCache:
    """Load the configured version into review's tables at start-up (if no instance has yet), and
    decide against what the tables hold."""
    references = ReferenceCache()

    async def start(rt: Runtime) -> None:
        await references.start(rt.pool, version)

    runtime.on_start.append(start)
    return references


def _add_expiry(runtime: Runtime, interval: float, clock: expiry.Clock) -> None:
    """Run the expiry scheduler while the service runs; ``clock`` gives China's date (tests set it)."""

    async def start(rt: Runtime) -> None:
        rt.run_in_background(expiry.run_forever(rt.pool, rt.append, clock, interval), name="expiry")

    runtime.on_start.append(start)
