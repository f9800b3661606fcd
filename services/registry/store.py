"""The ledger's rows in PostgreSQL as the fold writes them: loading a batch's cases, writing what it folded,
with the partition's offset, chain head and seal, in one transaction. The queries read them in
``services/registry/reads.py``."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import asyncpg
import msgspec
from pydantic_core import to_json

from services.registry import chain, seal, vins
from shared import fold as ledger
from shared.contract.events import (
    LICENSE_STATE_VERSION,
    ApplicationStatus,
    BatchMode,
    Envelope,
    LicenseGranted,
    LicenseReplaced,
    LicenseState,
    LicenseStatus,
    Reason,
)
from shared.fold import ApplicationEntry, Case, ExportEntry, LicenseEntry
from shared.platform.db import Connection

YIELD_EVERY = 50
"""Events decoded or folded between two turns of the event loop, which also serves the registry's queries:
a batch of 2,000 took 150-200 ms of CPU in one go, and a lookup arriving meanwhile waited for all of it."""

LOAD_APPLICATIONS = "SELECT t.*{text} FROM applications t WHERE application_id = ANY($1::uuid[])"
LOAD_LICENSES = "SELECT t.*{text} FROM licenses t WHERE case_id = ANY($1::uuid[])"
# With each row, when the fold seals (the live registry), its text as the checksum and the seal read it (row_to_json,
# under UTC): a row the batch replaces takes its MAC out of the seal. A replay does not seal, and leaves it out:
# PostgreSQL making the text of every row a batch loads was 4% of a 1M-event replay (docs/performance.md).
ROW_TEXT = ", row_to_json(t)::text AS _row"
UTC = "SET LOCAL TimeZone = 'UTC'"
RETURNING_ROWS = " RETURNING row_to_json(t)::text"
# The partial index ``exports_case_vins`` holds exactly the rows this reads (registry migration 0007).
LOAD_EXPORTED_VINS = """
SELECT case_id, array_agg(vin) AS vins FROM exports, unnest(vins) AS vin
WHERE case_id = ANY($1::uuid[]) AND outcome = 'accepted' AND vins <> '{}' GROUP BY case_id
"""
# Every read of the fold looks rows up by key, for which an index is always the right plan. A ledger being
# built (a replay into a fresh schema, a registry's first catch-up) has no statistics yet, and the plans
# PostgreSQL caches for the fold's statements while its tables are nearly empty scan them whole: loading a
# batch's licenses then compared every license with every case of the batch, a tenth of a replay's time in
# batches of 600. Scoped to the batch's transaction.
INDEXED_READS_ONLY = "SET LOCAL enable_seqscan = off"
ALREADY_APPLIED = "SELECT event_id, partition FROM applied_events WHERE event_id = ANY($1::uuid[])"
# The license numbers the batch opens (grants, successors) that another case holds already.
NUMBERS_HELD = "SELECT license_number, case_id FROM licenses WHERE license_number = ANY($1::text[])"
# One statement per table per batch: each takes its rows as column arrays (unnest), so a batch costs
# a handful of round trips whatever its size. A row's VINs travel as a JSON array (arrays of arrays
# must be rectangular in PostgreSQL).
UPSERT_APPLICATIONS = """
INSERT INTO applications AS t (
    application_id, status, applicant_code, applicant_name, agency_code, destination_country,
    port_of_exit, quantity, reasons, license_number, submitted_at, decided_at)
SELECT u.id, u.status, u.applicant_code, u.applicant_name, u.agency_code, u.destination_country,
       u.port_of_exit, u.quantity, u.reasons::jsonb, u.license_number, u.submitted_at, u.decided_at
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::int[],
            $9::text[], $10::text[], $11::timestamptz[], $12::timestamptz[])
     AS u(id, status, applicant_code, applicant_name, agency_code, destination_country, port_of_exit, quantity,
          reasons, license_number, submitted_at, decided_at)
ON CONFLICT (application_id) DO UPDATE SET
    status = EXCLUDED.status, reasons = EXCLUDED.reasons, license_number = EXCLUDED.license_number,
    decided_at = EXCLUDED.decided_at,
    -- a resubmission replaces the application's terms (the applicant stays the same)
    applicant_name = EXCLUDED.applicant_name, agency_code = EXCLUDED.agency_code,
    destination_country = EXCLUDED.destination_country, port_of_exit = EXCLUDED.port_of_exit,
    quantity = EXCLUDED.quantity, submitted_at = EXCLUDED.submitted_at
"""
UPSERT_LICENSES = """
INSERT INTO licenses AS t (
    license_number, case_id, status, applicant_code, quantity, balance, declarations_used,
    valid_from, valid_to, port_of_exit, destination_country, batch_mode, vins, granted_at)
SELECT u.number, u.case_id, u.status, u.applicant_code, u.quantity, u.balance, u.used, u.valid_from, u.valid_to,
       u.port, u.destination, u.batch_mode, ARRAY(SELECT jsonb_array_elements_text(u.vins::jsonb)), u.granted_at
FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::int[], $6::int[], $7::int[], $8::date[],
            $9::date[], $10::text[], $11::text[], $12::text[], $13::text[], $14::timestamptz[])
     AS u(number, case_id, status, applicant_code, quantity, balance, used, valid_from, valid_to, port,
          destination, batch_mode, vins, granted_at)
ON CONFLICT (license_number) DO UPDATE SET
    status = EXCLUDED.status, balance = EXCLUDED.balance, declarations_used = EXCLUDED.declarations_used
WHERE t.case_id = EXCLUDED.case_id  -- a license is one case's: another case never writes over it
"""
INSERT_EXPORTS = """
INSERT INTO exports AS t (
    event_id, declaration_number, license_number, case_id, outcome, reason_code, reason_message,
    quantity, port_of_exit, export_date, vins, value, currency, recorded_at)
SELECT u.event_id, u.declaration, u.license_number, u.case_id, u.outcome, u.reason_code, u.reason_message,
       u.quantity, u.port, u.export_date, ARRAY(SELECT jsonb_array_elements_text(u.vins::jsonb)), u.value,
       u.currency, u.recorded_at
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::uuid[], $5::text[], $6::text[], $7::text[], $8::int[],
            $9::text[], $10::date[], $11::text[], $12::numeric[], $13::text[], $14::timestamptz[])
     AS u(event_id, declaration, license_number, case_id, outcome, reason_code, reason_message, quantity, port,
          export_date, vins, value, currency, recorded_at)
"""
INSERT_HISTORY = """
INSERT INTO license_history AS t (license_number, event_id, partition, "offset", occurred_at, state)
SELECT u.number, u.event_id, u.partition, u.position, u.occurred_at, u.state::jsonb
FROM unnest($1::text[], $2::uuid[], $3::int[], $4::bigint[], $5::timestamptz[], $6::text[])
     AS u(number, event_id, partition, position, occurred_at, state)
"""
# Published with the message's version, which the ledger's own history rows leave out (they are its rows).
INSERT_OUTBOX = f"""
INSERT INTO outbox (license_number, state)
SELECT u.number, jsonb_build_object('schema_version', {LICENSE_STATE_VERSION}) || u.state::jsonb
FROM unnest($1::text[], $2::text[]) AS u(number, state)
"""
# The insert-only tables are written with binary COPY where the rows' texts are not needed (no seal: a replay):
# one round trip, no statement to plan, rows encoded as they are. Columns in the order of the rows given.
EXPORT_COLUMNS = (
    "event_id", "declaration_number", "license_number", "case_id", "outcome", "reason_code", "reason_message",
    "quantity", "port_of_exit", "export_date", "vins", "value", "currency", "recorded_at",
)  # fmt: skip
HISTORY_COLUMNS = ("license_number", "event_id", "partition", "offset", "occurred_at", "state")
APPLIED_COLUMNS = ("event_id", "partition", "case_id", "offset")
# From the offset the ledger started keeping refusals at (0 unless it predates migration 0006), in each partition.
RECORD_REFUSALS = """
INSERT INTO refused_events AS t (topic, partition, "offset", reason_code)
SELECT $1, u.partition, u.position, u.code
FROM unnest($2::int[], $3::bigint[], $4::text[]) AS u(partition, position, code)
WHERE u.position >= coalesce(
    (SELECT refusals_from FROM partition_offsets p WHERE p.topic = $1 AND p.partition = u.partition), 0)
ON CONFLICT DO NOTHING
"""
SAVE_OFFSETS = """
INSERT INTO partition_offsets (topic, partition, next_offset, chain_head, seal)
SELECT $1, u.partition, u.next_offset, u.head, u.seal
FROM unnest($2::int[], $3::bigint[], $4::bytea[], $5::bytea[]) AS u(partition, next_offset, head, seal)
ON CONFLICT (topic, partition) DO UPDATE SET
    next_offset = EXCLUDED.next_offset, chain_head = EXCLUDED.chain_head,
    seal = coalesce(EXCLUDED.seal, partition_offsets.seal)
"""
STORED_OFFSETS = "SELECT partition, next_offset FROM {schema}partition_offsets WHERE topic = $1"
# Taken first, in the partitions' order: two batches of one partition (a zombie after a rebalance) extend the
# chain one after the other, and two folds of several partitions wait for each other without a deadlock.
LOCK_POSITIONS = """
SELECT partition, next_offset, chain_head, chain_start, seal FROM partition_offsets
WHERE topic = $1 AND partition = ANY($2::int[]) ORDER BY partition FOR UPDATE
"""
STORED_POSITIONS = (
    "SELECT partition, next_offset, chain_head, chain_start FROM {schema}partition_offsets WHERE topic = $1"
)
# Every batch holds this lock shared; swapping in a rebuilt ledger holds it exclusively, so no batch
# straddles the swap (a batch's statements resolve their tables after the lock is granted).
LEDGER_LOCK_KEY = 0x4C454447  # "LEDG"
LEDGER_LOCK_SHARED = f"SELECT pg_advisory_xact_lock_shared({LEDGER_LOCK_KEY})"
LEDGER_LOCK_EXCLUSIVE = f"SELECT pg_advisory_xact_lock({LEDGER_LOCK_KEY})"


def in_schema(schema: str | None) -> str:
    """The prefix that names a table of ``schema`` (a rebuilt ledger), or none: the connection's search path."""
    return "" if schema is None else '"' + schema.replace('"', '""') + '".'


async def stored_offsets(
    connection: Connection | asyncpg.Pool, topic: str, schema: str | None = None
) -> dict[int, int]:
    """The next offset to read of each partition of ``topic``, as the ledger (or ``schema``'s) last committed it."""
    rows = await connection.fetch(STORED_OFFSETS.format(schema=in_schema(schema)), topic)
    return {row["partition"]: row["next_offset"] for row in rows}


class BatchNotContiguous(RuntimeError):
    """A batch that does not start where the partition's applied records end: applying it would skip records for
    ever (the offset moves past them). Nothing is written; the reader starts again from the stored offset."""


@dataclass(frozen=True)
class Position:
    """Where the ledger stands in one partition: the next offset to read and the chain head before it."""

    next_offset: int
    head: bytes
    chain_start: int  # the chain covers the records from here (0 unless the ledger predates the chain)
    seal: int = 0  # the sum of the MACs of the rows the partition's batches wrote (services/registry/seal.py)


async def stored_positions(
    connection: Connection | asyncpg.Pool, topic: str, schema: str | None = None
) -> dict[int, Position]:
    """Each partition's position in ``topic``; read with the ledger in one snapshot for a consistent view."""
    rows = await connection.fetch(STORED_POSITIONS.format(schema=in_schema(schema)), topic)
    return {r["partition"]: Position(r["next_offset"], bytes(r["chain_head"]), r["chain_start"]) for r in rows}


class Positioned(NamedTuple):
    """An event with its offset in its partition. (A tuple: one per event folded, made at a fifth of a frozen
    dataclass's cost.)"""

    offset: int
    envelope: Envelope


@dataclass(frozen=True)
class Refused:
    """A record the fold did not apply, and the code of the reason (as in its dead letter)."""

    offset: int
    code: str


@dataclass(frozen=True)
class Applied:
    """What one batch changed: how many events were new, the exports they judged, the license states, and the
    events it refused itself (an id applied in another partition, a license number another case holds)."""

    events: int
    exports: list[ExportEntry]
    changes: int  # license states recorded (and, live, put in the outbox)
    refused: list[tuple[Positioned, Reason]] = field(default_factory=list)


@dataclass(frozen=True)
class Batch:
    """One partition's records to apply: the events of the readable ones, the ones refused, every record as read
    (what the partition's hash chain covers), and the offset after them."""

    partition: int
    events: Sequence[Positioned]
    next_offset: int
    records: Sequence[chain.Raw]
    refused: Sequence[Refused] = ()


async def apply_batches(
    connection: Connection,
    *,
    topic: str,
    batches: Sequence[Batch],
    outbox: bool = True,
    seal_key: bytes | None = None,
) -> dict[int, Applied]:
    """Fold the ``batches`` of one or more partitions (one each) into the ledger, in the caller's transaction, as
    if one partition's after the other in the partitions' order, but with one statement per table for them all.

    Events already applied are skipped, so a redelivered batch changes nothing; each partition's offset is stored
    with the rows, so a crash never separates the two; each license that changed gets a history row and (unless
    ``outbox`` is off, as in a replay, whose changes were published when they happened) an outbox row in the same
    transaction, so no change is ever lost. A batch's ``records`` are every record it read, its ``events`` the
    readable ones among them, its ``refused`` the others with the reason: the partition's hash chain is extended
    over all of them and stored with the offset, and the refusals are kept (``refused_events``, part of the
    checksum). With ``seal_key`` (the live registry's), the MACs of the rows written are added to the seal and those
    of the rows replaced taken out (``services/registry/seal.py``: only the sum over the partitions counts, and the
    change is kept with the first partition's).
    """
    batches = sorted(batches, key=lambda b: b.partition)
    if not batches:
        return {}
    if len({b.partition for b in batches}) != len(batches):
        raise ValueError("one batch per partition: a partition's records are applied in one go, in order")
    await connection.execute(INDEXED_READS_ONLY if seal_key is None else f"{INDEXED_READS_ONLY}; {UTC}")
    positions = await _lock_positions(connection, topic, [b.partition for b in batches])
    for batch in batches:
        position = positions[batch.partition]
        if batch.records and position.next_offset > 0 and batch.records[0].offset > position.next_offset:
            raise BatchNotContiguous(
                f"{topic}/{batch.partition}: a batch from offset {batch.records[0].offset}, but the ledger has applied "
                f"up to {position.next_offset}: its records in between were never applied; read again from the "
                "stored offset"
            )
    fresh, own = await _admitted(connection, [(b.partition, e) for b in batches for e in b.events])
    refused = [(b.partition, r) for b in batches for r in b.refused]
    refused += [(partition, Refused(p.offset, reason.code)) for partition, p, reason in own]
    texts: dict[tuple[str, Any], str] = {}  # the loaded rows' texts, which only sealing needs
    sealing = seal_key is not None
    cases = await _load_cases(connection, {p.envelope.case_id for _, p in fresh}, texts if sealing else None)
    loaded = dict(cases)
    exports: list[tuple[int, ExportEntry]] = []
    history: list[tuple[Any, ...]] = []
    for index, (partition, positioned) in enumerate(fresh, 1):
        if index % YIELD_EVERY == 0:
            await asyncio.sleep(0)  # the registry's queries share the event loop with its fold
        envelope = positioned.envelope
        before = cases.get(envelope.case_id) or Case(case_id=envelope.case_id)
        after, export = ledger.apply(before, envelope)
        cases[envelope.case_id] = after
        if export is not None:
            exports.append((partition, export))
        if after.licenses is before.licenses:  # an application's event, or a refused export: no license changed
            continue
        for license_ in _changed_licenses(before, after):
            state = license_state_json(license_, envelope)
            history.append(
                (license_.license_number, envelope.event_id, partition, positioned.offset, envelope.occurred_at, state)
            )
    applications, licenses = _changed_rows(loaded, cases)
    written = await _save(connection, applications, licenses, [e for _, e in exports], returning=sealing)
    await vins.settle(connection, [e for _, e in exports])
    written += await _record_changes(connection, history, publish=outbox, returning=sealing)
    if fresh:
        marks = [(p.envelope.event_id, partition, p.envelope.case_id, p.offset) for partition, p in fresh]
        await connection.copy_records_to_table("applied_events", records=marks, columns=APPLIED_COLUMNS)
    if refused:
        query = RECORD_REFUSALS + (RETURNING_ROWS if sealing else "")
        columns = ([p for p, _ in refused], [r.offset for _, r in refused], [r.code for _, r in refused])
        written += [("refused_events", r[0]) for r in await connection.fetch(query, topic, *columns)]
    seals: dict[int, bytes | None] = {b.partition: None for b in batches}
    if seal_key is not None:
        keys: list[tuple[str, Any]] = [("applications", a.application_id) for a in applications]
        keys += [("licenses", lic.license_number) for lic in licenses]
        replaced = [(table, texts[(table, key)]) for table, key in keys if (table, key) in texts]
        first = batches[0].partition
        change = seal.total(seal_key, written) - seal.total(seal_key, replaced)
        seals[first] = seal.as_bytes(positions[first].seal + change)
    after_batches = [_advance(positions[b.partition], b.partition, b.records, b.next_offset) for b in batches]
    await connection.execute(
        SAVE_OFFSETS,
        topic,
        [b.partition for b in batches],
        [p.next_offset for p in after_batches],
        [p.head for p in after_batches],
        [seals[b.partition] for b in batches],
    )
    return {
        b.partition: Applied(
            events=sum(1 for partition, _ in fresh if partition == b.partition),
            exports=[e for partition, e in exports if partition == b.partition],
            changes=sum(1 for row in history if row[2] == b.partition),
            refused=[(p, reason) for partition, p, reason in own if partition == b.partition],
        )
        for b in batches
    }


async def _lock_positions(connection: Connection, topic: str, partitions: list[int]) -> dict[int, Position]:
    rows = {r["partition"]: r for r in await connection.fetch(LOCK_POSITIONS, topic, partitions)}
    positions = {}
    for partition in partitions:
        row = rows.get(partition)
        positions[partition] = (
            Position(next_offset=0, head=chain.GENESIS, chain_start=0)
            if row is None
            else Position(row["next_offset"], bytes(row["chain_head"]), row["chain_start"], seal.as_int(row["seal"]))
        )
    return positions


def _advance(position: Position, partition: int, records: Sequence[chain.Raw], next_offset: int) -> Position:
    """The position after the batch; records already chained (a redelivered batch) are not chained twice."""
    start = max(position.next_offset, position.chain_start)
    head = chain.extend(position.head, partition, (r for r in records if r.offset >= start))
    return Position(max(position.next_offset, next_offset), head, position.chain_start, position.seal)


async def _admitted(
    connection: Connection, events: Sequence[tuple[int, Positioned]]
) -> tuple[list[tuple[int, Positioned]], list[tuple[int, Positioned, Reason]]]:
    """The events (each with its partition, in the order they are folded) to fold: neither applied already nor
    refused; and the ones refused, each as soon as it is met, so that which are refused does not depend on how
    the records were cut into batches.

    An event applied already in its partition is a duplicate (a retry, a redelivery): skipped, changing
    nothing. An event whose id was applied in another partition is not a copy of it (a copy would sit in its
    case's partition, or be refused as misplaced): an id reused by a producer, refused ``event_id_reused``. An
    event opening a license number another case holds is refused ``license_number_taken`` (a license number is
    one license's, of one case, whichever partition saw it first)."""
    ids: list[uuid.UUID] = []
    opened: dict[uuid.UUID, str] = {}
    for _, positioned in events:
        envelope = positioned.envelope
        ids.append(envelope.event_id)
        if (number := _opens(envelope)) is not None:
            opened[envelope.event_id] = number
    applied = {r["event_id"]: r["partition"] for r in await connection.fetch(ALREADY_APPLIED, ids)}
    owner: dict[str, uuid.UUID] = {}
    if opened:
        owner = {r["license_number"]: r["case_id"] for r in await connection.fetch(NUMBERS_HELD, list(opened.values()))}
    fresh: list[tuple[int, Positioned]] = []
    refused: list[tuple[int, Positioned, Reason]] = []
    for partition, positioned in events:
        event_id, case_id = positioned.envelope.event_id, positioned.envelope.case_id
        number = opened.get(event_id)
        if event_id in applied:
            if (first := applied[event_id]) not in (partition, None):
                message = f"event id {event_id} was applied already in partition {first}: an id is one event's"
                refused.append((partition, positioned, Reason(code="event_id_reused", message=message)))
        elif number is not None and owner.setdefault(number, case_id) != case_id:
            message = f"license number {number} is held by case {owner[number]} already"
            refused.append((partition, positioned, Reason(code="license_number_taken", message=message)))
        else:
            applied[event_id] = partition
            fresh.append((partition, positioned))
    return fresh, refused


def _opens(envelope: Envelope) -> str | None:
    event = envelope.payload
    if type(event) is LicenseGranted:  # the contract's event classes have no subclasses: no isinstance walk
        return event.license_number
    if type(event) is LicenseReplaced:
        return event.successor_license_number
    return None


def _changed(before: object, after: object) -> bool:
    """Whether an entry differs. One the fold left alone is the same object, and comparing all its fields (a
    dataclass builds a tuple of them on each side) is skipped."""
    return before is not after and before != after


def _changed_licenses(before: Case, after: Case) -> list[LicenseEntry]:
    return [lic for number, lic in after.licenses.items() if _changed(before.licenses.get(number), lic)]


def _changed_rows(
    loaded: dict[uuid.UUID, Case], folded: dict[uuid.UUID, Case]
) -> tuple[list[ApplicationEntry], list[LicenseEntry]]:
    """The applications and licenses that differ from what was loaded: only those are written."""
    applications, licenses = [], []
    for case_id, case in folded.items():
        before = loaded.get(case_id)
        if case.application is not None and (before is None or _changed(before.application, case.application)):
            applications.append(case.application)
        for number, license_ in case.licenses.items():
            if before is None or _changed(before.licenses.get(number), license_):
                licenses.append(license_)
    return applications, licenses


# A license state's fields, in ``LicenseState``'s order, without its ``schema_version`` (the row does not keep it):
# encoded by msgspec, its text is the model's (tests/unit/test_store.py) at a third of the cost of building and
# encoding a dict, once for every license an event changes.
_STATE = msgspec.defstruct("LicenseStateText", [name for name in LicenseState.model_fields if name != "schema_version"])
_encode = msgspec.json.Encoder().encode


def license_state_json(license_: LicenseEntry, cause: Envelope) -> str:
    """The published form of a license (a ``LicenseState``) as of the event that produced it, as JSON.

    Serialised straight from the fold's values, which the contract validated when they were read: the
    same text as ``LicenseState(...).model_dump_json()`` (tests/unit/test_store.py) for a tenth of the cost.
    """
    state = _STATE(
        license_number=license_.license_number,
        case_id=license_.case_id,
        status=license_.status,
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
    return _encode(state).decode()


def _columns(rows: Sequence[tuple[Any, ...]]) -> list[list[Any]]:
    """Rows as one list per column, the shape the unnest statements take."""
    return [list(column) for column in zip(*rows, strict=True)]


async def _record_changes(
    connection: Connection, history: list[tuple[Any, ...]], *, publish: bool, returning: bool
) -> list[tuple[str, str]]:
    """History rows; and the same states, serialised once, in the outbox to be published. The rows' texts, when
    ``returning``."""
    if not history:
        return []
    columns = _columns(history)
    written: list[tuple[str, str]] = []
    if returning:
        rows = await connection.fetch(INSERT_HISTORY + RETURNING_ROWS, *columns)
        written = [("license_history", r[0]) for r in rows]
    else:
        await connection.copy_records_to_table("license_history", records=history, columns=HISTORY_COLUMNS)
    if publish:
        await connection.execute(INSERT_OUTBOX, columns[0], columns[5])
    return written


async def _load_cases(
    connection: Connection, case_ids: set[uuid.UUID], texts: dict[tuple[str, Any], str] | None = None
) -> dict[uuid.UUID, Case]:
    """The cases as the ledger holds them; each row's text into ``texts``, by (table, key), if given."""
    if not case_ids:
        return {}
    ids = list(case_ids)
    applications: dict[uuid.UUID, ApplicationEntry] = {}
    text = ROW_TEXT if texts is not None else ""
    for row in await connection.fetch(LOAD_APPLICATIONS.format(text=text), ids):
        applications[row["application_id"]] = application_entry(row)
        if texts is not None:
            texts[("applications", row["application_id"])] = row["_row"]
    licenses: dict[uuid.UUID, dict[str, LicenseEntry]] = {}
    for row in await connection.fetch(LOAD_LICENSES.format(text=text), ids):
        licenses.setdefault(row["case_id"], {})[row["license_number"]] = license_entry(row)
        if texts is not None:
            texts[("licenses", row["license_number"])] = row["_row"]
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


async def _save(
    connection: Connection,
    applications: list[ApplicationEntry],
    licenses: list[LicenseEntry],
    exports: list[ExportEntry],
    *,
    returning: bool,
) -> list[tuple[str, str]]:
    """Write the rows; their texts as written (table, text), when ``returning``."""
    suffix = RETURNING_ROWS if returning else ""
    written: list[tuple[str, str]] = []
    for table, statement, rows in (
        ("applications", UPSERT_APPLICATIONS, [_application_args(a) for a in applications]),
        ("licenses", UPSERT_LICENSES, [_license_args(lic) for lic in licenses]),
    ):
        if rows:
            written += [(table, r[0]) for r in await connection.fetch(statement + suffix, *_columns(rows))]
    if exports and returning:
        rows = [_export_row(e, _vins_json(e.vins)) for e in exports]
        written += [("exports", r[0]) for r in await connection.fetch(INSERT_EXPORTS + suffix, *_columns(rows))]
    elif exports:
        await connection.copy_records_to_table(
            "exports", records=[_export_row(e, e.vins) for e in exports], columns=EXPORT_COLUMNS
        )
    return written


def _vins_json(vins: tuple[str, ...]) -> str:
    """A row's VINs as the JSON array the statements take; only used vehicles' rows have any."""
    return to_json(vins).decode() if vins else "[]"


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
        _vins_json(lic.vins),
        lic.granted_at,
    )


def _export_row(e: ExportEntry, vins: Any) -> tuple[Any, ...]:
    """An export in ``EXPORT_COLUMNS``' order, its VINs as given: an array for a COPY, JSON for a statement."""
    reason = e.reason
    return (
        e.event_id,
        e.declaration_number,
        e.license_number,
        e.case_id,
        e.outcome.value,
        None if reason is None else reason.code,
        None if reason is None else reason.message,
        e.quantity,
        e.port_of_exit,
        e.export_date,
        vins,
        e.value,
        e.currency,
        e.recorded_at,
    )


def application_entry(row: asyncpg.Record) -> ApplicationEntry:
    return ApplicationEntry(
        application_id=row["application_id"],
        status=ApplicationStatus(row["status"]),
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


def license_entry(row: asyncpg.Record) -> LicenseEntry:
    return LicenseEntry(
        license_number=row["license_number"],
        case_id=row["case_id"],
        status=LicenseStatus(row["status"]),
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
