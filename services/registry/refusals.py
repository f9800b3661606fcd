"""Feedback for senders: the refusals of their intake commands, kept from the dead-letter topic, each sender
reading only its own (``GET /refusals``), and an application refused at intake answered as such.

A refused command is put on the dead-letter topic whole by the service that refused it. The registry reads
that topic and keeps, for each refusal of an intake command, who sent it: the command's ``sender``, and
whether the record was signed by a key trusted for that sender (``verified``). A credential bound to a
sender (``licensectl keys create --sender``) reads that sender's refusals; an agency's submitter reads the
refusals of its agency's applications; auditors and admins read all. The dead-letter topic itself stays the
operators': one topic cannot be scoped per sender by ACLs (docs/refusals.md).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from functools import partial
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, Query
from faststream.kafka.annotations import KafkaMessage
from pydantic import BaseModel

from shared.contract import dead_letters
from shared.contract.events import Reason
from shared.contract.refusal import FieldError, Refusal, readable
from shared.platform.access import Principal, require
from shared.platform.http import router
from shared.platform.records import records_by_partition
from shared.platform.service import Runtime, RuntimeContext, ServiceRuntime
from shared.platform.signing import TrustedKey

ALL = frozenset({"auditor", "admin"})
Reader = Annotated[Principal, Depends(require("submitter", "officer", "customs", "admin"))]
refusal_routes = router(tags=["refusals"])

KEEP = """
INSERT INTO refusals (source, service, command_type, command_id, sender, verified, agency_code, application_id,
                      declaration_number, license_number, reason_code, reason, refused_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
ON CONFLICT (source) DO NOTHING
"""
PAGE = """
SELECT * FROM refusals WHERE id > $1 AND ($2::text IS NULL OR sender = $2) AND ($3::text IS NULL OR agency_code = $3)
ORDER BY id LIMIT $4
"""
OF_APPLICATION = "SELECT * FROM refusals WHERE application_id = $1 ORDER BY id DESC"


class RefusalView(BaseModel):
    """One refused intake command: what it was, who sent it, why it was refused, and when."""

    id: int
    refused_at: datetime
    service: str
    command_type: str | None
    command_id: uuid.UUID | None
    sender: str | None
    verified: bool
    """Whether the record was signed by a key trusted for its sender: if not, anyone may have sent it."""
    application_id: uuid.UUID | None
    declaration_number: str | None
    license_number: str | None
    reason: Reason


class RefusalPage(BaseModel):
    items: list[RefusalView]
    next_after: int | None = None


def follow_dead_letters(runtime: Runtime, batch_size: int) -> None:
    """Keep the refusals of intake commands as the services put them on the dead-letter topic."""
    runtime.subscribe(
        on_dead_letters,
        topic=runtime.settings.topics.dead_letter,
        group="registry-refusals",
        batch_size=batch_size,
        title="refusals",
        description="Keeps the refusals of intake commands, for each sender to read its own (GET /refusals).",
    )


async def on_dead_letters(message: KafkaMessage, runtime: RuntimeContext) -> None:
    reader = runtime.reader("refusals")
    for records in records_by_partition(message):
        for record in records:
            await reader.run(partial(keep, runtime, record))


async def keep(runtime: Runtime, record: Any) -> None:
    """Keep one dead letter if it is the refusal of an intake command; anything else on the topic is skipped."""
    headers = {name: (value or b"").decode(errors="replace") for name, value in record.headers}
    source = headers.get(dead_letters.SOURCE, "")
    topic = source.rsplit("/", 2)[0]
    intake = {runtime.settings.topics.intake_applications, runtime.settings.topics.intake_exports}
    if topic not in intake or dead_letters.REASON_CODE not in headers:
        return
    command = _command(record.value)
    sender = _text(command.get("sender"), 64)
    signer = await _signer(runtime, record, sender, command.get("type"))
    payload = _object(command.get("payload"))
    application, declaration = _object(payload.get("application")), _object(payload.get("declaration"))
    claimed_agency = _text(application.get("agency_code"), 2)
    agency = signer.scope.agency_code if signer is not None and signer.scope.agency_code else claimed_agency
    await runtime.pool.execute(
        KEEP,
        source,
        _text(headers.get(dead_letters.SERVICE), 32) or "unknown",
        _text(command.get("type"), 64),
        _uuid(command.get("command_id")),
        sender,
        signer is not None,
        agency if agency and agency.isdigit() else None,
        _uuid(payload.get("application_id")),
        _text(declaration.get("declaration_number"), 64),
        _text(declaration.get("license_number"), 64),
        readable(headers[dead_letters.REASON_CODE], 64),
        readable(headers.get(dead_letters.REASON, ""), 2000),
        datetime.fromtimestamp(record.timestamp / 1000, UTC),
    )


async def _signer(runtime: Runtime, record: Any, sender: str | None, kind: Any) -> TrustedKey | None:
    """The key trusted for ``sender`` that signed the refused record, if one did."""
    if sender is None or record.value is None:
        return None
    trust = await runtime.trust.current(runtime.settings.access_cache_seconds)
    found = trust.signer(record.value, list(record.headers), producer=sender, at=datetime.now(UTC), use="commands")
    return found if isinstance(found, TrustedKey) else None


def _command(value: bytes | None) -> dict[str, Any]:
    try:
        return _object(json.loads(value or b""))
    except (ValueError, RecursionError):
        return {}


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any, limit: int) -> str | None:
    return readable(value, limit) if isinstance(value, str) and value else None


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _view(row: asyncpg.Record) -> RefusalView:
    return RefusalView(
        **{k: row[k] for k in RefusalView.model_fields if k != "reason"},
        reason=Reason(code=row["reason_code"], message=row["reason"]),
    )


def visible_to(principal: Principal) -> tuple[str | None, str | None]:
    """The (sender, agency) whose refusals ``principal`` reads: its own sender's; else its agency's, for an
    agency's submitter or officer; everything for auditors and admins (None, None). Refused (403) otherwise."""
    if principal.sender is not None:
        return principal.sender, None
    if principal.roles & ALL:
        return None, None
    if principal.roles & {"submitter", "officer"}:
        return None, principal.agency_code
    raise Refusal(
        403,
        "sender_required",
        f"credential {principal.key_id} names no intake sender: refusals are read by the sender that sent the "
        "commands, with a key bound to it (licensectl keys create --role customs --sender <producer>)",
    )


def _may_read(principal: Principal, row: asyncpg.Record, *, unless: frozenset[str]) -> bool:
    if principal.roles & (ALL | unless):
        return True
    own_sender = principal.sender is not None and row["sender"] == principal.sender
    return own_sender or bool(row["agency_code"] == principal.agency_code)


@refusal_routes.get("/refusals", response_model=RefusalPage)
async def refusals(
    principal: Reader,
    runtime: ServiceRuntime,
    after: Annotated[int, Query(ge=0, le=2**63 - 1, description="the last id of the previous page")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> RefusalPage:
    """The refusals of the caller's own intake commands, oldest first: what was refused, and why."""
    sender, agency = visible_to(principal)
    rows = await runtime.pool.fetch(PAGE, after, sender, agency, limit)
    items = [_view(r) for r in rows]
    return RefusalPage(items=items, next_after=items[-1].id if len(items) == limit else None)


async def refused_application(
    pool: asyncpg.Pool, application_id: uuid.UUID, principal: Principal, *, unless: frozenset[str]
) -> Refusal | None:
    """Why an application the ledger does not hold was refused at intake (422 ``refused_at_intake``), if it was
    and the caller may know (its sender's or its agency's, or a role in ``unless``): the latest refusal of it."""
    for row in await pool.fetch(OF_APPLICATION, application_id):
        if _may_read(principal, row, unless=unless):
            when = row["refused_at"].isoformat()
            return Refusal(
                422,
                "refused_at_intake",
                f"application {application_id} was refused at intake ({row['command_type']} {row['command_id']} "
                f"from {row['sender']}, {when}): {row['reason_code']}: {row['reason']}. Correct it and send it again",
                fields=[FieldError(None, row["reason_code"], row["reason"])],
            )
    return None
