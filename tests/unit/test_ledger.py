import uuid
from datetime import date

import pytest

import samples
from shared.contract.events import (
    ApplicationEscalated,
    ApplicationRejected,
    ApplicationStatus,
    ApplicationSubmitted,
    Envelope,
    Event,
    ExportRecorded,
    LicenseGranted,
    LicenseStatus,
    Reason,
)
from shared.fold import Case, ExportEntry, Outcome, apply
from tests.histories import granted

CASE = uuid.uuid4()
NUMBER = "26-44-000001"


def _env(event: Event) -> Envelope:
    return Envelope.wrap(event, case_id=CASE, producer="test")


def _granted(quantity: int = 10, batch_mode: str = "multi", vins: tuple[str, ...] = ()) -> LicenseGranted:
    return granted(
        NUMBER, quantity, valid_from=date(2026, 3, 1), valid_to=date(2026, 8, 31), batch_mode=batch_mode, vins=vins
    )


def _export(sequence: int, quantity: int = 4, **overrides: object) -> ExportRecorded:
    number = f"53162026{sequence:010d}"
    data = samples.declaration_data(NUMBER, number, quantity=quantity, export_date="2026-04-01")
    data.update(overrides)
    return ExportRecorded.model_validate(data)


def _fold(*events: Event) -> tuple[Case, list[ExportEntry]]:
    case, exports = Case(case_id=CASE), []
    for event in events:
        case, export = apply(case, _env(event))
        if export is not None:
            exports.append(export)
    return case, exports


def _submitted() -> ApplicationSubmitted:
    return ApplicationSubmitted(application=samples.application(), channel="http")


def test_submission_then_grant_approves_the_application_and_opens_the_license() -> None:
    case, _ = _fold(_submitted(), _granted())
    assert case.application is not None
    assert case.application.status is ApplicationStatus.APPROVED
    assert case.application.license_number == NUMBER
    license_ = case.licenses[NUMBER]
    assert (license_.status, license_.balance, license_.declarations_used) == (LicenseStatus.ACTIVE, 10, 0)


def test_rejection_keeps_its_reasons() -> None:
    reasons = (Reason(code="model_not_listed", message="m"),)
    case, _ = _fold(_submitted(), ApplicationRejected(reasons=reasons))
    assert case.application is not None
    assert case.application.status is ApplicationStatus.REJECTED
    assert case.application.reasons == reasons
    assert case.licenses == {}


def test_an_accepted_export_deducts_its_quantity() -> None:
    case, exports = _fold(_submitted(), _granted(), _export(1, 6))
    assert exports[0].outcome is Outcome.ACCEPTED
    assert (case.licenses[NUMBER].balance, case.licenses[NUMBER].declarations_used) == (4, 1)


def test_export_past_balance_is_refused_and_kept_on_record() -> None:
    case, exports = _fold(_submitted(), _granted(), _export(1, 6), _export(2, 5))
    assert [e.outcome for e in exports] == [Outcome.ACCEPTED, Outcome.REFUSED]
    assert exports[1].reason is not None and exports[1].reason.code == "exceeds_balance"
    assert case.licenses[NUMBER].balance == 4


def test_the_last_vehicles_exhaust_the_license_and_nothing_more_passes() -> None:
    case, exports = _fold(_submitted(), _granted(), _export(1, 10), _export(2, 1))
    assert case.licenses[NUMBER].status is LicenseStatus.EXHAUSTED
    assert exports[1].reason is not None and exports[1].reason.code == "license_exhausted"


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"port_of_exit": "CNSHA"}, "wrong_port"),
        ({"export_date": "2026-02-28"}, "outside_validity"),
        ({"export_date": "2026-09-01"}, "outside_validity"),
        ({"license_number": "26-44-999999"}, "unknown_license"),
    ],
)
def test_exports_outside_the_license_terms_are_refused(overrides: dict[str, object], code: str) -> None:
    case, exports = _fold(_submitted(), _granted(), _export(1, 1, **overrides))
    assert exports[0].outcome is Outcome.REFUSED
    assert exports[0].reason is not None and exports[0].reason.code == code
    assert case.licenses[NUMBER].balance == 10


def test_a_new_vehicle_license_serves_at_most_twelve_declarations() -> None:
    events = [_export(i, 1) for i in range(13)]
    case, exports = _fold(_submitted(), _granted(quantity=20), *events)
    assert [e.outcome for e in exports].count(Outcome.ACCEPTED) == 12
    assert exports[-1].reason is not None and exports[-1].reason.code == "declarations_exhausted"
    assert case.licenses[NUMBER].balance == 8


def test_a_used_vehicle_license_is_one_batch_of_exactly_its_vins() -> None:
    vins = ("LA1AB2CD3EF456789", "LA1AB2CD3EF456780")
    _, partial = _fold(_granted(quantity=2, batch_mode="single", vins=vins), _export(1, 1, vins=vins[:1]))
    assert partial[0].reason is not None and partial[0].reason.code == "batch_mismatch"
    case, whole = _fold(_granted(quantity=2, batch_mode="single", vins=vins), _export(1, 2, vins=vins[::-1]))
    assert whole[0].outcome is Outcome.ACCEPTED
    assert case.licenses[NUMBER].status is LicenseStatus.EXHAUSTED


def test_the_fold_is_deterministic() -> None:
    events = [_env(e) for e in (_submitted(), _granted(), _export(1, 3), _export(2, 9), _export(3, 7))]

    def run() -> tuple[Case, list[ExportEntry]]:
        case, exports = Case(case_id=CASE), []
        for envelope in events:
            case, export = apply(case, envelope)
            exports.extend([export] if export else [])
        return case, exports

    assert run() == run()


def test_escalation_puts_the_application_before_an_officer_with_its_reasons() -> None:
    reasons = (Reason(code="price_below_reference", message="m"),)
    case, _ = _fold(_submitted(), ApplicationEscalated(reasons=reasons, due=date(2026, 3, 13)))
    assert case.application is not None
    assert case.application.status is ApplicationStatus.ESCALATED
    assert case.application.reasons == reasons
