import json
import uuid

import pytest

from licensectl import samples
from shared.intake import BadInput, RecordExport, SubmitApplication, decode_command


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
    with pytest.raises(BadInput) as refused:
        decode_command(raw, expected=SubmitApplication.TYPE, max_bytes=65536)
    assert refused.value.reason.code == code
    assert refused.value.reason.message


def test_invalid_fields_name_each_field() -> None:
    data = samples.application_data(quantity=0, destination_country="EU")
    with pytest.raises(BadInput) as refused:
        decode_command(
            _message(payload={"application_id": str(uuid.uuid4()), "application": data}),
            expected=SubmitApplication.TYPE,
            max_bytes=65536,
        )
    assert "application.quantity" in refused.value.reason.message
    assert "application.destination_country" in refused.value.reason.message
