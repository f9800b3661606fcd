"""The ledger as a pure fold over the case stream: ``case = apply(case, event)``.

No clock, no randomness, no look-ups: whatever an event needs to be judged (an export against its
license) comes from the case's own state at that point of the stream. So live processing and a
replay from offset 0 give the same ledger.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

from shared.events import (
    ApplicationEscalated,
    ApplicationRejected,
    ApplicationSubmitted,
    BatchMode,
    Envelope,
    ExportRecorded,
    LicenseGranted,
    Reason,
)

MAX_DECLARATIONS = 12


class ApplicationStatus(StrEnum):
    SUBMITTED = "submitted"
    ESCALATED = "escalated"
    APPROVED = "approved"
    REJECTED = "rejected"


class LicenseStatus(StrEnum):
    ACTIVE = "active"
    EXHAUSTED = "exhausted"


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


def apply(case: Case, envelope: Envelope) -> tuple[Case, ExportEntry | None]:
    """The case after ``envelope``, and the export entry it records, if it is an export."""
    event = envelope.payload
    if isinstance(event, ApplicationSubmitted):
        return _submitted(case, envelope, event), None
    if isinstance(event, ApplicationRejected):
        return _decided(case, envelope, ApplicationStatus.REJECTED, reasons=event.reasons), None
    if isinstance(event, ApplicationEscalated):
        return _decided(case, envelope, ApplicationStatus.ESCALATED, reasons=event.reasons), None
    if isinstance(event, LicenseGranted):
        return _granted(case, envelope, event), None
    if isinstance(event, ExportRecorded):
        return _exported(case, envelope, event)
    return case, None


def _submitted(case: Case, envelope: Envelope, event: ApplicationSubmitted) -> Case:
    app = event.application
    entry = ApplicationEntry(
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
    return replace(case, application=entry)


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
    decided = replace(
        case.application,
        status=status,
        reasons=reasons,
        license_number=license_number,
        decided_at=envelope.occurred_at,
    )
    return replace(case, application=decided)


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
    return replace(case, licenses={**case.licenses, event.license_number: license_})


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


def _exported(case: Case, envelope: Envelope, event: ExportRecorded) -> tuple[Case, ExportEntry]:
    license_ = case.licenses.get(event.license_number)
    reason = refusal(license_, event)
    entry = ExportEntry(
        event_id=envelope.event_id,
        declaration_number=event.declaration_number,
        license_number=event.license_number,
        case_id=case.case_id,
        outcome=Outcome.REFUSED if reason else Outcome.ACCEPTED,
        quantity=event.quantity,
        port_of_exit=event.port_of_exit,
        export_date=event.export_date,
        vins=event.vins,
        value=event.value,
        currency=event.currency,
        recorded_at=envelope.occurred_at,
        reason=reason,
    )
    if reason is not None or license_ is None:
        return case, entry
    balance = license_.balance - event.quantity
    used = replace(
        license_,
        balance=balance,
        declarations_used=license_.declarations_used + 1,
        status=LicenseStatus.EXHAUSTED if balance == 0 else license_.status,
    )
    return replace(case, licenses={**case.licenses, used.license_number: used}), entry
