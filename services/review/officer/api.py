"""The officers' HTTP API on the review service: the queue of escalated applications, and their actions."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from pydantic import BaseModel, Field

from services.review.officer import actions, queue
from services.review.reference import ReferenceData
from services.review.reference.store import ReferenceCache
from shared.contract.events import (
    Application,
    Count,
    CountryCode,
    Day,
    Envelope,
    LicenseReplaced,
    OfficerId,
    PortCode,
    Reason,
    Reasons,
    Text,
)
from shared.platform.access import Principal, require
from shared.platform.http import ErrorBody, IdempotencyKey
from shared.platform.http import router as ledger_router
from shared.platform.service import Runtime

TAGS: list[str | Enum] = ["officers"]
RESPONSES: dict[int | str, dict[str, Any]] = {code: {"model": ErrorBody} for code in (404, 409, 422, 503)}
Officer = Annotated[Principal, Depends(require("officer"))]
LICENSE_NUMBER = re.compile(r"^\d{2}-(\w+)-\d+$")  # YY-AA-NNNNNN: AA is the issuing agency


class QueueItem(BaseModel):
    """An escalated application waiting for an officer, with why and by when (rule 12)."""

    application_id: uuid.UUID
    application: Application
    reasons: list[Reason]
    due: date
    escalated_at: datetime


ActingOfficer = Annotated[
    OfficerId | None,
    Field(
        description="who acts: the officer the credential was issued to, whom the event names; may be left out, "
        "and is refused (403 officer_mismatch) if it names anyone else"
    ),
]


class Approve(BaseModel):
    officer: ActingOfficer = None
    quantity: Annotated[Count | None, Field(ge=1, description="grant fewer vehicles than applied for")] = None
    valid_to: Annotated[Day | None, Field(description="end the validity earlier than rule 7 allows")] = None


class Refuse(BaseModel):
    officer: ActingOfficer = None
    reasons: Reasons


class WithReason(BaseModel):
    officer: ActingOfficer = None
    reason: Reason


class Reinstate(BaseModel):
    officer: ActingOfficer = None
    note: Text | None = None


class Replace(WithReason):
    quantity: Annotated[Count | None, Field(ge=1, description="cap the balance carried over")] = None
    valid_from: Day | None = None
    valid_to: Day | None = None
    port_of_exit: PortCode | None = None
    destination_country: CountryCode | None = None


class ActionTaken(BaseModel):
    """The action's event is on the case stream; the registry's ledger follows it."""

    case_id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    license_number: str | None = None
    successor_license_number: str | None = None


def _taken(envelope: Envelope) -> ActionTaken:
    event = envelope.payload
    return ActionTaken(
        case_id=envelope.case_id,
        event_id=envelope.event_id,
        event_type=envelope.type,
        license_number=getattr(event, "license_number", None),
        successor_license_number=event.successor_license_number if isinstance(event, LicenseReplaced) else None,
    )


router = ledger_router(tags=TAGS)


@dataclass(frozen=True)
class OfficerDesk:
    """What the officers' routes need of the review service: its runtime, the reference data, China's date."""

    runtime: Runtime
    references: ReferenceCache
    today: Callable[[], date]

    async def reference(self) -> ReferenceData:
        return await self.references.current()


async def desk(request: Request) -> OfficerDesk:
    found: OfficerDesk = request.app.state.officer_desk
    return found


Desk = Annotated[OfficerDesk, Depends(desk)]


@router.get("/officer/queue", response_model=list[QueueItem])
async def officer_queue(
    principal: Officer, desk: Desk, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[QueueItem]:
    """Escalated applications no officer has decided yet, oldest first, with their reasons and due date.
    An officer sees the own agency's; an auditor sees all."""
    agency = None if "officer" not in principal.roles else principal.agency_code
    return [
        QueueItem(
            application_id=q.case_id,
            application=q.application,
            reasons=list(q.reasons),
            due=q.due,
            escalated_at=q.escalated_at,
        )
        for q in await queue.open_queue(desk.runtime.pool, limit, agency)
    ]


@router.post("/officer/applications/{application_id}/approve", status_code=202, responses=RESPONSES)
async def approve(application_id: uuid.UUID, body: Approve, principal: Officer, desk: Desk) -> ActionTaken:
    """Grant a license: the application's terms, or fewer vehicles and a shorter validity. The rules of a first
    grant are applied again, to the terms granted and the reference data in force now."""
    await _own_application(desk.runtime, principal, application_id)
    approval = actions.Approval(
        officer=principal.acting_officer(body.officer), quantity=body.quantity, valid_to=body.valid_to
    )
    return _taken(await actions.approve(desk.runtime, application_id, approval, desk.today(), await desk.reference()))


@router.post("/officer/applications/{application_id}/reject", status_code=202, responses=RESPONSES)
async def reject(application_id: uuid.UUID, body: Refuse, principal: Officer, desk: Desk) -> ActionTaken:
    """Reject the application, with the reasons the applicant reads."""
    await _own_application(desk.runtime, principal, application_id)
    acting = principal.acting_officer(body.officer)
    return _taken(await actions.reject(desk.runtime, application_id, acting, body.reasons))


@router.post("/officer/applications/{application_id}/return", status_code=202, responses=RESPONSES)
async def return_(application_id: uuid.UUID, body: Refuse, principal: Officer, desk: Desk) -> ActionTaken:
    """Return the application for correction; the reasons say what to correct before resubmitting."""
    await _own_application(desk.runtime, principal, application_id)
    acting = principal.acting_officer(body.officer)
    return _taken(await actions.return_for_correction(desk.runtime, application_id, acting, body.reasons))


async def _own_application(runtime: Runtime, principal: Principal, application_id: uuid.UUID) -> None:
    agency = await queue.agency_of_case(runtime.pool, application_id)
    if agency is not None:  # an application never escalated is answered 404 by the action itself
        principal.ensure_agency(agency)


def _own_license(principal: Principal, number: str) -> None:
    found = LICENSE_NUMBER.match(number)
    if found:  # a number of another shape names no license: the action answers 404
        principal.ensure_agency(found.group(1))


@router.post("/officer/licenses/{number}/suspend", status_code=202, responses=RESPONSES)
async def suspend(
    number: str, principal: Officer, body: WithReason, desk: Desk, idempotency_key: IdempotencyKey = None
) -> ActionTaken:
    """Suspend an active license: exports on it are refused until it is reinstated."""
    _own_license(principal, number)
    acting = principal.acting_officer(body.officer)
    return _taken(await actions.suspend(desk.runtime, number, acting, body.reason, idempotency_key))


@router.post("/officer/licenses/{number}/reinstate", status_code=202, responses=RESPONSES)
async def reinstate(
    number: str, principal: Officer, body: Reinstate, desk: Desk, idempotency_key: IdempotencyKey = None
) -> ActionTaken:
    """Reinstate a suspended license: it is active again on its remaining balance, if the rules of a first grant
    still pass on its terms."""
    _own_license(principal, number)
    acting = principal.acting_officer(body.officer)
    reference = await desk.reference()
    envelope = await actions.reinstate(
        desk.runtime, number, acting, body.note, idempotency_key, desk.today(), reference
    )
    return _taken(envelope)


@router.post("/officer/licenses/{number}/revoke", status_code=202, responses=RESPONSES)
async def revoke(
    number: str, principal: Officer, body: WithReason, desk: Desk, idempotency_key: IdempotencyKey = None
) -> ActionTaken:
    """Revoke an active, suspended or exhausted license for good."""
    _own_license(principal, number)
    acting = principal.acting_officer(body.officer)
    return _taken(await actions.revoke(desk.runtime, number, acting, body.reason, idempotency_key))


@router.post("/officer/licenses/{number}/replace", status_code=202, responses=RESPONSES)
async def replace(
    number: str, principal: Officer, body: Replace, desk: Desk, idempotency_key: IdempotencyKey = None
) -> ActionTaken:
    """Replace an active license (rule 10): a successor on the changed terms carries the remaining balance. The
    terms pass the rules of a first grant (a known port, after-sales coverage in the destination, ...)."""
    _own_license(principal, number)
    request = actions.Replacement(**{**body.model_dump(), "officer": principal.acting_officer(body.officer)})
    reference = await desk.reference()
    return _taken(await actions.replace(desk.runtime, number, request, idempotency_key, desk.today(), reference))
