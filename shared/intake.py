"""What outside systems send, and how it is read: commands in, readable refusals out.

Agency backends and customs never write events. They send commands (``SubmitApplication``,
``RecordExport``) to their intake topic; the owning service validates each and appends the event.
What cannot be accepted is refused with a :class:`Reason` and goes to the dead-letter topic whole.
"""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, StringConstraints, ValidationError

from shared.events import Application, ExportDeclaration, Frozen, Reason


class BadInput(Exception):
    """Input refused for a reason its sender can read and act on."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.reason = Reason(code=code, message=message)


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
    return "; ".join(parts)


def decode_command(raw: bytes, *, expected: str, max_bytes: int) -> tuple[IntakeMessage, BaseModel]:
    """Read one intake message; raise :class:`BadInput` with the first reason it cannot be taken."""
    if len(raw) > max_bytes:
        raise BadInput("oversize", f"message is {len(raw)} bytes; the limit is {max_bytes}")
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInput("malformed_json", f"message is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadInput("not_an_object", "message must be a JSON object")
    kind = data.get("type")
    if kind not in COMMAND_TYPES:
        raise BadInput("unknown_type", f"unknown message type {kind!r}; this topic takes {expected}")
    if kind != expected:
        raise BadInput("wrong_topic", f"{kind} does not belong on this topic; it takes {expected}")
    if data.get("schema_version") != SUPPORTED_SCHEMA_VERSION:
        raise BadInput(
            "unsupported_schema_version",
            f"schema_version {data.get('schema_version')!r} is not supported; send {SUPPORTED_SCHEMA_VERSION}",
        )
    try:
        message = IntakeMessage.model_validate(data)
        command = COMMAND_TYPES[kind].model_validate(message.payload)
    except ValidationError as exc:
        raise BadInput("invalid_fields", describe(exc)) from None
    return message, command


def dead_letter_headers(
    reason: Reason, *, service: str, topic: str, partition: int, offset: int, original: list[tuple[str, bytes]]
) -> list[tuple[str, bytes]]:
    """The original headers, then where the message came from and why it was refused."""
    return [
        *original,
        ("dlq.reason-code", reason.code.encode()),
        ("dlq.reason", reason.message.encode()),
        ("dlq.service", service.encode()),
        ("dlq.source", f"{topic}/{partition}/{offset}".encode()),
    ]
