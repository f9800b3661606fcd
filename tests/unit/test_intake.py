import json
import uuid
from typing import Any

import pytest
from aiokafka import ConsumerRecord
from faststream.kafka.message import KafkaMessage
from faststream.kafka.parser import AioKafkaBatchParser, AioKafkaParser

import samples
from shared.contract.commands import RecordExport, SubmitApplication, decode_command
from shared.contract.events import Reason
from shared.contract.refusal import Refusal
from shared.platform.records import (
    batch_records,
    dead_letter_headers,
    keep_batch_bodies,
    keep_intake_body,
    parse_intake_record,
    parse_record_batch,
)


def _message(kind: str = "SubmitApplication", **overrides: object) -> bytes:
    body: dict[str, object] = {
        "command_id": str(uuid.uuid4()),
        "type": kind,
        "schema_version": 1,
        "sender": "gd-commerce",
        "payload": {"application_id": str(uuid.uuid4()), "application": samples.application_data()},
    }
    body.update(overrides)
    return json.dumps(body).encode()


def test_a_good_submission_decodes_to_its_command() -> None:
    _, command = decode_command(_message(), expected=SubmitApplication.TYPE, max_bytes=65536)
    assert isinstance(command, SubmitApplication)
    assert command.application.quantity == 10


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"{not json", "malformed_json"),
        (b"\xff\xfe", "malformed_json"),
        (b"[1, 2]", "not_an_object"),
        (_message("ExportSomething"), "unknown_type"),
        (_message(RecordExport.TYPE, payload={}), "wrong_topic"),
        (_message(schema_version=2), "unsupported_schema_version"),
        (_message(payload={"application_id": "nope"}), "invalid_fields"),
        (_message(sender=""), "invalid_fields"),
        (b" " * 70000, "oversize"),
    ],
)
def test_bad_intake_messages_are_refused_with_their_reason_code(raw: bytes, code: str) -> None:
    with pytest.raises(Refusal) as refused:
        decode_command(raw, expected=SubmitApplication.TYPE, max_bytes=65536)
    assert refused.value.reason.code == code
    assert refused.value.reason.message


def test_invalid_fields_name_each_field() -> None:
    data = samples.application_data(quantity=0, destination_country="EU")
    with pytest.raises(Refusal) as refused:
        decode_command(
            _message(payload={"application_id": str(uuid.uuid4()), "application": data}),
            expected=SubmitApplication.TYPE,
            max_bytes=65536,
        )
    assert "application.quantity" in refused.value.reason.message
    assert "application.destination_country" in refused.value.reason.message


def _refusal(raw: bytes) -> Reason:
    with pytest.raises(Refusal) as refused:
        decode_command(raw, expected=SubmitApplication.TYPE, max_bytes=65536)
    return refused.value.reason


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"", "empty_message"),
        (b"[" * 20_000 + b"]" * 20_000, "too_deeply_nested"),
        (_message().replace(b'"quantity": 10', b'"quantity": 1' + b"0" * 5000), "malformed_json"),
        (_message().replace(b'"schema_version": 1', b'"schema_version": 1, "schema_version": 1'), "duplicate_key"),
        (_message(type=["SubmitApplication"]), "unknown_type"),
        (_message(type={"name": "SubmitApplication"}), "unknown_type"),
        (_message(schema_version=True), "unsupported_schema_version"),
    ],
)
def test_input_that_used_to_crash_the_reader_or_slip_through_is_refused_with_its_reason_code(
    raw: bytes, code: str
) -> None:
    reason = _refusal(raw)
    assert reason.code == code
    assert reason.message


def test_a_duplicate_key_is_named() -> None:
    raw = _message().replace(b'"type": "SubmitApplication"', b'"type": "RecordExport", "type": "SubmitApplication"')
    assert "'type'" in _refusal(raw).message


def test_a_nul_character_in_any_text_is_refused_as_invalid_text_naming_where() -> None:
    applicant = {"code": samples.QILIN_MOTOR, "name": "Qilin\x00Motor", "role": "manufacturer"}
    data = samples.application_data(applicant=applicant)
    reason = _refusal(_message(payload={"application_id": str(uuid.uuid4()), "application": data}))
    assert reason.code == "invalid_text"
    assert "payload.application.applicant.name" in reason.message


def test_a_null_header_value_is_carried_as_null_on_the_dead_letter_topic() -> None:
    headers = dead_letter_headers(
        Reason(code="malformed_json", message="not JSON"),
        service="applications",
        topic="intake",
        partition=0,
        offset=7,
        original=[("trace", b"abc"), ("empty", None)],
    )
    assert headers[:2] == [("trace", b"abc"), ("empty", None)]
    assert ("dlq.reason-code", b"malformed_json") in headers


def _record(value: bytes | None, headers: list[tuple[str, Any]]) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic="intake",
        partition=0,
        offset=3,
        timestamp=0,
        timestamp_type=0,
        key=b"k",
        value=value,
        checksum=None,
        serialized_key_size=1,
        serialized_value_size=len(value or b""),
        headers=headers,
    )


async def test_a_record_with_binary_or_null_headers_is_read_and_keeps_its_original_record() -> None:
    original = AioKafkaParser(KafkaMessage, None).parse_message
    record = _record(b"{oops", [("bin", b"\xff\xfe"), ("null", None), ("text", b"ok")])
    with pytest.raises((UnicodeDecodeError, AttributeError)):
        await original(record)  # what faststream does alone: the record never reaches a handler
    message = await parse_intake_record(record, original)
    assert message.body == b"{oops"
    assert message.headers == {"bin": "\ufffd\ufffd", "null": "", "text": "ok"}
    assert message.raw_message is record


async def test_a_batch_with_one_binary_or_null_header_is_read_whole_and_keeps_its_original_records() -> None:
    original = AioKafkaBatchParser(KafkaMessage, None).parse_batch
    batch = (_record(b"a", [("text", b"ok")]), _record(b"b", [("bin", b"\xff"), ("null", None)]))
    with pytest.raises((UnicodeDecodeError, AttributeError)):
        await original(batch)  # what faststream does alone: the whole batch never reaches a handler
    message = await parse_record_batch(batch, original)
    assert await keep_batch_bodies(message) == [b"a", b"b"]
    assert batch_records(message) == batch
    assert batch_records(message)[1].headers == [("bin", b"\xff"), ("null", None)]


async def test_an_intake_body_is_handed_to_the_handler_undecoded() -> None:
    parsed = await AioKafkaParser(KafkaMessage, None).parse_message(
        _record(b"[" * 5000, [("content-type", b"application/json")])
    )
    assert await keep_intake_body(parsed) == b"[" * 5000
