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
from services.review.decisions import SUBMISSIONS, decide_all, decide_once, mark_sent
from services.review.reference import ReferenceData
from services.review.reference.store import ReferenceCache
from services.review.rules import decide
from shared import following
from shared.contract.events import Envelope, Reason
from shared.contract.refusal import Refusal
from shared.platform.clock import CHINA, china_today
from shared.platform.db import Connection
from shared.platform.reading import Reader, is_infrastructure
from shared.platform.records import records_by_partition
from shared.platform.service import CaseReading, Runtime, RuntimeContext, name_in_logs

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
    partitions = records_by_partition(message)
    # The whole delivery in one transaction: a delivery under a steady load holds a few records of most partitions,
    # and a transaction for each partition would cost more statements, and commits, than its records do.
    sent = await _decide_delivery(runtime, reader, reading, partitions, data) if len(partitions) > 1 else None
    if sent is None:
        # A delivery of one partition, or a record at fault somewhere: each partition's records in order, the
        # partitions at once, each on its own connection; within a partition, all together if they can be, else
        # each on its own (the record at fault alone is dead-lettered).
        async with asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(_decide_in_order(runtime, reader, reading, records, data)) for records in partitions
            ]
        sent = [pair for task in tasks for pair in task.result()]
    # The batch is committed when this returns, so only once the log holds every decision in it. A crash
    # before that delivers the batch again, and decide_once answers with the decisions it recorded (and
    # sends those it had not marked sent).
    await reader.run(partial(_acknowledged, runtime, sent))


Sent = list[tuple[uuid.UUID, Awaitable[Any]]]  # each decision sent, by its submission, with its acknowledgement


async def _decide_delivery(
    runtime: Runtime, reader: Reader, reading: CaseReading, partitions: list[list[Any]], data: ReferenceData
) -> Sent | None:
    """Every partition's records of one delivery decided and followed in one transaction, and the decisions
    sent; None when a record is at fault (and nothing is kept of the attempt)."""
    async with runtime.pool.acquire() as connection:
        together = await reader.run(partial(_decide_together, connection, reader, reading, partitions, data))
    if together is None:
        return None
    decisions, followed = together
    runtime.metrics.events_followed.inc(followed)
    return await _send(runtime, reader, decisions)


async def _send(runtime: Runtime, reader: Reader, decisions: list[tuple[Any, Envelope, Envelope]]) -> Sent:
    """Send each (record, submission, decision) in order; each decision's acknowledgement, by its submission."""
    sent: Sent = []
    for record, submission, decision in decisions:
        with reader.context(record):
            name_in_logs(submission)
            sent.append((submission.event_id, await runtime.send(decision)))
            log.info("decided", decision=decision.type, decision_event_id=str(decision.event_id))
    return sent


async def _decide_in_order(
    runtime: Runtime, reader: Reader, reading: CaseReading, records: list[Any], data: ReferenceData
) -> Sent:
    """Act on one partition's records in order and follow them; the decisions sent, by the submission. The
    decisions are recorded before they are sent: a crash between the two delivers the batch again, and the
    decisions recorded are sent then (the case states, followed already, are left as they are)."""
    sent: Sent = []
    partition, next_offset = records[0].partition, records[-1].offset + 1
    async with runtime.pool.acquire() as connection:
        together = await reader.run(partial(_decide_together, connection, reader, reading, [records], data))
        if together is None:
            read = await _decide_each(runtime, connection, reader, reading, records, data, sent)

            async def follow() -> int:
                async with connection.transaction():
                    return await following.follow(
                        connection, partition=partition, records=read, next_offset=next_offset, skip_exports=False
                    )

            followed = await reader.run(follow)
        else:
            decisions, followed = together
            sent = await _send(runtime, reader, decisions)
        runtime.metrics.events_followed.inc(followed)
    return sent


async def _decide_together(
    connection: Connection,
    reader: Reader,
    reading: CaseReading,
    partitions: list[list[Any]],
    data: ReferenceData,
) -> tuple[list[tuple[Any, Envelope, Envelope]], int] | None:
    """The records of ``partitions`` (each partition's, in order) in one transaction: each submission decided (the
    decisions still to send, with their records and submissions), every record followed (how many events were
    new). None when one of the records is at fault (unreadable, unsigned, or failing for a reason of its own):
    then each partition is taken on its own, and in it each record, so that only that one is dead-lettered. A
    failure of the database is raised."""
    try:
        read: list[tuple[Any, Envelope]] = []
        batches: list[following.Batch] = []
        for records in partitions:
            followed_here: list[following.Followed] = []
            for record in records:
                with reader.context(record):  # what reading it logs names the record
                    envelope = reading.read(record)
                if isinstance(envelope, Reason):
                    return None
                read.append((record, envelope))
                followed_here.append(following.Followed(record.offset, envelope))
            batches.append(following.Batch(records[0].partition, followed_here, records[-1].offset + 1))
        today = china_today()
        submissions = [
            (e, decide(e.payload.application, data, today, submitted=e.occurred_at.astimezone(CHINA).date()))
            for _, e in read
            if isinstance(e.payload, SUBMISSIONS)
        ]
        async with connection.transaction():
            await expiry.remember_all(connection, [e for _, e in read])
            followed = await following.follow_all(connection, batches, skip_exports=False)
            # Decided last: the agency sequences' rows it locks for the license numbers are held from there to the
            # commit only, not through the follow's statements as well.
            decided = await decide_all(connection, submissions, today)
    except Exception as error:
        if is_infrastructure(error):
            raise
        log.info("deciding together failed; each partition, then each record, on its own", error=repr(error))
        return None
    where: dict[uuid.UUID, Any] = {}  # each submission's first record
    for record, envelope in read:
        where.setdefault(envelope.event_id, record)
    unsent = [(where[s.event_id], s, d) for (s, _), (d, to_send) in zip(submissions, decided, strict=True) if to_send]
    return unsent, followed


async def _decide_each(
    runtime: Runtime,
    connection: Connection,
    reader: Reader,
    reading: CaseReading,
    records: list[Any],
    data: ReferenceData,
    sent: Sent,
) -> list[following.Followed]:
    """Act on each record in a transaction of its own, as the reader judges it: one at fault is dead-lettered
    and followed as nothing; the decisions sent are added to ``sent``."""
    read: list[following.Followed] = []

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
    return read


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
