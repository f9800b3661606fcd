"""Taking submissions: an application over HTTP from an agency portal, or as a signed ``SubmitApplication``
command from an agency backend on the intake topic. Each is appended once as ``ApplicationSubmitted``."""

from __future__ import annotations

import hashlib
import uuid
from functools import partial
from typing import Annotated, Any

from fastapi import Depends
from faststream.kafka.annotations import KafkaMessage
from pydantic import BaseModel

from services.applications import idempotency
from services.applications.submission import fingerprint, submitted
from shared.contract.commands import SubmitApplication, decode_command
from shared.contract.events import Application, ApplicationStatus
from shared.contract.refusal import Refusal
from shared.platform.access import Principal, require
from shared.platform.http import IdempotencyKey
from shared.platform.http import router as ledger_router
from shared.platform.service import Runtime, RuntimeContext, ServiceRuntime

router = ledger_router(tags=["applications"])


class Accepted(BaseModel):
    """A submission was taken: its id, and where its status can be followed."""

    application_id: uuid.UUID
    status: ApplicationStatus = ApplicationStatus.SUBMITTED
    event_id: uuid.UUID


@router.post("/applications", status_code=202)
async def submit(
    application: Application,
    principal: Annotated[Principal, Depends(require("submitter"))],
    runtime: ServiceRuntime,
    idempotency_key: IdempotencyKey = None,
) -> Accepted:
    """Submit an application (submitters, for their own agency). A retry with the same ``Idempotency-Key``
    returns the same id and appends nothing. Each agency's keys are its own."""
    principal.ensure_agency(application.agency_code)
    if idempotency_key is None:
        envelope = submitted(application, application_id=uuid.uuid4(), channel="http")
        await runtime.append(envelope)
    else:
        envelope = await idempotency.append_once(
            runtime.pool,
            key=idempotency.http_key(application.agency_code, idempotency_key),
            fingerprint=fingerprint(application),
            make=lambda application_id: submitted(application, application_id=application_id, channel="http"),
            append=runtime.append,
            reused=Refusal(
                422,
                "idempotency_key_reused",
                "your agency already used this Idempotency-Key for a different application; use a new key",
            ),
        )
    return Accepted(application_id=envelope.case_id, event_id=envelope.event_id)


def follow_intake(runtime: Runtime) -> None:
    """Read agency backends' ``SubmitApplication`` commands from the intake topic."""
    topic = runtime.settings.topics.intake_applications
    runtime.subscribe(
        on_submit,
        topic=topic,
        group="applications-intake",
        title="intake-applications",
        description="SubmitApplication commands from agency backends, signed by their sender (docs/signing.md).",
    )


async def on_submit(message: KafkaMessage, runtime: RuntimeContext) -> None:
    await runtime.reader("intake-applications").each(message.raw_message, partial(submit_command, runtime))


async def submit_command(runtime: Runtime, record: Any) -> None:
    """Take one agency backend's ``SubmitApplication``: read it, check its signature, append its event once (a
    command delivered again, or sent again under its id, appends nothing)."""
    intake, command = decode_command(
        record.value or b"", expected=SubmitApplication.TYPE, max_bytes=runtime.settings.max_message_bytes
    )
    key = await runtime.check_signature(record, intake.sender)
    assert isinstance(command, SubmitApplication)
    agency = command.application.agency_code
    if key.scope.agency_code != agency:
        # As over HTTP, where a credential of agency 44 cannot file for agency 31 (403 other_agency).
        raise Refusal(
            403,
            "other_agency",
            f"{intake.sender}'s key is trusted to submit for agency {key.scope.agency_code or '(none named)'}, "
            f"not for agency {agency}",
        )
    content = hashlib.sha256(command.model_dump_json().encode()).hexdigest()
    await idempotency.append_once(
        runtime.pool,
        key=f"intake:{intake.sender}:{intake.command_id}",
        fingerprint=content,
        make=lambda _: submitted(command.application, application_id=command.application_id, channel="intake"),
        append=runtime.append,
        reused=Refusal(
            409, "command_id_reused", f"command {intake.command_id} was already sent with other content; use a new id"
        ),
    )
