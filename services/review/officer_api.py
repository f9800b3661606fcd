"""The officers' HTTP API on the review service: the queue of escalated applications, and their actions."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import date, datetime
from enum import Enum
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, FastAPI, Query
from pydantic import BaseModel, Field

from services.review import cases, officer
from shared.access import Principal, require
from shared.events import (
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
from shared.http import ErrorBody, IdempotencyKey
from shared.service import Runtime

TAGS: list[str | Enum] = ["officers"]
RESPONSES: dict[int | str, dict[str, Any]] = {code: {"model": ErrorBody} for code in (404, 409, 422)}
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


def add_officer_routes(app: FastAPI, runtime: Runtime, today: Callable[[], date]) -> None:
    _add_queue(app, runtime, today)
    _add_license_actions(app, runtime, today)


def _add_queue(app: FastAPI, runtime: Runtime, today: Callable[[], date]) -> None:
    tags, responses = TAGS, RESPONSES

    @app.get("/officer/queue", response_model=list[QueueItem], tags=tags)
    async def queue(principal: Officer, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[QueueItem]:
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
            for q in await cases.open_queue(runtime.pool, limit, agency)
        ]

    @app.post("/officer/applications/{application_id}/approve", status_code=202, tags=tags, responses=responses)
    async def approve(application_id: uuid.UUID, body: Approve, principal: Officer) -> ActionTaken:
        """Grant a license: the application's terms, or fewer vehicles and a shorter validity."""
        await _own_application(runtime, principal, application_id)
        acting = principal.acting_officer(body.officer)
        approval = officer.Approval(officer=acting, quantity=body.quantity, valid_to=body.valid_to)
        return _taken(await officer.approve(runtime.pool, runtime.append, application_id, approval, today()))

    @app.post("/officer/applications/{application_id}/reject", status_code=202, tags=tags, responses=responses)
    async def reject(application_id: uuid.UUID, body: Refuse, principal: Officer) -> ActionTaken:
        """Reject the application, with the reasons the applicant reads."""
        await _own_application(runtime, principal, application_id)
        acting = principal.acting_officer(body.officer)
        return _taken(await officer.reject(runtime.pool, runtime.append, application_id, acting, body.reasons))

    @app.post("/officer/applications/{application_id}/return", status_code=202, tags=tags, responses=responses)
    async def return_(application_id: uuid.UUID, body: Refuse, principal: Officer) -> ActionTaken:
        """Return the application for correction; the reasons say what to correct before resubmitting."""
        await _own_application(runtime, principal, application_id)
        acting = principal.acting_officer(body.officer)
        envelope = await officer.return_for_correction(
            runtime.pool, runtime.append, application_id, acting, body.reasons
        )
        return _taken(envelope)


async def _own_application(runtime: Runtime, principal: Principal, application_id: uuid.UUID) -> None:
    agency = await cases.agency_of_case(runtime.pool, application_id)
    if agency is not None:  # an application never escalated is answered 404 by the action itself
        principal.ensure_agency(agency)


def _own_license(principal: Principal, number: str) -> None:
    found = LICENSE_NUMBER.match(number)
    if found:  # a number of another shape names no license: the action answers 404
        principal.ensure_agency(found.group(1))


def _add_license_actions(app: FastAPI, runtime: Runtime, today: Callable[[], date]) -> None:
    tags, responses, append = TAGS, RESPONSES, runtime.append

    def pool() -> asyncpg.Pool:
        return runtime.pool

    @app.post("/officer/licenses/{number}/suspend", status_code=202, tags=tags, responses=responses)
    async def suspend(
        number: str, principal: Officer, body: WithReason, idempotency_key: IdempotencyKey = None
    ) -> ActionTaken:
        """Suspend an active license: exports on it are refused until it is reinstated."""
        _own_license(principal, number)
        acting = principal.acting_officer(body.officer)
        return _taken(await officer.suspend(pool(), append, number, acting, body.reason, idempotency_key))

    @app.post("/officer/licenses/{number}/reinstate", status_code=202, tags=tags, responses=responses)
    async def reinstate(
        number: str, principal: Officer, body: Reinstate, idempotency_key: IdempotencyKey = None
    ) -> ActionTaken:
        """Reinstate a suspended license: it is active again on its remaining balance."""
        _own_license(principal, number)
        acting = principal.acting_officer(body.officer)
        return _taken(await officer.reinstate(pool(), append, number, acting, body.note, idempotency_key))

    @app.post("/officer/licenses/{number}/revoke", status_code=202, tags=tags, responses=responses)
    async def revoke(
        number: str, principal: Officer, body: WithReason, idempotency_key: IdempotencyKey = None
    ) -> ActionTaken:
        """Revoke an active or suspended license for good."""
        _own_license(principal, number)
        acting = principal.acting_officer(body.officer)
        return _taken(await officer.revoke(pool(), append, number, acting, body.reason, idempotency_key))

    @app.post("/officer/licenses/{number}/replace", status_code=202, tags=tags, responses=responses)
    async def replace(
        number: str, principal: Officer, body: Replace, idempotency_key: IdempotencyKey = None
    ) -> ActionTaken:
        """Replace an active license (rule 10): a successor on the changed terms carries the remaining balance."""
        _own_license(principal, number)
        request = officer.Replacement(**{**body.model_dump(), "officer": principal.acting_officer(body.officer)})
        return _taken(await officer.replace(pool(), append, number, request, idempotency_key, today()))
