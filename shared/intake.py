"""What outside systems send, and how it is read: commands in, readable refusals out.

Agency backends and customs never write events. They send commands (``SubmitApplication``,
``RecordExport``) to their intake topic; the owning service validates each and appends the event.
What cannot be accepted is refused with a :class:`Reason` and goes to the dead-letter topic whole.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, StringConstraints, ValidationError

from shared import strict_json
from shared.events import Application, Count, ExportDeclaration, Frozen, Reason, unclean_characters
from shared.refusal import Refusal, invalid_fields, readable

if TYPE_CHECKING:  # only the services' consumers need faststream; the fold processes and licensectl do not
    from faststream.message import StreamMessage


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


def _sender(name: str) -> str:
    if unclean_characters(name):
        raise ValueError("a sender's name holds printable characters only")
    return name


class IntakeMessage(Frozen):
    """The wire form of a command: who sent it, its id (a retry reuses it), then the payload."""

    command_id: uuid.UUID
    type: str
    schema_version: Count
    sender: Annotated[str, StringConstraints(min_length=1, max_length=64), AfterValidator(_sender)]
    payload: dict[str, Any]


def describe(error: ValidationError) -> str:
    """A validation error as one readable line: each field with what is wrong with it."""
    return invalid_fields(error.errors(include_url=False)).message


def decode_command(raw: bytes, *, expected: str, max_bytes: int) -> tuple[IntakeMessage, BaseModel]:
    """Read one intake message; raise a :class:`Refusal` with the first reason it cannot be taken."""
    if not raw:
        raise Refusal(422, "empty_message", "message has no body (empty, or a tombstone); send a JSON command")
    if len(raw) > max_bytes:
        raise Refusal(413, "oversize", f"message is {len(raw)} bytes; the limit is {max_bytes}")
    data = strict_json.loads(raw)
    if not isinstance(data, dict):
        raise Refusal(422, "not_an_object", "message must be a JSON object")
    kind = data.get("type")
    if not isinstance(kind, str) or kind not in COMMAND_TYPES:
        raise Refusal(422, "unknown_type", f"unknown message type {kind!r}; this topic takes {expected}")
    if kind != expected:
        raise Refusal(422, "wrong_topic", f"{kind} does not belong on this topic; it takes {expected}")
    version = data.get("schema_version")
    if isinstance(version, bool) or version != SUPPORTED_SCHEMA_VERSION:
        raise Refusal(
            422,
            "unsupported_schema_version",
            f"schema_version {version!r} is not supported; send {SUPPORTED_SCHEMA_VERSION}",
        )
    try:
        message = IntakeMessage.model_validate(data)
        command = COMMAND_TYPES[kind].model_validate(message.payload)
    except ValidationError as exc:
        raise invalid_fields(exc.errors(include_url=False)) from None
    except Exception as exc:  # what no check anticipated: still this message's fault, and said so
        raise Refusal(422, "unreadable_record", readable(f"{type(exc).__name__}: {exc}")) from None
    return message, command


Parser = Callable[[Any], Awaitable["StreamMessage[Any]"]]


async def parse_intake_record(record: Any, original_parser: Parser) -> StreamMessage[Any]:
    """faststream's Kafka reader, for a record whose header values are not all UTF-8 text.

    The default reader decodes each header value as UTF-8 and drops the record, unseen by any
    handler, when one is binary or null (both are valid in Kafka). This one reads such a record
    with those values made text, and keeps the original record for the dead-letter topic.
    """
    if all(_is_text(value) for _, value in record.headers):
        return _no_reply(await original_parser(record))
    message = await original_parser(_TextHeaders(record))
    message.raw_message = record
    return _no_reply(message)


async def parse_record_batch(records: tuple[Any, ...], original_parser: Parser) -> StreamMessage[Any]:
    """:func:`parse_intake_record` for a batch subscriber: one record with a binary or null header would
    otherwise drop the whole batch unseen. ``raw_message`` keeps the records as read, for the dead-letter topic."""
    if all(_is_text(value) for record in records for _, value in record.headers):
        return _no_reply(await original_parser(records))
    message = await original_parser(tuple(_TextHeaders(record) for record in records))
    message.raw_message = records
    return _no_reply(message)


def _no_reply(message: StreamMessage[Any]) -> StreamMessage[Any]:
    """A record is never answered: faststream would publish a handler's result to whatever topic a ``reply_to``
    header names (any sender's choice, a topic that cannot exist among them, which held the reader up)."""
    message.reply_to = ""
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
