"""Bad input is isolated: each refused intake message lands on the dead-letter topic, whole, with its
reason; the good messages around it, even those behind it in the same partition, still land.

A corpus of bad messages of many kinds, interleaved with good ones, goes to both intake topics while
the three services run in-process. Good applications must be decided and appear in the registry;
good exports must be judged by the ledger; every bad message must appear on the dead-letter topic
once, with its original bytes and headers and the reason code its kind calls for, and nothing else.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from functools import partial
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer, ConsumerRecord

import samples
from services.applications import app as applications
from services.registry import app as registry
from services.review import app as review
from shared.contract.events import ApplicationSubmitted, Envelope
from shared.contract.topics import Topics
from tests.infra import Infrastructure
from tests.support import eventually, everything_on, producer, read_topic, serving, signed

MAX_MESSAGE_BYTES = 64 * 1024
AGENCY = b"gd-commerce"  # the key of most application messages, bad and good: they share a partition
CUSTOMS = b"gac-shenzhen"  # the same for export messages
KIND = "corpus.kind"  # a header naming each message's kind, to match dead letters to the corpus

Headers = list[tuple[str, bytes | None]]


@dataclass(frozen=True)
class Message:
    """One message of a corpus: what is sent, and what must come of it."""

    kind: str
    value: bytes | None
    code: str | None = None  # the dead-letter reason code of a bad message; None for a good one
    key: bytes | None = AGENCY
    headers: tuple[tuple[str, bytes | None], ...] = ()

    def all_headers(self) -> Headers:
        """Its headers as sent: its kind, its own, and a signature by the trusted test key, so that each bad
        message is refused for what is wrong with it (signatures are checked after the content)."""
        signature: Headers = list(signed(self.value)) if self.value is not None else []
        return [(KIND, self.kind.encode()), *self.headers, *signature]


@dataclass(frozen=True)
class GoodApplication:
    message: Message
    application_id: uuid.UUID
    status: str
    reason_codes: tuple[str, ...] = ()


@dataclass(frozen=True)
class GoodExport:
    message: Message
    declaration_number: str
    outcome: str
    reason_code: str | None = None


def _json(data: Any) -> bytes:
    return json.dumps(data).encode()


def _command(kind: str, payload: Any, /, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "command_id": str(uuid.uuid4()),
        "type": kind,
        "schema_version": 1,
        "sender": "gd-commerce",
        "payload": payload,
    }
    data.update(overrides)
    return data


def _submit(application: dict[str, Any] | None = None, **overrides: Any) -> dict[str, Any]:
    payload = {"application_id": str(uuid.uuid4()), "application": application or samples.application_data()}
    return _command("SubmitApplication", payload, **overrides)


def _without(data: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in keys}


def _export(license_number: str, declaration_number: str, **overrides: Any) -> dict[str, Any]:
    declaration = samples.declaration_data(license_number, declaration_number, **overrides)
    return _command("RecordExport", {"declaration": declaration}, sender="gac-shenzhen")


def _declaration_number() -> str:
    return f"BAD{uuid.uuid4().hex[:15].upper()}"


def _used_vehicle(vin: str) -> dict[str, str]:
    return {
        "vin": vin,
        "first_registration_date": "2024-03-01",
        "registered_owner": samples.HAITONG_EXPORT,
        "transfer_date": "2025-01-15",
    }


def _deeply_nested() -> bytes:
    """A command whose application is an array nested 20,000 deep (40 KB): deeper than Python's JSON reader recurses."""
    placeholder = _json(_submit({"deep": True}))
    return placeholder.replace(b'{"deep": true}', b"[" * 20_000 + b"]" * 20_000)


def _huge_integer() -> bytes:
    """A command whose quantity has more digits than a JSON reader converts (a valid JSON number)."""
    return _json(_submit()).replace(b'"quantity": 10', b'"quantity": 1' + b"0" * 5000)


def _duplicate_key() -> bytes:
    """A command naming its type twice: which one wins depends on the reader, so none may."""
    return _json(_submit()).replace(
        b'"type": "SubmitApplication"', b'"type": "RecordExport", "type": "SubmitApplication"'
    )


def bad_applications() -> list[Message]:
    """Every kind of bad message sent to the applications intake topic, with the reason it earns."""
    good = _json(_submit())
    app = samples.application_data
    return [
        # Not JSON at all, or nothing.
        Message("truncated_json", good[: len(good) // 2], "malformed_json"),
        Message("invalid_utf8", b'{"type": "Submit\xffApplication"}', "malformed_json"),
        Message("trailing_garbage", good + b" trailing", "malformed_json"),
        Message("empty_body", b"", "empty_message"),
        Message("tombstone", None, "empty_message"),
        Message("deeply_nested_json", _deeply_nested(), "too_deeply_nested"),
        Message("integer_beyond_reader_limit", _huge_integer(), "malformed_json"),
        Message("duplicate_key", _duplicate_key(), "duplicate_key"),
        # JSON, but not an object.
        Message("json_array", b'[{"type": "SubmitApplication"}]', "not_an_object"),
        Message("json_string", b'"SubmitApplication"', "not_an_object"),
        Message("json_number", b"42", "not_an_object"),
        Message("json_null", b"null", "not_an_object"),
        # An object, but not a command this topic takes.
        Message("missing_type", _json(_without(_submit(), "type")), "unknown_type"),
        Message("unknown_type", _json(_submit(type="SubmitLicence")), "unknown_type"),
        Message("type_not_a_string", _json(_submit(type=["SubmitApplication"])), "unknown_type"),
        Message("type_an_object", _json(_submit(type={"name": "SubmitApplication"})), "unknown_type"),
        Message("an_event_not_a_command", _submitted_event(), "unknown_type"),
        Message("wrong_topic", _json(_export("26-44-000001", _declaration_number())), "wrong_topic"),
        Message("schema_version_missing", _json(_without(_submit(), "schema_version")), "unsupported_schema_version"),
        Message("schema_version_string", _json(_submit(schema_version="1")), "unsupported_schema_version"),
        Message("schema_version_0", _json(_submit(schema_version=0)), "unsupported_schema_version"),
        Message("schema_version_2", _json(_submit(schema_version=2)), "unsupported_schema_version"),
        Message("schema_version_true", _json(_submit(schema_version=True)), "unsupported_schema_version"),
        # The envelope's fields.
        Message("command_id_missing", _json(_without(_submit(), "command_id")), "invalid_fields"),
        Message("command_id_not_a_uuid", _json(_submit(command_id="cmd-0001")), "invalid_fields"),
        Message("sender_missing", _json(_without(_submit(), "sender")), "invalid_fields"),
        Message("sender_empty", _json(_submit(sender="")), "invalid_fields"),
        Message("sender_too_long", _json(_submit(sender="s" * 65)), "invalid_fields"),
        Message("payload_missing", _json(_without(_submit(), "payload")), "invalid_fields"),
        Message("payload_not_an_object", _json(_submit(payload=[samples.application_data()])), "invalid_fields"),
        Message("extra_envelope_field", _json(_submit(priority="high")), "invalid_fields"),
        # The payload's fields.
        Message("application_id_missing", _json(_submit(payload={"application": app()})), "invalid_fields"),
        Message(
            "application_id_not_a_uuid",
            _json(_submit(payload={"application_id": "A-1", "application": app()})),
            "invalid_fields",
        ),
        Message("extra_application_field", _json(_submit(app(vehicle_color="red"))), "invalid_fields"),
        Message("application_missing_field", _json(_submit(_without(app(), "currency"))), "invalid_fields"),
        Message("applicant_not_an_object", _json(_submit(app(applicant=samples.QILIN_MOTOR))), "invalid_fields"),
        Message("region_instead_of_country", _json(_submit(app(destination_country="EU"))), "invalid_fields"),
        Message("unknown_country_code", _json(_submit(app(destination_country="ZZ"))), "invalid_fields"),
        Message(
            "bad_uscc",
            _json(_submit(app(manufacturer={"code": "91488787CL5R13E3H", "name": "Qilin Motor Co., Ltd."}))),
            "invalid_fields",
        ),
        Message("quantity_0", _json(_submit(app(quantity=0))), "invalid_fields"),
        Message("quantity_a_string", _json(_submit(app(quantity="ten"))), "invalid_fields"),
        Message("negative_unit_price", _json(_submit(app(unit_price="-147000.00"))), "invalid_fields"),
        Message("unit_price_nan", _json(_submit(app(unit_price=float("nan")))), "invalid_fields"),
        Message("unit_price_three_decimals", _json(_submit(app(unit_price="147000.005"))), "invalid_fields"),
        Message("unknown_currency", _json(_submit(app(currency="ZZZ"))), "invalid_fields"),
        Message("bad_commodity_code", _json(_submit(app(commodity_code="87038"))), "invalid_fields"),
        Message("two_ports_of_exit", _json(_submit(app(port_of_exit="CNSZX, CNSHA"))), "invalid_fields"),
        Message("used_without_used_vehicles", _json(_submit(app(condition="used"))), "invalid_fields"),
        Message(
            "bad_vin",
            _json(_submit(app(condition="used", quantity=1, used_vehicles=[_used_vehicle("LQ1OI000000000001")]))),
            "invalid_fields",
        ),
        Message("blank_brand", _json(_submit(app(brand="   "))), "invalid_fields"),
        Message("lone_surrogate_in_brand", _json(_submit(app(brand="Qi\ud800lin"))), "invalid_text"),
        Message(
            "nul_in_applicant_name",
            _json(
                _submit(app(applicant={"code": samples.QILIN_MOTOR, "name": "Qilin\x00Motor", "role": "manufacturer"}))
            ),
            "invalid_text",
        ),
        # Text and numbers as strictly as over HTTP (tests/integration/test_same_strictness.py).
        Message("bel_in_trade_mode", _json(_submit(app(trade_mode="general\x07trade"))), "invalid_text"),
        Message("rtl_override_in_contract", _json(_submit(app(contract_number="QM-\u202e2026"))), "invalid_text"),
        Message("zero_width_in_brand", _json(_submit(app(brand="Qi\u200blin"))), "invalid_text"),
        Message("control_char_in_a_key", _json(_submit(app(**{"brand\x1b": "x"}))), "invalid_text"),
        Message("quantity_true", _json(_submit(app(quantity=True))), "invalid_fields"),
        Message("quantity_a_float", _json(_submit(app(quantity=10.0))), "invalid_fields"),
        Message("quantity_a_numeric_string", _json(_submit(app(quantity="10"))), "invalid_fields"),
        Message("license_year_true", _json(_submit(app(license_year=True))), "invalid_fields"),
        # Too big to read at all.
        Message("oversize", _json(_submit(app(contract_number="x" * (100 * 1024)))), "oversize"),
        # Bad bodies behind headers no reader decodes as text: the headers must not hide the refusal.
        Message(
            "bad_body_with_binary_and_null_headers",
            b"{oops",
            "malformed_json",
            headers=(("trace-bin", b"\x00\xff\xfe\x01"), ("x-empty", None)),
        ),
        Message(
            "bad_body_declared_json",
            b"{oops",
            "malformed_json",
            headers=(
                ("content-type", b"application/json"),
                ("traceparent", b"00-4bf92f3577b34da6-00f067aa0ba902b7-01"),
            ),
        ),
    ]


def _submitted_event() -> bytes:
    """An event an agency should never send: the one the applications service appends itself."""
    event = ApplicationSubmitted(application=samples.application(), channel="intake")
    return Envelope.wrap(event, case_id=uuid.uuid4(), producer="gd-commerce").to_bytes()


def good_applications() -> list[GoodApplication]:
    """Well-formed submissions: under the corpus' key, under other keys, and behind odd headers."""

    def good(kind: str, key: bytes | None, status: str = "approved", **application: Any) -> GoodApplication:
        command = _submit(samples.application_data(**application))
        application_id = uuid.UUID(command["payload"]["application_id"])
        headers: tuple[tuple[str, bytes | None], ...] = ()
        if kind == "good_with_binary_and_null_headers":
            headers = (("trace-bin", b"\x00\xff\xfe\x01"), ("x-empty", None))
        reasons = ("ccc_expired",) if status == "rejected" else ()
        return GoodApplication(Message(kind, _json(command), key=key, headers=headers), application_id, status, reasons)

    return [
        *(good(f"good_{n}", AGENCY, contract_number=f"QM-2026-MX-{n:04d}") for n in range(1, 9)),
        good("good_other_key", b"other-agency"),
        good("good_no_key", None),
        good("good_with_binary_and_null_headers", AGENCY),
        # Well-formed but refused on its merits: a decision, not a dead letter.
        good("good_but_rejected", AGENCY, status="rejected", model_code=samples.QILIN_EXPIRED_CCC_MODEL),
    ]


def bad_exports(license_number: str) -> list[Message]:
    """Every kind of bad message sent to the exports intake topic, with the reason it earns."""

    def export(**overrides: Any) -> bytes:
        return _json(_export(license_number, _declaration_number(), **overrides))

    good = export()
    return [
        Message("export_truncated_json", good[:-3], "malformed_json", key=CUSTOMS),
        Message("export_tombstone", None, "empty_message", key=CUSTOMS),
        Message("export_json_array", b"[]", "not_an_object", key=CUSTOMS),
        Message("export_wrong_topic", _json(_submit()), "wrong_topic", key=CUSTOMS),
        Message(
            "export_schema_version_2",
            _json({**json.loads(good), "schema_version": 2}),
            "unsupported_schema_version",
            key=CUSTOMS,
        ),
        Message(
            "export_against_unknown_license",
            _json(_export("26-44-999999", _declaration_number())),
            "unknown_license",
            key=CUSTOMS,
        ),
        Message(
            "export_bad_declaration_number",
            _json(_export(license_number, "5316-2026")),
            "invalid_fields",
            key=CUSTOMS,
        ),
        Message(
            "export_bad_license_number", _json(_export("2644000001", _declaration_number())), "invalid_fields", key=None
        ),
        Message("export_quantity_0", export(quantity=0), "invalid_fields", key=CUSTOMS),
        Message("export_negative_value", export(value="-1"), "invalid_fields", key=CUSTOMS),
        Message("export_bad_date", export(export_date="2026-13-45"), "invalid_fields", key=CUSTOMS),
        Message("export_bad_vin", export(quantity=1, vins=["LQ1OI000000000001"]), "invalid_fields", key=CUSTOMS),
        Message(
            "export_payload_missing_declaration",
            _json(_command("RecordExport", {"license_number": license_number})),
            "invalid_fields",
            key=CUSTOMS,
        ),
        Message(
            "export_fewer_vins_than_vehicles",
            export(quantity=2, vins=["LKMA7C1B9TS000901"]),
            "invalid_fields",
            key=CUSTOMS,
        ),
        Message("export_date_a_number", export(export_date=20260101), "invalid_fields", key=CUSTOMS),
        Message("export_quantity_true", export(quantity=True), "invalid_fields", key=CUSTOMS),
        Message("export_oversize", export(currency="x" * (100 * 1024)), "oversize", key=CUSTOMS),
    ]


def good_exports(license_number: str, other_license: str) -> list[GoodExport]:
    """Well-formed declarations; the ledger accepts some and refuses others on their merits."""

    def good(kind: str, license_: str, outcome: str, reason: str | None = None, **overrides: Any) -> GoodExport:
        number = _declaration_number()
        key = CUSTOMS if license_ == license_number else b"gac-shanghai"
        message = Message(kind, _json(_export(license_, number, **overrides)), key=key)
        return GoodExport(message, number, outcome, reason)

    return [
        good("good_export_1", license_number, "accepted", quantity=3),
        good("good_export_2", license_number, "accepted", quantity=3),
        good("good_export_over_balance", license_number, "refused", "exceeds_balance", quantity=20),
        good("good_export_wrong_port", license_number, "refused", "wrong_port", port_of_exit="CNSHA"),
        good("good_export_3", license_number, "accepted", quantity=1),
        good("good_export_other_license", other_license, "accepted", quantity=10),
    ]


def interleave(bad: list[Message], good: list[Message]) -> list[Message]:
    """The bad messages with the good ones spread between them, a good one last."""
    per = -(-len(bad) // len(good))
    out: list[Message] = []
    for index, message in enumerate(good):
        out.extend(bad[index * per : (index + 1) * per])
        out.append(message)
    return out


async def _send(send: AIOKafkaProducer, topic: str, messages: list[Message]) -> None:
    for message in messages:
        headers: Any = message.all_headers()  # aiokafka types header values as bytes; Kafka allows null
        await send.send_and_wait(topic, message.value, key=message.key, headers=headers)


@pytest.fixture
async def services(
    infrastructure: Infrastructure, database_url: str, topics: Topics
) -> AsyncIterator[httpx.AsyncClient]:
    """The three services in-process with a small message limit; the registry's client."""
    common: dict[str, Any] = {
        **infrastructure.service_kafka(),
        "database_url": database_url,
        "topic_namespace": topics.namespace,
        "max_message_bytes": MAX_MESSAGE_BYTES,
    }
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(serving(applications.create_app(applications.Settings(**common))))
        await stack.enter_async_context(serving(review.create_app(review.Settings(**common))))
        yield await stack.enter_async_context(serving(registry.create_app(registry.Settings(**common))))


async def _decided(client: httpx.AsyncClient, application_id: uuid.UUID) -> dict[str, Any] | None:
    answer = await client.get(f"/applications/{application_id}")
    if answer.status_code != 200 or answer.json()["status"] == "submitted":
        return None
    body: dict[str, Any] = answer.json()
    return body


async def _judged(client: httpx.AsyncClient, declaration_number: str) -> list[dict[str, Any]] | None:
    answer = await client.get(f"/exports/{declaration_number}")
    if answer.status_code != 200:
        return None
    body: list[dict[str, Any]] = answer.json()
    return body


def _kind(record: ConsumerRecord[bytes, bytes]) -> str:
    kind: bytes = dict(record.headers)[KIND]
    return kind.decode()


async def test_bad_intake_messages_are_dead_lettered_whole_and_the_good_ones_around_them_still_land(
    infrastructure: Infrastructure, topics: Topics, services: httpx.AsyncClient
) -> None:
    client = services
    kafka = infrastructure.kafka
    applications_bad = bad_applications()
    applications_good = good_applications()
    async with producer(kafka) as send:
        await _send(
            send, topics.intake_applications, interleave(applications_bad, [g.message for g in applications_good])
        )

        decided = {
            g.message.kind: await eventually(
                partial(_decided, client, g.application_id), timeout=20, what=f"{g.message.kind} decided"
            )
            for g in applications_good
        }
        assert {k: d["status"] for k, d in decided.items()} == {g.message.kind: g.status for g in applications_good}
        assert {k: tuple(r["code"] for r in d["reasons"]) for k, d in decided.items()} == {
            g.message.kind: g.reason_codes for g in applications_good
        }

        license_number, other_license = decided["good_1"]["license_number"], decided["good_other_key"]["license_number"]
        exports_bad = bad_exports(license_number)
        exports_good = good_exports(license_number, other_license)
        await _send(send, topics.intake_exports, interleave(exports_bad, [g.message for g in exports_good]))

    judged = {
        g.message.kind: await eventually(
            partial(_judged, client, g.declaration_number), timeout=20, what=f"{g.message.kind} judged"
        )
        for g in exports_good
    }
    assert {k: [(e["outcome"], (e["reason"] or {}).get("code")) for e in v] for k, v in judged.items()} == {
        g.message.kind: [(g.outcome, g.reason_code)] for g in exports_good
    }
    license_ = (await client.get(f"/licenses/{license_number}")).json()
    assert (license_["balance"], license_["declarations_used"]) == (3, 3)

    bad = {m.kind: m for m in [*applications_bad, *exports_bad]}
    assert len(bad) == len(applications_bad) + len(exports_bad) >= 30, "each kind is named once"
    await read_topic(kafka, topics.dead_letter, until=lambda r: len(r) >= len(bad), timeout=20)
    await asyncio.sleep(1.0)  # anything dead-lettered that should not be has had time to arrive
    dead = await everything_on(kafka, topics.dead_letter)

    assert Counter(_kind(r) for r in dead) == Counter(list(bad)), "each bad message is dead-lettered once, nothing else"
    got = {_kind(r): {name: (value or b"").decode(errors="replace") for name, value in r.headers} for r in dead}
    assert {k: h["dlq.reason-code"] for k, h in got.items()} == {k: m.code for k, m in bad.items()}
    assert [k for k, h in got.items() if not h["dlq.reason"]] == []
    assert {k: (h["dlq.service"], h["dlq.source"].rsplit("/", 2)[0]) for k, h in got.items()} == {
        k: ("registry", topics.intake_exports)
        if k.startswith("export_")
        else ("applications", topics.intake_applications)
        for k in bad
    }
    values = {_kind(r): r.value for r in dead}
    assert [k for k, m in bad.items() if values[k] != m.value] == [], "the original bytes are kept, a tombstone too"
    kept = {_kind(r): list(r.headers) for r in dead}
    assert {k: kept[k][: len(m.all_headers())] for k, m in bad.items()} == {
        k: list(m.all_headers()) for k, m in bad.items()
    }, "the original headers are kept byte for byte, null values and order included"
    # The bad messages of one key came from one partition: the good ones behind them there still landed.
    agency = {got[k]["dlq.source"].rsplit("/", 2)[1] for k, m in bad.items() if m.key == AGENCY}
    customs = {got[k]["dlq.source"].rsplit("/", 2)[1] for k, m in bad.items() if m.key == CUSTOMS}
    assert (len(agency), len(customs)) == (1, 1)
