"""The pure parts of officers' actions and of the applicant's side: terms an officer may set, statuses followed."""

import uuid
from datetime import UTC, date, datetime

import pytest

import samples
from services.review.officer.actions import Replacement, approved_grant, successor_terms
from services.review.rules import Terms
from shared import fold
from shared.contract.events import (
    ApplicationEscalated,
    ApplicationResubmitted,
    ApplicationReturned,
    ApplicationStatus,
    ApplicationSubmitted,
    ApplicationWithdrawn,
    BatchMode,
    Envelope,
    Event,
    LicenseStatus,
    Reason,
)
from shared.contract.refusal import Refusal
from shared.fold import Case, LicenseEntry

TODAY = date(2026, 3, 10)
WHY = Reason(code="investigation", message="m")


def test_an_officer_grants_the_application_terms_by_default() -> None:
    grant = approved_grant(samples.application(), TODAY, quantity=None, valid_to=None)
    assert (grant.quantity, grant.valid_from, grant.valid_to, grant.batch_mode) == (
        10,
        TODAY,
        date(2026, 9, 9),
        BatchMode.MULTI,
    )


def test_an_officer_grants_fewer_vehicles_and_a_shorter_validity() -> None:
    grant = approved_grant(samples.application(), TODAY, quantity=4, valid_to=date(2026, 4, 30))
    assert (grant.quantity, grant.valid_to) == (4, date(2026, 4, 30))


@pytest.mark.parametrize(
    ("quantity", "valid_to", "code"),
    [
        (11, None, "quantity_above_application"),
        (None, date(2026, 9, 10), "validity_out_of_range"),
        (None, date(2026, 3, 9), "validity_out_of_range"),
    ],
)
def test_an_officer_cannot_grant_more_or_longer_than_the_rules_allow(
    quantity: int | None, valid_to: date | None, code: str
) -> None:
    with pytest.raises(Refusal) as refused:
        approved_grant(samples.application(), TODAY, quantity=quantity, valid_to=valid_to)
    assert refused.value.reason.code == code


def test_a_used_vehicle_batch_is_granted_whole_or_not_at_all() -> None:
    vehicle = samples.used_vehicle_data("LA1AB2CD3EF456789", date(2025, 1, 10))
    used = samples.used_application(vehicle, samples.used_vehicle_data("LA1AB2CD3EF456780", date(2025, 1, 10)))
    with pytest.raises(Refusal, match="one batch"):
        approved_grant(used, TODAY, quantity=1, valid_to=None)


def _license(**overrides: object) -> LicenseEntry:
    data: dict[str, object] = {
        "license_number": "26-44-000001",
        "case_id": uuid.uuid4(),
        "status": LicenseStatus.ACTIVE,
        "applicant_code": samples.QILIN_MOTOR,
        "quantity": 10,
        "balance": 7,
        "declarations_used": 1,
        "valid_from": date(2026, 3, 1),
        "valid_to": date(2026, 8, 31),
        "port_of_exit": "CNSZX",
        "destination_country": "MX",
        "batch_mode": BatchMode.MULTI,
        "vins": (),
        "granted_at": datetime(2026, 3, 1, tzinfo=UTC),
    }
    return LicenseEntry(**{**data, **overrides})  # type: ignore[arg-type]


def test_a_successor_keeps_the_old_terms_unless_changed_starts_today_and_carries_the_balance() -> None:
    terms = successor_terms(_license(), Replacement(officer="o", reason=WHY, destination_country="CL"), TODAY)
    assert terms == Terms(
        valid_from=TODAY, valid_to=date(2026, 8, 31), quantity=7, port_of_exit="CNSZX", destination_country="CL"
    )


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        (Replacement(officer="o", reason=WHY, valid_to=date(2026, 12, 31)), "validity_out_of_range"),
        (Replacement(officer="o", reason=WHY, valid_from=date(2026, 3, 1)), "validity_out_of_range"),
        (Replacement(officer="o", reason=WHY, quantity=11), "quantity_above_license"),
    ],
)
def test_a_successor_stays_within_rule_7_and_the_licensed_quantity(request_: Replacement, code: str) -> None:
    with pytest.raises(Refusal) as refused:
        successor_terms(_license(), request_, TODAY)
    assert refused.value.reason.code == code


def _follow(*events: Event) -> Case:
    case = Case(case_id=uuid.uuid4())
    for event in events:
        case, _ = fold.apply(case, Envelope.wrap(event, case_id=case.case_id, producer="test"))
    return case


def test_the_case_fold_follows_a_return_and_a_resubmission() -> None:
    returned = ApplicationReturned(officer="o", reasons=(WHY,))
    submitted = ApplicationSubmitted(application=samples.application(), channel="http")
    escalated = ApplicationEscalated(reasons=(WHY,), due=TODAY)
    case = _follow(submitted, escalated, returned)
    assert case.application is not None and case.application.status is ApplicationStatus.RETURNED
    again = ApplicationResubmitted(application=samples.application(), returned_event_id=uuid.uuid4())
    resubmitted = _follow(submitted, escalated, returned, again)
    assert resubmitted.application is not None and resubmitted.application.status is ApplicationStatus.SUBMITTED


def test_a_withdrawal_after_a_return_changes_nothing() -> None:
    submitted = ApplicationSubmitted(application=samples.application(), channel="http")
    case = _follow(submitted, ApplicationReturned(officer="o", reasons=(WHY,)), ApplicationWithdrawn())
    assert case.application is not None and case.application.status is ApplicationStatus.RETURNED
