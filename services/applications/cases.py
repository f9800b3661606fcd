"""What the applications service knows of each case: its status, followed from the case stream.

Enough to tell whether an application may still be withdrawn (not yet decided) or resubmitted
(returned for correction). The transitions mirror the registry's fold, so both agree on every case.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace

import asyncpg

from shared.events import (
    ApplicationEscalated,
    ApplicationRejected,
    ApplicationResubmitted,
    ApplicationReturned,
    ApplicationSubmitted,
    ApplicationWithdrawn,
    Envelope,
    LicenseGranted,
)

UNDECIDED = frozenset({"submitted", "escalated"})
LOAD = """
SELECT application_id, status, applicant_code, returned_event_id, agency_code FROM case_status WHERE application_id = $1
"""
LOAD_MANY = """
SELECT application_id, status, applicant_code, returned_event_id, agency_code FROM case_status
WHERE application_id = ANY($1::uuid[])
"""
SAVE = """
INSERT INTO case_status (application_id, status, applicant_code, returned_event_id, agency_code)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (application_id) DO UPDATE SET
    status = EXCLUDED.status, returned_event_id = EXCLUDED.returned_event_id, updated_at = now()
"""

# The service knows a case it appended at once, not only once it reads it back: a withdrawal right after a
# submission is judged, not answered 404. Never over a row the follower wrote: that one is as new or newer.
RECORD_SUBMITTED = """
INSERT INTO case_status (application_id, status, applicant_code, agency_code) VALUES ($1, 'submitted', $2, $3)
ON CONFLICT (application_id) DO NOTHING
"""


@dataclass(frozen=True)
class CaseStatus:
    application_id: uuid.UUID
    status: str
    applicant_code: str
    returned_event_id: uuid.UUID | None = None
    agency_code: str | None = None


def follow(current: CaseStatus | None, envelope: Envelope) -> CaseStatus | None:
    """The case's status after ``envelope``, or None when the event changes nothing here."""
    event = envelope.payload
    if isinstance(event, ApplicationSubmitted):
        application = event.application
        return current or CaseStatus(
            envelope.case_id, "submitted", application.applicant.code, agency_code=application.agency_code
        )
    if current is None:
        return None
    if isinstance(event, ApplicationResubmitted):
        return replace(current, status="submitted") if current.status == "returned" else None
    if isinstance(event, ApplicationEscalated):
        return replace(current, status="escalated") if current.status == "submitted" else None
    if isinstance(event, ApplicationReturned) and current.status in UNDECIDED:
        return replace(current, status="returned", returned_event_id=envelope.event_id)
    return _ended(current, envelope)


def _ended(current: CaseStatus, envelope: Envelope) -> CaseStatus | None:
    # Whichever of a decision and a withdrawal comes first in the stream stands; the other is void.
    ends = {LicenseGranted: "approved", ApplicationRejected: "rejected", ApplicationWithdrawn: "withdrawn"}
    status = ends.get(type(envelope.payload))
    return replace(current, status=status) if status and current.status in UNDECIDED else None


async def record_submitted(pool: asyncpg.Pool, envelope: Envelope) -> None:
    """Know the case of an ``ApplicationSubmitted`` this service has just appended, before reading it back."""
    event = envelope.payload
    assert isinstance(event, ApplicationSubmitted)
    await pool.execute(
        RECORD_SUBMITTED, envelope.case_id, event.application.applicant.code, event.application.agency_code
    )


async def load(pool: asyncpg.Pool, application_id: uuid.UUID) -> CaseStatus | None:
    row = await pool.fetchrow(LOAD, application_id)
    return CaseStatus(**dict(row)) if row else None


async def apply(pool: asyncpg.Pool, envelopes: list[Envelope]) -> None:
    """Follow ``envelopes``, in their order, in their cases' rows: one read and one write for them all
    (events of one case arrive in order, from one partition)."""
    followed = [e for e in envelopes if isinstance(e.payload, FOLLOWED)]
    if not followed:
        return
    async with pool.acquire() as connection, connection.transaction():
        rows = await connection.fetch(LOAD_MANY, list({e.case_id for e in followed}))
        statuses: dict[uuid.UUID, CaseStatus] = {r["application_id"]: CaseStatus(**dict(r)) for r in rows}
        changed: dict[uuid.UUID, CaseStatus] = {}
        for envelope in followed:
            status = follow(statuses.get(envelope.case_id), envelope)
            if status is not None:
                statuses[envelope.case_id] = changed[envelope.case_id] = status
        await connection.executemany(
            SAVE,
            [
                (c.application_id, c.status, c.applicant_code, c.returned_event_id, c.agency_code)
                for c in changed.values()
            ],
        )


FOLLOWED = (
    ApplicationSubmitted,
    ApplicationResubmitted,
    ApplicationEscalated,
    ApplicationReturned,
    ApplicationWithdrawn,
    ApplicationRejected,
    LicenseGranted,
)
