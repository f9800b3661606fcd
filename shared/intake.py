"""What outside systems send, and how it is read: commands in, readable refusals out.

Agency backends and customs never write events. They send commands (``SubmitApplication``,
``RecordExport``) to their intake topic; the owning service validates each and appends the event.
What cannot be accepted is refused with a :class:`Reason` and goes to the dead-letter topic whole.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import BaseModel, StringConstraints, ValidationError

from shared.events import Application, ExportDeclaration, Frozen, Reason

if TYPE_CHECKING:  # only the services' consumers need faststream; the fold processes and licensectl do not
    from faststream.message import StreamMessage


class BadInput(Exception):
    """Input refused for a reason its sender can read and act on."""

    def __init__(self, code: str, message: str) -> None:
        message = readable(message)
        super().__init__(message)
        self.reason = Reason(code=code, message=message)


def readable(text: str, limit: int = 2000) -> str:
    """``text`` fit to be a reason's message: NUL spelled out (it may echo the input), length bounded."""
    text = text.replace("\x00", "\\u0000")
    return text if len(text) <= limit else text[: limit - 1] + "…"


class SubmitApplication(Frozen):
    """An agency backend submits an application on an applicant's behalf."""

    TYPE: ClassVar[str] = "SubmitApplication"
    application_id: uuid.UUID
    application: Application


class RecordExport(Frozen):
    """Customs records an export declaration against a license."""

    TYPE: ClassVar[str] = "RecordExport"
    declaration: ExportDeclaration


COMMAND_TYPES: dict[str, type[BaseModel]] = {cls.TYPE: cls for cls in (SubmitApplication, RecordExport)}
SUPPORTED_SCHEMA_VERSION = 1


class IntakeMessage(Frozen):
    """The wire form of a command: who sent it, its id (a retry reuses it), then the payload."""

    command_id: uuid.UUID
    type: str
    schema_version: int
    sender: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    payload: dict[str, Any]


def describe(error: ValidationError) -> str:
    """A validation error as one readable line: each field with what is wrong with it."""
    parts = []
    for item in error.errors(include_url=False):
        field = ".".join(str(p) for p in item["loc"]) or "(message)"
        parts.append(f"{field}: {item['msg']}")
    return readable("; ".join(parts))


def decode_command(raw: bytes, *, expected: str, max_bytes: int) -> tuple[IntakeMessage, BaseModel]:
    """Read one intake message; raise :class:`BadInput` with the first reason it cannot be taken."""
    if not raw:
        raise BadInput("empty_message", "message has no body (empty, or a tombstone); send a JSON command")
    if len(raw) > max_bytes:
        raise BadInput("oversize", f"message is {len(raw)} bytes; the limit is {max_bytes}")
    data = _read_json(raw)
    if not isinstance(data, dict):
        raise BadInput("not_an_object", "message must be a JSON object")
    kind = data.get("type")
    if not isinstance(kind, str) or kind not in COMMAND_TYPES:
        raise BadInput("unknown_type", f"unknown message type {kind!r}; this topic takes {expected}")
    if kind != expected:
        raise BadInput("wrong_topic", f"{kind} does not belong on this topic; it takes {expected}")
    version = data.get("schema_version")
    if isinstance(version, bool) or version != SUPPORTED_SCHEMA_VERSION:
        raise BadInput(
            "unsupported_schema_version",
            f"schema_version {version!r} is not supported; send {SUPPORTED_SCHEMA_VERSION}",
        )
    nul = [path for path, text in _strings(data) if "\x00" in text]
    if nul:
        raise BadInput(
            "invalid_text", f"{', '.join(nul)}: contains a NUL character (\\u0000), which no text field may hold"
        )
    try:
        message = IntakeMessage.model_validate(data)
        command = COMMAND_TYPES[kind].model_validate(message.payload)
    except ValidationError as exc:
        raise BadInput("invalid_fields", describe(exc)) from None
    return message, command


def _read_json(raw: bytes) -> Any:
    """The JSON value of ``raw``; refused if it is not JSON, names a key twice, or nests too deep to read."""
    try:
        return json.loads(raw, object_pairs_hook=_unique_keys)
    except RecursionError:
        raise BadInput(
            "too_deeply_nested", "message nests arrays or objects too deeply to be read; no command needs that"
        ) from None
    except _DuplicateKey as exc:
        raise BadInput("duplicate_key", f"message names key {exc.key!r} twice in one object; name each once") from None
    except ValueError as exc:  # not JSON, not UTF-8, or a number too long to convert
        raise BadInput("malformed_json", f"message is not valid JSON: {exc}") from None


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            raise _DuplicateKey(key)
        data[key] = value
    return data


def _strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string in a JSON value (keys too), with where it is."""
    if isinstance(value, str):
        yield path or "(message)", value
    elif isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            yield where, key
            yield from _strings(item, where)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, f"{path}.{index}" if path else str(index))


Parser = Callable[[Any], Awaitable["StreamMessage[Any]"]]


async def parse_intake_record(record: Any, original_parser: Parser) -> StreamMessage[Any]:
    """faststream's Kafka reader, for a record whose header values are not all UTF-8 text.

    The default reader decodes each header value as UTF-8 and drops the record, unseen by any
    handler, when one is binary or null (both are valid in Kafka). This one reads such a record
    with those values made text, and keeps the original record for the dead-letter topic.
    """
    if all(_is_text(value) for _, value in record.headers):
        return await original_parser(record)
    message = await original_parser(_TextHeaders(record))
    message.raw_message = record
    return message


async def parse_record_batch(records: tuple[Any, ...], original_parser: Parser) -> StreamMessage[Any]:
    """:func:`parse_intake_record` for a batch subscriber: one record with a binary or null header would
    otherwise drop the whole batch unseen. ``raw_message`` keeps the records as read, for the dead-letter topic."""
    if all(_is_text(value) for record in records for _, value in record.headers):
        return await original_parser(records)
    message = await original_parser(tuple(_TextHeaders(record) for record in records))
    message.raw_message = records
    return message


async def keep_batch_bodies(message: StreamMessage[Any]) -> list[bytes]:
    """faststream's decoder for a batch read with :func:`parse_record_batch`: none; the handler reads the
    records. The default one reads each record's headers again, as UTF-8, and fails the batch on one that is not."""
    return list(message.body)


def batch_records(message: StreamMessage[Any]) -> tuple[Any, ...]:
    """The Kafka records of a batch subscriber's message, in the order they were read."""
    records = message.raw_message
    return records if isinstance(records, tuple) else (records,)


def records_by_partition(message: StreamMessage[Any]) -> list[list[Any]]:
    """A batch's records partition by partition, each partition's in the order they were read: a handler acts
    on each partition's in order and on the partitions at once."""
    partitions: dict[int, list[Any]] = {}
    for record in batch_records(message):
        partitions.setdefault(record.partition, []).append(record)
    return list(partitions.values())


async def keep_intake_body(message: StreamMessage[Any]) -> bytes:
    """faststream's decoder for an intake record: none; the handler reads the body with :func:`decode_command`.

    The default decoder parses the body before the handler runs, by its content-type header or as
    JSON when there is none, and raises (so the record is retried forever) on a body that is not
    JSON under ``application/json``, not UTF-8 under ``text/plain``, or nested too deep to parse.
    """
    body: bytes = message.body
    return body


def _is_text(value: bytes | None) -> bool:
    if value is None:
        return False
    try:
        value.decode()
    except UnicodeDecodeError:
        return False
    return True


class _TextHeaders:
    """A Kafka record seen with each header value as UTF-8 (a null as empty, a bad byte as U+FFFD)."""

    def __init__(self, record: Any) -> None:
        self._record = record
        self.headers = [(key, _as_text(value)) for key, value in record.headers]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._record, name)


def _as_text(value: bytes | None) -> bytes:
    return (value or b"").decode(errors="replace").encode()


def dead_letter_headers(
    reason: Reason,
    *,
    service: str,
    topic: str,
    partition: int,
    offset: int,
    original: Iterable[tuple[str, bytes | None]],
) -> list[tuple[str, bytes | None]]:
    """The original headers, byte for byte (null values too), then where the message came from and why."""
    return [
        *original,
        ("dlq.reason-code", reason.code.encode()),
        ("dlq.reason", reason.message.encode()),
        ("dlq.service", service.encode()),
        ("dlq.source", f"{topic}/{partition}/{offset}".encode()),
    ]
