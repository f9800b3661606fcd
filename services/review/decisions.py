"""Recording each decision once, with its license number, before it is published."""

from __future__ import annotations

from datetime import date

import asyncpg

from services.review.rules import Decision, Escalate, Grant
from shared.events import (
    ApplicationEscalated,
    ApplicationRejected,
    ApplicationSubmitted,
    Envelope,
    Event,
    LicenseGranted,
    derived_event_id,
)

PRODUCER = "review"

LOCK_CASE = "SELECT pg_advisory_xact_lock(hashtextextended($1::uuid::text, 0))"
STORED = "SELECT event FROM decisions WHERE submission_event_id = $1"
RECORD = """
INSERT INTO decisions (submission_event_id, case_id, decision_type, event) VALUES ($1, $2, $3, $4)
"""
NEXT_NUMBER = """
INSERT INTO license_sequences (issue_year, agency_code, last_number) VALUES ($1, $2, 1)
ON CONFLICT (issue_year, agency_code)
DO UPDATE SET last_number = license_sequences.last_number + 1
RETURNING last_number
"""


def license_number(issue_year: int, agency_code: str, sequence: int) -> str:
    """``YY-AA-NNNNNN``: issue year, issuing agency, sequence within both."""
    return f"{issue_year % 100:02d}-{agency_code}-{sequence:06d}"


def decision_event(submission: Envelope, decision: Decision, number: str | None) -> Envelope:
    """The event that records ``decision`` on the submission's case."""
    submitted = submission.payload
    assert isinstance(submitted, ApplicationSubmitted)
    app = submitted.application
    event: Event
    if isinstance(decision, Grant):
        assert number is not None
        event = LicenseGranted(
            license_number=number,
            applicant_code=app.applicant.code,
            valid_from=decision.valid_from,
            valid_to=decision.valid_to,
            quantity=decision.quantity,
            value=app.total_value,
            currency=app.currency,
            port_of_exit=app.port_of_exit,
            destination_country=app.destination_country,
            trade_mode=app.trade_mode,
            batch_mode=decision.batch_mode,
            vins=tuple(v.vin for v in app.used_vehicles),
        )
    elif isinstance(decision, Escalate):
        event = ApplicationEscalated(reasons=decision.reasons, due=decision.due)
    else:
        event = ApplicationRejected(reasons=decision.reasons)
    return Envelope.wrap(
        event,
        case_id=submission.case_id,
        producer=PRODUCER,
        event_id=derived_event_id(submission.event_id, "decision"),
        causation=submission,
    )


async def decide_once(pool: asyncpg.Pool, submission: Envelope, decision: Decision, today: date) -> Envelope:
    """The decision on ``submission``: the one recorded before if there is one, else ``decision``."""
    submitted = submission.payload
    assert isinstance(submitted, ApplicationSubmitted)
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute(LOCK_CASE, submission.case_id)
        stored = await connection.fetchval(STORED, submission.event_id)
        if stored is not None:
            return Envelope.from_bytes(stored)
        number = None
        if isinstance(decision, Grant):
            sequence = await connection.fetchval(NEXT_NUMBER, today.year, submitted.application.agency_code)
            number = license_number(today.year, submitted.application.agency_code, sequence)
        envelope = decision_event(submission, decision, number)
        await connection.execute(RECORD, submission.event_id, submission.case_id, envelope.type, envelope.to_bytes())
        return envelope
