"""Admitting customs' export declarations: each declaration once, its VINs claimed (rule 9), its verdict appended.

The fold judges an export against its license; what it cannot see is decided here, before the append:
whether the declaration number was declared before (the same content again: the first verdict, nothing
appended; other content: ``declaration_conflict``), and whether another license's export holds one of its
VINs (``services/registry/vins.py``). Nothing is admitted while the ledger cannot be trusted to follow the
log (``ledger_unavailable``, 503): the log replaced or cut, the ledger altered.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from services.registry import reads, store, vins
from shared import fold as ledger
from shared.contract.commands import RecordExport, decode_command
from shared.contract.events import (
    DeclaredExport,
    Envelope,
    ExportDeclaration,
    ExportRecorded,
    ExportRefused,
    Reason,
    derived_event_id,
)
from shared.contract.refusal import Refusal
from shared.platform.service import Runtime

PRODUCER = "registry"
DECLARE = """
INSERT INTO declarations (declaration_number, license_number, content) VALUES ($1, $2, $3::jsonb)
ON CONFLICT (declaration_number) DO NOTHING
"""
DECLARED = "SELECT content, appended FROM declarations WHERE declaration_number = $1"
DECLARED_FOR_UPDATE = DECLARED + " FOR UPDATE"
APPENDED = "UPDATE declarations SET appended = true WHERE declaration_number = $1"


def declaration_event_id(declaration: DeclaredExport) -> uuid.UUID:
    """One id per declaration, whichever verdict event carries it: a resent one is a duplicate."""
    return derived_event_id(f"{declaration.license_number}/{declaration.declaration_number}", "export")


def conflict(declaration: DeclaredExport, stored: str) -> Refusal | None:
    """``declaration_conflict`` if the number was declared before with other content (None: the same one)."""
    first = DeclaredExport.model_validate_json(stored)
    if first == DeclaredExport.model_validate(declaration.model_dump()):
        return None
    changed = sorted(k for k, v in first.model_dump().items() if getattr(declaration, k) != v)
    return Refusal(
        409,
        "declaration_conflict",
        f"declaration {declaration.declaration_number} was recorded before with other content ({', '.join(changed)} "
        "differ): a declaration is recorded once; correct it under a new declaration number",
    )


def ledger_problem(runtime: Runtime) -> str | None:
    """Why the ledger cannot be trusted to follow its log now (its ``ledger`` health check: the log replaced or
    cut, the ledger altered), or None. A reader waiting out a failure of the broker or the database (a partition
    handed to another instance, a leader being elected) is not one: nothing is admitted but by an append, which
    fails on its own if it cannot be made, and an intake command refused for it would be lost to its sender."""
    check = runtime.checks.get("ledger")
    state = check() if check is not None else "ok"
    return None if state == "ok" else f"the ledger does not follow its log now: ledger: {state}"


def ensure_ledger_follows(runtime: Runtime) -> None:
    """Refuse (503 ``ledger_unavailable``) while the ledger cannot be trusted to judge an export. Over HTTP the
    sender tries again after Retry-After; on the intake topic the reader waits and takes the command again
    (``shared/platform/reading.py``), so nothing a sender had acknowledged is bounced for it."""
    if (problem := ledger_problem(runtime)) is not None:
        raise Refusal(503, "ledger_unavailable", problem, headers={"Retry-After": "30"})


async def admit(runtime: Runtime, declaration: ExportDeclaration) -> uuid.UUID:
    """Append customs' declaration to its license's case, once; the fold accepts or refuses it there. Returns
    the id of its verdict event (the same for the declaration sent again, which appends nothing)."""
    ensure_ledger_follows(runtime)
    case_id = await reads.license_case(runtime.pool, declaration.license_number)
    if case_id is None:
        raise Refusal(422, "unknown_license", f"no license {declaration.license_number} in the ledger")
    event_id = declaration_event_id(declaration)
    async with runtime.pool.acquire() as connection, connection.transaction():
        # Shared like a ledger batch, so a replay's swap carries the claims over with nothing in flight.
        await connection.execute(store.LEDGER_LOCK_SHARED)
        content = declaration.model_dump_json()
        await connection.execute(DECLARE, declaration.declaration_number, declaration.license_number, content)
        declared = await connection.fetchrow(DECLARED_FOR_UPDATE, declaration.declaration_number)
        assert declared is not None
        if (refused := conflict(declaration, declared["content"])) is not None:
            raise refused
        if declared["appended"]:
            return event_id  # sent again: the first verdict stands, nothing is appended
        taken = await vins.claim(
            connection,
            vins=declaration.vins,
            declaration=declaration.declaration_number,
            license_number=declaration.license_number,
            event_id=event_id,
        )
        fields = declaration.model_dump()
        event = ExportRecorded(**fields) if taken is None else ExportRefused(**fields, reason=taken)
        envelope = Envelope.wrap(event, case_id=case_id, producer=PRODUCER, event_id=event_id)
        # Appended before the claims commit: an append that fails leaves no claim behind to block the VINs.
        await runtime.append(envelope)
        await connection.execute(APPENDED, declaration.declaration_number)
    return event_id


async def would_refuse(pool: asyncpg.Pool, declaration: ExportDeclaration) -> Reason | None:
    """Why the ledger would refuse ``declaration`` now, or None; reads the ledger and the claims, writes nothing."""
    case_id = await reads.license_case(pool, declaration.license_number)
    if case_id is None:
        return Reason(code="unknown_license", message=f"no license {declaration.license_number} in the ledger")
    declared = await pool.fetchrow(DECLARED, declaration.declaration_number)
    if declared is not None:
        if (refused := conflict(declaration, declared["content"])) is not None:
            return refused.reason
        if declared["appended"]:
            return Reason(code="already_recorded", message=f"declaration {declaration.declaration_number} is recorded")
    export = ExportRecorded(**declaration.model_dump())
    case = await store.load_case(pool, case_id)
    return ledger.judge(case, export) or await vins.held_elsewhere(pool, export.vins, declaration_event_id(declaration))


async def record_export_command(runtime: Runtime, record: Any) -> None:
    """Take one customs backend's ``RecordExport``: read it, check its signature, admit the declaration."""
    intake, command = decode_command(
        record.value or b"", expected=RecordExport.TYPE, max_bytes=runtime.settings.max_message_bytes
    )
    key = await runtime.check_signature(record, intake.sender)
    assert isinstance(command, RecordExport)
    port = command.declaration.port_of_exit
    if key.scope.ports is not None and port not in key.scope.ports:
        raise Refusal(
            403,
            "other_customs_office",
            f"{intake.sender}'s key is trusted to record exports at {', '.join(key.scope.ports)}, not at {port}",
        )
    await admit(runtime, command.declaration)
