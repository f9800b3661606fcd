"""A log written with version-1 events replays into today's ledger, checksum for checksum."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import asyncpg

from services.registry.checksum import checksum
from services.registry.replay import fold_log, open_log
from shared.contract.topics import Topics
from shared.platform import trust
from shared.platform.db import create_pool, migrate_async
from shared.platform.kafka_admin import delete_topics, ensure_topics
from tests.infra import Infrastructure
from tests.support import ROOT_KEY, producer, send_signed, trust_for_tests

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


async def _fold_fixture(infrastructure: Infrastructure, database_url: str, fixture: str) -> str:
    """Publish the fixture's raw lines, as they were written, and fold them into a schema of their own."""
    topics = Topics(namespace=f"t{uuid.uuid4().hex[:10]}")
    await ensure_topics(infrastructure.kafka, topics)
    await trust.publish(infrastructure.kafka, topics.trust, trust_for_tests(), ROOT_KEY)
    ends: dict[int, int] = {}
    async with producer(infrastructure.kafka) as send:
        for line in (FIXTURES / fixture).read_text().splitlines():
            meta = await send_signed(send, topics.cases, line.encode(), key=json.loads(line)["case_id"].encode())
            ends[meta.partition] = meta.offset + 1
    schema = f"ledger_{fixture.split('.')[0]}"
    await migrate_async("registry", database_url, schema=schema)
    pool = await create_pool(database_url, schema=schema)
    try:
        await fold_log(pool, await open_log(infrastructure.kafka, topics.cases), start={}, end=ends)
    finally:
        await pool.close()
        await delete_topics(infrastructure.kafka, topics)
    connection = await asyncpg.connect(database_url)
    try:
        async with connection.transaction(readonly=True):
            return (await checksum(connection, schema)).digest
    finally:
        await connection.close()


async def test_a_version_1_log_replays_to_the_same_checksum_as_todays(
    infrastructure: Infrastructure, database_url: str
) -> None:
    old = await _fold_fixture(infrastructure, database_url, "history_v1.jsonl")
    new = await _fold_fixture(infrastructure, database_url, "history_current.jsonl")
    assert old == new
    connection = await asyncpg.connect(database_url)
    exports = await connection.fetchval("SELECT count(*) FROM ledger_history_v1.exports WHERE vins <> '{}'")
    await connection.close()
    assert exports > 0  # the upcast VINs really reached the ledger
