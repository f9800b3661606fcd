"""Replay proves the ledger follows from the log, finds rows that do not, and swaps in a rebuild."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from services.registry.app import Settings, create_app
from services.registry.replay import (
    APPEND_ONLY_KEYS,
    QUERY_ONLY_INDEXES,
    ReplayResult,
    build_indexes,
    defer_indexes,
    replay,
)
from shared.contract.topics import Topics
from shared.platform.db import migrate_async
from tests.histories import applied_offsets, many_cases, publish
from tests.infra import Infrastructure
from tests.support import eventually, licensectl, serving, settings_for


async def _live_ledger_of(infrastructure: Infrastructure, database_url: str, topics: Topics, count: int) -> None:
    """Publish ``count`` cases and let the registry fold them into the live ledger."""
    history = many_cases(count)
    settings = settings_for(Settings, infrastructure, database_url, topics)
    async with serving(create_app(settings)):
        await publish(infrastructure.kafka, topics.cases, history)

        async def caught_up() -> bool | None:
            return True if await applied_offsets(database_url, topics.cases) == len(history) else None

        await eventually(caught_up, timeout=60, what="the live ledger to apply the history")


async def _replay(infrastructure: Infrastructure, database_url: str, topics: Topics, **options: Any) -> ReplayResult:
    return await replay(
        database_url=database_url,
        kafka=infrastructure.kafka,
        topic=topics.cases,
        **options,
    )


async def _execute(database_url: str, sql: str) -> None:
    connection = await asyncpg.connect(database_url)
    await connection.execute(sql)
    await connection.close()


async def test_replaying_the_whole_log_gives_the_live_ledgers_checksum(
    infrastructure: Infrastructure, database_url: str, topics: Topics
) -> None:
    await _live_ledger_of(infrastructure, database_url, topics, count=40)
    result = await _replay(infrastructure, database_url, topics, keep=True)
    assert result.matches, result.differences
    assert result.events == 40 * 5
    assert result.live.tables == result.rebuilt.tables
    assert result.live.rows == result.rebuilt.rows > 40 * 5  # applications, licenses, exports, license history
    # The fold leaves out the indexes only the queries read and the keys of the tables it only appends to, and
    # builds them at the end: the rebuilt ledger (which a swap makes live) has every index and key the live one has.
    live, rebuilt = await _indexes(database_url, "registry"), await _indexes(database_url, result.schema)
    assert rebuilt == live and set(QUERY_ONLY_INDEXES) | set(APPEND_ONLY_KEYS) <= set(live)
    assert await _constraints(database_url, result.schema) == await _constraints(database_url, "registry")
    await _execute(database_url, f'DROP SCHEMA "{result.schema}" CASCADE')


async def _indexes(database_url: str, schema: str) -> dict[str, str]:
    """``schema``'s indexes by name, each as its definition without the schema's name."""
    connection = await asyncpg.connect(database_url)
    rows = await connection.fetch("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = $1", schema)
    await connection.close()
    return {r["indexname"]: r["indexdef"].replace(f"{schema}.", "") for r in rows}


async def _constraints(database_url: str, schema: str) -> dict[str, str]:
    """``schema``'s constraints (keys, uniques, checks) by name, each as its definition."""
    connection = await asyncpg.connect(database_url)
    rows = await connection.fetch(
        "SELECT c.conname, pg_get_constraintdef(c.oid) AS definition FROM pg_constraint c "
        "JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname = $1",
        schema,
    )
    await connection.close()
    return {r["conname"]: r["definition"] for r in rows}


async def test_a_duplicate_row_the_fold_let_in_fails_its_key_built_after_it(database_url: str) -> None:
    # The keys of the tables a replay only appends to are added after its last row; a duplicate the fold wrote in
    # the meantime fails that step, so the rebuild never reaches its checksums, let alone a swap.
    schema = f"dup_{uuid.uuid4().hex[:8]}"
    await migrate_async("registry", database_url, schema=schema)
    connection = await asyncpg.connect(database_url)
    try:
        statements = await defer_indexes(connection, schema)
        row = ("26-44-000001", uuid.uuid4(), 0, 7, datetime.now(UTC), "{}")
        await connection.copy_records_to_table(
            "license_history",
            schema_name=schema,
            records=[row, row],
            columns=("license_number", "event_id", "partition", "offset", "occurred_at", "state"),
        )
        with pytest.raises(asyncpg.UniqueViolationError, match="license_history_pkey"):
            await build_indexes(database_url, statements, connections=2)
    finally:
        await connection.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await connection.close()


async def test_folding_with_several_processes_gives_the_same_ledger_and_finds_the_same_differences(
    infrastructure: Infrastructure, database_url: str, topics: Topics
) -> None:
    await _live_ledger_of(infrastructure, database_url, topics, count=40)
    seen: list[tuple[int, int]] = []
    result = await _replay(infrastructure, database_url, topics, processes=3, progress=lambda *p: seen.append(p))
    assert result.matches, result.differences
    assert result.events == 40 * 5
    assert seen[-1] == (40 * 5, 40 * 5)  # the progress of all three adds up to the whole log
    await _execute(
        database_url, "UPDATE registry.licenses SET balance = balance + 1 WHERE license_number = '26-44-000003'"
    )
    altered = await _replay(infrastructure, database_url, topics, processes=2)
    assert not altered.matches
    assert [d.describe() for d in altered.differences] == [
        d.describe() for d in (await _replay(infrastructure, database_url, topics, processes=1)).differences
    ]
    assert altered.differences


async def test_a_ledger_row_that_no_event_supports_is_found(
    infrastructure: Infrastructure, database_url: str, topics: Topics
) -> None:
    await _live_ledger_of(infrastructure, database_url, topics, count=5)
    await _execute(
        database_url,
        """INSERT INTO registry.licenses SELECT '26-44-999999', case_id, status, applicant_code, quantity, balance,
           declarations_used, valid_from, valid_to, port_of_exit, destination_country, batch_mode, vins, granted_at
           FROM registry.licenses WHERE license_number = '26-44-000001'""",
    )
    result = await _replay(infrastructure, database_url, topics)
    assert not result.matches
    assert [d.describe() for d in result.differences] == [
        "licenses 26-44-999999: in the live ledger, supported by no event"
    ]


async def test_a_ledger_row_altered_after_the_fact_is_found(
    infrastructure: Infrastructure, database_url: str, topics: Topics
) -> None:
    await _live_ledger_of(infrastructure, database_url, topics, count=5)
    await _execute(
        database_url, "UPDATE registry.licenses SET balance = balance + 5 WHERE license_number = '26-44-000003'"
    )
    await _execute(database_url, "DELETE FROM registry.exports WHERE declaration_number = '531620260000000021'")
    result = await _replay(infrastructure, database_url, topics)
    assert not result.matches
    described = {(d.table, d.kind) for d in result.differences}
    assert ("licenses", "altered") in described and ("exports", "missing") in described
    assert [d.key for d in result.differences if d.table == "licenses"] == ["26-44-000003"]


async def test_licensectl_replay_exits_non_zero_when_the_ledgers_differ(
    infrastructure: Infrastructure, database_url: str, topics: Topics
) -> None:
    await _live_ledger_of(infrastructure, database_url, topics, count=3)
    equal = licensectl("replay", infrastructure=infrastructure, database_url=database_url, topics=topics)
    assert equal.returncode == 0, equal.stdout + equal.stderr
    assert "equal: the live ledger follows from the log" in equal.stdout
    await _execute(database_url, "UPDATE registry.exports SET outcome = 'accepted' WHERE outcome = 'refused'")
    differ = licensectl("replay", infrastructure=infrastructure, database_url=database_url, topics=topics)
    assert differ.returncode == 1
    assert "MISMATCH" in differ.stdout and "exports" in differ.stdout


async def test_swap_makes_the_rebuilt_ledger_live_and_the_registry_carries_on_in_it(
    infrastructure: Infrastructure, database_url: str, topics: Topics
) -> None:
    first, second = many_cases(10), many_cases(10, first_number=100)
    settings = settings_for(Settings, infrastructure, database_url, topics)
    async with serving(create_app(settings)) as client:
        await publish(infrastructure.kafka, topics.cases, first)

        async def applied(n: int) -> bool | None:
            return True if await applied_offsets(database_url, topics.cases) == n else None

        await eventually(lambda: applied(len(first)), timeout=60, what="the first history applied")
        swapped = await _replay(infrastructure, database_url, topics, swap=True)
        assert swapped.matches and swapped.swapped
        await publish(infrastructure.kafka, topics.cases, second)
        await eventually(lambda: applied(len(first) + len(second)), timeout=60, what="the second history applied")
        answer = await client.get("/licenses/26-44-000105")
        assert answer.status_code == 200
    again = await _replay(infrastructure, database_url, topics)
    assert again.matches and again.events == len(first) + len(second)
    connection = await asyncpg.connect(database_url)
    schemas = await connection.fetch("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'registry_retired_%'")
    await connection.close()
    assert len(schemas) == 1
