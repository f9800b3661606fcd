"""After submission: the applicant withdraws an undecided application or resubmits a returned one.

The service follows each case's status from the case stream into its own table (no call to another
service), and refuses what the status does not allow with 409 and the reason.
"""

from __future__ import annotations

import logging
import uuid
from typing import Annotated, Any

from fastapi import Depends, FastAPI
from faststream import AckPolicy
from faststream.kafka.annotations import KafkaMessage
from pydantic import BaseModel

from services.applications import cases
from services.applications.submission import resubmitted, withdrawn
from shared.access import Principal, require
from shared.events import Application, Envelope, Reason, Text
from shared.http import ErrorBody
from shared.intake import batch_records, keep_batch_bodies, parse_record_batch
from shared.refusal import Refusal
from shared.service import Runtime

log = logging.getLogger(__name__)
BATCH = 500  # case events followed per transaction and per Kafka commit


class Withdrawal(BaseModel):
    reason: Text | None = None


Submitter = Annotated[Principal, Depends(require("submitter"))]


class Changed(BaseModel):
    """The applicant's change is on the case stream; the registry shows the status once it has folded it."""

    application_id: uuid.UUID
    status: str
    event_id: uuid.UUID


def add_lifecycle(app: FastAPI, runtime: Runtime) -> None:
    _add_routes(app, runtime)
    _follow_cases(runtime)


async def _status(runtime: Runtime, application_id: uuid.UUID, principal: Principal) -> cases.CaseStatus:
    case = await cases.load(runtime.pool, application_id)
    if case is None:
        raise Refusal(404, "unknown_application", f"no application {application_id} (yet)")
    if case.agency_code is not None:  # None: followed before agencies were kept (migration 0003)
        principal.ensure_agency(case.agency_code)
    return case


def _add_routes(app: FastAPI, runtime: Runtime) -> None:
    responses: dict[int | str, dict[str, Any]] = {code: {"model": ErrorBody} for code in (404, 409, 422)}

    @app.post("/applications/{application_id}/withdraw", status_code=202, tags=["applications"], responses=responses)
    async def withdraw(application_id: uuid.UUID, principal: Submitter, body: Withdrawal | None = None) -> Changed:
        """Withdraw an application no decision has been taken on. Repeating it appends nothing new."""
        case = await _status(runtime, application_id, principal)
        if case.status not in cases.UNDECIDED:
            raise Refusal(409, f"application_{case.status}", f"application {application_id} is already {case.status}")
        envelope = withdrawn(application_id, body.reason if body else None)
        await runtime.append(envelope)
        return Changed(application_id=application_id, status="withdrawn", event_id=envelope.event_id)

    @app.post("/applications/{application_id}/resubmit", status_code=202, tags=["applications"], responses=responses)
    async def resubmit(application_id: uuid.UUID, application: Application, principal: Submitter) -> Changed:
        """Resubmit a returned application, corrected; review decides it again."""
        principal.ensure_agency(application.agency_code)
        case = await _status(runtime, application_id, principal)
        if case.status != "returned" or case.returned_event_id is None:
            raise Refusal(
                409, "application_not_returned", f"application {application_id} is {case.status}, not returned"
            )
        if application.applicant.code != case.applicant_code:
            raise Refusal(422, "applicant_changed", "a corrected application keeps its applicant; apply anew instead")
        envelope = resubmitted(application, application_id=application_id, returned_event_id=case.returned_event_id)
        await runtime.append(envelope)
        return Changed(application_id=application_id, status="submitted", event_id=envelope.event_id)


def _follow_cases(runtime: Runtime) -> None:
    topic = runtime.settings.topics.cases

    @runtime.broker.subscriber(
        topic,
        group_id=runtime.consumes(runtime.settings.topics.group("applications-cases"), topic),
        group_instance_id=runtime.settings.instance_id,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        batch=True,
        max_records=BATCH,
        parser=parse_record_batch,  # a record with a binary or null header is read, not dropped with its batch
        decoder=keep_batch_bodies,
        title="cases-applications",
        description="Follows each application's status: submitted, escalated, returned, decided, withdrawn.",
    )
    async def on_case_events(message: KafkaMessage) -> None:
        reader = runtime.reader("cases-applications")
        found: list[Envelope] = []

        async def read(record: Any) -> None:
            event = await runtime.case_event(record)
            if isinstance(event, Reason):
                # Refused here as the registry and review refuse it: a forged withdrawal must not close a case.
                raise Refusal(422, event.code, event.message)
            found.append(event)

        for record in batch_records(message):
            await reader.each(record, read)
        await reader.run(lambda: cases.apply(runtime.pool, found))
