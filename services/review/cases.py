"""Review's own record of what it decided: the officers' queue, the licenses it granted, officer actions.

Review writes these rows in the transactions that produce its events, so what it knows of a case or a
license is what its own events said. The one outside event it applies is the applicant's withdrawal.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import date, datetime

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from shared.events import Application, ApplicationEscalated, Envelope, LicenseGranted, LicenseReplaced, Reason

Connection = asyncpg.Connection | PoolConnectionProxy
"""A connection of its own or the pool's: whichever the caller holds its transaction on."""

ENQUEUE = """
INSERT INTO officer_queue (case_id, submission_event_id, application, reasons, due, escalated_at)
VALUES ($1, $2, $3::jsonb, $4::jsonb, $5, $6)
ON CONFLICT (case_id) DO UPDATE SET
    submission_event_id = EXCLUDED.submission_event_id, application = EXCLUDED.application,
    reasons = EXCLUDED.reasons, due = EXCLUDED.due, escalated_at = EXCLUDED.escalated_at,
    status = 'open', closed_at = NULL
"""
OPEN_QUEUE = """
SELECT * FROM officer_queue WHERE status = 'open' AND ($2::text IS NULL OR application->>'agency_code' = $2)
ORDER BY escalated_at, case_id LIMIT $1
"""
AGENCY_OF_CASE = "SELECT application->>'agency_code' FROM officer_queue WHERE case_id = $1"
QUEUED_FOR_UPDATE = "SELECT * FROM officer_queue WHERE case_id = $1 FOR UPDATE"
CLOSE = "UPDATE officer_queue SET status = $2, closed_at = now() WHERE case_id = $1"
CLOSE_WITHDRAWN = """
UPDATE officer_queue SET status = 'withdrawn', closed_at = now() WHERE case_id = $1 AND status = 'open'
"""
REMEMBER_LICENSE = """
INSERT INTO licenses (
    license_number, case_id, status, applicant_code, quantity, valid_from, valid_to,
    port_of_exit, destination_country, batch_mode)
VALUES ($1, $2, 'active', $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (license_number) DO NOTHING
"""
LICENSE_FOR_UPDATE = "SELECT * FROM licenses WHERE license_number = $1 FOR UPDATE"
SET_LICENSE_STATUS = """
UPDATE licenses SET status = $2, successor = $3, version = version + 1 WHERE license_number = $1
"""
ACTION = "SELECT action, event FROM officer_actions WHERE event_id = $1"
RECORD_ACTION = """
INSERT INTO officer_actions (event_id, case_id, target, action, officer, event) VALUES ($1, $2, $3, $4, $5, $6)
"""


@dataclass(frozen=True)
class Queued:
    """An escalated application as the officers' queue holds it."""

    case_id: uuid.UUID
    submission_event_id: uuid.UUID
    application: Application
    reasons: tuple[Reason, ...]
    due: date
    escalated_at: datetime
    status: str


@dataclass(frozen=True)
class License:
    """What review needs to act on a license it granted: its case, terms and state."""

    license_number: str
    case_id: uuid.UUID
    status: str
    applicant_code: str
    quantity: int
    valid_from: date
    valid_to: date
    port_of_exit: str
    destination_country: str
    batch_mode: str
    version: int
    successor: str | None
    granted_at: datetime


@dataclass(frozen=True)
class Action:
    """An officer action already taken: what it was and the event it appended."""

    action: str
    envelope: Envelope


async def enqueue(connection: Connection, application: Application, escalation: Envelope) -> None:
    """Put the escalated application before the officers (again, after a resubmission)."""
    escalated = escalation.payload
    assert isinstance(escalated, ApplicationEscalated)
    reasons = json.dumps([r.model_dump() for r in escalated.reasons])
    await connection.execute(
        ENQUEUE,
        escalation.case_id,
        escalation.causation_id,
        application.model_dump_json(),
        reasons,
        escalated.due,
        escalation.occurred_at,
    )


async def open_queue(pool: asyncpg.Pool, limit: int, agency_code: str | None = None) -> list[Queued]:
    """The open escalations, oldest first: of one agency, or of all when ``agency_code`` is None."""
    return [_queued(r) for r in await pool.fetch(OPEN_QUEUE, limit, agency_code)]


async def agency_of_case(pool: asyncpg.Pool, case_id: uuid.UUID) -> str | None:
    """The agency of an application escalated to the officers, or None when none was."""
    agency: str | None = await pool.fetchval(AGENCY_OF_CASE, case_id)
    return agency


async def queued_for_update(connection: Connection, case_id: uuid.UUID) -> Queued | None:
    row = await connection.fetchrow(QUEUED_FOR_UPDATE, case_id)
    return _queued(row) if row else None


async def close(connection: Connection, case_id: uuid.UUID, status: str) -> None:
    await connection.execute(CLOSE, case_id, status)


async def close_withdrawn(connection: Connection, case_id: uuid.UUID) -> None:
    """The applicant withdrew: an open escalation leaves the queue; a decided one stays decided."""
    await connection.execute(CLOSE_WITHDRAWN, case_id)


async def remember_license(connection: Connection, case_id: uuid.UUID, granted: LicenseGranted) -> None:
    await connection.execute(
        REMEMBER_LICENSE,
        granted.license_number,
        case_id,
        granted.applicant_code,
        granted.quantity,
        granted.valid_from,
        granted.valid_to,
        granted.port_of_exit,
        granted.destination_country,
        granted.batch_mode.value,
    )


async def remember_successor(connection: Connection, old: License, replaced: LicenseReplaced) -> None:
    """The successor as far as review knows it: at most the cap or the old quantity (the registry counts)."""
    await connection.execute(
        REMEMBER_LICENSE,
        replaced.successor_license_number,
        old.case_id,
        old.applicant_code,
        replaced.quantity or old.quantity,
        replaced.valid_from,
        replaced.valid_to,
        replaced.port_of_exit,
        replaced.destination_country,
        old.batch_mode,
    )


async def license_for_update(connection: Connection, number: str) -> License | None:
    row = await connection.fetchrow(LICENSE_FOR_UPDATE, number)
    return License(**dict(row)) if row else None


async def set_license_status(connection: Connection, number: str, status: str, successor: str | None = None) -> None:
    await connection.execute(SET_LICENSE_STATUS, number, status, successor)


async def action(connection: Connection, event_id: uuid.UUID) -> Action | None:
    row = await connection.fetchrow(ACTION, event_id)
    return Action(action=row["action"], envelope=Envelope.from_bytes(row["event"])) if row else None


async def record_action(connection: Connection, envelope: Envelope, *, target: str, action: str, officer: str) -> None:
    await connection.execute(
        RECORD_ACTION, envelope.event_id, envelope.case_id, target, action, officer, envelope.to_bytes()
    )


def _queued(row: asyncpg.Record) -> Queued:
    return Queued(
        case_id=row["case_id"],
        submission_event_id=row["submission_event_id"],
        application=Application.model_validate_json(row["application"]),
        reasons=tuple(Reason.model_validate(r) for r in json.loads(row["reasons"])),
        due=row["due"],
        escalated_at=row["escalated_at"],
        status=row["status"],
    )
