"""Recording each decision once, with its license number, before it is published."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import date

import asyncpg

from services.review.officer import queue
from services.review.rules import Decision, Escalate, Grant
from shared.contract.events import (
    Application,
    ApplicationEscalated,
    ApplicationRejected,
    ApplicationResubmitted,
    ApplicationSubmitted,
    Envelope,
    Event,
    LicenseGranted,
    derived_event_id,
)
from shared.following import SAVE_LICENSES
from shared.platform.db import Connection

PRODUCER = "review"
SUBMISSIONS = (ApplicationSubmitted, ApplicationResubmitted)
"""What review decides: a submission, or the corrected application resubmitted after a return."""

LOCK_CASE = "SELECT pg_advisory_xact_lock(hashtextextended($1::uuid::text, 0))"
# The same locks as LOCK_CASE, taken in one order whoever takes several, so that two never wait on each other.
LOCK_CASES = """
SELECT pg_advisory_xact_lock(key) FROM (
    SELECT DISTINCT hashtextextended(case_id::text, 0) AS key FROM unnest($1::uuid[]) AS case_id ORDER BY key
) AS keys
"""
STORED = "SELECT event FROM decisions WHERE submission_event_id = $1"
STORED_UNSENT = "SELECT event, sent FROM decisions WHERE submission_event_id = $1"
STORED_UNSENT_ALL = "SELECT submission_event_id, event, sent FROM decisions WHERE submission_event_id = ANY($1::uuid[])"
MARK_SENT = "UPDATE decisions SET sent = true WHERE submission_event_id = ANY($1::uuid[]) AND NOT sent"
RECORD = """
INSERT INTO decisions (submission_event_id, case_id, decision_type, event) VALUES ($1, $2, $3, $4)
"""
RECORD_ALL = """
INSERT INTO decisions (submission_event_id, case_id, decision_type, event)
SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::bytea[])
"""
NEXT_NUMBER = """
INSERT INTO license_sequences (issue_year, agency_code, last_number) VALUES ($1, $2, 1)
ON CONFLICT (issue_year, agency_code)
DO UPDATE SET last_number = license_sequences.last_number + 1
RETURNING last_number
"""
# ``count`` numbers of each sequence at once, the sequences' rows locked in one order; each row's new last number.
NEXT_NUMBERS = """
INSERT INTO license_sequences (issue_year, agency_code, last_number)
SELECT * FROM unnest($1::int[], $2::text[], $3::int[]) AS wanted (issue_year, agency_code, count)
ORDER BY issue_year, agency_code
ON CONFLICT (issue_year, agency_code)
DO UPDATE SET last_number = license_sequences.last_number + EXCLUDED.last_number
RETURNING issue_year, agency_code, last_number
"""


def license_number(issue_year: int, agency_code: str, sequence: int) -> str:
    """``YY-AA-NNNNNN``: issue year, issuing agency, sequence within both."""
    return f"{issue_year % 100:02d}-{agency_code}-{sequence:06d}"


async def next_license_number(connection: Connection, issue_year: int, agency_code: str) -> str:
    """The next number of the agency's sequence for the year, in the caller's transaction."""
    sequence = await connection.fetchval(NEXT_NUMBER, issue_year, agency_code)
    return license_number(issue_year, agency_code, sequence)


def license_granted(app: Application, grant: Grant, number: str, *, officer: str | None = None) -> LicenseGranted:
    """The license ``grant`` gives for ``app``: its value is what the granted quantity is worth; ``officer``
    is who approved it, if an officer did."""
    return LicenseGranted(
        license_number=number,
        applicant_code=app.applicant.code,
        valid_from=grant.valid_from,
        valid_to=grant.valid_to,
        quantity=grant.quantity,
        value=app.unit_price * grant.quantity,
        currency=app.currency,
        port_of_exit=app.port_of_exit,
        destination_country=app.destination_country,
        trade_mode=app.trade_mode,
        batch_mode=grant.batch_mode,
        vins=tuple(v.vin for v in app.used_vehicles),
        officer=officer,
    )


def decision_event(submission: Envelope, decision: Decision, number: str | None) -> Envelope:
    """The event that records ``decision`` on the submission's case."""
    submitted = submission.payload
    assert isinstance(submitted, SUBMISSIONS)
    event: Event
    if isinstance(decision, Grant):
        assert number is not None
        event = license_granted(submitted.application, decision, number)
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


async def decide_once(
    connection: Connection, submission: Envelope, decision: Decision, today: date
) -> tuple[Envelope, bool]:
    """The decision on ``submission``: the one recorded before if there is one, else ``decision``; in a
    transaction of its own on ``connection``. With it, whether it is still to be sent: a decision recorded and
    sent before (a submission delivered again) is not sent again, so that the log holds it once."""
    submitted = submission.payload
    assert isinstance(submitted, SUBMISSIONS)
    async with connection.transaction():
        await connection.execute(LOCK_CASE, submission.case_id)
        stored = await connection.fetchrow(STORED_UNSENT, submission.event_id)
        if stored is not None:
            return Envelope.from_bytes(stored["event"]), not stored["sent"]
        number = None
        if isinstance(decision, Grant):
            number = await next_license_number(connection, today.year, submitted.application.agency_code)
        envelope = decision_event(submission, decision, number)
        await connection.execute(RECORD, submission.event_id, submission.case_id, envelope.type, envelope.to_bytes())
        await _remember(connection, submitted.application, envelope)
        return envelope, True


async def decide_all(
    connection: Connection, submissions: Sequence[tuple[Envelope, Decision]], today: date
) -> list[tuple[Envelope, bool]]:
    """:func:`decide_once` for each submission, in order, in the caller's transaction: a handful of statements
    for all of them, not one transaction each. A submission that comes twice is decided once, and sent once."""
    if not submissions:  # a batch of the decisions and exports that follow, say: nothing to lock or look up
        return []
    await connection.execute(LOCK_CASES, [submission.case_id for submission, _ in submissions])
    stored = {
        row["submission_event_id"]: (Envelope.from_bytes(row["event"]), not row["sent"])
        for row in await connection.fetch(STORED_UNSENT_ALL, [submission.event_id for submission, _ in submissions])
    }
    new: dict[uuid.UUID, tuple[Envelope, Decision]] = {}
    for submission, decision in submissions:
        if submission.event_id not in stored:
            new.setdefault(submission.event_id, (submission, decision))
    numbers = await _numbers(connection, [s for s, d in new.values() if isinstance(d, Grant)], today.year)
    decided = {event_id: decision_event(s, d, numbers.get(event_id)) for event_id, (s, d) in new.items()}
    if decided:
        await connection.execute(
            RECORD_ALL,
            list(decided),
            [e.case_id for e in decided.values()],
            [e.type for e in decided.values()],
            [e.to_bytes() for e in decided.values()],
        )
        await _remember_all(connection, [(new[event_id][0], decision) for event_id, decision in decided.items()])
    answers: list[tuple[Envelope, bool]] = []
    answered: set[uuid.UUID] = set()
    for submission, _ in submissions:
        event_id = submission.event_id
        envelope, unsent = stored[event_id] if event_id in stored else (decided[event_id], True)
        # The same submission twice in one batch: its decision goes out once.
        answers.append((envelope, unsent and event_id not in answered))
        answered.add(event_id)
    return answers


async def _numbers(connection: Connection, grants: list[Envelope], issue_year: int) -> dict[uuid.UUID, str]:
    """The license number of each granted submission, in order within each agency's sequence for the year."""
    wanted = Counter(_agency(submission) for submission in grants)
    if not wanted:
        return {}
    agencies = sorted(wanted)
    rows = await connection.fetch(NEXT_NUMBERS, [issue_year] * len(agencies), agencies, [wanted[a] for a in agencies])
    following = {row["agency_code"]: row["last_number"] - wanted[row["agency_code"]] + 1 for row in rows}
    numbers = {}
    for submission in grants:
        agency = _agency(submission)
        numbers[submission.event_id] = license_number(issue_year, agency, following[agency])
        following[agency] += 1
    return numbers


def _agency(submission: Envelope) -> str:
    submitted = submission.payload
    assert isinstance(submitted, SUBMISSIONS)
    return submitted.application.agency_code


async def _remember_all(connection: Connection, decided: list[tuple[Envelope, Envelope]]) -> None:
    """:func:`_remember` for each (submission, decision): the licenses' cases in one statement."""
    for submission, decision in decided:
        if isinstance(decision.payload, ApplicationEscalated):
            submitted = submission.payload
            assert isinstance(submitted, SUBMISSIONS)
            await queue.enqueue(connection, submitted.application, decision)
    grants = [(d.payload.license_number, d.case_id) for _, d in decided if isinstance(d.payload, LicenseGranted)]
    if grants:
        await connection.execute(SAVE_LICENSES, [number for number, _ in grants], [case for _, case in grants])


async def mark_sent(connection: Connection | asyncpg.Pool, submissions: list[uuid.UUID]) -> None:
    """The decisions on these submissions are in the log (their acknowledgements came back)."""
    if submissions:
        await connection.execute(MARK_SENT, submissions)


async def _remember(connection: Connection, app: Application, decision: Envelope) -> None:
    """Review's own rows: an escalation joins the officers' queue; a license's case is known at once (an
    officer may act on it before review has followed the grant back)."""
    if isinstance(decision.payload, ApplicationEscalated):
        await queue.enqueue(connection, app, decision)
    elif isinstance(decision.payload, LicenseGranted):
        await connection.execute(SAVE_LICENSES, [decision.payload.license_number], [decision.case_id])
