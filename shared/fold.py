"""The case fold: what each event does to its case, ``case = apply(case, event)``, as a pure function.

No clock, no randomness, no look-ups: whatever an event needs to be judged (an export against its
license) comes from the case's own state at that point of the stream. So live processing and a
replay from offset 0 give the same ledger. One fold for every reader: the registry's ledger is this fold
persisted; review and the applications service fold the same way to judge an officer's or an applicant's
command against the state it will meet (``shared/following.py``), so no service's idea of a case can
differ from the ledger's.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, TypeVar

from shared.contract.events import (
    Application,
    ApplicationEscalated,
    ApplicationRejected,
    ApplicationResubmitted,
    ApplicationReturned,
    ApplicationStatus,
    ApplicationSubmitted,
    ApplicationWithdrawn,
    BatchMode,
    Envelope,
    Event,
    ExportRecorded,
    ExportRefused,
    LicenseExpired,
    LicenseGranted,
    LicenseReinstated,
    LicenseReplaced,
    LicenseRevoked,
    LicenseStatus,
    LicenseSuspended,
    Reason,
)

MAX_DECLARATIONS = 12


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    REFUSED = "refused"


@dataclass(frozen=True)
class ApplicationEntry:
    application_id: uuid.UUID
    status: ApplicationStatus
    applicant_code: str
    applicant_name: str
    agency_code: str
    destination_country: str
    port_of_exit: str
    quantity: int
    submitted_at: datetime
    reasons: tuple[Reason, ...] = ()
    license_number: str | None = None
    decided_at: datetime | None = None


@dataclass(frozen=True)
class LicenseEntry:
    license_number: str
    case_id: uuid.UUID
    status: LicenseStatus
    applicant_code: str
    quantity: int
    balance: int
    declarations_used: int
    valid_from: date
    valid_to: date
    port_of_exit: str
    destination_country: str
    batch_mode: BatchMode
    vins: tuple[str, ...]
    granted_at: datetime


@dataclass(frozen=True)
class ExportEntry:
    """One export declaration as the ledger judged it: accepted, or refused with its reason."""

    event_id: uuid.UUID
    declaration_number: str
    license_number: str
    case_id: uuid.UUID
    outcome: Outcome
    quantity: int
    port_of_exit: str
    export_date: date
    vins: tuple[str, ...]
    value: Decimal
    currency: str
    recorded_at: datetime
    reason: Reason | None = None


@dataclass(frozen=True)
class Case:
    """What the ledger knows of one case: its application and its licenses."""

    case_id: uuid.UUID
    application: ApplicationEntry | None = None
    licenses: dict[str, LicenseEntry] = field(default_factory=dict)
    exported_vins: frozenset[str] = frozenset()
    """The VINs of the case's accepted exports (rule 9 within the case; across cases, the intake decides)."""


Entry = TypeVar("Entry", ApplicationEntry, LicenseEntry, Case)


def _with(entry: Entry, **changes: Any) -> Entry:
    """``dataclasses.replace`` for the fold's frozen entries, without running ``__init__`` again: the fold
    makes one or two per event, and this costs a seventh of it (docs/performance.md)."""
    assert changes.keys() <= entry.__dict__.keys(), f"no such field: {changes.keys() - entry.__dict__.keys()}"
    copied = object.__new__(type(entry))
    copied.__dict__.update(entry.__dict__)
    copied.__dict__.update(changes)
    return copied


def apply(case: Case, envelope: Envelope) -> tuple[Case, ExportEntry | None]:
    """The case after ``envelope``, and the export entry it records, if it is an export."""
    event = envelope.payload
    step = _STEPS.get(type(event))
    if step is None or _void_after_withdrawal(case, event):
        return case, None
    return step(case, envelope, event)


def _submitted(case: Case, envelope: Envelope, event: ApplicationSubmitted) -> Case:
    return _with(case, application=_submitted_entry(case, envelope, event.application))


def _submitted_entry(case: Case, envelope: Envelope, app: Application) -> ApplicationEntry:
    return ApplicationEntry(
        application_id=case.case_id,
        status=ApplicationStatus.SUBMITTED,
        applicant_code=app.applicant.code,
        applicant_name=app.applicant.name,
        agency_code=app.agency_code,
        destination_country=app.destination_country,
        port_of_exit=app.port_of_exit,
        quantity=app.quantity,
        submitted_at=envelope.occurred_at,
    )


def _decided(
    case: Case,
    envelope: Envelope,
    status: ApplicationStatus,
    *,
    reasons: tuple[Reason, ...] = (),
    license_number: str | None = None,
) -> Case:
    if case.application is None:
        return case
    decided = _with(
        case.application,
        status=status,
        reasons=reasons,
        license_number=license_number,
        decided_at=envelope.occurred_at,
    )
    return _with(case, application=decided)


def _granted(case: Case, envelope: Envelope, event: LicenseGranted) -> Case:
    license_ = LicenseEntry(
        license_number=event.license_number,
        case_id=case.case_id,
        status=LicenseStatus.ACTIVE,
        applicant_code=event.applicant_code,
        quantity=event.quantity,
        balance=event.quantity,
        declarations_used=0,
        valid_from=event.valid_from,
        valid_to=event.valid_to,
        port_of_exit=event.port_of_exit,
        destination_country=event.destination_country,
        batch_mode=event.batch_mode,
        vins=event.vins,
        granted_at=envelope.occurred_at,
    )
    case = _decided(case, envelope, ApplicationStatus.APPROVED, license_number=event.license_number)
    return _with(case, licenses={**case.licenses, event.license_number: license_})


def refusal(license_: LicenseEntry | None, export: ExportRecorded) -> Reason | None:
    """Why the ledger refuses ``export`` against ``license_`` in its present state, or None."""
    if license_ is None:
        return Reason(code="unknown_license", message=f"no license {export.license_number} on this case")
    if license_.status is not LicenseStatus.ACTIVE:
        return Reason(
            code=f"license_{license_.status}", message=f"license {license_.license_number} is {license_.status}"
        )
    if export.port_of_exit != license_.port_of_exit:
        return Reason(
            code="wrong_port",
            message=f"the license is for port {license_.port_of_exit}, not {export.port_of_exit}",
        )
    if not license_.valid_from <= export.export_date <= license_.valid_to:
        return Reason(
            code="outside_validity",
            message=f"export dated {export.export_date}; valid {license_.valid_from} to {license_.valid_to}",
        )
    if export.quantity > license_.balance:
        return Reason(
            code="exceeds_balance",
            message=f"{export.quantity} vehicles declared; the license's balance is {license_.balance}",
        )
    if license_.batch_mode is BatchMode.MULTI and license_.declarations_used >= MAX_DECLARATIONS:
        return Reason(
            code="declarations_exhausted",
            message=f"the license has been used for its {MAX_DECLARATIONS} declarations",
        )
    if license_.batch_mode is BatchMode.SINGLE and (
        export.quantity != license_.quantity or sorted(export.vins) != sorted(license_.vins)
    ):
        return Reason(
            code="batch_mismatch",
            message="a used-vehicle license is used once, for exactly its licensed quantity and VINs",
        )
    return None


def judge(case: Case, export: ExportRecorded) -> Reason | None:
    """Why the case, as it stands, refuses ``export``, or None: the license's terms, then its VINs."""
    return refusal(case.licenses.get(export.license_number), export) or _repeated_vin(case, export)


def _repeated_vin(case: Case, export: ExportRecorded) -> Reason | None:
    if len(set(export.vins)) != len(export.vins):
        return Reason(code="vin_listed_twice", message="the declaration lists a VIN more than once")
    repeated = sorted(case.exported_vins.intersection(export.vins))
    if repeated:
        return Reason(code="vin_already_exported", message=f"VIN {repeated[0]} was already exported on this case")
    return None


def _exported(case: Case, envelope: Envelope, event: ExportRecorded) -> tuple[Case, ExportEntry]:
    """An export judged once (:func:`judge`); accepted, it draws on its license and its VINs are remembered."""
    reason = judge(case, event)
    entry = _export_entry(case, envelope, event, reason)
    if reason is not None:
        return case, entry
    license_ = case.licenses[event.license_number]
    balance = license_.balance - event.quantity
    used = _with(
        license_,
        balance=balance,
        declarations_used=license_.declarations_used + 1,
        status=LicenseStatus.EXHAUSTED if balance == 0 else license_.status,
    )
    exported_vins = case.exported_vins.union(event.vins) if event.vins else case.exported_vins
    return _with(case, licenses={**case.licenses, used.license_number: used}, exported_vins=exported_vins), entry


def _refused(case: Case, envelope: Envelope, event: ExportRefused) -> tuple[Case, ExportEntry]:
    """An export the registry refused before the append (a VIN another license holds): on record, nothing drawn."""
    return case, _export_entry(case, envelope, event, event.reason)


def _export_entry(
    case: Case, envelope: Envelope, export: ExportRecorded | ExportRefused, reason: Reason | None
) -> ExportEntry:
    """An export as the ledger keeps it on record, accepted or refused with its reason (rule 11)."""
    return ExportEntry(
        event_id=envelope.event_id,
        declaration_number=export.declaration_number,
        license_number=export.license_number,
        case_id=case.case_id,
        outcome=Outcome.REFUSED if reason else Outcome.ACCEPTED,
        quantity=export.quantity,
        port_of_exit=export.port_of_exit,
        export_date=export.export_date,
        vins=export.vins,
        value=export.value,
        currency=export.currency,
        recorded_at=envelope.occurred_at,
        reason=reason,
    )


# A suspended license (officer actions) also ends when its validity passes; ended ones stay as they ended.
_IN_FORCE = frozenset(s for s in LicenseStatus if s.value in {"active", "suspended"})


def _expired(case: Case, _: Envelope, event: LicenseExpired) -> Case:
    license_ = case.licenses.get(event.license_number)
    if license_ is None or license_.status not in _IN_FORCE:
        return case
    ended = _with(license_, status=LicenseStatus.EXPIRED)
    return _with(case, licenses={**case.licenses, ended.license_number: ended})


# The rest of the lifecycle: officers' returns and license actions, the applicant's resubmission and withdrawal.

_UNDECIDED = frozenset({ApplicationStatus.SUBMITTED, ApplicationStatus.ESCALATED})
_DECISIONS = (ApplicationRejected, ApplicationEscalated, ApplicationReturned, LicenseGranted)
# Which license statuses each officer action applies to, and the status it leaves; any other is a no-op.
_LICENSE_ACTIONS: dict[type[Event], tuple[frozenset[LicenseStatus], LicenseStatus]] = {
    LicenseSuspended: (frozenset({LicenseStatus.ACTIVE}), LicenseStatus.SUSPENDED),
    LicenseReinstated: (frozenset({LicenseStatus.SUSPENDED}), LicenseStatus.ACTIVE),
    LicenseRevoked: (
        frozenset({LicenseStatus.ACTIVE, LicenseStatus.SUSPENDED, LicenseStatus.EXHAUSTED}),
        LicenseStatus.REVOKED,
    ),
}


def _void_after_withdrawal(case: Case, event: Event) -> bool:
    """A decision appended after the applicant's withdrawal lost the race to it: the withdrawal stands."""
    application = case.application
    return (
        application is not None and application.status is ApplicationStatus.WITHDRAWN and isinstance(event, _DECISIONS)
    )


def _resubmitted(case: Case, envelope: Envelope, event: ApplicationResubmitted) -> Case:
    """The corrected application stands in for the returned one, submitted again (rule 12 counts anew)."""
    if case.application is not None and case.application.status is not ApplicationStatus.RETURNED:
        return case
    return _with(case, application=_submitted_entry(case, envelope, event.application))


def _withdrawn(case: Case, envelope: Envelope, _: ApplicationWithdrawn) -> Case:
    """Only an undecided application can be withdrawn; a withdrawal that lost the race to a decision is void."""
    if case.application is None or case.application.status not in _UNDECIDED:
        return case
    return _decided(case, envelope, ApplicationStatus.WITHDRAWN)


def _license_action(case: Case, _: Envelope, event: LicenseSuspended | LicenseReinstated | LicenseRevoked) -> Case:
    license_ = case.licenses.get(event.license_number)
    applies_to, status = _LICENSE_ACTIONS[type(event)]
    if license_ is None or license_.status not in applies_to:
        return case
    changed = _with(license_, status=status)
    return _with(case, licenses={**case.licenses, changed.license_number: changed})


def carried_balance(old: LicenseEntry, cap: int | None) -> int:
    """What a successor carries over: the remaining balance, or less if the officer caps it.

    A used-vehicle license is one batch of exactly its VINs, so it always carries the whole batch.
    """
    if old.batch_mode is BatchMode.SINGLE or cap is None:
        return old.balance
    return min(cap, old.balance)


def _replaced(case: Case, envelope: Envelope, event: LicenseReplaced) -> Case:
    """Rule 10: the old license ends as replaced; the successor opens with the remaining balance."""
    old = case.licenses.get(event.license_number)
    if old is None or old.status is not LicenseStatus.ACTIVE or event.successor_license_number in case.licenses:
        return case
    carried = carried_balance(old, event.quantity)
    successor = _with(
        old,
        license_number=event.successor_license_number,
        quantity=carried,
        balance=carried,
        declarations_used=0,
        valid_from=event.valid_from,
        valid_to=event.valid_to,
        port_of_exit=event.port_of_exit,
        destination_country=event.destination_country,
        granted_at=envelope.occurred_at,
    )
    ended = _with(old, status=LicenseStatus.REPLACED)
    licenses = {**case.licenses, ended.license_number: ended, successor.license_number: successor}
    application = case.application
    if application is not None and application.license_number == old.license_number:
        application = _with(application, license_number=successor.license_number)
    return _with(case, licenses=licenses, application=application)


# What each event does: one table. An event type not in it changes nothing (a reader of an older fold
# meeting a newer event keeps the case as it was, and the stream's order decides the rest).

Step = Callable[[Case, Envelope, Any], tuple[Case, "ExportEntry | None"]]


def _case_only(change: Callable[[Case, Envelope, Any], Case]) -> Step:
    return lambda case, envelope, event: (change(case, envelope, event), None)


def _decision(status: ApplicationStatus) -> Step:
    return _case_only(lambda case, envelope, event: _decided(case, envelope, status, reasons=event.reasons))


_STEPS: dict[type[Event], Step] = {
    ExportRecorded: _exported,
    ExportRefused: _refused,
    ApplicationSubmitted: _case_only(_submitted),
    ApplicationRejected: _decision(ApplicationStatus.REJECTED),
    ApplicationEscalated: _decision(ApplicationStatus.ESCALATED),
    ApplicationReturned: _decision(ApplicationStatus.RETURNED),
    LicenseGranted: _case_only(_granted),
    LicenseExpired: _case_only(_expired),
    ApplicationResubmitted: _case_only(_resubmitted),
    ApplicationWithdrawn: _case_only(_withdrawn),
    LicenseSuspended: _case_only(_license_action),
    LicenseReinstated: _case_only(_license_action),
    LicenseRevoked: _case_only(_license_action),
    LicenseReplaced: _case_only(_replaced),
}
