"""What outside systems send, and how it is read: commands in, readable refusals out.

Agency backends and customs never write events. They send commands (``SubmitApplication``,
``RecordExport``) to their intake topic; the owning service validates each and appends the event.
What cannot be accepted is refused with a :class:`Reason` and goes to the dead-letter topic whole.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from shared.contract import dead_letters
from shared.contract.events import Reason

if TYPE_CHECKING:  # only the services' consumers need faststream; the fold processes and licensectl do not
    from faststream.message import StreamMessage


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
        (dead_letters.REASON_CODE, reason.code.encode()),
        (dead_letters.REASON, reason.message.encode()),
        (dead_letters.SERVICE, service.encode()),
        (dead_letters.SOURCE, f"{topic}/{partition}/{offset}".encode()),
    ]
