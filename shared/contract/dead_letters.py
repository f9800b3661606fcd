"""A dead letter, as it crosses the wire on ``licensing.dead-letter``: the refused record's value, key and
headers byte for byte, followed by these headers, which say why it was refused, by whom and where it was read."""

from __future__ import annotations

from typing import Any

REASON_CODE = "dlq.reason-code"
REASON = "dlq.reason"
SERVICE = "dlq.service"
SOURCE = "dlq.source"

HEADERS: dict[str, dict[str, Any]] = {
    REASON_CODE: {"type": "string", "description": "the refusal's reason code (docs/reason-codes.md)"},
    REASON: {"type": "string", "description": "the refusal's message: what is wrong, for the sender to act on"},
    SERVICE: {
        "type": "string",
        "description": "the service that refused it",
        "enum": ["applications", "review", "registry"],
    },
    SOURCE: {
        "type": "string",
        "description": "where the record was read: topic/partition/offset",
        "pattern": "^[A-Za-z0-9._-]+/[0-9]+/[0-9]+$",
    },
}
"""The headers every dead letter carries after the original's, each with its JSON Schema."""
