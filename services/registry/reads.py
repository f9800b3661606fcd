"""The ledger's read side: what the HTTP API answers, from the rows the fold writes (``store.py``).

Every answer about a license as of a moment of the stream is a ``LicenseState``, read from
``license_history``, which keeps each state a license had, with the event and the position that made it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

import asyncpg

from services.registry import store
from shared.contract.events import LicenseState
from shared.fold import ApplicationEntry, LicenseEntry

# Read side: what the HTTP API answers.

APPLICATION = "SELECT * FROM applications WHERE application_id = $1"
LICENSE = "SELECT * FROM licenses WHERE license_number = $1"
LICENSE_CASE = "SELECT case_id FROM licenses WHERE license_number = $1"
LICENSE_CASES = "SELECT license_number, case_id FROM licenses WHERE license_number = ANY($1::text[])"
EXPORTS_OF_DECLARATION = "SELECT * FROM exports WHERE declaration_number = $1 ORDER BY recorded_at, event_id"


async def application(pool: asyncpg.Pool, application_id: uuid.UUID) -> ApplicationEntry | None:
    row = await pool.fetchrow(APPLICATION, application_id)
    return store.application_entry(row) if row else None


async def license_(pool: asyncpg.Pool, number: str) -> LicenseEntry | None:
    row = await pool.fetchrow(LICENSE, number)
    return store.license_entry(row) if row else None


async def license_case(pool: asyncpg.Pool, number: str) -> uuid.UUID | None:
    case_id: uuid.UUID | None = await pool.fetchval(LICENSE_CASE, number)
    return case_id


async def license_cases(pool: asyncpg.Pool, numbers: Iterable[str]) -> dict[str, uuid.UUID]:
    """The case of each of these licenses the ledger holds (a number it does not hold is left out)."""
    return {r["license_number"]: r["case_id"] for r in await pool.fetch(LICENSE_CASES, list(set(numbers)))}


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


# ``vins <> '{}'`` is the condition of the partial index ``exports_with_vins`` (registry migration 0007).
EXPORTS_OF_VIN = """
SELECT * FROM exports WHERE vins @> ARRAY[$1]::text[] AND vins <> '{}' ORDER BY recorded_at, event_id
"""


async def exports_of_vin(pool: asyncpg.Pool, vin: str) -> list[asyncpg.Record]:
    """Every export that declared ``vin``, accepted or refused, in the order they were recorded."""
    return list(await pool.fetch(EXPORTS_OF_VIN, vin))


# The exports list (GET /exports): by the export's date, destination (its license's), port, applicant and outcome,
# in (export date, event id) order; a page continues after the last (date, event id) of the previous one.
EXPORTS_PAGE = """
SELECT e.*, l.destination_country, l.applicant_code FROM exports e LEFT JOIN licenses l USING (license_number)
WHERE ($1::date IS NULL OR e.export_date >= $1) AND ($2::date IS NULL OR e.export_date <= $2)
  AND ($3::text IS NULL OR l.destination_country = $3) AND ($4::text IS NULL OR e.port_of_exit = $4)
  AND ($5::text IS NULL OR l.applicant_code = $5) AND ($6::text IS NULL OR e.outcome = $6)
  AND ($7::text IS NULL OR e.license_number = $7)
  AND ($8::date IS NULL OR (e.export_date, e.event_id) > ($8, $9::uuid))
ORDER BY e.export_date, e.event_id LIMIT $10
"""


@dataclass(frozen=True)
class ExportFilter:
    """Which exports a list holds: a period of export dates (both ends included), and exact matches."""

    date_from: date | None = None
    date_to: date | None = None
    destination_country: str | None = None
    port_of_exit: str | None = None
    applicant_code: str | None = None
    outcome: str | None = None
    license_number: str | None = None


async def exports(
    pool: asyncpg.Pool, where: ExportFilter, *, after: tuple[date, uuid.UUID] | None, limit: int
) -> list[asyncpg.Record]:
    """Exports matching ``where``, accepted and refused, in (export date, event id) order after ``after``."""
    after_date, after_id = after if after else (None, None)
    return list(
        await pool.fetch(
            EXPORTS_PAGE,
            where.date_from,
            where.date_to,
            where.destination_country,
            where.port_of_exit,
            where.applicant_code,
            where.outcome,
            where.license_number,
            after_date,
            after_id,
            limit,
        )
    )
