"""Officers' actions: deciding escalated applications, and suspending, reinstating, revoking, replacing licenses.

Each action runs in one transaction that locks the queue entry or license row, checks the action applies,
records it, and appends its event before committing. The event id is deterministic, so a request retried
after a failure at any point appends the same event (readers drop the duplicate) and never a second one.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date

import asyncpg

from services.review import cases
from services.review.decisions import PRODUCER, STORED, license_granted, next_license_number
from services.review.rules import Grant, license_start, validity
from shared.events import (
    Application,
    ApplicationRejected,
    ApplicationReturned,
    BatchMode,
    Condition,
    Envelope,
    Event,
    LicenseGranted,
    LicenseReinstated,
    LicenseReplaced,
    LicenseRevoked,
    LicenseSuspended,
    Reason,
    derived_event_id,
)
from shared.refusal import Refusal

Append = Callable[[Envelope], Awaitable[None]]
MakeEvent = Callable[[cases.Connection], Awaitable[Event]]


def conflict(code: str, message: str) -> Refusal:
    """The action cannot apply to the application or license as it stands (409)."""
    return Refusal(409, code, message)


# Application decisions: the queue status each leaves.
CLOSES_AS = {"approve": "approved", "reject": "rejected", "return": "returned"}
# License actions: the statuses each applies to, and the status it leaves.
LICENSE_ACTIONS: dict[str, tuple[frozenset[str], str]] = {
    "suspend": (frozenset({"active"}), "suspended"),
    "reinstate": (frozenset({"suspended"}), "active"),
    "revoke": (frozenset({"active", "suspended"}), "revoked"),
    "replace": (frozenset({"active"}), "replaced"),
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


async def approve(pool: asyncpg.Pool, append: Append, case_id: uuid.UUID, approval: Approval, today: date) -> Envelope:
    """Grant the escalated application a license, numbered as review numbers every license."""

    async def granted(connection: cases.Connection, app: Application) -> Event:
        grant = approved_grant(app, today, quantity=approval.quantity, valid_to=approval.valid_to)
        number = await next_license_number(connection, today.year, app.agency_code)
        return license_granted(app, grant, number, officer=approval.officer)

    return await _decide(pool, append, case_id, "approve", approval.officer, granted)


async def reject(
    pool: asyncpg.Pool, append: Append, case_id: uuid.UUID, officer: str, reasons: tuple[Reason, ...]
) -> Envelope:
    async def rejected(_: cases.Connection, __: Application) -> Event:
        return ApplicationRejected(reasons=reasons, officer=officer)

    return await _decide(pool, append, case_id, "reject", officer, rejected)


async def return_for_correction(
    pool: asyncpg.Pool, append: Append, case_id: uuid.UUID, officer: str, reasons: tuple[Reason, ...]
) -> Envelope:
    async def returned(_: cases.Connection, __: Application) -> Event:
        return ApplicationReturned(officer=officer, reasons=reasons)

    return await _decide(pool, append, case_id, "return", officer, returned)


async def _decide(
    pool: asyncpg.Pool,
    append: Append,
    case_id: uuid.UUID,
    action: str,
    officer: str,
    make: Callable[[cases.Connection, Application], Awaitable[Event]],
) -> Envelope:
    async with pool.acquire() as connection, connection.transaction():
        entry = await cases.queued_for_update(connection, case_id)
        if entry is None:
            raise Refusal(404, "unknown_application", f"no escalated application {case_id}")
        # One officer decision per escalation: a retry finds it; another decision is refused.
        event_id = derived_event_id(entry.submission_event_id, "officer-decision")
        if (taken := await cases.action(connection, event_id)) is not None:
            return await _replay(taken, action, append)
        if entry.status != "open":
            raise conflict(f"application_{entry.status}", f"application {case_id} is {entry.status}, not open")
        escalation = Envelope.from_bytes(await connection.fetchval(STORED, entry.submission_event_id))
        event = await make(connection, entry.application)
        envelope = Envelope.wrap(event, case_id=case_id, producer=PRODUCER, event_id=event_id, causation=escalation)
        await cases.close(connection, case_id, CLOSES_AS[action])
        if isinstance(event, LicenseGranted):
            await cases.remember_license(connection, case_id, event)
        await _record(connection, append, envelope, target=str(case_id), action=action, officer=officer)
    return envelope


async def suspend(
    pool: asyncpg.Pool, append: Append, number: str, officer: str, reason: Reason, key: str | None
) -> Envelope:
    async def suspended(_: cases.Connection, __: cases.License) -> Event:
        return LicenseSuspended(license_number=number, officer=officer, reason=reason)

    return await _act(pool, append, number, "suspend", officer, key, suspended)


async def reinstate(
    pool: asyncpg.Pool, append: Append, number: str, officer: str, note: str | None, key: str | None
) -> Envelope:
    async def reinstated(_: cases.Connection, __: cases.License) -> Event:
        return LicenseReinstated(license_number=number, officer=officer, note=note)

    return await _act(pool, append, number, "reinstate", officer, key, reinstated)


async def revoke(
    pool: asyncpg.Pool, append: Append, number: str, officer: str, reason: Reason, key: str | None
) -> Envelope:
    async def revoked(_: cases.Connection, __: cases.License) -> Event:
        return LicenseRevoked(license_number=number, officer=officer, reason=reason)

    return await _act(pool, append, number, "revoke", officer, key, revoked)


def successor_terms(old: cases.License, request: Replacement, today: date) -> dict[str, object]:
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
    if request.quantity is not None and old.batch_mode == BatchMode.SINGLE and request.quantity != old.quantity:
        raise Refusal(
            422, "used_batch_is_whole", "a used-vehicle license is one batch: its successor carries all of it"
        )
    return {
        "valid_from": valid_from,
        "valid_to": valid_to,
        "port_of_exit": request.port_of_exit or old.port_of_exit,
        "destination_country": request.destination_country or old.destination_country,
        "quantity": request.quantity,
    }


async def replace(
    pool: asyncpg.Pool, append: Append, number: str, request: Replacement, key: str | None, today: date
) -> Envelope:
    """Replace the license (rule 10): a successor with the remaining balance; the registry's fold counts it."""

    async def replaced(connection: cases.Connection, old: cases.License) -> Event:
        terms = successor_terms(old, request, today)
        successor = await next_license_number(connection, today.year, number.split("-")[1])
        event = LicenseReplaced(
            license_number=number,
            successor_license_number=successor,
            officer=request.officer,
            reason=request.reason,
            **terms,
        )
        await cases.remember_successor(connection, old, event)
        return event

    return await _act(pool, append, number, "replace", request.officer, key, replaced)


async def _act(
    pool: asyncpg.Pool,
    append: Append,
    number: str,
    action: str,
    officer: str,
    key: str | None,
    make: Callable[[cases.Connection, cases.License], Awaitable[Event]],
) -> Envelope:
    async with pool.acquire() as connection, connection.transaction():
        license_ = await cases.license_for_update(connection, number)
        if license_ is None:
            raise Refusal(404, "unknown_license", f"no license {number} granted by review")
        # With a key, a retry finds the action it repeats; without one, the id names the license's version,
        # so a retry after a failed commit appends the same event and one after a success is refused.
        event_id = derived_event_id(f"{number}:{key or f'v{license_.version}'}", action)
        if (taken := await cases.action(connection, event_id)) is not None:
            return await _replay(taken, action, append)
        _check_applies(license_, action)
        event = await make(connection, license_)
        envelope = Envelope.wrap(event, case_id=license_.case_id, producer=PRODUCER, event_id=event_id)
        successor = event.successor_license_number if isinstance(event, LicenseReplaced) else None
        await cases.set_license_status(connection, number, LICENSE_ACTIONS[action][1], successor)
        await _record(connection, append, envelope, target=number, action=action, officer=officer)
    return envelope


def _check_applies(license_: cases.License, action: str) -> None:
    applies_to, _ = LICENSE_ACTIONS[action]
    if license_.status in applies_to:
        return
    code = "license_not_suspended" if license_.status == "active" else f"license_{license_.status}"
    successor = f" by {license_.successor}" if license_.successor else ""
    raise conflict(
        code,
        f"license {license_.license_number} is {license_.status}{successor}: "
        f"only an {' or '.join(sorted(applies_to))} license can be {DONE[action]}",
    )


async def _record(
    connection: cases.Connection, append: Append, envelope: Envelope, *, target: str, action: str, officer: str
) -> None:
    await cases.record_action(connection, envelope, target=target, action=action, officer=officer)
    # Appended before the commit: if the append fails nothing is recorded, and if the commit fails the
    # retry appends the same event id again, which every reader drops.
    await append(envelope)


async def _replay(taken: cases.Action, action: str, append: Append) -> Envelope:
    if taken.action != action:
        raise conflict("already_decided", f"an officer already took action {taken.action!r} here")
    await append(taken.envelope)  # the first attempt may not have reached the broker
    return taken.envelope
