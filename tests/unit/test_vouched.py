"""The vouched reader (``shared/platform/vouched.py``) gives exactly what the contract's models give.

A replay from a trusted checkpoint reads the records it vouches for with it, and is then held to the
checkpoint's checksum: a reading that differed would only cost a second replay, but it must not differ.
Every event type is generated in the forms a producer may write it: text padded with spaces (the models strip
it), times at any offset (the envelope puts them in UTC), amounts as strings or numbers, ids with or without
hyphens, optional fields given, null or left out, keys in any order, older schema versions. Then arbitrary
changes to those documents: whatever the vouched reader reads, the models read the same.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from shared.contract.events import (
    EVENT_TYPES,
    BatchMode,
    Condition,
    Envelope,
    Role,
)
from shared.platform.vouched import read_vouched

Doc = dict[str, Any]

printable = st.characters(codec="utf-8", categories=("L", "N", "P", "S", "Zs"))


def pattern(regex: str) -> st.SearchStrategy[str]:
    return st.from_regex(regex, fullmatch=True)


def text(max_size: int = 40) -> st.SearchStrategy[str]:
    """A person's text, sometimes padded with spaces (the models strip them)."""
    core = st.text(printable, min_size=1, max_size=max_size).filter(lambda t: t.strip() == t and t)
    padding = st.sampled_from(["", " ", "  "])
    return st.builds(lambda left, t, right: left + t + right, padding, core, padding)


uscc = pattern(r"[0-9A-HJ-NP-RTUW-Y]{2}\d{6}[0-9A-HJ-NP-RTUW-Y]{10}")
vin = pattern(r"[A-HJ-NPR-Z0-9]{17}")
license_number = pattern(r"\d{2}-\d{2}-\d{6}")
port = pattern(r"CN[A-Z0-9]{3}")
officer = pattern(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,20}")
country = st.sampled_from(["CN", "MX", "DE", "BR", "AE", "TH"])
currency = st.sampled_from(["CNY", "USD", "EUR"])
days = st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31))


def amount(minimum: str) -> st.SearchStrategy[Any]:
    """An amount with at most two decimal places, written as a string or as a JSON number."""
    value = st.decimals(min_value=Decimal(minimum), max_value=Decimal("999999999.99"), places=2, allow_nan=False)
    return st.one_of(value.map(str), value.map(lambda d: json.loads(str(d)) if d == d.to_integral() else str(d)))


def an_id(value: uuid.UUID) -> st.SearchStrategy[str]:
    return st.sampled_from([str(value), value.hex, str(value).upper()])


ids = st.uuids().flatmap(an_id)
reason = st.fixed_dictionaries({"code": pattern(r"[a-z][a-z0-9_]{0,20}"), "message": st.text(printable, max_size=60)})
reasons = st.lists(reason, min_size=1, max_size=3)


def optional(name: str, value: st.SearchStrategy[Any], *, null: bool = True) -> st.SearchStrategy[Doc]:
    """The field given, null (where its type allows it), or left out."""
    choices = [st.just({}), value.map(lambda v: {name: v})]
    return st.one_of(*choices, st.just({name: None})) if null else st.one_of(*choices)


def merged(*parts: st.SearchStrategy[Doc]) -> st.SearchStrategy[Doc]:
    return st.tuples(*parts).map(lambda ds: {k: v for d in ds for k, v in d.items()})


def fields(**values: st.SearchStrategy[Any]) -> st.SearchStrategy[Doc]:
    return st.fixed_dictionaries(values)


party = fields(code=uscc, name=text())


@st.composite
def ordered_days(draw: st.DrawFn) -> tuple[str, str]:
    first, second = sorted((draw(days), draw(days)))
    return first.isoformat(), second.isoformat()


@st.composite
def application(draw: st.DrawFn) -> Doc:
    used = draw(st.booleans())
    quantity = draw(st.integers(1, 3)) if used else draw(st.integers(1, 100_000))
    vehicles: list[Doc] = []
    for v in draw(st.lists(vin, min_size=quantity, max_size=quantity, unique=True)) if used else []:
        registered, transferred = draw(ordered_days())
        owner = draw(uscc)
        vehicles.append(
            {"vin": v, "first_registration_date": registered, "registered_owner": owner, "transfer_date": transferred}
        )
    doc = draw(
        merged(
            fields(
                agency_code=pattern(r"\d{2}"),
                applicant=merged(party, fields(role=st.sampled_from([r.value for r in Role]))),
                manufacturer=party,
                commodity_code=pattern(r"\d{10}"),
                model_code=pattern(r"[A-Z0-9-]{3,20}"),
                brand=text(),
                unit_price=amount("0.01"),
                currency=currency,
                destination_country=country,
                trade_mode=text(),
                contract_number=text(),
                port_of_exit=port,
                payment_mode=text(),
                transport_mode=text(),
            ),
            optional("license_year", st.integers(2000, 2100)),
        )
    )
    doc |= {"condition": (Condition.USED if used else Condition.NEW).value, "quantity": quantity}
    if used or draw(st.booleans()):
        doc["used_vehicles"] = vehicles
    return doc


@st.composite
def validity(draw: st.DrawFn) -> Doc:
    valid_from, valid_to = draw(ordered_days())
    return {"valid_from": valid_from, "valid_to": valid_to}


declared = merged(
    fields(
        declaration_number=pattern(r"[A-Z0-9]{6,24}"),
        license_number=license_number,
        port_of_exit=port,
        export_date=days.map(date.isoformat),
        quantity=st.integers(1, 2**31 - 1),
        value=amount("0"),
        currency=currency,
    ),
    optional("vins", st.lists(vin, max_size=3), null=False),
)


@st.composite
def replaced(draw: st.DrawFn) -> Doc:
    old, successor = draw(st.lists(license_number, min_size=2, max_size=2, unique=True))
    terms = draw(
        merged(
            validity(),
            fields(officer=officer, reason=reason, port_of_exit=port, destination_country=country),
            optional("quantity", st.integers(1, 1000)),
        )
    )
    return {"license_number": old, "successor_license_number": successor, **terms}


PAYLOADS: dict[str, st.SearchStrategy[Doc]] = {
    "ApplicationSubmitted": fields(application=application(), channel=st.sampled_from(["http", "intake"])),
    "ApplicationRejected": merged(fields(reasons=reasons), optional("officer", officer)),
    "ApplicationEscalated": fields(reasons=reasons, due=days.map(date.isoformat)),
    "LicenseGranted": merged(
        validity(),
        fields(
            license_number=license_number,
            applicant_code=uscc,
            quantity=st.integers(1, 1000),
            value=amount("0"),
            currency=currency,
            port_of_exit=port,
            destination_country=country,
            trade_mode=text(),
            batch_mode=st.sampled_from([m.value for m in BatchMode]),
        ),
        optional("vins", st.lists(vin, max_size=3), null=False),
        optional("officer", officer),
    ),
    "ExportRecorded": declared,
    "ExportRefused": merged(declared, fields(reason=reason)),
    "LicenseExpired": fields(license_number=license_number, expired_on=days.map(date.isoformat)),
    "ApplicationReturned": fields(officer=officer, reasons=reasons),
    "ApplicationResubmitted": fields(application=application(), returned_event_id=ids),
    "ApplicationWithdrawn": optional("reason", text()),
    "LicenseSuspended": fields(license_number=license_number, officer=officer, reason=reason),
    "LicenseReinstated": merged(fields(license_number=license_number, officer=officer), optional("note", text())),
    "LicenseRevoked": fields(license_number=license_number, officer=officer, reason=reason),
    "LicenseReplaced": replaced(),
}
assert PAYLOADS.keys() == EVENT_TYPES.keys(), "a new event type needs its generator here"


@st.composite
def moments(draw: st.DrawFn) -> str:
    """A time at any offset (or Z), with or without a fraction of a second."""
    at = draw(st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2098, 1, 1)))
    if not draw(st.booleans()):
        at = at.replace(microsecond=0)
    offset = draw(st.integers(-14 * 60, 14 * 60))
    written = at.replace(tzinfo=timezone(timedelta(minutes=offset))).isoformat()
    return written.replace("+00:00", "Z") if offset == 0 and draw(st.booleans()) else written


@st.composite
def envelopes(draw: st.DrawFn) -> Doc:
    kind = draw(st.sampled_from(sorted(EVENT_TYPES)))
    current = EVENT_TYPES[kind].SCHEMA_VERSION
    envelope = draw(
        merged(
            fields(
                event_id=ids,
                case_id=ids,
                occurred_at=moments(),
                producer=st.text(printable, min_size=1, max_size=64),
                correlation_id=ids,
                payload=PAYLOADS[kind],
            ),
            optional("causation_id", ids),
        )
    )
    envelope |= {"type": kind, "schema_version": draw(st.sampled_from([current, current, current, 1]))}
    keys = draw(st.permutations(sorted(envelope)))
    return {key: envelope[key] for key in keys}


def same(vouched: BaseModel, validated: BaseModel) -> None:
    """Equal in every way a reader could tell: value, types, the fields set, field order, the JSON."""
    assert type(vouched) is type(validated)
    assert vouched == validated
    assert repr(vouched) == repr(validated)
    assert vouched.model_dump_json() == validated.model_dump_json()
    assert vouched.model_fields_set == validated.model_fields_set
    assert list(vouched.__dict__) == list(validated.__dict__)
    for name, value in validated.__dict__.items():
        mine = vouched.__dict__[name]
        assert type(mine) is type(value), name
        if isinstance(value, BaseModel):
            same(mine, value)
        elif isinstance(value, tuple):
            for inner, theirs in zip(mine, value, strict=True):
                if isinstance(theirs, BaseModel):
                    same(inner, theirs)
                else:
                    assert type(inner) is type(theirs), name


@given(envelopes())
@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
def test_the_vouched_reader_reads_every_event_as_the_models_do(document: Doc) -> None:
    raw = json.dumps(document).encode()
    validated = Envelope.from_bytes(raw)  # the generators write only what the contract admits
    vouched = read_vouched(raw)
    if document["schema_version"] != EVENT_TYPES[document["type"]].SCHEMA_VERSION:
        assert vouched is None  # the upcasters read older versions, on the full path
        return
    assert vouched is not None, "a current event in a form the contract admits must read the fast way"
    same(vouched, validated)
    written = validated.to_bytes()  # and the form the services write it in
    again = read_vouched(written)
    assert again is not None
    same(again, Envelope.from_bytes(written))


@st.composite
def changed(draw: st.DrawFn) -> Doc:
    """An event's document with one value somewhere replaced by anything JSON holds, or one key added or removed."""
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=30),
        st.lists(st.integers(), max_size=2),
    )
    document = draw(envelopes())
    path: list[Any] = []
    node: Any = document
    while isinstance(node, dict | list) and node and draw(st.booleans()):
        key = draw(st.sampled_from(sorted(node) if isinstance(node, dict) else list(range(len(node)))))
        path.append(key)
        node = node[key]
    copy: Doc = json.loads(json.dumps(document))
    target = copy
    for key in path[:-1]:
        target = target[key]
    action = draw(st.sampled_from(["replace", "drop", "add"]))
    if not path or action == "add":
        holder = target[path[-1]] if path and isinstance(target[path[-1]], dict) else copy
        holder[draw(st.sampled_from(["extra", "type", "payload", "schema_version", "vins", "reason"]))] = draw(leaves)
    elif action == "drop" and isinstance(target, dict):
        del target[path[-1]]
    else:
        target[path[-1]] = draw(leaves)
    return copy


@given(changed())
@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
def test_whatever_both_read_of_a_changed_event_they_read_alike(document: Doc) -> None:
    """The vouched reader checks no constraint (what it reads was checked when it was applied), so it may read
    what the models refuse; but what both read, they read alike, and it never raises."""
    raw = json.dumps(document).encode()
    vouched = read_vouched(raw)
    try:
        validated = Envelope.from_bytes(raw)
    except ValidationError:
        return
    assume(vouched is not None)
    assert vouched is not None
    same(vouched, validated)


def test_bytes_that_are_not_an_event_are_left_to_the_full_reading() -> None:
    for raw in (b"", b"null", b"[]", b"{", b'{"type": "NoSuchEvent", "schema_version": 1}', "é".encode("latin-1")):
        assert read_vouched(raw) is None


def test_a_time_that_leaves_the_calendar_in_utc_is_left_to_the_full_reading() -> None:
    document = {
        "event_id": str(uuid.uuid4()),
        "type": "LicenseExpired",
        "schema_version": 1,
        "case_id": str(uuid.uuid4()),
        "occurred_at": "0001-01-01T00:00:00+01:00",
        "producer": "review",
        "correlation_id": str(uuid.uuid4()),
        "payload": {"license_number": "26-44-000001", "expired_on": "2026-05-01"},
    }
    assert read_vouched(json.dumps(document).encode()) is None


def test_a_time_without_its_offset_is_left_to_the_full_reading() -> None:
    moment = datetime(2026, 5, 1, 8, tzinfo=UTC)
    event = {"license_number": "26-44-000001", "expired_on": "2026-05-01"}
    document = {
        "event_id": str(uuid.uuid4()),
        "type": "LicenseExpired",
        "schema_version": 1,
        "case_id": str(uuid.uuid4()),
        "occurred_at": moment.isoformat(),
        "producer": "review",
        "correlation_id": str(uuid.uuid4()),
        "payload": event,
    }
    read = read_vouched(json.dumps(document).encode())
    assert read is not None and read.occurred_at == moment and read.occurred_at.tzinfo is UTC
    document["occurred_at"] = moment.replace(tzinfo=None).isoformat()
    assert read_vouched(json.dumps(document).encode()) is None
