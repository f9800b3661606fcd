"""Officers' actions: deciding escalated applications, and suspending, reinstating, revoking, replacing licenses.

Each action is judged against the case as review follows it with the ledger's own fold, up to the end of
its partition (``shared/following.py``): an exhausted or expired license is known as such, a withdrawn
application too. Every path that creates or changes a license's terms (approval, replacement,
reinstatement) passes the rules of a first grant (``rules.terms_refusals``). The action is recorded and
its event appended in one transaction, holding the case against other officers; then review waits until
it has folded the event in its place, and answers 202 only if the event changed the case (409 with what
the case had become, if another event came first). Recorded actions make retries safe: the same request
again is answered with the event it appended, another decision on the same escalation is refused.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import date

from aiokafka.structs import RecordMetadata

from services.review.decisions import PRODUCER, STORED, license_granted, next_license_number
from services.review.officer import queue
from services.review.reference import ReferenceData
from services.review.rules import Grant, Terms, license_start, terms_refusals, validity
from shared import following
from shared.contract.events import (
    Application,
    ApplicationRejected,
    ApplicationReturned,
    ApplicationStatus,
    BatchMode,
    Condition,
    Envelope,
    Event,
    LicenseReinstated,
    LicenseReplaced,
    LicenseRevoked,
    LicenseStatus,
    LicenseSuspended,
    Reason,
    derived_event_id,
)
from shared.contract.refusal import FieldError, Refusal
from shared.fold import LicenseEntry, carried_balance
from shared.following import CaseView
from shared.platform.db import Connection
from shared.platform.service import Runtime

# Application decisions: the queue status each leaves.
CLOSES_AS = {
    "approve": ApplicationStatus.APPROVED,
    "reject": ApplicationStatus.REJECTED,
    "return": ApplicationStatus.RETURNED,
}
# License actions: the statuses each applies to (as the ledger's fold has them), the past tense for messages.
LICENSE_ACTIONS: dict[str, frozenset[LicenseStatus]] = {
    "suspend": frozenset({LicenseStatus.ACTIVE}),
    "reinstate": frozenset({LicenseStatus.SUSPENDED}),
    "revoke": frozenset({LicenseStatus.ACTIVE, LicenseStatus.SUSPENDED, LicenseStatus.EXHAUSTED}),
    "replace": frozenset({LicenseStatus.ACTIVE}),
}
DONE = {"suspend": "suspended", "reinstate": "reinstated", "revoke": "revoked", "replace": "replaced"}


@dataclass(frozen=True)
class Approval:
    officer: str
    quantity: int | None = None
    valid_to: date | None = None


@dataclass(frozen=True)
class Replacement:
    officer: str
    reason: Reason
    quantity: int | None = None
    valid_from: date | None = None
    valid_to: date | None = None
    port_of_exit: str | None = None
    destination_country: str | None = None


def conflict(code: str, message: str) -> Refusal:
    """The action cannot apply to the application or license as it stands (409)."""
    return Refusal(409, code, message)


def refused_by_rules(reasons: tuple[Reason, ...], what: str) -> Refusal:
    """The rules of a first grant refuse the terms an officer asked for: each rule's reason, as a field at fault."""
    message = f"{what} does not pass the rules of a grant: " + "; ".join(r.message for r in reasons)
    return Refusal(422, reasons[0].code, message, [FieldError(None, r.code, r.message) for r in reasons])


def approved_grant(app: Application, today: date, *, quantity: int | None, valid_to: date | None) -> Grant:
    """The license an officer grants: the application's terms, or a smaller quantity, a shorter validity."""
    valid_from, longest = validity(license_start(app, today))
    granted = quantity or app.quantity
    if granted > app.quantity:
        raise Refusal(422, "quantity_above_application", f"an officer grants at most the {app.quantity} applied for")
    if app.condition is Condition.USED and granted != app.quantity:
        raise Refusal(422, "used_batch_is_whole", "a used-vehicle license is one batch of exactly its VINs")
    ends = valid_to or longest
    if not valid_from <= ends <= longest:
        raise Refusal(422, "validity_out_of_range", f"valid_to must fall from {valid_from} to {longest} (rule 7)")
    batch = BatchMode.SINGLE if app.condition is Condition.USED else BatchMode.MULTI
    return Grant(valid_from=valid_from, valid_to=ends, quantity=granted, batch_mode=batch)


# Application decisions.

DecisionMaker = Callable[[Connection, Application], Awaitable[Event]]


async def approve(
    runtime: Runtime, case_id: uuid.UUID, approval: Approval, today: date, ref: ReferenceData
) -> Envelope:
    """Grant the escalated application a license, numbered as review numbers every license, if the rules of a
    first grant still pass on the terms the officer grants."""

    async def granted(connection: Connection, app: Application) -> Event:
        grant = approved_grant(app, today, quantity=approval.quantity, valid_to=approval.valid_to)
        terms = Terms(grant.valid_from, grant.valid_to, grant.quantity, app.port_of_exit, app.destination_country)
        if reasons := terms_refusals(app, terms, ref, today):
            raise refused_by_rules(reasons, "the approval")
        number = await next_license_number(connection, today.year, app.agency_code)
        await connection.execute(following.SAVE_LICENSES, [number], [case_id])
        return license_granted(app, grant, number, officer=approval.officer)

    return await _decide(runtime, case_id, "approve", approval.officer, _request(asdict(approval)), granted)


async def reject(runtime: Runtime, case_id: uuid.UUID, officer: str, reasons: tuple[Reason, ...]) -> Envelope:
    async def rejected(_: Connection, __: Application) -> Event:
        return ApplicationRejected(reasons=reasons, officer=officer)

    request = _request({"reasons": [r.model_dump() for r in reasons]})
    return await _decide(runtime, case_id, "reject", officer, request, rejected)


async def return_for_correction(
    runtime: Runtime, case_id: uuid.UUID, officer: str, reasons: tuple[Reason, ...]
) -> Envelope:
    async def returned(_: Connection, __: Application) -> Event:
        return ApplicationReturned(officer=officer, reasons=reasons)

    request = _request({"reasons": [r.model_dump() for r in reasons]})
    return await _decide(runtime, case_id, "return", officer, request, returned)


async def _decide(
    runtime: Runtime, case_id: uuid.UUID, action: str, officer: str, request: str, make: DecisionMaker
) -> Envelope:
    async with runtime.pool.acquire() as connection, connection.transaction():
        await queue.lock_case(connection, case_id)
        entry = await queue.queued(connection, case_id)
        if entry is None:
            raise Refusal(404, "unknown_application", f"no escalated application {case_id}")
        # One officer decision per escalation: a retry finds it; another decision is refused.
        event_id = derived_event_id(entry.submission_event_id, "officer-decision")
        if (taken := await queue.action(connection, event_id)) is not None:
            return await _again(runtime, taken, action, request, decision=True)
        view = await following.current(runtime, case_id)
        _still_escalated(view, case_id)
        escalation = Envelope.from_bytes(await connection.fetchval(STORED, entry.submission_event_id))
        event = await make(connection, entry.application)
        envelope = Envelope.wrap(event, case_id=case_id, producer=PRODUCER, event_id=event_id, causation=escalation)
        await queue.close(connection, case_id, CLOSES_AS[action])
        await queue.record_action(
            connection, envelope, target=str(case_id), action=action, officer=officer, request=request
        )
        # Appended before the commit: if the append fails nothing is recorded.
        written = await runtime.append(envelope)
    return await _in_effect(runtime, envelope, written, lambda view: _escalated(view, case_id))


async def _escalated(view: CaseView, case_id: uuid.UUID) -> None:
    _still_escalated(view, case_id)


def _still_escalated(view: CaseView, case_id: uuid.UUID) -> None:
    if view.case.application is None:
        raise Refusal(404, "unknown_application", f"no application {case_id} in review's view of the log")
    status = view.case.application.status
    if status is not ApplicationStatus.ESCALATED:
        raise conflict(f"application_{status}", f"application {case_id} is {status}, not escalated")


# License actions.

LicenseMaker = Callable[[Connection, CaseView, LicenseEntry], Awaitable[Event]]


async def suspend(runtime: Runtime, number: str, officer: str, reason: Reason, key: str | None) -> Envelope:
    async def suspended(_: Connection, __: CaseView, ___: LicenseEntry) -> Event:
        return LicenseSuspended(license_number=number, officer=officer, reason=reason)

    return await _act(runtime, number, "suspend", officer, key, _request(reason.model_dump()), suspended)


async def reinstate(
    runtime: Runtime, number: str, officer: str, note: str | None, key: str | None, today: date, ref: ReferenceData
) -> Envelope:
    """Make a suspended license active again, if the rules of a first grant still pass on its terms."""

    async def reinstated(_: Connection, view: CaseView, license_: LicenseEntry) -> Event:
        terms = Terms(
            license_.valid_from,
            license_.valid_to,
            license_.quantity,
            license_.port_of_exit,
            license_.destination_country,
        )
        _pass_the_rules(view, terms, ref, today, f"license {number} reinstated")
        return LicenseReinstated(license_number=number, officer=officer, note=note)

    return await _act(runtime, number, "reinstate", officer, key, _request({"note": note}), reinstated)


async def revoke(runtime: Runtime, number: str, officer: str, reason: Reason, key: str | None) -> Envelope:
    async def revoked(_: Connection, __: CaseView, ___: LicenseEntry) -> Event:
        return LicenseRevoked(license_number=number, officer=officer, reason=reason)

    return await _act(runtime, number, "revoke", officer, key, _request(reason.model_dump()), revoked)


def successor_terms(old: LicenseEntry, request: Replacement, today: date) -> Terms:
    """The successor's terms: the old license's, changed as the officer asks, within rule 7 from its start."""
    valid_from = request.valid_from or max(today, old.valid_from)
    valid_to = request.valid_to or old.valid_to
    longest = validity(valid_from)[1]
    if valid_from < today or not valid_from <= valid_to <= longest:
        raise Refusal(
            422,
            "validity_out_of_range",
            f"a successor starts {today} or later and ends by {longest} (rule 7): {valid_from} to {valid_to} given",
        )
    if request.quantity is not None and request.quantity > old.quantity:
        raise Refusal(422, "quantity_above_license", f"a successor carries at most the {old.quantity} licensed")
    if request.quantity is not None and old.batch_mode is BatchMode.SINGLE and request.quantity != old.quantity:
        raise Refusal(
            422, "used_batch_is_whole", "a used-vehicle license is one batch: its successor carries all of it"
        )
    return Terms(
        valid_from=valid_from,
        valid_to=valid_to,
        quantity=carried_balance(old, request.quantity),
        port_of_exit=request.port_of_exit or old.port_of_exit,
        destination_country=request.destination_country or old.destination_country,
    )


async def replace(
    runtime: Runtime, number: str, request: Replacement, key: str | None, today: date, ref: ReferenceData
) -> Envelope:
    """Replace the license (rule 10): a successor on the changed terms, if the rules of a first grant pass on
    them, with the remaining balance; the registry's fold counts it."""

    async def replaced(connection: Connection, view: CaseView, old: LicenseEntry) -> Event:
        terms = successor_terms(old, request, today)
        _pass_the_rules(view, terms, ref, today, "the successor")
        successor = await next_license_number(connection, today.year, number.split("-")[1])
        await connection.execute(following.SAVE_LICENSES, [successor], [old.case_id])
        return LicenseReplaced(
            license_number=number,
            successor_license_number=successor,
            officer=request.officer,
            reason=request.reason,
            valid_from=terms.valid_from,
            valid_to=terms.valid_to,
            port_of_exit=terms.port_of_exit,
            destination_country=terms.destination_country,
            quantity=request.quantity,
        )

    return await _act(runtime, number, "replace", request.officer, key, _request(asdict(request)), replaced)


def _pass_the_rules(view: CaseView, terms: Terms, ref: ReferenceData, today: date, what: str) -> None:
    if view.application is None:
        raise conflict("application_unknown", f"the application of case {view.case.case_id} is not known to review")
    if reasons := terms_refusals(view.application, terms, ref, today):
        raise refused_by_rules(reasons, what)


async def _act(
    runtime: Runtime, number: str, action: str, officer: str, key: str | None, request: str, make: LicenseMaker
) -> Envelope:
    case_id = await following.case_of_license(runtime.pool, number)
    if case_id is None:
        raise Refusal(404, "unknown_license", f"no license {number}")
    async with runtime.pool.acquire() as connection, connection.transaction():
        await queue.lock_case(connection, case_id)
        # With a key, a retry finds the action it repeats; without one, each request is an action of its own,
        # judged against the case the earlier ones left (a second suspension of a suspended license is refused).
        event_id = derived_event_id(f"{number}:{key}", action) if key else uuid.uuid4()
        if key and (taken := await queue.action(connection, event_id)) is not None:
            return await _again(runtime, taken, action, request, decision=False)
        view = await following.current(runtime, case_id)
        license_ = await _applies(runtime, view, number, action)
        event = await make(connection, view, license_)
        envelope = Envelope.wrap(event, case_id=case_id, producer=PRODUCER, event_id=event_id)
        await queue.record_action(connection, envelope, target=number, action=action, officer=officer, request=request)
        written = await runtime.append(envelope)
    return await _in_effect(runtime, envelope, written, lambda view: _applies(runtime, view, number, action))


async def _applies(runtime: Runtime, view: CaseView, number: str, action: str) -> LicenseEntry:
    """The license, if ``action`` applies to it as the fold has it; else 404 or 409 with its status."""
    license_ = view.case.licenses.get(number)
    if license_ is None:
        raise Refusal(404, "unknown_license", f"no license {number}")
    applies_to = LICENSE_ACTIONS[action]
    if license_.status in applies_to:
        return license_
    status = license_.status
    code = "license_not_suspended" if status is LicenseStatus.ACTIVE else f"license_{status}"
    successor = await queue.successor_of(runtime.pool, number) if status is LicenseStatus.REPLACED else None
    by = f" by {successor}" if successor else ""
    raise conflict(
        code,
        f"license {number} is {status}{by}: only an {' or '.join(sorted(applies_to))} license can be {DONE[action]}",
    )


async def _in_effect(
    runtime: Runtime, envelope: Envelope, written: RecordMetadata, judge: Callable[[CaseView], Awaitable[object]]
) -> Envelope:
    """``envelope`` once review has folded it in its place and it changed the case; else what the case had
    become (a 409), as ``judge`` says it of the case it met."""
    if await following.took_effect(runtime, envelope, written):
        return envelope
    await judge(await following.case(runtime.pool, envelope.case_id))
    raise following.no_effect(envelope)


async def _again(runtime: Runtime, taken: queue.Action, action: str, request: str, *, decision: bool) -> Envelope:
    """A request whose action is recorded already: the same request is answered with its event; another one is
    refused (a decision on an escalation already decided, a key used for another action)."""
    if taken.action != action or taken.request != request:
        if decision:
            raise conflict("already_decided", f"an officer already took action {taken.action!r} here, on other terms")
        raise Refusal(422, "idempotency_key_reused", "this Idempotency-Key was used for another action; use a new key")
    view = await following.current(runtime, taken.envelope.case_id)
    if await following.effect(runtime.pool, taken.envelope.event_id):
        return taken.envelope
    raise conflict("no_effect", f"the {action} recorded here changed nothing: {_state(view)}")


def _state(view: CaseView) -> str:
    application = view.case.application
    return f"the application is {application.status}" if application else "the case is not known"


def _request(fields: dict[str, object]) -> str:
    """What was asked, as text to compare a retry with (the acting officer left out: it is the credential's)."""
    return repr(sorted((k, v) for k, v in fields.items() if k != "officer"))
