"""Turning a valid application into its ``ApplicationSubmitted`` event."""

from __future__ import annotations

import hashlib
import uuid

from shared.events import Application, ApplicationSubmitted, Envelope, derived_event_id

PRODUCER = "applications"


def submitted(application: Application, *, application_id: uuid.UUID, channel: str) -> Envelope:
    """The event that opens case ``application_id``; a retry of it gets the same event id."""
    event = ApplicationSubmitted(application=application, channel=channel)  # type: ignore[arg-type]
    return Envelope.wrap(
        event,
        case_id=application_id,
        producer=PRODUCER,
        event_id=derived_event_id(application_id, "submitted"),
    )


def fingerprint(application: Application) -> str:
    """What identifies the content of a submission, to tell a retry from a reused key."""
    return hashlib.sha256(application.model_dump_json().encode()).hexdigest()
