"""Review decides a partition's batch in one transaction (``decide_all``): the same decisions, numbers and rows as
deciding each submission on its own (``decide_once``), whatever the batch holds: several agencies' grants,
escalations, rejections, a submission twice, submissions decided before (sent or not), numbers already taken."""

import random
import uuid
from datetime import date, timedelta
from typing import Any

import asyncpg

import samples
from services.applications.submission import submitted
from services.review import expiry
from services.review.decisions import decide_all, decide_once, mark_sent
from services.review.rules import Decision, Escalate, Grant, Reject
from shared.contract.events import (
    ApplicationResubmitted,
    BatchMode,
    Envelope,
    LicenseExpired,
    LicenseGranted,
    LicenseRevoked,
    Reason,
    derived_event_id,
)

TODAY = date(2026, 12, 3)
AGENCIES = ("44", "11", "31")
REASON = Reason(code="price_below_reference", message="the price is far below the reference")
TABLES = {
    "decisions": "SELECT submission_event_id, case_id, decision_type, event, sent FROM decisions ORDER BY 1",
    "license_sequences": "SELECT * FROM license_sequences ORDER BY 1, 2",
    "officer_queue": "SELECT case_id, submission_event_id, application, reasons, due, status FROM officer_queue "
    "ORDER BY 1",
    "case_licenses": "SELECT * FROM case_licenses ORDER BY 1",
    "license_validity": "SELECT * FROM license_validity ORDER BY 1",
}


def _decision(rng: random.Random) -> Decision:
    kind = rng.choice(["grant", "grant", "escalate", "reject"])
    if kind == "grant":
        return Grant(
            valid_from=TODAY, valid_to=date(2026, 12, 31), quantity=rng.randint(1, 10), batch_mode=BatchMode.SINGLE
        )
    reasons = (REASON,)
    if kind == "escalate":
        return Escalate(reasons=reasons, due=TODAY + timedelta(days=5))
    return Reject(reasons=reasons)


def _scenario(rng: random.Random) -> tuple[list[tuple[Envelope, Decision]], list[tuple[Envelope, Decision]], set[int]]:
    """Submissions decided earlier (and which of them were sent), then the batch: some new, some of the earlier
    ones delivered again, a submission of the batch twice, a case submitted and resubmitted in one batch."""
    submissions: list[tuple[Envelope, Decision]] = []
    for _ in range(rng.randint(1, 12)):
        case = uuid.uuid4()
        app = samples.application(agency_code=rng.choice(AGENCIES))
        first = submitted(app, application_id=case, channel="http")
        submissions.append((first, _decision(rng)))
        if rng.random() < 0.2:  # resubmitted after a return, in the same batch
            again = Envelope.wrap(
                ApplicationResubmitted(application=app, returned_event_id=uuid.uuid4()),
                case_id=case,
                producer="applications",
                event_id=uuid.uuid4(),
            )
            submissions.append((again, _decision(rng)))
    earlier = rng.sample(submissions, rng.randint(0, len(submissions) // 2))
    sent = {i for i in range(len(earlier)) if rng.random() < 0.5}
    batch = list(submissions)
    for _ in range(rng.randint(0, 2)):  # delivered twice within the batch
        batch.insert(rng.randint(0, len(batch)), rng.choice(submissions))
    return earlier, batch, sent


async def _state(connection: asyncpg.Connection) -> dict[str, list[Any]]:
    """Every table review keeps, each decision recorded but for when it was made."""
    state = {table: [tuple(row) for row in await connection.fetch(query)] for table, query in TABLES.items()}
    state["decisions"] = [(*row[:3], _shape(Envelope.from_bytes(row[3])), row[4]) for row in state["decisions"]]
    return state


def _shape(decision: Envelope) -> tuple[Any, ...]:
    """A decision but for when it was made."""
    return decision.event_id, decision.case_id, decision.type, decision.payload, decision.causation_id


async def _run(
    connection: asyncpg.Connection,
    earlier: list[tuple[Envelope, Decision]],
    batch: list[tuple[Envelope, Decision]],
    sent: set[int],
    *,
    together: bool,
) -> tuple[list[tuple[Any, ...]], dict[str, list[Any]]]:
    """The decisions the batch sends, and the tables after it: each on its own, or together. Rolled back."""
    transaction = connection.transaction()
    await transaction.start()
    try:
        await connection.execute(
            "INSERT INTO license_sequences (issue_year, agency_code, last_number) VALUES (2026, '11', 41)"
        )
        for i, (submission, decision) in enumerate(earlier):
            envelope, _ = await decide_once(connection, submission, decision, TODAY)
            if i in sent:
                await mark_sent(connection, [submission.event_id])
        if together:
            answers = await decide_all(connection, batch, TODAY)
        else:
            answers, answered = [], set()
            for submission, decision in batch:
                envelope, unsent = await decide_once(connection, submission, decision, TODAY)
                answers.append((envelope, unsent and submission.event_id not in answered))
                answered.add(submission.event_id)
        sends = [_shape(envelope) for envelope, unsent in answers if unsent]
        decided = [_shape(envelope) for envelope, _ in answers]
        return [*decided, ("sent", *sends)], await _state(connection)
    finally:
        await transaction.rollback()


async def test_a_batch_decided_together_is_decided_as_each_on_its_own(database_url: str) -> None:
    connection = await asyncpg.connect(database_url, server_settings={"search_path": "review"})
    try:
        for seed in range(40):
            rng = random.Random(seed)
            earlier, batch, sent = _scenario(rng)
            one_by_one = await _run(connection, earlier, batch, sent, together=False)
            together = await _run(connection, earlier, batch, sent, together=True)
            assert together == one_by_one, f"seed {seed}"
            numbers = [d[3].license_number for d in together[0][:-1] if isinstance(d[3], LicenseGranted)]
            # Each grant its own number, in order within its agency's sequence, after the numbers taken before.
            assert len(set(numbers)) == len({d[0] for d in together[0][:-1] if isinstance(d[3], LicenseGranted)})
            assert all(n > "26-11-000041" for n in numbers if n.startswith("26-11-")), f"seed {seed}"
    finally:
        await connection.close()


async def test_license_events_of_a_batch_are_remembered_as_one_by_one(database_url: str) -> None:
    connection = await asyncpg.connect(database_url, server_settings={"search_path": "review"})
    case = uuid.uuid4()

    def event(payload: Any, n: int) -> Envelope:
        return Envelope.wrap(payload, case_id=case, producer="review", event_id=derived_event_id(case, str(n)))

    grant = LicenseGranted.model_validate(
        {
            "license_number": "26-44-000001",
            "applicant_code": "913100007178832540",
            "valid_from": TODAY,
            "valid_to": date(2026, 12, 31),
            "quantity": 1,
            "value": "1.00",
            "currency": "CNY",
            "port_of_exit": "CNSZX",
            "destination_country": "MX",
            "trade_mode": "general_trade",
            "batch_mode": "single",
        }
    )
    second = grant.model_copy(update={"license_number": "26-44-000002"})
    events = [
        event(grant, 1),
        event(second, 2),
        event(LicenseRevoked(license_number="26-44-000001", officer="officer-1", reason=REASON), 3),
        event(LicenseExpired(license_number="26-44-000002", expired_on=date(2027, 1, 1)), 4),
        event(grant, 5),  # a grant seen again changes nothing
    ]
    try:
        states = []
        for together in (False, True):
            async with connection.transaction():
                if together:
                    await expiry.remember_all(connection, events)
                else:
                    for envelope in events:
                        await expiry.remember(connection, envelope)
                states.append(await _state(connection))
                await connection.execute("DELETE FROM license_validity")
        assert states[0] == states[1]
        assert [(r[0], r[3], r[4]) for r in states[1]["license_validity"]] == [
            ("26-44-000001", None, True),
            ("26-44-000002", date(2027, 1, 1), False),
        ]
    finally:
        await connection.close()
