"""What outside systems send: commands in, each read in order of its checks, a readable refusal out.

Agency backends and customs never write events. They send commands (``SubmitApplication``,
``RecordExport``) to their intake topic; the owning service validates each and appends the event.
What cannot be accepted is refused with a :class:`Reason` and goes to the dead-letter topic whole.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, StringConstraints, ValidationError

from . import strict_json
from .events import Application, Count, ExportDeclaration, Frozen, unclean_characters
from .refusal import Refusal, invalid_fields, readable


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
