"""Reviewing: each (re)submission on the case stream decided against the rules and the reference data, once;
every case followed with the ledger's fold (what officers' actions are judged against), and the expiry table
kept."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable
from functools import partial
from typing import Annotated, Any

import structlog
from faststream import Context
from faststream.kafka.annotations import KafkaMessage

from services.review import expiry
from services.review.decisions import SUBMISSIONS, decide_once, mark_sent
from services.review.reference import ReferenceData
from services.review.reference.store import ReferenceCache
from services.review.rules import decide
from shared import following
from shared.contract.events import Envelope, Reason
from shared.contract.refusal import Refusal
from shared.platform.clock import CHINA, china_today
from shared.platform.db import Connection
from shared.platform.reading import Reader
from shared.platform.records import records_by_partition
from shared.platform.service import CaseReading, Runtime, RuntimeContext

References = Annotated[ReferenceCache, Context("references")]
log = structlog.get_logger(__name__)


def follow_cases(runtime: Runtime, batch_size: int) -> None:
    """Review each (re)submission the case stream brings, and follow every case with the ledger's fold."""
    runtime.subscribe(
        on_case_events,
        topic=runtime.settings.topics.cases,
        group="review-follow",
        batch_size=batch_size,
        title="cases-review",
        description="Review decides (re)submissions, keeps each license's validity, and follows every case with "
        "the ledger's fold, to judge officers' actions against it.",
    )


async def on_case_events(message: KafkaMessage, runtime: RuntimeContext, references: References) -> None:
    # The reference data as the batch starts: a change committed meanwhile counts from the next batch.
    data = await references.current()
    reader = runtime.reader("cases-review")
    reading = await reader.run(runtime.case_reading)
    # A case lives in one partition: each partition's records are decided in order, the partitions at
    # once, each on its own connection, so one waiting on PostgreSQL does not hold the others back.
    async with asyncio.TaskGroup() as group:
        tasks = [
            group.create_task(_decide_in_order(runtime, reader, reading, records, data))
            for records in records_by_partition(message)
        ]
    # The batch is committed when this returns, so only once the log holds every decision in it. A crash
    # before that delivers the batch again, and decide_once answers with the decisions it recorded (and
    # sends those it had not marked sent).
    sent = [pair for task in tasks for pair in task.result()]
    await reader.run(partial(_acknowledged, runtime, sent))


async def _decide_in_order(
    runtime: Runtime, reader: Reader, reading: CaseReading, records: list[Any], data: ReferenceData
) -> list[tuple[uuid.UUID, Awaitable[Any]]]:
    """Act on one partition's records in order, then follow them; the decisions sent, by the submission."""
    sent: list[tuple[uuid.UUID, Awaitable[Any]]] = []
    read: list[following.Followed] = []
    async with runtime.pool.acquire() as connection:

        async def decide_record(record: Any) -> None:
            envelope = reading.read(record)
            if isinstance(envelope, Reason):  # unreadable or unsigned: a forged submission, say
                read.append(following.Followed(record.offset, None))
                raise Refusal(422, envelope.code, envelope.message)
            decision = await _on_case_event(connection, envelope, data)
            if decision is not None:
                sent.append((envelope.event_id, await runtime.send(decision)))
                log.info("decided", decision=decision.type, decision_event_id=str(decision.event_id))
            read.append(following.Followed(record.offset, envelope))

        for record in records:
            await reader.each(record, decide_record)

        async def follow() -> None:
            async with connection.transaction():
                followed = await following.follow(
                    connection,
                    partition=records[0].partition,
                    records=read,
                    next_offset=records[-1].offset + 1,
                    skip_exports=False,
                )
            runtime.metrics.events_followed.inc(followed)

        await reader.run(follow)
    return sent


async def _on_case_event(connection: Connection, envelope: Envelope, data: ReferenceData) -> Envelope | None:
    """The decision to send on a (re)submission, if one is still to be sent; the expiry table kept."""
    await expiry.remember(connection, envelope)
    if not isinstance(envelope.payload, SUBMISSIONS):
        return None
    today = china_today()
    submitted = envelope.occurred_at.astimezone(CHINA).date()
    decision = decide(envelope.payload.application, data, today, submitted=submitted)
    decided, unsent = await decide_once(connection, envelope, decision, today)
    return decided if unsent else None


async def _acknowledged(runtime: Runtime, sent: list[tuple[uuid.UUID, Awaitable[Any]]]) -> None:
    await asyncio.gather(*(acknowledged for _, acknowledged in sent))
    await mark_sent(runtime.pool, [submission for submission, _ in sent])
