"""Turning a valid application into its ``ApplicationSubmitted`` event."""

from __future__ import annotations

import hashlib
import uuid

from shared.contract.events import (
    Application,
    ApplicationResubmitted,
    ApplicationSubmitted,
    ApplicationWithdrawn,
    Envelope,
    derived_event_id,
)

PRODUCER = "applications"


def submitted(application: Application, *, application_id: uuid.UUID, channel: str) -> Envelope:
    """The event that opens case ``application_id``; a retry of it gets the same event id."""
    event = ApplicationSubmitted(application=application, channel=channel)
    return Envelope.wrap(
        event,
        case_id=application_id,
        producer=PRODUCER,
        event_id=derived_event_id(application_id, "submitted"),
    )


def resubmitted(application: Application, *, application_id: uuid.UUID, returned_event_id: uuid.UUID) -> Envelope:
    """The corrected application answering the officer's return; one resubmission per return."""
    event = ApplicationResubmitted(application=application, returned_event_id=returned_event_id)
    return Envelope.wrap(
        event,
        case_id=application_id,
        producer=PRODUCER,
        event_id=derived_event_id(returned_event_id, "resubmitted"),
    )


def withdrawn(application_id: uuid.UUID, reason: str | None) -> Envelope:
    """The applicant's withdrawal: a case is withdrawn once, so a retry gets the same event id."""
    return Envelope.wrap(
        ApplicationWithdrawn(reason=reason),
        case_id=application_id,
        producer=PRODUCER,
        event_id=derived_event_id(application_id, "withdrawn"),
    )


def fingerprint(application: Application) -> str:
    """What identifies the content of a submission, to tell a retry from a reused key."""
    return hashlib.sha256(application.model_dump_json().encode()).hexdigest()
