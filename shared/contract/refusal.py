"""The one kind of refusal: a status, a stable reason code, a message its sender can act on, the fields at fault.

Every 4xx of every service, every dead letter of every intake, is a :class:`Refusal` or its :class:`Reason`.
The codes are listed, with what each means and where it arises, in ``shared/contract/reason_codes.py``, from
which ``docs/reason-codes.md`` is generated.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .events import Reason


@dataclass(frozen=True)
class FieldError:
    """One thing at fault: the field (dotted; None for the input as a whole), the code, what is wrong in words."""

    field: str | None
    code: str
    message: str


@dataclass
class Refusal(Exception):
    """A request or message refused: ``status`` for HTTP (ignored on Kafka), ``code`` and ``message`` for its
    sender, and ``fields`` when particular fields are at fault."""

    status: int
    code: str
    message: str
    fields: list[FieldError] = field(default_factory=list)
    headers: dict[str, str] | None = None

    def __post_init__(self) -> None:
        self.message = readable(self.message)
        super().__init__(self.message)

    @property
    def reason(self) -> Reason:
        return Reason(code=self.code, message=self.message)

    def __str__(self) -> str:
        return self.message


def readable(text: str, limit: int = 2000) -> str:
    """``text`` fit to be a reason's message, whatever input it echoes: control, format and surrogate characters
    spelled out as ``\\uXXXX`` (they may come from the input, and no text of ours may hold them), length bounded."""
    if not text.isprintable():
        text = "".join(_spelled(c) if c != " " and not c.isprintable() else c for c in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _spelled(character: str) -> str:
    if unicodedata.category(character) in ("Zs", "Zl", "Zp"):
        return " "
    code = ord(character)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def field_errors(errors: Iterable[Mapping[str, Any]], *, drop: tuple[str, ...] = ("body",)) -> list[FieldError]:
    """Pydantic's (or FastAPI's) validation errors as fields at fault: dotted location, error type, message."""
    found = []
    for error in errors:
        location = [str(part) for part in error.get("loc", ()) if part not in drop]
        found.append(
            FieldError(field=".".join(location) or "body", code=str(error["type"]), message=readable(str(error["msg"])))
        )
    return found


def invalid_fields(errors: Iterable[Mapping[str, Any]], *, status: int = 422) -> Refusal:
    """The refusal of input whose fields failed validation: each field named, with what is wrong with it."""
    fields = field_errors(errors)
    message = "; ".join(f"{f.field}: {f.message}" for f in fields) or "the input failed validation"
    return Refusal(status, "invalid_fields", message, fields)
