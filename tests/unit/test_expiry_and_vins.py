"""Expiry (review's scheduler rule, the fold's branch) and rule 9 as the fold sees it, without I/O."""

import uuid
from datetime import date

import samples
from services.review.expiry import KnownLicense, due_to_expire, expiry_event
from shared.contract.events import (
    Envelope,
    Event,
    ExportRecorded,
    ExportRefused,
    LicenseExpired,
    LicenseGranted,
    LicenseStatus,
    Reason,
    derived_event_id,
)
from shared.fold import Case, ExportEntry, Outcome, apply, judge
from tests.histories import granted

CASE = uuid.uuid4()
NUMBER = "26-44-000001"
VIN_A, VIN_B = "LA1AB2CD3EF456789", "LA1AB2CD3EF456780"


def _granted(quantity: int = 10) -> LicenseGranted:
    return granted(NUMBER, quantity, valid_from=date(2026, 3, 1), valid_to=date(2026, 8, 31))


def _export(sequence: int, quantity: int = 1, **overrides: object) -> ExportRecorded:
    data = samples.declaration_data(NUMBER, f"53162026{sequence:010d}", quantity=quantity, export_date="2026-04-01")
    data.update(overrides)
    return ExportRecorded.model_validate(data)


def _fold(*events: Event) -> tuple[Case, list[ExportEntry]]:
    case, exports = Case(case_id=CASE), []
    for event in events:
        case, export = apply(case, Envelope.wrap(event, case_id=CASE, producer="test"))
        exports.extend([export] if export else [])
    return case, exports


def _license(valid_to: date, **overrides: object) -> KnownLicense:
    return KnownLicense(**{"license_number": NUMBER, "case_id": CASE, "valid_to": valid_to, **overrides})  # type: ignore[arg-type]


def test_a_license_is_due_to_expire_the_day_after_its_validity_ends() -> None:
    license_ = _license(date(2026, 8, 31))
    assert due_to_expire([license_], date(2026, 8, 31)) == []
    assert due_to_expire([license_], date(2026, 9, 1)) == [license_]


def test_an_expired_or_ended_license_is_not_due_again() -> None:
    expired = _license(date(2026, 8, 31), expired_on=date(2026, 9, 1))
    ended = _license(date(2026, 8, 31), ended=True)
    assert due_to_expire([expired, ended], date(2026, 12, 1)) == []


def test_every_emission_of_an_expiry_is_the_same_event() -> None:
    first, second = expiry_event(_license(date(2026, 8, 31))), expiry_event(_license(date(2026, 8, 31)))
    assert first.event_id == second.event_id == derived_event_id(NUMBER, "expired")
    assert first.payload == second.payload == LicenseExpired(license_number=NUMBER, expired_on=date(2026, 9, 1))


def test_an_expired_license_refuses_exports_dated_inside_its_validity() -> None:
    expiry = LicenseExpired(license_number=NUMBER, expired_on=date(2026, 9, 1))
    case, exports = _fold(_granted(), _export(1), expiry, _export(2))
    assert case.licenses[NUMBER].status is LicenseStatus.EXPIRED
    assert [e.outcome for e in exports] == [Outcome.ACCEPTED, Outcome.REFUSED]
    assert exports[1].reason is not None and exports[1].reason.code == "license_expired"
    assert case.licenses[NUMBER].balance == 9


def test_an_exhausted_license_stays_exhausted_when_its_validity_passes() -> None:
    expiry = LicenseExpired(license_number=NUMBER, expired_on=date(2026, 9, 1))
    case, _ = _fold(_granted(quantity=1), _export(1), expiry)
    assert case.licenses[NUMBER].status is LicenseStatus.EXHAUSTED


def test_a_vin_exported_once_on_the_case_is_refused_the_second_time() -> None:
    case, exports = _fold(_granted(), _export(1, vins=[VIN_A]), _export(2, vins=[VIN_A]), _export(3, vins=[VIN_B]))
    assert [e.outcome for e in exports] == [Outcome.ACCEPTED, Outcome.REFUSED, Outcome.ACCEPTED]
    assert exports[1].reason is not None and exports[1].reason.code == "vin_already_exported"
    assert case.exported_vins == {VIN_A, VIN_B}
    assert case.licenses[NUMBER].balance == 8


def test_a_declaration_listing_a_vin_twice_is_refused() -> None:
    _, exports = _fold(_granted(), _export(1, quantity=2, vins=[VIN_A, VIN_A]))
    assert exports[0].reason is not None and exports[0].reason.code == "vin_listed_twice"


def test_a_refused_export_frees_its_vins_for_a_later_declaration() -> None:
    case, exports = _fold(_granted(), _export(1, quantity=11, vins=[VIN_A]), _export(2, vins=[VIN_A]))
    assert [e.outcome for e in exports] == [Outcome.REFUSED, Outcome.ACCEPTED]
    assert case.exported_vins == {VIN_A}


def test_an_intake_refusal_is_kept_on_record_and_changes_no_balance() -> None:
    reason = Reason(code="vin_already_exported", message="m")
    refused = ExportRefused(**_export(1, vins=[VIN_A]).model_dump(), reason=reason)
    case, exports = _fold(_granted(), refused)
    assert (exports[0].outcome, exports[0].reason) == (Outcome.REFUSED, reason)
    assert case.licenses[NUMBER].balance == 10 and case.exported_vins == frozenset()


def test_judge_answers_as_the_fold_would_without_changing_the_case() -> None:
    case, _ = _fold(_granted(), _export(1, vins=[VIN_A]))
    assert judge(case, _export(2, vins=[VIN_B])) is None
    assert judge(case, _export(2, vins=[VIN_A])) == Reason(
        code="vin_already_exported", message=f"VIN {VIN_A} was already exported on this case"
    )
    refused = judge(case, _export(2, quantity=10))
    assert refused is not None and refused.code == "exceeds_balance"
