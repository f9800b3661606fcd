"""The ledger's published license state, serialised straight from the fold, reads as the contract writes it."""

import uuid
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from services.registry.store import license_state_json
from shared.contract.events import Envelope, LicenseState, LicenseSuspended, Reason
from shared.fold import Case, apply
from tests.histories import export, granted

VINS = ("LGWEF4A59PH000001", "LGWEF4A59PH000002")


@pytest.mark.parametrize(
    ("event", "occurred_at"),
    [
        (granted("26-44-000001", 10, valid_from=date(2026, 3, 1), valid_to=date(2026, 8, 31)), None),
        (granted("26-44-000002", 2, batch_mode="single", vins=VINS), datetime(2026, 5, 1, 8, tzinfo=UTC)),
        # A producer's time in another zone: the envelope keeps it in UTC, so does the state.
        (granted("26-44-000003", 7), datetime(2026, 5, 1, 16, 30, 0, 250, tzinfo=timezone(timedelta(hours=8)))),
    ],
)
def test_the_state_json_is_what_the_contract_serialises(event: object, occurred_at: datetime | None) -> None:
    case_id = uuid.uuid4()
    grant = Envelope.wrap(event, case_id=case_id, producer="test", occurred_at=occurred_at)  # type: ignore[arg-type]
    grant = Envelope.from_bytes(grant.to_bytes())  # as the fold gets it: read from the log
    case, _ = apply(Case(case_id=case_id), grant)
    number = grant.payload.license_number  # type: ignore[attr-defined]
    valid_from = grant.payload.valid_from  # type: ignore[attr-defined]
    suspended = LicenseSuspended(
        license_number=number, officer="officer-7", reason=Reason(code="inspection", message="an inspection")
    )
    later = [export(number, 1, 1, export_date=str(valid_from)), suspended]
    for step in [grant, *(Envelope.wrap(e, case_id=case_id, producer="test") for e in later)]:
        case, _ = apply(case, Envelope.from_bytes(step.to_bytes()))
        license_ = case.licenses[number]
        fast = license_state_json(license_, step)
        validated = LicenseState(
            license_number=license_.license_number,
            case_id=license_.case_id,
            status=license_.status.value,
            applicant_code=license_.applicant_code,
            quantity=license_.quantity,
            balance=license_.balance,
            declarations_used=license_.declarations_used,
            valid_from=license_.valid_from,
            valid_to=license_.valid_to,
            port_of_exit=license_.port_of_exit,
            destination_country=license_.destination_country,
            batch_mode=license_.batch_mode,
            as_of_event=step.event_id,
            as_of=step.occurred_at,
        )
        assert fast == validated.model_dump_json(exclude={"schema_version"})  # the ledger's row; published with it
        assert LicenseState.model_validate_json(fast) == validated
