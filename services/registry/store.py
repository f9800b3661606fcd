"""The ledger's rows in PostgreSQL: loading cases, writing a folded batch, and the read queries."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from services.registry import ledger
from services.registry.ledger import ApplicationEntry, Case, ExportEntry, LicenseEntry
from shared.db import Connection
from shared.events import BatchMode, Envelope, LicenseState, Reason

LOAD_APPLICATIONS = "SELECT * FROM applications WHERE application_id = ANY($1::uuid[])"
LOAD_LICENSES = "SELECT * FROM licenses WHERE case_id = ANY($1::uuid[])"
LOAD_EXPORTED_VINS = """
SELECT case_id, array_agg(vin) AS vins FROM exports, unnest(vins) AS vin
WHERE case_id = ANY($1::uuid[]) AND outcome = 'accepted' GROUP BY case_id
"""
ALREADY_APPLIED = "SELECT event_id FROM applied_events WHERE event_id = ANY($1::uuid[])"
UPSERT_APPLICATION = """
INSERT INTO applications (
    application_id, status, applicant_code, applicant_name, agency_code, destination_country,
    port_of_exit, quantity, reasons, license_number, submitted_at, decided_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, $11, $12)
ON CONFLICT (application_id) DO UPDATE SET
    status = EXCLUDED.status, reasons = EXCLUDED.reasons, license_number = EXCLUDED.license_number,
    decided_at = EXCLUDED.decided_at,
    -- a resubmission replaces the application's terms (the applicant stays the same)
    applicant_name = EXCLUDED.applicant_name, agency_code = EXCLUDED.agency_code,
    destination_country = EXCLUDED.destination_country, port_of_exit = EXCLUDED.port_of_exit,
    quantity = EXCLUDED.quantity, submitted_at = EXCLUDED.submitted_at
"""
UPSERT_LICENSE = """
INSERT INTO licenses (
    license_number, case_id, status, applicant_code, quantity, balance, declarations_used,
    valid_from, valid_to, port_of_exit, destination_country, batch_mode, vins, granted_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
ON CONFLICT (license_number) DO UPDATE SET
    status = EXCLUDED.status, balance = EXCLUDED.balance, declarations_used = EXCLUDED.declarations_used
"""
INSERT_EXPORT = """
INSERT INTO exports (
    event_id, declaration_number, license_number, case_id, outcome, reason_code, reason_message,
    quantity, port_of_exit, export_date, vins, value, currency, recorded_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
"""
INSERT_HISTORY = """
INSERT INTO license_history (license_number, event_id, partition, "offset", occurred_at, state)
VALUES ($1, $2, $3, $4, $5, $6::jsonb)
"""
INSERT_OUTBOX = "INSERT INTO outbox (license_number, state) VALUES ($1, $2::jsonb)"
MARK_APPLIED = "INSERT INTO applied_events (event_id) SELECT unnest($1::uuid[])"
SAVE_OFFSET = """
INSERT INTO partition_offsets (topic, partition, next_offset) VALUES ($1, $2, $3)
ON CONFLICT (topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset
"""
STORED_OFFSETS = "SELECT partition, next_offset FROM partition_offsets WHERE topic = $1"
# Every batch holds this lock shared; swapping in a rebuilt ledger holds it exclusively, so no batch
# straddles the swap (a batch's statements resolve their tables after the lock is granted).
LEDGER_LOCK_KEY = 0x4C454447  # "LEDG"
LEDGER_LOCK_SHARED = f"SELECT pg_advisory_xact_lock_shared({LEDGER_LOCK_KEY})"
LEDGER_LOCK_EXCLUSIVE = f"SELECT pg_advisory_xact_lock({LEDGER_LOCK_KEY})"


async def stored_offsets(connection: Connection | asyncpg.Pool, topic: str) -> dict[int, int]:
    """The next offset to read of each partition of ``topic``, as the ledger last committed it."""
    rows = await connection.fetch(STORED_OFFSETS, topic)
    return {row["partition"]: row["next_offset"] for row in rows}


@dataclass(frozen=True)
class Positioned:
    """An event with its offset in its partition."""

    offset: int
    envelope: Envelope


@dataclass(frozen=True)
class Applied:
    """What one batch changed: how many events were new, the exports they judged, the license states."""

    events: int
    exports: list[ExportEntry]
    changes: list[LicenseState]


async def apply_batch(
    connection: Connection,
    *,
    topic: str,
    partition: int,
    events: Sequence[Positioned],
    next_offset: int,
) -> Applied:
    """Fold ``events`` of one partition into the ledger, in the caller's transaction.

    Events already applied are skipped, so a redelivered batch changes nothing; the partition's
    offset is stored with the rows, so a crash never separates the two; each license that changed
    gets a history row and an outbox row in the same transaction, so no change is ever lost.
    """
    fresh = await _not_yet_applied(connection, events)
    cases = await _load_cases(connection, {p.envelope.case_id for p in fresh})
    exports: list[ExportEntry] = []
    history: list[tuple[Any, ...]] = []
    changes: list[LicenseState] = []
    for positioned in fresh:
        envelope = positioned.envelope
        before = cases.get(envelope.case_id) or Case(case_id=envelope.case_id)
        after, export = ledger.apply(before, envelope)
        cases[envelope.case_id] = after
        exports.extend([export] if export else [])
        for license_ in _changed_licenses(before, after):
            state = license_state(license_, envelope)
            changes.append(state)
            history.append(_history_args(state, partition, positioned.offset))
    await _save(connection, [cases[c] for c in {p.envelope.case_id for p in fresh}], exports)
    await _settle_claims(connection, exports)
    await _record_changes(connection, history, changes)
    if fresh:
        await connection.execute(MARK_APPLIED, [p.envelope.event_id for p in fresh])
    await connection.execute(SAVE_OFFSET, topic, partition, next_offset)
    return Applied(events=len(fresh), exports=exports, changes=changes)


async def _not_yet_applied(connection: Connection, events: Sequence[Positioned]) -> list[Positioned]:
    ids = [p.envelope.event_id for p in events]
    applied = {r["event_id"] for r in await connection.fetch(ALREADY_APPLIED, ids)}
    fresh: list[Positioned] = []
    for positioned in events:
        if positioned.envelope.event_id not in applied:
            applied.add(positioned.envelope.event_id)
            fresh.append(positioned)
    return fresh


def _changed_licenses(before: Case, after: Case) -> list[LicenseEntry]:
    return [lic for number, lic in after.licenses.items() if before.licenses.get(number) != lic]


def license_state(license_: LicenseEntry, cause: Envelope) -> LicenseState:
    """The published form of a license, as of the event that produced it."""
    return LicenseState(
        license_number=license_.license_number,
        case_id=license_.case_id,
        status=license_.status.value,
        applicant_code=license_.applicant_code,
        quantity=license_.quantity,
        balance=license_.balance,
        declarations_used=license_.declarations_used,
        valid_from=license_.valid_from,
        valid_to=license_.valid_to,
        port_of_exit=license_.port_of_exit,
        destination_country=license_.destination_country,
        batch_mode=license_.batch_mode,
        as_of_event=cause.event_id,
        as_of=cause.occurred_at,
    )


def _history_args(state: LicenseState, partition: int, offset: int) -> tuple[Any, ...]:
    return (state.license_number, state.as_of_event, partition, offset, state.as_of, state.model_dump_json())


async def _record_changes(
    connection: Connection, history: list[tuple[Any, ...]], changes: list[LicenseState]
) -> None:
    if history:
        await connection.executemany(INSERT_HISTORY, history)
    if changes:
        await connection.executemany(INSERT_OUTBOX, [(c.license_number, c.model_dump_json()) for c in changes])


async def _load_cases(connection: Connection, case_ids: set[uuid.UUID]) -> dict[uuid.UUID, Case]:
    if not case_ids:
        return {}
    ids = list(case_ids)
    applications = {r["application_id"]: _application(r) for r in await connection.fetch(LOAD_APPLICATIONS, ids)}
    licenses: dict[uuid.UUID, dict[str, LicenseEntry]] = {}
    for row in await connection.fetch(LOAD_LICENSES, ids):
        licenses.setdefault(row["case_id"], {})[row["license_number"]] = _license(row)
    vins = {r["case_id"]: frozenset(r["vins"]) for r in await connection.fetch(LOAD_EXPORTED_VINS, ids)}
    return {
        case_id: Case(
            case_id=case_id,
            application=applications.get(case_id),
            licenses=licenses.get(case_id, {}),
            exported_vins=vins.get(case_id, frozenset()),
        )
        for case_id in case_ids
        if case_id in applications or case_id in licenses
    }


async def load_case(connection: Connection | asyncpg.Pool, case_id: uuid.UUID) -> Case:
    """The case as the ledger holds it now (an empty one if the ledger has not seen it)."""
    cases = await _load_cases(connection, {case_id})  # type: ignore[arg-type]  # a pool runs the same queries
    return cases.get(case_id) or Case(case_id=case_id)


async def _save(connection: Connection, cases: Iterable[Case], exports: list[ExportEntry]) -> None:
    applications = [_application_args(c.application) for c in cases if c.application is not None]
    licenses = [_license_args(lic) for c in cases for lic in c.licenses.values()]
    if applications:
        await connection.executemany(UPSERT_APPLICATION, applications)
    if licenses:
        await connection.executemany(UPSERT_LICENSE, licenses)
    if exports:
        await connection.executemany(INSERT_EXPORT, [_export_args(e) for e in exports])


def _reasons_json(reasons: Iterable[Reason]) -> str:
    return json.dumps([r.model_dump() for r in reasons])


def _application_args(a: ApplicationEntry) -> tuple[Any, ...]:
    return (
        a.application_id,
        a.status.value,
        a.applicant_code,
        a.applicant_name,
        a.agency_code,
        a.destination_country,
        a.port_of_exit,
        a.quantity,
        _reasons_json(a.reasons),
        a.license_number,
        a.submitted_at,
        a.decided_at,
    )


def _license_args(lic: LicenseEntry) -> tuple[Any, ...]:
    return (
        lic.license_number,
        lic.case_id,
        lic.status.value,
        lic.applicant_code,
        lic.quantity,
        lic.balance,
        lic.declarations_used,
        lic.valid_from,
        lic.valid_to,
        lic.port_of_exit,
        lic.destination_country,
        lic.batch_mode.value,
        list(lic.vins),
        lic.granted_at,
    )


def _export_args(e: ExportEntry) -> tuple[Any, ...]:
    return (
        e.event_id,
        e.declaration_number,
        e.license_number,
        e.case_id,
        e.outcome.value,
        e.reason.code if e.reason else None,
        e.reason.message if e.reason else None,
        e.quantity,
        e.port_of_exit,
        e.export_date,
        list(e.vins),
        e.value,
        e.currency,
        e.recorded_at,
    )


def _application(row: asyncpg.Record) -> ApplicationEntry:
    return ApplicationEntry(
        application_id=row["application_id"],
        status=ledger.ApplicationStatus(row["status"]),
        applicant_code=row["applicant_code"],
        applicant_name=row["applicant_name"],
        agency_code=row["agency_code"],
        destination_country=row["destination_country"],
        port_of_exit=row["port_of_exit"],
        quantity=row["quantity"],
        submitted_at=row["submitted_at"],
        reasons=tuple(Reason.model_validate(r) for r in json.loads(row["reasons"])),
        license_number=row["license_number"],
        decided_at=row["decided_at"],
    )


def _license(row: asyncpg.Record) -> LicenseEntry:
    return LicenseEntry(
        license_number=row["license_number"],
        case_id=row["case_id"],
        status=ledger.LicenseStatus(row["status"]),
        applicant_code=row["applicant_code"],
        quantity=row["quantity"],
        balance=row["balance"],
        declarations_used=row["declarations_used"],
        valid_from=row["valid_from"],
        valid_to=row["valid_to"],
        port_of_exit=row["port_of_exit"],
        destination_country=row["destination_country"],
        batch_mode=BatchMode(row["batch_mode"]),
        vins=tuple(row["vins"]),
        granted_at=row["granted_at"],
    )


# Read side: what the HTTP API answers.

APPLICATION = "SELECT * FROM applications WHERE application_id = $1"
LICENSE = "SELECT * FROM licenses WHERE license_number = $1"
LICENSE_CASE = "SELECT case_id FROM licenses WHERE license_number = $1"
EXPORTS_OF_DECLARATION = "SELECT * FROM exports WHERE declaration_number = $1 ORDER BY recorded_at, event_id"


async def application(pool: asyncpg.Pool, application_id: uuid.UUID) -> ApplicationEntry | None:
    row = await pool.fetchrow(APPLICATION, application_id)
    return _application(row) if row else None


async def license_(pool: asyncpg.Pool, number: str) -> LicenseEntry | None:
    row = await pool.fetchrow(LICENSE, number)
    return _license(row) if row else None


async def license_case(pool: asyncpg.Pool, number: str) -> uuid.UUID | None:
    case_id: uuid.UUID | None = await pool.fetchval(LICENSE_CASE, number)
    return case_id


async def exports_of_declaration(pool: asyncpg.Pool, declaration_number: str) -> list[asyncpg.Record]:
    return list(await pool.fetch(EXPORTS_OF_DECLARATION, declaration_number))


# Point in time and lists: every answer is a LicenseState, current or as of a moment of the stream.

_FILTERS = """
    ($1::text IS NULL OR state->>'applicant_code' = $1)
    AND ($2::text IS NULL OR state->>'status' = $2)
    AND ($3::text IS NULL OR state->>'destination_country' = $3)
    AND ($4::date IS NULL OR ((state->>'valid_from')::date <= $4 AND $4 <= (state->>'valid_to')::date))
    AND ($5::text IS NULL OR state->>'license_number' > $5)
"""
LICENSES_AS_OF = f"""
SELECT state::text FROM (
    SELECT DISTINCT ON (license_number) state FROM license_history
    WHERE occurred_at <= $6 ORDER BY license_number, "offset" DESC
) latest
WHERE {_FILTERS}
ORDER BY state->>'license_number' LIMIT $7
"""
LICENSES_NOW = f"""
SELECT state::text FROM (
    SELECT DISTINCT ON (license_number) state FROM license_history ORDER BY license_number, "offset" DESC
) latest
WHERE {_FILTERS}
ORDER BY state->>'license_number' LIMIT $6
"""
LICENSE_AS_OF_TIME = """
SELECT state::text FROM license_history WHERE license_number = $1 AND occurred_at <= $2
ORDER BY "offset" DESC LIMIT 1
"""
LICENSE_AS_OF_OFFSET = """
SELECT state::text FROM license_history WHERE license_number = $1 AND "offset" < $2
ORDER BY "offset" DESC LIMIT 1
"""
LICENSE_HISTORY = """
SELECT partition, "offset", state::text FROM license_history WHERE license_number = $1 ORDER BY "offset"
"""


@dataclass(frozen=True)
class LicenseFilter:
    applicant_code: str | None = None
    status: str | None = None
    destination_country: str | None = None
    valid_on: date | None = None


async def licenses(
    pool: asyncpg.Pool, where: LicenseFilter, *, as_of: datetime | None, after: str | None, limit: int
) -> list[LicenseState]:
    """Licenses matching ``where`` in license-number order after ``after``, now or as of ``as_of``."""
    args = (where.applicant_code, where.status, where.destination_country, where.valid_on, after)
    if as_of is None:
        rows = await pool.fetch(LICENSES_NOW, *args, limit)
    else:
        rows = await pool.fetch(LICENSES_AS_OF, *args, as_of, limit)
    return [LicenseState.model_validate_json(r[0]) for r in rows]


async def license_as_of(
    pool: asyncpg.Pool, number: str, *, at: datetime | None = None, before_offset: int | None = None
) -> LicenseState | None:
    """The license as it stood at time ``at``, or before offset ``before_offset`` of its partition."""
    if at is not None:
        state = await pool.fetchval(LICENSE_AS_OF_TIME, number, at)
    else:
        state = await pool.fetchval(LICENSE_AS_OF_OFFSET, number, before_offset)
    return LicenseState.model_validate_json(state) if state else None


async def license_history(pool: asyncpg.Pool, number: str) -> list[tuple[int, int, LicenseState]]:
    """Every state of the license in stream order, with the partition and offset that made it."""
    rows = await pool.fetch(LICENSE_HISTORY, number)
    return [(r["partition"], r["offset"], LicenseState.model_validate_json(r["state"])) for r in rows]


# VIN claims (rule 9 across licenses): the intake claims, the fold settles. See docs/vin-uniqueness.md.

# A released claim (its declaration was refused) is free to take; a pending or accepted one is not.
CLAIM_VINS = """
INSERT INTO vin_claims (vin, declaration_number, license_number, event_id, state)
SELECT vin, $2, $3, $4, 'pending' FROM unnest($1::text[]) AS vin
ON CONFLICT (vin) DO UPDATE SET
    declaration_number = EXCLUDED.declaration_number, license_number = EXCLUDED.license_number,
    event_id = EXCLUDED.event_id, state = 'pending', claimed_at = now()
WHERE vin_claims.state = 'released' AND vin_claims.event_id <> EXCLUDED.event_id
"""
CLAIMED_BY_OTHERS = """
SELECT vin, declaration_number, license_number, state FROM vin_claims
WHERE vin = ANY($1::text[]) AND event_id <> $2 AND state <> 'released' ORDER BY vin
"""
# An accepted export holds its VINs for good; one that reached the log without the intake claims them here.
ACCEPT_CLAIMS = """
INSERT INTO vin_claims (vin, declaration_number, license_number, event_id, state)
SELECT vin, $2, $3, $4, 'accepted' FROM unnest($1::text[]) AS vin
ON CONFLICT (vin) DO UPDATE SET
    declaration_number = EXCLUDED.declaration_number, license_number = EXCLUDED.license_number,
    event_id = EXCLUDED.event_id, state = 'accepted'
WHERE vin_claims.event_id = EXCLUDED.event_id OR vin_claims.state = 'released'
"""
RELEASE_CLAIMS = "UPDATE vin_claims SET state = 'released' WHERE event_id = $1 AND state = 'pending'"


class _Taken(Exception):
    def __init__(self, reason: Reason) -> None:
        self.reason = reason


async def claim_vins(
    connection: asyncpg.Connection | PoolConnectionProxy[asyncpg.Record],
    *,
    vins: Iterable[str],
    declaration: str,
    license_number: str,
    event_id: uuid.UUID,
) -> Reason | None:
    """Claim ``vins`` for the declaration in the caller's transaction, or say which another holds (then none)."""
    wanted = sorted(set(vins))  # one order for every intake, so two claiming overlapping sets cannot deadlock
    if not wanted:
        return None
    try:
        async with connection.transaction():  # a savepoint: a refused claim leaves no VIN half-claimed
            await connection.execute(CLAIM_VINS, wanted, declaration, license_number, event_id)
            taken = await vin_claimed_elsewhere(connection, wanted, event_id)
            if taken is not None:
                raise _Taken(taken)
    except _Taken as refused:
        return refused.reason
    return None


async def vin_claimed_elsewhere(
    connection: asyncpg.Connection | asyncpg.Pool | PoolConnectionProxy[asyncpg.Record],
    vins: Iterable[str],
    event_id: uuid.UUID,
) -> Reason | None:
    """``vin_already_exported`` if another declaration holds one of ``vins`` (accepted, or being judged)."""
    rows = await connection.fetch(CLAIMED_BY_OTHERS, sorted(set(vins)), event_id)
    if not rows:
        return None
    first = rows[0]
    how = "exported" if first["state"] == "accepted" else "declared, and the ledger is judging it,"
    return Reason(
        code="vin_already_exported",
        message=f"VIN {first['vin']} was {how} under declaration {first['declaration_number']} "
        f"on license {first['license_number']}",
    )


async def _settle_claims(connection: Connection, exports: list[ExportEntry]) -> None:
    """Settle the intake's claims as the fold judged: accepted VINs stay claimed, a refusal releases them."""
    accepted = [
        (sorted(set(e.vins)), e.declaration_number, e.license_number, e.event_id)
        for e in exports
        if e.vins and e.outcome is ledger.Outcome.ACCEPTED
    ]
    refused = [(e.event_id,) for e in exports if e.vins and e.outcome is ledger.Outcome.REFUSED]
    if accepted:
        await connection.executemany(ACCEPT_CLAIMS, accepted)
    if refused:
        await connection.executemany(RELEASE_CLAIMS, refused)


EXPORTS_OF_VIN = "SELECT * FROM exports WHERE vins @> ARRAY[$1]::text[] ORDER BY recorded_at, event_id"


async def exports_of_vin(pool: asyncpg.Pool, vin: str) -> list[asyncpg.Record]:
    """Every export that declared ``vin``, accepted or refused, in the order they were recorded."""
    return list(await pool.fetch(EXPORTS_OF_VIN, vin))
