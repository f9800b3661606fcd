"""A service's own copy of each case, folded from the case stream with the ledger's fold, and commands judged
against the state they will meet.

Kafka has no conditional append. So a service that appends a command's event (an applicant's withdrawal,
an officer's suspension) cannot know, when it appends, whether another event gets there first (review's
grant, the export that exhausts the license). It can know afterwards: its follower folds the case stream
with ``shared.fold`` (the ledger's own fold), recording for every event whether it changed its case. A
command is therefore judged twice: before appending, against the case as followed up to the end of its
partition (what is plainly impossible is refused without writing anything); after appending, by whether
its event changed the case when folded in its place. Only then is it answered 202; an event that lost the
race is answered 409 with what the case had become. Each service keeps, in its own schema:

- ``case_states``: each case as the fold leaves it, and the application as last submitted;
- ``followed_positions``: each partition's next offset, written with the states (one transaction);
- ``case_events``: each event followed, whether it changed its case, where it lies (duplicates are skipped).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg
from aiokafka.structs import RecordMetadata
from pydantic import TypeAdapter
from tenacity import AsyncRetrying, retry_if_result, stop_after_delay, wait_exponential

from shared import fold
from shared.contract.events import (
    Application,
    ApplicationResubmitted,
    ApplicationSubmitted,
    Envelope,
    ExportRecorded,
    ExportRefused,
)
from shared.contract.refusal import Refusal
from shared.fold import Case
from shared.platform.db import Connection

if TYPE_CHECKING:
    from shared.platform.service import Runtime

TABLES = (
    """
    CREATE TABLE case_states (
        case_id     uuid PRIMARY KEY,
        state       jsonb NOT NULL,
        application jsonb,
        updated_at  timestamptz NOT NULL DEFAULT now()
    )
    """,
    "CREATE TABLE followed_positions (partition int PRIMARY KEY, next_offset bigint NOT NULL)",
    """
    CREATE TABLE case_events (
        event_id  uuid PRIMARY KEY,
        case_id   uuid NOT NULL,
        type      text NOT NULL,
        changed   boolean NOT NULL,
        partition int NOT NULL,
        "offset"  bigint NOT NULL
    )
    """,
    'CREATE INDEX case_events_by_case ON case_events (case_id, type, "offset")',
    "CREATE TABLE case_licenses (license_number text PRIMARY KEY, case_id uuid NOT NULL)",
)
"""The follower's tables, made by the migrations of each service that follows (applications, review)."""

CASE = TypeAdapter(Case)
APPLICATION = TypeAdapter(Application)
EXPORTS = (ExportRecorded, ExportRefused)

LOAD_STATES = "SELECT case_id, state FROM case_states WHERE case_id = ANY($1::uuid[])"
SAVE_STATES = """
INSERT INTO case_states (case_id, state, application)
SELECT u.case_id, u.state::jsonb, u.application::jsonb FROM unnest($1::uuid[], $2::text[], $3::text[])
    AS u(case_id, state, application)
ON CONFLICT (case_id) DO UPDATE SET
    state = EXCLUDED.state, application = coalesce(EXCLUDED.application, case_states.application), updated_at = now()
"""
KNOWN_EVENTS = "SELECT event_id FROM case_events WHERE event_id = ANY($1::uuid[])"
RECORD_EVENTS = """
INSERT INTO case_events (event_id, case_id, type, changed, partition, "offset")
SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::bool[], $5::int[], $6::bigint[])
ON CONFLICT (event_id) DO NOTHING
"""
# Taken first, FOR UPDATE, in the partitions' order: two batches of one partition (a zombie after a rebalance) follow
# one after the other, and two deliveries of several partitions wait for each other without a deadlock.
LOCK_POSITIONS = """
SELECT partition, next_offset FROM followed_positions WHERE partition = ANY($1::int[]) ORDER BY partition FOR UPDATE
"""
SAVE_POSITIONS = """
INSERT INTO followed_positions (partition, next_offset) SELECT * FROM unnest($1::int[], $2::bigint[])
ON CONFLICT (partition) DO UPDATE SET next_offset = greatest(followed_positions.next_offset, EXCLUDED.next_offset)
"""
POSITION = "SELECT next_offset FROM followed_positions WHERE partition = $1"
SAVE_LICENSES = """
INSERT INTO case_licenses (license_number, case_id) SELECT * FROM unnest($1::text[], $2::uuid[])
ON CONFLICT (license_number) DO NOTHING
"""
CASE_OF_LICENSE = "SELECT case_id FROM case_licenses WHERE license_number = $1"
STATE = "SELECT state, application FROM case_states WHERE case_id = $1"
EFFECT = "SELECT changed FROM case_events WHERE event_id = $1"
LAST_CHANGE_OF_TYPE = """
SELECT event_id FROM case_events WHERE case_id = $1 AND type = $2 AND changed ORDER BY "offset" DESC LIMIT 1
"""


@dataclass(frozen=True)
class Followed:
    """A record of the case stream as a follower read it: its offset, and its event (None: refused)."""

    offset: int
    envelope: Envelope | None


@dataclass(frozen=True)
class Batch:
    """One partition's records of a delivery, as read, and the offset after them."""

    partition: int
    records: Sequence[Followed]
    next_offset: int


async def follow(
    connection: Connection, *, partition: int, records: Sequence[Followed], next_offset: int, skip_exports: bool
) -> int:
    """Fold one partition's records into the case states (``follow_all`` with that one batch)."""
    return await follow_all(connection, [Batch(partition, records, next_offset)], skip_exports=skip_exports)


async def follow_all(connection: Connection, batches: Sequence[Batch], *, skip_exports: bool) -> int:
    """Fold each partition's records into the case states, in the caller's transaction, with the positions, as if
    one partition's after the other in the partitions' order, but with one statement per table for them all; return
    how many events were new (a batch delivered again, or an event seen before, adds none).

    ``skip_exports``: a service that never judges against licenses (the applications service) folds neither
    declaration; its licenses' balances are then not kept, and nothing of it reads them."""
    batches = sorted(batches, key=lambda b: b.partition)
    if len({b.partition for b in batches}) != len(batches):
        raise ValueError("one batch per partition: a partition's records are followed in one go, in order")
    partitions = [b.partition for b in batches]
    positions = {r["partition"]: r["next_offset"] for r in await connection.fetch(LOCK_POSITIONS, partitions)}
    todo: list[tuple[int, list[tuple[int, Envelope]]]] = []  # each partition's events still to follow
    for batch in batches:
        position = positions.get(batch.partition)
        if position is not None and position >= batch.next_offset:
            continue  # a batch already followed, delivered again
        todo.append(
            (
                batch.partition,
                [
                    (r.offset, r.envelope)
                    for r in batch.records
                    if r.envelope is not None
                    and (position is None or r.offset >= position)
                    and not (skip_exports and isinstance(r.envelope.payload, EXPORTS))
                ],
            )
        )
    ids = [e.event_id for _, events in todo for _, e in events]
    seen = {row["event_id"] for row in await connection.fetch(KNOWN_EVENTS, ids)}
    cases = await _load(connection, {e.case_id for _, events in todo for _, e in events})
    changed: dict[uuid.UUID, Case] = {}
    applications: dict[uuid.UUID, str] = {}
    licenses: list[tuple[str, uuid.UUID]] = []  # in the order one statement per partition would have kept them
    rows: list[tuple[Any, ...]] = []
    for partition, events in todo:
        changed_here: dict[uuid.UUID, None] = {}
        for offset, envelope in events:
            if envelope.event_id in seen:
                continue
            seen.add(envelope.event_id)
            before = cases.get(envelope.case_id) or Case(case_id=envelope.case_id)
            after, _ = fold.apply(before, envelope)
            if after is not before:
                cases[envelope.case_id] = changed[envelope.case_id] = after
                changed_here[envelope.case_id] = None
                if isinstance(envelope.payload, ApplicationSubmitted | ApplicationResubmitted):
                    applications[envelope.case_id] = envelope.payload.application.model_dump_json()
            rows.append((envelope.event_id, envelope.case_id, envelope.type, after is not before, partition, offset))
        # A license number is the case's that first holds it: the first row of a number is the one kept.
        licenses += [(number, case_id) for case_id in changed_here for number in cases[case_id].licenses]
    if changed:
        ids_ = list(changed)
        await connection.execute(
            SAVE_STATES,
            ids_,
            [CASE.dump_json(changed[c]).decode() for c in ids_],
            [applications.get(c) for c in ids_],
        )
        await connection.execute(SAVE_LICENSES, [n for n, _ in licenses], [c for _, c in licenses])
    if rows:
        await connection.execute(RECORD_EVENTS, *[list(column) for column in zip(*rows, strict=True)])
    await connection.execute(SAVE_POSITIONS, partitions, [b.next_offset for b in batches])
    return len(rows)


async def _load(connection: Connection, case_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Case]:
    ids = list(case_ids)
    if not ids:
        return {}
    return {row["case_id"]: CASE.validate_json(row["state"]) for row in await connection.fetch(LOAD_STATES, ids)}


@dataclass(frozen=True)
class CaseView:
    """A case as a service followed it: the fold's state, and the application as last submitted."""

    case: Case
    application: Application | None


async def case(pool: asyncpg.Pool | Connection, case_id: uuid.UUID) -> CaseView:
    """The case as followed so far (an empty one if no event of it has been)."""
    row = await pool.fetchrow(STATE, case_id)
    if row is None:
        return CaseView(Case(case_id=case_id), None)
    application = APPLICATION.validate_json(row["application"]) if row["application"] else None
    return CaseView(CASE.validate_json(row["state"]), application)


async def effect(pool: asyncpg.Pool | Connection, event_id: uuid.UUID) -> bool | None:
    """Whether the event changed its case when folded (None: not followed yet)."""
    changed: bool | None = await pool.fetchval(EFFECT, event_id)
    return changed


async def last_change(pool: asyncpg.Pool | Connection, case_id: uuid.UUID, event_type: str) -> uuid.UUID | None:
    """The id of the case's last event of ``event_type`` that changed it (None if there is none)."""
    found: uuid.UUID | None = await pool.fetchval(LAST_CHANGE_OF_TYPE, case_id, event_type)
    return found


async def followed_to(pool: asyncpg.Pool, partition: int) -> int:
    """The next offset of ``partition`` the follower will read: it has followed every record before it."""
    position: int | None = await pool.fetchval(POSITION, partition)
    return position or 0


async def wait_until_followed(pool: asyncpg.Pool, partition: int, offset: int, *, timeout: float = 10.0) -> None:
    """Wait until the follower has folded every record of ``partition`` before ``offset``; else 503, retry later."""
    waiting = AsyncRetrying(
        retry=retry_if_result(lambda reached: reached < offset),
        wait=wait_exponential(multiplier=0.005, max=0.1),
        stop=stop_after_delay(timeout),
        retry_error_callback=lambda _: None,
    )
    if await waiting(followed_to, pool, partition) is None:
        raise Refusal(
            503,
            "not_caught_up",
            f"this service has not yet read its case stream up to offset {offset} of partition {partition}; "
            "nothing was changed by this request: send it again in a moment",
            headers={"Retry-After": "2"},
        )


@dataclass(frozen=True)
class InEffect:
    """The command is in effect already: the event that put it there (a retry is answered with it, appends nothing)."""

    event_id: uuid.UUID


async def current(runtime: Runtime, case_id: uuid.UUID) -> CaseView:
    """The case as followed up to where its partition ends now: every event appended before this call counts."""
    partition, end = await runtime.case_log_end(case_id)
    await wait_until_followed(runtime.pool, partition, end)
    return await case(runtime.pool, case_id)


async def took_effect(runtime: Runtime, envelope: Envelope, written: RecordMetadata) -> bool:
    """Whether ``envelope``, appended at ``written``, changed its case when folded in its place."""
    await wait_until_followed(runtime.pool, written.partition, written.offset + 1)
    return bool(await effect(runtime.pool, envelope.event_id))


def no_effect(envelope: Envelope) -> Refusal:
    return Refusal(
        409, "no_effect", f"{envelope.type} changed nothing: another event of the case came first; read it again"
    )


async def judged_append(
    runtime: Runtime,
    case_id: uuid.UUID,
    *,
    judge: Callable[[CaseView], Awaitable[Refusal | InEffect | None]],
    event: Callable[[CaseView], Awaitable[Envelope]],
) -> Envelope | InEffect:
    """Append the command's event only if it can take effect, and return it only once it has.

    The case is followed up to where its partition ends now; ``judge`` refuses (raises its refusal) what the
    case rules out, or says the command is in effect already. Then ``event`` is appended, and followed in
    its place: if it changed nothing (another event got there first), the judgement of the case it met is
    raised, a 409 when nothing else applies. 503 (send again) if the service cannot follow in time."""
    verdict = await judge(before := await current(runtime, case_id))
    if isinstance(verdict, Refusal):
        raise verdict
    if verdict is not None:
        return verdict
    envelope = await event(before)
    if await took_effect(runtime, envelope, await runtime.append(envelope)):
        return envelope
    verdict = await judge(await case(runtime.pool, case_id))
    if isinstance(verdict, InEffect) and verdict.event_id == envelope.event_id:
        return envelope
    raise verdict if isinstance(verdict, Refusal) else no_effect(envelope)


async def case_of_license(pool: asyncpg.Pool | Connection, number: str) -> uuid.UUID | None:
    """The case that holds license ``number``, as followed so far."""
    found: uuid.UUID | None = await pool.fetchval(CASE_OF_LICENSE, number)
    return found
