"""Hypothesis against the readers of what comes over Kafka: the envelope and the intake's commands.

Whatever the bytes, a reader returns a value or raises its documented error (``ValidationError`` for an
envelope, ``Refusal`` for a command), quickly. Anything else escapes the handlers' ``except`` and leaves a
record retried forever, stalling its partition.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

import samples
from shared.contract.commands import RecordExport, SubmitApplication, decode_command
from shared.contract.events import Envelope
from shared.contract.refusal import Refusal

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
ENVELOPES = [
    json.loads(line)
    for name in ("history_current.jsonl", "history_v1.jsonl")  # v1 goes through the upcasters
    for line in (FIXTURES / name).read_text().splitlines()
    if line.strip()
]
COMMANDS = [
    {
        "command_id": str(uuid.uuid4()),
        "type": SubmitApplication.TYPE,
        "schema_version": 1,
        "sender": "gd-commerce",
        "payload": {"application_id": str(uuid.uuid4()), "application": samples.application_data()},
    },
    {
        "command_id": str(uuid.uuid4()),
        "type": RecordExport.TYPE,
        "schema_version": 1,
        "sender": "customs",
        "payload": {"declaration": samples.declaration_data("26-44-000101", "DECL000001")},
    },
]
MAX_BYTES = 256 * 1024
FUZZ = settings(
    max_examples=300,
    deadline=timedelta(seconds=1),  # a reader that hangs on some input fails here instead of stalling a partition
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)


@st.composite
def mutated(draw: st.DrawFn, originals: list[dict[str, Any]]) -> dict[str, Any]:
    """A valid message with one value somewhere in it replaced, or one key dropped."""
    message: Any = json.loads(json.dumps(draw(st.sampled_from(originals))))
    node = message
    while True:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        key = draw(st.sampled_from(keys))
        child = node[key]
        if not isinstance(child, dict | list) or not child or draw(st.booleans()):
            break
        node = child
    if isinstance(node, dict) and draw(st.booleans()):
        del node[key]
    else:
        node[key] = draw(json_values | st.sampled_from(["", "\x00", "9" * 400, -1, 2**63, 1e308, "1" * 40]))
    result: dict[str, Any] = message
    return result


def _read_envelope(raw: bytes) -> None:
    with contextlib.suppress(ValidationError):  # the documented refusal; any other exception fails the test
        Envelope.from_bytes(raw)


def _read_command(raw: bytes, expected: str) -> None:
    with contextlib.suppress(Refusal):  # the documented refusal; any other exception fails the test
        decode_command(raw, expected=expected, max_bytes=MAX_BYTES)


def _spliced(raw: bytes, at: int, insert: bytes, cut: int) -> bytes:
    position = at % (len(raw) + 1)
    return raw[:position] + insert + raw[position + cut :]


@FUZZ
@given(st.binary(max_size=2048))
def test_an_envelope_of_arbitrary_bytes_is_read_or_refused_with_a_validation_error(raw: bytes) -> None:
    _read_envelope(raw)


@FUZZ
@given(json_values)
def test_an_envelope_of_arbitrary_json_is_read_or_refused_with_a_validation_error(value: Any) -> None:
    _read_envelope(json.dumps(value).encode())


@FUZZ
@given(mutated(ENVELOPES))
def test_a_mutated_envelope_is_read_or_refused_with_a_validation_error(envelope: dict[str, Any]) -> None:
    _read_envelope(json.dumps(envelope).encode())


@FUZZ
@given(st.sampled_from(ENVELOPES), st.integers(min_value=0), st.binary(max_size=8), st.integers(0, 8))
def test_an_envelope_with_bytes_spliced_in_is_read_or_refused(envelope: Any, at: int, insert: bytes, cut: int) -> None:
    _read_envelope(_spliced(json.dumps(envelope).encode(), at, insert, cut))


def test_a_deeply_nested_envelope_is_refused_with_a_validation_error() -> None:
    _read_envelope(b"[" * 100_000 + b"]" * 100_000)
    _read_envelope(b'{"payload": ' * 50_000 + b"1" + b"}" * 50_000)


@FUZZ
@given(st.binary(max_size=2048), st.sampled_from([SubmitApplication.TYPE, RecordExport.TYPE]))
def test_a_command_of_arbitrary_bytes_is_decoded_or_refused_as_bad_input(raw: bytes, expected: str) -> None:
    _read_command(raw, expected)


@FUZZ
@given(json_values, st.sampled_from([SubmitApplication.TYPE, RecordExport.TYPE]))
def test_a_command_of_arbitrary_json_is_decoded_or_refused_as_bad_input(value: Any, expected: str) -> None:
    _read_command(json.dumps(value).encode(), expected)


@FUZZ
@given(mutated(COMMANDS), st.sampled_from([SubmitApplication.TYPE, RecordExport.TYPE]))
def test_a_mutated_command_is_decoded_or_refused_as_bad_input(command: dict[str, Any], expected: str) -> None:
    _read_command(json.dumps(command).encode(), expected)


@FUZZ
@given(st.sampled_from(COMMANDS), st.integers(min_value=0), st.binary(max_size=8), st.integers(0, 8))
def test_a_command_with_bytes_spliced_in_is_decoded_or_refused(command: Any, at: int, insert: bytes, cut: int) -> None:
    _read_command(_spliced(json.dumps(command).encode(), at, insert, cut), command["type"])


def test_a_deeply_nested_command_is_refused_as_bad_input() -> None:
    _read_command(b"[" * 100_000 + b"]" * 100_000, SubmitApplication.TYPE)
    _read_command(b'{"payload": ' * 50_000 + b"1" + b"}" * 50_000, SubmitApplication.TYPE)
