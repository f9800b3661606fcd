"""A license has one public shape, the contract's ``LicenseState``: every other spelling of it is held to it."""

from __future__ import annotations

import dataclasses
import json
import re
import uuid
from datetime import UTC, date, datetime

from services.registry import store
from services.registry.queries import HIDDEN, LicenseView, license_view
from shared.contract.events import BatchMode, Envelope, LicenseExpired, LicenseState, LicenseStatus
from shared.fold import LicenseEntry

POSITION = {"schema_version", "as_of_event", "as_of"}  # the published message's own, not the fold's
FOLD_ONLY = {"vins", "granted_at"}  # the fold's own: what a used-vehicle batch holds, when it was granted

ENTRY = LicenseEntry(
    license_number="26-44-000001",
    case_id=uuid.uuid4(),
    status=LicenseStatus.SUSPENDED,
    applicant_code="91440300MA5FXXXX1X",
    quantity=5,
    balance=3,
    declarations_used=1,
    valid_from=date(2026, 3, 1),
    valid_to=date(2026, 8, 31),
    port_of_exit="CNSHA",
    destination_country="DE",
    batch_mode=BatchMode.SINGLE,
    vins=("LGWEF4A59PH000001",),
    granted_at=datetime(2026, 3, 1, 8, tzinfo=UTC),
)


def _entry_fields() -> list[str]:
    return [f.name for f in dataclasses.fields(LicenseEntry)]


def test_the_folds_license_has_the_contracts_fields_and_only_its_own_beside_them() -> None:
    contract = set(LicenseState.model_fields) - POSITION
    assert set(_entry_fields()) == contract | FOLD_ONLY


def test_the_published_json_has_exactly_the_contracts_fields_in_its_order() -> None:
    cause = Envelope.wrap(
        LicenseExpired(license_number=ENTRY.license_number, expired_on=date(2026, 9, 1)),
        case_id=ENTRY.case_id,
        producer="test",
    )
    published = json.loads(store.license_state_json(ENTRY, cause))
    assert list(published) == [name for name in LicenseState.model_fields if name != "schema_version"]
    assert LicenseState.model_validate(published).balance == ENTRY.balance


def test_the_ledger_table_is_written_with_every_field_of_the_fold_in_order() -> None:
    columns = re.search(r"INSERT INTO licenses AS t \((.*?)\)", store.UPSERT_LICENSES, re.S)
    assert columns is not None
    assert [c.strip() for c in columns.group(1).split(",")] == _entry_fields()
    assert len(store._license_args(ENTRY)) == len(_entry_fields())


def test_a_row_read_back_is_the_entry_written() -> None:
    row = {name: getattr(ENTRY, name) for name in _entry_fields()}
    row |= {"status": ENTRY.status.value, "batch_mode": ENTRY.batch_mode.value, "vins": list(ENTRY.vins)}
    assert store.license_entry(row) == ENTRY  # type: ignore[arg-type]


def test_the_http_view_is_the_contracts_state_without_its_position() -> None:
    assert set(LicenseView.model_fields) == set(LicenseState.model_fields) - set(HIDDEN)
    for name, field in LicenseView.model_fields.items():
        assert field.annotation == LicenseState.model_fields[name].annotation, name
    assert license_view(ENTRY).status == LicenseStatus.SUSPENDED
