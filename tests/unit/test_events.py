import json
import uuid
from datetime import date

import pytest
from pydantic import ValidationError

import samples
from shared.contract.events import ApplicationSubmitted, Envelope, LicenseGranted, derived_event_id


def _granted_envelope() -> Envelope:
    event = LicenseGranted(
        license_number="26-44-000001",
        applicant_code=samples.QILIN_MOTOR,
        valid_from=date(2026, 3, 1),
        valid_to=date(2026, 8, 31),
        quantity=10,
        value="1470000.00",
        currency="CNY",
        port_of_exit="CNSZX",
        destination_country="MX",
        trade_mode="general trade",
        batch_mode="multi",
    )
    return Envelope.wrap(event, case_id=uuid.uuid4(), producer="review")


def test_envelope_round_trips_through_bytes_with_its_typed_payload() -> None:
    envelope = _granted_envelope()
    again = Envelope.from_bytes(envelope.to_bytes())
    assert again == envelope
    assert isinstance(again.payload, LicenseGranted)


def test_envelope_carries_the_design_fields() -> None:
    wire = json.loads(_granted_envelope().to_bytes())
    assert set(wire) == {
        "event_id",
        "type",
        "schema_version",
        "case_id",
        "occurred_at",
        "producer",
        "correlation_id",
        "causation_id",
        "payload",
    }
    assert wire["occurred_at"].endswith("Z")


def test_derived_event_has_deterministic_id_and_names_its_cause() -> None:
    cause = _granted_envelope()
    first = derived_event_id(cause.event_id, "decision")
    assert first == derived_event_id(cause.event_id, "decision")
    assert first != derived_event_id(cause.event_id, "other")
    submitted = Envelope.wrap(
        ApplicationSubmitted(application=samples.application(), channel="http"),
        case_id=cause.case_id,
        producer="t",
        event_id=first,
        causation=cause,
    )
    assert submitted.causation_id == cause.event_id
    assert submitted.correlation_id == cause.correlation_id


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda w: {**w, "type": "LicenseSold"}, "unknown event type"),
        (lambda w: {**w, "schema_version": 7}, "schema_version 7 is not supported"),
        (lambda w: {**w, "payload": {**w["payload"], "quantity": 0}}, "greater than or equal to 1"),
        (lambda w: {**w, "occurred_at": "2026-01-01T00:00:00"}, "timezone"),
    ],
)
def test_bad_envelopes_are_refused_with_a_readable_reason(mutate, message) -> None:  # type: ignore[no-untyped-def]
    wire = json.loads(_granted_envelope().to_bytes())
    with pytest.raises(ValidationError, match=message):
        Envelope.from_bytes(json.dumps(mutate(wire)).encode())


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("destination_country", "EU"),
        ("destination_country", "XX"),
        ("commodity_code", "870380109"),
        ("port_of_exit", "USNYC"),
        ("currency", "ABC"),
        ("quantity", 0),
        ("unit_price", "-1"),
        ("applicant", {"code": "123", "name": "X", "role": "manufacturer"}),
        ("condition", "nearly new"),
    ],
)
def test_application_refuses_bad_fields(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as error:
        samples.application(**{field: value})
    assert error.value.errors()[0]["loc"][0] == field


def test_used_vehicle_application_lists_each_vehicle() -> None:
    vehicle = {
        "vin": "LA1AB2CD3EF456789",
        "first_registration_date": "2026-01-10",
        "registered_owner": samples.QILIN_MOTOR,
        "transfer_date": "2026-02-01",
    }
    ok = samples.application(condition="used", quantity=1, used_vehicles=[vehicle])
    assert ok.used_vehicles[0].vin == "LA1AB2CD3EF456789"
    with pytest.raises(ValidationError, match="1 expected, 0 given"):
        samples.application(condition="used", quantity=1)
    with pytest.raises(ValidationError, match="only for condition 'used'"):
        samples.application(used_vehicles=[vehicle])
    with pytest.raises(ValidationError, match="lists a VIN twice"):
        samples.application(condition="used", quantity=2, used_vehicles=[vehicle, vehicle])
