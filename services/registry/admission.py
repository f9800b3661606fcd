"""Admitting customs' export declarations: each declaration once, its VINs claimed (rule 9), its verdict appended.

The fold judges an export against its license; what it cannot see is decided here, before the append:
whether the declaration number was declared before (the same content again: the first verdict, nothing
appended; other content: ``declaration_conflict``), and whether another license's export holds one of its
VINs (``services/registry/vins.py``). Nothing is admitted while the ledger cannot be trusted to follow the
log (``ledger_unavailable``, 503): the log replaced or cut, the ledger altered.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
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
from shared.platform.db import Connection
from shared.platform.reading import is_infrastructure
from shared.platform.service import Runtime

PRODUCER = "registry"
DECLARE = """
INSERT INTO declarations (declaration_number, license_number, content) VALUES ($1, $2, $3::jsonb)
ON CONFLICT (declaration_number) DO NOTHING
"""
DECLARE_ALL = """
INSERT INTO declarations (declaration_number, license_number, content)
SELECT number, license, content::jsonb FROM unnest($1::text[], $2::text[], $3::text[]) AS d (number, license, content)
ON CONFLICT (declaration_number) DO NOTHING
"""
DECLARED = "SELECT content, appended FROM declarations WHERE declaration_number = $1"
DECLARED_FOR_UPDATE = DECLARED + " FOR UPDATE"
DECLARED_ALL_FOR_UPDATE = """
SELECT declaration_number, content, appended FROM declarations WHERE declaration_number = ANY($1::text[])
ORDER BY declaration_number FOR UPDATE
"""
APPENDED = "UPDATE declarations SET appended = true WHERE declaration_number = $1"
APPENDED_ALL = "UPDATE declarations SET appended = true WHERE declaration_number = ANY($1::text[])"


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
        # Appended before the claims commit: an append that fails leaves no claim behind to block the VINs.
        await runtime.append(await _verdict(connection, declaration, case_id))
        await connection.execute(APPENDED, declaration.declaration_number)
    return event_id


async def admit_all(runtime: Runtime, declarations: Sequence[ExportDeclaration]) -> None:
    """:func:`admit` for each declaration, in order, in one transaction: the declarations written and locked
    together, each one's VINs claimed (seeing the claims of those before it), the verdicts appended together.
    The first declaration refused (an unknown license, a number declared with other content) raises its
    :class:`Refusal`, and nothing is admitted."""
    ensure_ledger_follows(runtime)
    cases = await reads.license_cases(runtime.pool, (d.license_number for d in declarations))
    for declaration in declarations:
        if declaration.license_number not in cases:
            raise Refusal(422, "unknown_license", f"no license {declaration.license_number} in the ledger")
    numbers = [d.declaration_number for d in declarations]
    async with runtime.pool.acquire() as connection, connection.transaction():
        await connection.execute(store.LEDGER_LOCK_SHARED)
        contents = [d.model_dump_json() for d in declarations]
        await connection.execute(DECLARE_ALL, numbers, [d.license_number for d in declarations], contents)
        declared = {r["declaration_number"]: r for r in await connection.fetch(DECLARED_ALL_FOR_UPDATE, numbers)}
        verdicts: dict[str, Envelope] = {}
        for declaration in declarations:
            number = declaration.declaration_number
            if (refused := conflict(declaration, declared[number]["content"])) is not None:
                raise refused
            if not declared[number]["appended"] and number not in verdicts:  # else sent again: nothing appended
                verdicts[number] = await _verdict(connection, declaration, cases[declaration.license_number])
        await runtime.append_all(list(verdicts.values()))
        if verdicts:
            await connection.execute(APPENDED_ALL, list(verdicts))


async def _verdict(connection: Connection, declaration: ExportDeclaration, case_id: uuid.UUID) -> Envelope:
    """The event that carries ``declaration`` to the fold: ``ExportRecorded`` with its VINs claimed, in the
    caller's transaction; ``ExportRefused`` if another export holds one of them."""
    event_id = declaration_event_id(declaration)
    taken = await vins.claim(
        connection,
        vins=declaration.vins,
        declaration=declaration.declaration_number,
        license_number=declaration.license_number,
        event_id=event_id,
    )
    fields = declaration.model_dump()
    event = ExportRecorded(**fields) if taken is None else ExportRefused(**fields, reason=taken)
    return Envelope.wrap(event, case_id=case_id, producer=PRODUCER, event_id=event_id)


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
    await admit(runtime, await _declaration(runtime, record))


async def record_export_commands(runtime: Runtime, records: Sequence[Any]) -> bool:
    """:func:`record_export_command` for each record, in one transaction (:func:`admit_all`): True when all
    were admitted; False when one of them is refused or at fault, and none was (the caller then takes each on
    its own, so that only that one is dead-lettered). A failure that is not the records' (the ledger not
    following its log, the database, the broker) is raised."""
    try:
        await admit_all(runtime, [await _declaration(runtime, record) for record in records])
    except Refusal as refused:
        if refused.status >= 500:
            raise
        return False
    except Exception as error:
        if is_infrastructure(error):
            raise
        return False
    return True


async def _declaration(runtime: Runtime, record: Any) -> ExportDeclaration:
    """The declaration of a ``RecordExport`` record, read strictly, signed by its sender, at a port its key
    may record exports at; else a :class:`Refusal`."""
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
    return command.declaration
