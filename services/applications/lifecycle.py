"""After submission: the applicant withdraws an undecided application or resubmits a returned one.

The service follows every case with the ledger's own fold (``shared/following.py``), so it judges a
withdrawal or a resubmission against the state the ledger gives the case, not a guess at it; and it answers
202 only once it has seen its event change the case, 409 with the reason when a decision got there first.
"""

from __future__ import annotations

import uuid
from functools import partial
from typing import Annotated, Any

from fastapi import Depends
from faststream.kafka.annotations import KafkaMessage
from pydantic import BaseModel

from services.applications.submission import resubmitted, withdrawn
from shared import following
from shared.contract.events import (
    Application,
    ApplicationResubmitted,
    ApplicationReturned,
    ApplicationStatus,
    Envelope,
    Reason,
    Text,
    derived_event_id,
)
from shared.contract.refusal import Refusal
from shared.following import CaseView, InEffect
from shared.platform.access import Principal, require
from shared.platform.http import ErrorBody
from shared.platform.http import router as ledger_router
from shared.platform.records import records_by_partition
from shared.platform.service import CaseReading, Runtime, RuntimeContext, ServiceRuntime

BATCH = 500  # case events followed per transaction and per Kafka commit
UNDECIDED = frozenset({ApplicationStatus.SUBMITTED, ApplicationStatus.ESCALATED})
Submitter = Annotated[Principal, Depends(require("submitter"))]
RESPONSES: dict[int | str, dict[str, Any]] = {code: {"model": ErrorBody} for code in (404, 409, 422, 503)}
router = ledger_router(tags=["applications"], responses=RESPONSES)


class Withdrawal(BaseModel):
    reason: Text | None = None


class Changed(BaseModel):
    """The applicant's change is in the log and took effect: the case is now in ``status``."""

    application_id: uuid.UUID
    status: ApplicationStatus
    event_id: uuid.UUID


def _known(view: CaseView, application_id: uuid.UUID, principal: Principal) -> None:
    """Refuse a case the service has not seen (404), or one of another agency (403)."""
    if view.case.application is None:
        raise Refusal(404, "unknown_application", f"no application {application_id}")
    principal.ensure_agency(view.case.application.agency_code)


@router.post("/applications/{application_id}/withdraw", status_code=202)
async def withdraw(
    application_id: uuid.UUID, principal: Submitter, runtime: ServiceRuntime, body: Withdrawal | None = None
) -> Changed:
    """Withdraw an application no decision has been taken on. Repeating it appends nothing new."""
    event_id = derived_event_id(application_id, "withdrawn")

    async def judge(view: CaseView) -> Refusal | InEffect | None:
        _known(view, application_id, principal)
        status = view.case.application.status if view.case.application else None
        if status is ApplicationStatus.WITHDRAWN:
            return InEffect(event_id)
        if status not in UNDECIDED:
            return Refusal(409, f"application_{status}", f"application {application_id} is already {status}")
        return None

    async def event(_: CaseView) -> Envelope:
        return withdrawn(application_id, body.reason if body else None)

    done = await following.judged_append(runtime, application_id, judge=judge, event=event)
    return Changed(application_id=application_id, status=ApplicationStatus.WITHDRAWN, event_id=_id(done))


@router.post("/applications/{application_id}/resubmit", status_code=202)
async def resubmit(
    application_id: uuid.UUID, application: Application, principal: Submitter, runtime: ServiceRuntime
) -> Changed:
    """Resubmit a returned application, corrected; review decides it again."""
    principal.ensure_agency(application.agency_code)

    async def returned_by(view: CaseView) -> uuid.UUID | None:
        return await following.last_change(runtime.pool, view.case.case_id, ApplicationReturned.TYPE)

    async def judge(view: CaseView) -> Refusal | InEffect | None:
        _known(view, application_id, principal)
        assert view.case.application is not None
        if view.case.application.applicant_code != application.applicant.code:
            return Refusal(422, "applicant_changed", "a corrected application keeps its applicant; apply anew instead")
        returned = await returned_by(view)
        if view.case.application.status is ApplicationStatus.RETURNED and returned is not None:
            return None
        answer = derived_event_id(returned, "resubmitted") if returned else None
        if answer is not None and answer == await following.last_change(
            runtime.pool, application_id, ApplicationResubmitted.TYPE
        ):
            return InEffect(answer)
        status = view.case.application.status
        return Refusal(409, "application_not_returned", f"application {application_id} is {status}, not returned")

    async def event(view: CaseView) -> Envelope:
        returned = await returned_by(view)
        assert returned is not None
        return resubmitted(application, application_id=application_id, returned_event_id=returned)

    done = await following.judged_append(runtime, application_id, judge=judge, event=event)
    return Changed(application_id=application_id, status=ApplicationStatus.SUBMITTED, event_id=_id(done))


def _id(done: Envelope | InEffect) -> uuid.UUID:
    return done.event_id


def follow_cases(runtime: Runtime) -> None:
    """Follow every case with the ledger's fold: what withdrawals and resubmissions are judged against."""
    topic = runtime.settings.topics.cases

    runtime.subscribe(
        on_case_events,
        topic=topic,
        group="applications-follow",
        batch_size=BATCH,
        title="cases-applications",
        description="Follows each case with the ledger's fold, to judge withdrawals and resubmissions.",
    )


async def on_case_events(message: KafkaMessage, runtime: RuntimeContext) -> None:
    reader = runtime.reader("cases-applications")
    reading = await reader.run(runtime.case_reading)
    batches: list[tuple[int, list[following.Followed], int]] = []
    for records in records_by_partition(message):
        read: list[following.Followed] = []
        for record in records:
            await reader.each(record, partial(_read, reading, into=read))
        batches.append((records[0].partition, read, records[-1].offset + 1))
    await reader.run(partial(_follow, runtime, batches))


async def _read(reading: CaseReading, record: Any, *, into: list[following.Followed]) -> None:
    found = reading.read(record)
    if isinstance(found, Reason):
        into.append(following.Followed(record.offset, None))
        # Refused here as the registry and review refuse it: a forged withdrawal must not close a case.
        raise Refusal(422, found.code, found.message)
    into.append(following.Followed(record.offset, found))


async def _follow(runtime: Runtime, batches: list[tuple[int, list[following.Followed], int]]) -> None:
    """Every partition's records of one delivery, followed in one transaction and with one statement per table for
    them all (partition, records, next offset): a delivery holds a few records of most partitions, and a commit,
    or a statement, each cost more than following them."""
    async with runtime.pool.acquire() as connection, connection.transaction():
        followed = await following.follow_all(
            connection, [following.Batch(p, read, next_offset) for p, read, next_offset in batches], skip_exports=True
        )
    runtime.metrics.events_followed.inc(followed)
