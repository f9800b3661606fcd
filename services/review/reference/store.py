"""Review's reference data in its own tables: loaded from the repo's version files, changed by admins,
read back whole into the :class:`ReferenceData` the rules decide against.

Every writer (a load, an admin change) locks the one ``reference_state`` row and moves its revision
counter in the transaction that changes the rows, so the counter says exactly when the data changed.
Each instance compares the counter with the revision it holds before it decides (one small SELECT)
and reads the tables again when it moved: a change is in force everywhere once it commits.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from pydantic import ValidationError

from services.review.reference import REFERENCE_DIR, Inconsistent, ListingStatus, ReferenceData, document
from shared.contract.events import Reason
from shared.contract.refusal import FieldError, Refusal
from shared.platform.db import Connection

log = logging.getLogger(__name__)

LOADER = "review"
"""Who the change log names for a version loaded at start-up."""
ROWS = ("enterprises", "authorisations", "models", "after_sales_outlets", "after_sales_confirmations")
"""The parts of a version kept as rows; the rest (ports, codes, caps, FX, calendar) is read from its document."""

REVISION = "SELECT revision FROM reference_state"
LOCK_STATE = "SELECT version, revision FROM reference_state FOR UPDATE"
STATE = "SELECT version, revision FROM reference_state"
LOADED = "SELECT EXISTS (SELECT 1 FROM reference_versions WHERE version = $1)"
SETTINGS = "SELECT document - $1::text[] FROM reference_versions WHERE version = $2"
RECORD_VERSION = "INSERT INTO reference_versions (version, document, revision) VALUES ($1, $2::jsonb, $3)"
SET_STATE = "UPDATE reference_state SET version = $1, revision = $2"
SET_REVISION = "UPDATE reference_state SET revision = $1"
CLEAR = "DELETE FROM reference_enterprises"  # the other tables' rows go with their enterprise
LOG_CHANGE = """
INSERT INTO reference_changes (revision, kind, target, before, after, changed_by, why)
VALUES ($1, $2, $3, $4::jsonb, $5::jsonb, $6, $7)
"""
CHANGES = """
SELECT revision, kind, target, before, after, changed_by, why, changed_at
FROM reference_changes WHERE revision > $1 ORDER BY revision LIMIT $2
"""
ENTERPRISES = "SELECT code, name, role, tier FROM reference_enterprises ORDER BY code"
LISTINGS = "SELECT enterprise, year, status FROM reference_listings ORDER BY enterprise, year"
AUTHORISATIONS = """
SELECT distributor, manufacturer, brands, year, status FROM reference_authorisations
ORDER BY distributor, manufacturer, year
"""
MODELS = """
SELECT model_code, manufacturer, brand, ccc_certificate, ccc_valid_until, reference_price_cny
FROM reference_models ORDER BY model_code
"""
OUTLETS = "SELECT enterprise, country, city, name FROM reference_outlets ORDER BY enterprise, country, city, name"
CONFIRMATIONS = """
SELECT number, manufacturer, vin, destination_country, confirmed_on FROM reference_confirmations ORDER BY number
"""

ENTERPRISE_EXISTS = "SELECT EXISTS (SELECT 1 FROM reference_enterprises WHERE code = $1)"
LISTING = "SELECT status FROM reference_listings WHERE enterprise = $1 AND year = $2"
SET_LISTING = """
INSERT INTO reference_listings (enterprise, year, status) VALUES ($1, $2, $3)
ON CONFLICT (enterprise, year) DO UPDATE SET status = EXCLUDED.status
"""
AUTHORISATION = """
SELECT brands, status FROM reference_authorisations WHERE distributor = $1 AND manufacturer = $2 AND year = $3
"""
SET_AUTHORISATION = """
INSERT INTO reference_authorisations (distributor, manufacturer, year, brands, status) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (distributor, manufacturer, year) DO UPDATE SET brands = EXCLUDED.brands, status = EXCLUDED.status
"""
MODEL = "SELECT ccc_certificate, ccc_valid_until, reference_price_cny FROM reference_models WHERE model_code = $1"
SET_MODEL = """
UPDATE reference_models SET ccc_certificate = $2, ccc_valid_until = $3, reference_price_cny = $4
WHERE model_code = $1
"""
OUTLET_EXISTS = """
SELECT EXISTS (SELECT 1 FROM reference_outlets WHERE enterprise = $1 AND country = $2 AND city = $3 AND name = $4)
"""
OPEN_OUTLET = "INSERT INTO reference_outlets (enterprise, country, city, name) VALUES ($1, $2, $3, $4)"
CLOSE_OUTLET = "DELETE FROM reference_outlets WHERE enterprise = $1 AND country = $2 AND city = $3 AND name = $4"


def unknown(message: str) -> Refusal:
    """A change names an enterprise, model, authorisation or outlet the reference data does not hold (404)."""
    return Refusal(404, "unknown_reference", message)


def refused(reasons: list[Reason]) -> Refusal:
    """A change that would leave the reference data inconsistent, or that lacks what it needs (422)."""
    message = "; ".join(r.message for r in reasons)
    return Refusal(422, reasons[0].code, message, [FieldError(None, r.code, r.message) for r in reasons])


@dataclass(frozen=True)
class Change:
    """What one admin change did: the row it touched, as it was and as it is (None: absent)."""

    kind: str
    target: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


@dataclass(frozen=True)
class Applied:
    """The revision in force after a change; ``changed`` is false when the data already said so."""

    revision: int
    changed: bool


Edit = Callable[[Connection], Awaitable[Change]]
"""Writes one change in the caller's transaction and says what it did."""


# --- loading a version ---------------------------------------------------------------------------


async def _state(connection: Connection, query: str) -> tuple[str | None, int]:
    """The version in force and the revision counter (the migration made the one row)."""
    row = await connection.fetchrow(query)
    assert row is not None
    return row["version"], row["revision"]


def _order(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


async def ensure_loaded(pool: asyncpg.Pool, version: str, directory: Path = REFERENCE_DIR) -> bool:
    """Load reference data ``version`` from its file into the tables unless it was loaded before;
    whether this call loaded it. One transaction: a second instance waits, then finds it loaded.

    A version older than the one in force is not loaded: an instance left on the old configuration
    (during a rolling upgrade) must not undo the new version for every instance.
    """
    raw = document(version, directory)
    data = ReferenceData.model_validate(raw)  # a broken file stops the start-up, before any write
    async with pool.acquire() as connection, connection.transaction():
        current, revision = await _state(connection, LOCK_STATE)
        if await connection.fetchval(LOADED, version):
            return False
        if current is not None and _order(version) < _order(current):
            log.warning("reference data %s is configured but %s is in force: keeping %s", version, current, current)
            return False
        revision += 1
        await _replace_rows(connection, data)
        await connection.execute(RECORD_VERSION, version, json.dumps(raw), revision)
        await connection.execute(SET_STATE, version, revision)
        change = Change("version", version, {"version": current} if current else None, {"version": version})
        await _log(connection, revision, change, LOADER, f"start-up: version {version} from the repo")
    log.info("reference data %s loaded as revision %s", version, revision)
    return True


async def _replace_rows(connection: Connection, data: ReferenceData) -> None:
    await connection.execute(CLEAR)
    tables: dict[str, Iterable[tuple[Any, ...]]] = {
        "reference_enterprises": ((e.code, e.name, e.role.value, e.tier) for e in data.enterprises),
        "reference_listings": ((e.code, y, s) for e in data.enterprises for y, s in e.years.items()),
        "reference_authorisations": (
            (a.distributor, a.manufacturer, a.year, list(a.brands), a.status) for a in data.authorisations
        ),
        "reference_models": (
            (m.model_code, m.manufacturer, m.brand, m.ccc_certificate, m.ccc_valid_until, m.reference_price_cny)
            for m in data.models
        ),
        "reference_outlets": ((o.enterprise, o.country, o.city, o.name) for o in data.after_sales_outlets),
        "reference_confirmations": (
            (c.number, c.manufacturer, c.vin, c.destination_country, c.confirmed_on)
            for c in data.after_sales_confirmations
        ),
    }
    for table, records in tables.items():  # in this order: each table's rows name enterprises already there
        await connection.copy_records_to_table(table, records=list(records))


# --- reading the tables --------------------------------------------------------------------------


async def read(connection: Connection) -> ReferenceData:
    """The reference data the tables hold, checked for consistency (ValidationError when not).
    Call it in a transaction that sees one state of the tables (a snapshot, or the state row locked)."""
    version, revision = await _state(connection, STATE)
    if version is None:
        raise LookupError("no reference data is loaded: the service loads it at start-up")
    settings = json.loads(await connection.fetchval(SETTINGS, list(ROWS), version))
    return ReferenceData.model_validate({**settings, **await _rows(connection), "revision": revision})


async def _rows(connection: Connection) -> dict[str, list[dict[str, Any]]]:
    years: dict[str, dict[int, str]] = {}
    for listing in await connection.fetch(LISTINGS):
        years.setdefault(listing["enterprise"], {})[listing["year"]] = listing["status"]
    enterprises = [{**e, "years": years.get(e["code"], {})} for e in map(dict, await connection.fetch(ENTERPRISES))]
    return {
        "enterprises": [{k: v for k, v in e.items() if v is not None} for e in enterprises],
        "authorisations": [dict(a) for a in await connection.fetch(AUTHORISATIONS)],
        "models": [dict(m) for m in await connection.fetch(MODELS)],
        "after_sales_outlets": [dict(o) for o in await connection.fetch(OUTLETS)],
        "after_sales_confirmations": [dict(c) for c in await connection.fetch(CONFIRMATIONS)],
    }


class ReferenceCache:
    """This instance's copy of the reference data, read again whenever the revision counter has moved."""

    def __init__(self) -> None:
        self._pool: asyncpg.Pool | None = None
        self._data: ReferenceData | None = None
        self._reading = asyncio.Lock()
        self._started = asyncio.Event()

    async def start(self, pool: asyncpg.Pool, version: str) -> None:
        """Load ``version`` if no instance has yet, then read the tables."""
        await ensure_loaded(pool, version)
        self._pool = pool
        self._started.set()
        await self.current()

    async def current(self) -> ReferenceData:
        """The reference data as of the latest committed change."""
        await self._started.wait()  # the broker starts consuming before the start-up hooks have run
        assert self._pool is not None
        revision = await self._pool.fetchval(REVISION)
        if self._data is None or self._data.revision < revision:
            async with self._reading:  # one read for all the decisions waiting on the same change
                if self._data is None or self._data.revision < revision:
                    self._data = await self._read(self._pool)
        return self._data

    @staticmethod
    async def _read(pool: asyncpg.Pool) -> ReferenceData:
        async with pool.acquire() as connection, connection.transaction(isolation="repeatable_read", readonly=True):
            data = await read(connection)
        log.info("reference data %s revision %s read", data.version, data.revision)
        return data


# --- changing it ---------------------------------------------------------------------------------


async def apply(pool: asyncpg.Pool, edit: Edit, *, changed_by: str, why: str) -> Applied:
    """Make one change, check the whole reference data still holds together, and log it as the next
    revision, all in one transaction; a change that leaves the data as it was is not logged."""
    async with pool.acquire() as connection, connection.transaction():
        _, revision = await _state(connection, LOCK_STATE)
        change = await edit(connection)
        if change.before == change.after:
            return Applied(revision, changed=False)
        await _check(connection)
        revision += 1
        await connection.execute(SET_REVISION, revision)
        await _log(connection, revision, change, changed_by, why)
        return Applied(revision, changed=True)


async def _check(connection: Connection) -> None:
    try:
        await read(connection)
    except ValidationError as exc:
        raise refused([Reason(code="reference_inconsistent", message=p) for p in inconsistencies(exc)]) from exc


def inconsistencies(exc: ValidationError) -> list[str]:
    """Each problem ``exc`` found in reference data, one line each (a consistency check lists several)."""
    problems: list[str] = []
    for error in exc.errors():
        cause = error.get("ctx", {}).get("error")
        problems += cause.problems if isinstance(cause, Inconsistent) else [error["msg"]]
    return problems


async def _log(connection: Connection, revision: int, change: Change, changed_by: str, why: str) -> None:
    before, after = (None if row is None else json.dumps(row, default=str) for row in (change.before, change.after))
    await connection.execute(LOG_CHANGE, revision, change.kind, change.target, before, after, changed_by, why)


async def changes(pool: asyncpg.Pool, *, after_revision: int, limit: int) -> list[dict[str, Any]]:
    """The change log from ``after_revision`` on, oldest first."""
    rows = await pool.fetch(CHANGES, after_revision, limit)
    return [{**row, "before": _json(row["before"]), "after": _json(row["after"])} for row in rows]


def _json(text: str | None) -> Any:
    return None if text is None else json.loads(text)


async def _known_enterprise(connection: Connection, code: str) -> None:
    if not await connection.fetchval(ENTERPRISE_EXISTS, code):
        raise unknown(f"enterprise {code} is not in the reference data")


def set_listing(code: str, year: int, status: ListingStatus) -> Edit:
    """An enterprise's listing for ``year`` becomes ``status`` (a listing for a new year is added)."""

    async def edit(connection: Connection) -> Change:
        await _known_enterprise(connection, code)
        before = await connection.fetchval(LISTING, code, year)
        await connection.execute(SET_LISTING, code, year, status)
        return Change("listing", f"{code}/{year}", None if before is None else {"status": before}, {"status": status})

    return edit


def set_authorisation(
    *, distributor: str, manufacturer: str, year: int, status: str, brands: tuple[str, ...] | None
) -> Edit:
    """A distributor's authorisation by a manufacturer for ``year`` becomes ``status`` (with ``brands``,
    or the brands it had): granting a new one needs its brands; withdrawing one needs it to exist."""

    async def edit(connection: Connection) -> Change:
        for code in (distributor, manufacturer):
            await _known_enterprise(connection, code)
        row = await connection.fetchrow(AUTHORISATION, distributor, manufacturer, year)
        before = None if row is None else {"brands": sorted(row["brands"]), "status": row["status"]}
        if before is None and status == "withdrawn":
            raise unknown(f"{manufacturer} has no {year} authorisation of {distributor} to withdraw")
        if before is None and not brands:
            raise refused([Reason(code="brands_required", message="a new authorisation names the brands it covers")])
        after = {"brands": sorted(brands) if brands else before["brands"] if before else [], "status": status}
        await connection.execute(SET_AUTHORISATION, distributor, manufacturer, year, after["brands"], status)
        return Change("authorisation", f"{distributor}/{manufacturer}/{year}", before, after)

    return edit


def set_model(model_code: str, fields: dict[str, Any]) -> Edit:
    """A listed model's CCC certificate, its validity or its reference price become ``fields``' values."""

    async def edit(connection: Connection) -> Change:
        row = await connection.fetchrow(MODEL, model_code)
        if row is None:
            raise unknown(f"model {model_code} is not in the reference data")
        before = dict(row)
        after = {**before, **fields}
        await connection.execute(
            SET_MODEL, model_code, after["ccc_certificate"], after["ccc_valid_until"], after["reference_price_cny"]
        )
        return Change("model", model_code, before, after)

    return edit


def set_outlet(*, enterprise: str, country: str, city: str, name: str, is_open: bool) -> Edit:
    """An enterprise's after-sales outlet is opened (added) or closed (removed)."""

    async def edit(connection: Connection) -> Change:
        await _known_enterprise(connection, enterprise)
        key = (enterprise, country, city, name)
        existed = await connection.fetchval(OUTLET_EXISTS, *key)
        if not existed and not is_open:
            raise unknown(f"{enterprise} has no outlet {name!r} in {city}, {country} to close")
        if is_open and not existed:
            await connection.execute(OPEN_OUTLET, *key)
        elif existed and not is_open:
            await connection.execute(CLOSE_OUTLET, *key)
        outlet = {"country": country, "city": city, "name": name}
        target = f"{enterprise}/{country}/{city}/{name}"
        return Change("outlet", target, outlet if existed else None, outlet if is_open else None)

    return edit
