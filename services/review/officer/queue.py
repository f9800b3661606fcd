"""The officers' queue of escalated applications, and the record of every officer action.

Review writes an escalation into the queue in the transaction that records its decision. Whether an entry
is still open is not the queue's to say: it is open while the case, as review follows it with the
ledger's fold (``shared/following.py``), has its application escalated.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import date, datetime

import asyncpg

from shared.contract.events import (
    Application,
    ApplicationEscalated,
    ApplicationStatus,
    Envelope,
    LicenseReplaced,
    Reason,
)
from shared.platform.db import Connection

ENQUEUE = """
INSERT INTO officer_queue (case_id, submission_event_id, application, reasons, due, escalated_at)
VALUES ($1, $2, $3::jsonb, $4::jsonb, $5, $6)
ON CONFLICT (case_id) DO UPDATE SET
    submission_event_id = EXCLUDED.submission_event_id, application = EXCLUDED.application,
    reasons = EXCLUDED.reasons, due = EXCLUDED.due, escalated_at = EXCLUDED.escalated_at,
    status = 'open', closed_at = NULL
"""
# Open: the case's application is escalated in the fold's own state, and this is its latest escalation.
OPEN_QUEUE = f"""
SELECT q.* FROM officer_queue q JOIN case_states s ON s.case_id = q.case_id
WHERE s.state->'application'->>'status' = '{ApplicationStatus.ESCALATED.value}'
  AND ($2::text IS NULL OR q.application->>'agency_code' = $2)
ORDER BY q.escalated_at, q.case_id LIMIT $1
"""
AGENCY_OF_CASE = "SELECT application->>'agency_code' FROM officer_queue WHERE case_id = $1"
QUEUED = "SELECT * FROM officer_queue WHERE case_id = $1"
CLOSE = "UPDATE officer_queue SET status = $2, closed_at = now() WHERE case_id = $1"
ACTION = "SELECT action, request, event FROM officer_actions WHERE event_id = $1"
RECORD_ACTION = """
INSERT INTO officer_actions (event_id, case_id, target, action, officer, event, request)
VALUES ($1, $2, $3, $4, $5, $6, $7)
"""
# The successor of a replaced license: the replacement that took effect (followed, changed the case).
SUCCESSOR = """
SELECT a.event FROM officer_actions a JOIN case_events e ON e.event_id = a.event_id AND e.changed
WHERE a.target = $1 AND a.action = 'replace'
"""
# One officer at a time on a case: the second waits for the first's event, then judges the case it left.
LOCK_CASE = "SELECT pg_advisory_xact_lock(hashtextextended($1::uuid::text, 1))"


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
class Action:
    """An officer action already taken: what it was, what was asked, and the event it appended."""

    action: str
    request: str
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


async def queued(connection: Connection, case_id: uuid.UUID) -> Queued | None:
    row = await connection.fetchrow(QUEUED, case_id)
    return _queued(row) if row else None


async def close(connection: Connection, case_id: uuid.UUID, status: str) -> None:
    await connection.execute(CLOSE, case_id, status)


async def lock_case(connection: Connection, case_id: uuid.UUID) -> None:
    """Hold the case against other officers' actions until the caller's transaction ends."""
    await connection.execute(LOCK_CASE, case_id)


async def action(connection: Connection, event_id: uuid.UUID) -> Action | None:
    row = await connection.fetchrow(ACTION, event_id)
    return Action(row["action"], row["request"], Envelope.from_bytes(row["event"])) if row else None


async def record_action(
    connection: Connection, envelope: Envelope, *, target: str, action: str, officer: str, request: str
) -> None:
    await connection.execute(
        RECORD_ACTION, envelope.event_id, envelope.case_id, target, action, officer, envelope.to_bytes(), request
    )


async def successor_of(pool: asyncpg.Pool | Connection, number: str) -> str | None:
    """The license that replaced ``number`` (None if none has)."""
    event = await pool.fetchval(SUCCESSOR, number)
    if event is None:
        return None
    replaced = Envelope.from_bytes(event).payload
    return replaced.successor_license_number if isinstance(replaced, LicenseReplaced) else None


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
