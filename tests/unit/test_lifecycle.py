"""The fold over the rest of the lifecycle: returns, resubmissions, withdrawals and officers' license actions."""

import uuid
from datetime import date

import pytest
from pydantic import ValidationError

import samples
from shared.contract.events import (
    ApplicationEscalated,
    ApplicationRejected,
    ApplicationResubmitted,
    ApplicationReturned,
    ApplicationStatus,
    ApplicationSubmitted,
    ApplicationWithdrawn,
    Envelope,
    Event,
    ExportRecorded,
    LicenseGranted,
    LicenseReinstated,
    LicenseReplaced,
    LicenseRevoked,
    LicenseStatus,
    LicenseSuspended,
    Reason,
)
from shared.fold import Case, ExportEntry, Outcome, apply
from tests.histories import granted

CASE = uuid.uuid4()
NUMBER = "26-44-000001"
SUCCESSOR = "26-44-000002"
OFFICER = "officer.li"
WHY = Reason(code="investigation", message="customs flagged the contract")


def _env(event: Event) -> Envelope:
    return Envelope.wrap(event, case_id=CASE, producer="test")


def _fold(*events: Event) -> tuple[Case, list[ExportEntry]]:
    case, exports = Case(case_id=CASE), []
    for event in events:
        case, export = apply(case, _env(event))
        if export is not None:
            exports.append(export)
    return case, exports


def _submitted(**overrides: object) -> ApplicationSubmitted:
    return ApplicationSubmitted(application=samples.application(**overrides), channel="http")


def _escalated() -> ApplicationEscalated:
    return ApplicationEscalated(reasons=(Reason(code="price_below_reference", message="m"),), due=date(2026, 3, 13))


def _granted(quantity: int = 10, batch_mode: str = "multi", vins: tuple[str, ...] = ()) -> LicenseGranted:
    return granted(
        NUMBER, quantity, valid_from=date(2026, 3, 1), valid_to=date(2026, 8, 31), batch_mode=batch_mode, vins=vins
    )


def _export(sequence: int, quantity: int = 4, number: str = NUMBER, **overrides: object) -> ExportRecorded:
    data = samples.declaration_data(number, f"53162026{sequence:010d}", quantity=quantity, export_date="2026-04-01")
    data.update(overrides)
    return ExportRecorded.model_validate(data)


def _replaced(quantity: int | None = None, **overrides: object) -> LicenseReplaced:
    data: dict[str, object] = {
        "license_number": NUMBER,
        "successor_license_number": SUCCESSOR,
        "officer": OFFICER,
        "reason": Reason(code="destination_changed", message="the buyer moved the order to Chile"),
        "valid_from": date(2026, 4, 1),
        "valid_to": date(2026, 8, 31),
        "port_of_exit": "CNSZX",
        "destination_country": "CL",
        "quantity": quantity,
    }
    return LicenseReplaced.model_validate({**data, **overrides})


def _suspended() -> LicenseSuspended:
    return LicenseSuspended(license_number=NUMBER, officer=OFFICER, reason=WHY)


def _reinstated() -> LicenseReinstated:
    return LicenseReinstated(license_number=NUMBER, officer=OFFICER)


def _revoked() -> LicenseRevoked:
    return LicenseRevoked(license_number=NUMBER, officer=OFFICER, reason=WHY)


def _returned() -> ApplicationReturned:
    return ApplicationReturned(officer=OFFICER, reasons=(Reason(code="price_unexplained", message="attach it"),))


def test_a_returned_application_keeps_what_to_correct() -> None:
    case, _ = _fold(_submitted(), _escalated(), _returned())
    assert case.application is not None
    assert case.application.status is ApplicationStatus.RETURNED
    assert [r.code for r in case.application.reasons] == ["price_unexplained"]


def test_a_resubmission_puts_the_corrected_application_back_as_submitted() -> None:
    corrected = ApplicationResubmitted(application=samples.application(quantity=6), returned_event_id=uuid.uuid4())
    case, _ = _fold(_submitted(), _escalated(), _returned(), corrected, _granted(quantity=6))
    assert case.application is not None
    assert (case.application.status, case.application.quantity) == (ApplicationStatus.APPROVED, 6)


def test_a_resubmission_of_an_application_that_was_not_returned_changes_nothing() -> None:
    corrected = ApplicationResubmitted(application=samples.application(quantity=6), returned_event_id=uuid.uuid4())
    case, _ = _fold(_submitted(), _escalated(), corrected)
    assert case.application is not None
    assert (case.application.status, case.application.quantity) == (ApplicationStatus.ESCALATED, 10)


@pytest.mark.parametrize("before", [[], [_escalated()]], ids=["submitted", "escalated"])
def test_an_undecided_application_can_be_withdrawn(before: list[Event]) -> None:
    case, _ = _fold(_submitted(), *before, ApplicationWithdrawn())
    assert case.application is not None and case.application.status is ApplicationStatus.WITHDRAWN


def test_a_withdrawal_after_the_decision_is_void() -> None:
    case, _ = _fold(_submitted(), _granted(), ApplicationWithdrawn())
    assert case.application is not None and case.application.status is ApplicationStatus.APPROVED
    assert case.licenses[NUMBER].status is LicenseStatus.ACTIVE


@pytest.mark.parametrize(
    "decision",
    [_granted(), ApplicationRejected(reasons=(WHY,)), _escalated(), _returned()],
    ids=["granted", "rejected", "escalated", "returned"],
)
def test_a_decision_after_the_withdrawal_is_void(decision: Event) -> None:
    case, _ = _fold(_submitted(), ApplicationWithdrawn(), decision)
    assert case.application is not None and case.application.status is ApplicationStatus.WITHDRAWN
    assert case.licenses == {}


def test_export_on_a_suspended_license_is_refused_and_passes_once_reinstated() -> None:
    case, exports = _fold(_submitted(), _granted(), _suspended(), _export(1), _reinstated(), _export(2))
    assert [e.outcome for e in exports] == [Outcome.REFUSED, Outcome.ACCEPTED]
    assert exports[0].reason is not None and exports[0].reason.code == "license_suspended"
    assert (case.licenses[NUMBER].status, case.licenses[NUMBER].balance) == (LicenseStatus.ACTIVE, 6)


@pytest.mark.parametrize("before", [[], [_suspended()]], ids=["active", "suspended"])
def test_export_on_a_revoked_license_is_refused(before: list[Event]) -> None:
    case, exports = _fold(_submitted(), _granted(), *before, _revoked(), _export(1))
    assert case.licenses[NUMBER].status is LicenseStatus.REVOKED
    assert exports[0].reason is not None and exports[0].reason.code == "license_revoked"


@pytest.mark.parametrize(
    ("actions", "status"),
    [
        ([_reinstated()], LicenseStatus.ACTIVE),  # not suspended: nothing to reinstate
        ([_suspended(), _suspended()], LicenseStatus.SUSPENDED),
        ([_revoked(), _reinstated()], LicenseStatus.REVOKED),  # revoked is for good
        ([_revoked(), _suspended()], LicenseStatus.REVOKED),
        ([_replaced(), _suspended()], LicenseStatus.REPLACED),
        ([_replaced(), _revoked()], LicenseStatus.REPLACED),
    ],
)
def test_an_action_that_does_not_apply_to_the_license_state_changes_nothing(
    actions: list[Event], status: LicenseStatus
) -> None:
    case, _ = _fold(_submitted(), _granted(), *actions)
    assert case.licenses[NUMBER].status is status


def test_actions_on_an_unknown_license_change_nothing() -> None:
    before, _ = _fold(_submitted(), _granted())
    for action in (_suspended(), _reinstated(), _revoked(), _replaced()):
        after, _ = apply(before, _env(action.model_copy(update={"license_number": "26-44-999999"})))
        assert after == before


def test_a_replacement_ends_the_old_license_and_the_successor_carries_the_remaining_balance() -> None:
    case, _ = _fold(_submitted(), _granted(), _export(1, 3), _replaced())
    old, successor = case.licenses[NUMBER], case.licenses[SUCCESSOR]
    assert old.status is LicenseStatus.REPLACED
    assert (successor.status, successor.quantity, successor.balance, successor.declarations_used) == (
        LicenseStatus.ACTIVE,
        7,
        7,
        0,
    )
    assert (successor.destination_country, successor.valid_from, successor.case_id) == ("CL", date(2026, 4, 1), CASE)
    assert case.application is not None and case.application.license_number == SUCCESSOR


def test_after_a_replacement_the_old_license_refuses_exports_and_the_successor_accepts_them() -> None:
    case, exports = _fold(
        _submitted(), _granted(), _replaced(), _export(1, 2), _export(2, 2, number=SUCCESSOR), _export(3, 9, SUCCESSOR)
    )
    assert [(e.outcome, e.reason.code if e.reason else None) for e in exports] == [
        (Outcome.REFUSED, "license_replaced"),
        (Outcome.ACCEPTED, None),
        (Outcome.REFUSED, "exceeds_balance"),
    ]
    assert case.licenses[SUCCESSOR].balance == 8
    assert case.licenses[NUMBER].balance == 10


@pytest.mark.parametrize(("cap", "carried"), [(4, 4), (7, 7), (50, 7)])
def test_a_successor_quantity_is_capped_by_the_officer_but_never_above_the_remaining_balance(
    cap: int, carried: int
) -> None:
    case, _ = _fold(_submitted(), _granted(), _export(1, 3), _replaced(quantity=cap))
    assert case.licenses[SUCCESSOR].balance == carried


def test_a_used_vehicle_successor_carries_the_whole_batch_and_its_vins() -> None:
    vins = ("LA1AB2CD3EF456789", "LA1AB2CD3EF456780")
    case, exports = _fold(
        _granted(quantity=2, batch_mode="single", vins=vins),
        _replaced(quantity=1),
        _export(1, 2, number=SUCCESSOR, vins=vins, port_of_exit="CNSZX"),
    )
    assert case.licenses[SUCCESSOR].vins == vins
    assert exports[0].outcome is Outcome.ACCEPTED


@pytest.mark.parametrize(
    "before", [[_suspended()], [_revoked()], [_export(1, 10)]], ids=["suspended", "revoked", "exhausted"]
)
def test_only_an_active_license_is_replaced(before: list[Event]) -> None:
    case, _ = _fold(_submitted(), _granted(), *before, _replaced())
    assert SUCCESSOR not in case.licenses
    assert case.licenses[NUMBER].status is not LicenseStatus.REPLACED


def test_a_license_is_not_its_own_successor_and_its_successor_starts_before_it_ends() -> None:
    with pytest.raises(ValidationError, match="own successor"):
        _replaced(successor_license_number=NUMBER)
    with pytest.raises(ValidationError, match="valid_to must not precede"):
        _replaced(valid_to=date(2026, 3, 31))


def test_the_lifecycle_fold_is_deterministic() -> None:
    events = [
        _env(e)
        for e in (_submitted(), _granted(), _export(1, 3), _suspended(), _export(2, 1), _reinstated(), _replaced())
    ]

    def run() -> Case:
        case = Case(case_id=CASE)
        for envelope in events:
            case, _ = apply(case, envelope)
        return case

    assert run() == run()
