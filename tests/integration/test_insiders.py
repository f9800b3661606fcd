"""Attacks by insiders with a login to Kafka (no signing key), each performed against the real broker and database:
a genuine record copied into another partition, records deleted, the case topic deleted and created again.
Each is refused or named by the live registry, by ``licensectl replay`` and by ``licensectl audit verify``
(docs/guarantees.md, the threat model). The database owner's attacks (a ledger row edited, a VIN claim
deleted, a key inserted) are in test_audit.py, test_exports_lifecycle.py and test_signatures.py.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

import samples
from services.registry.app import Settings, create_app
from services.registry.replay import LogIncomplete, replay
from shared.contract.topics import Topics
from shared.platform.kafka_admin import ensure_topics
from shared.platform.placement import case_partition
from tests.histories import applied_offsets, many_cases, publish
from tests.infra import Infrastructure
from tests.support import eventually, everything_on, licensectl, producer, read_topic, serving, settings_for

PARTITIONS = 6


async def _applied(database_url: str, topics: Topics, total: int) -> None:
    async def caught_up() -> bool | None:
        return True if await applied_offsets(database_url, topics.cases) >= total else None

    await eventually(caught_up, timeout=60, what=f"{total} records applied")


async def _ledger(database_url: str) -> list[tuple[Any, ...]]:
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(
            "SELECT license_number, status, balance, declarations_used FROM registry.licenses ORDER BY 1"
        )
        return [tuple(r) for r in rows]
    finally:
        await connection.close()


async def _stopped(client: httpx.AsyncClient) -> dict[str, str]:
    """/health once it answers 503 with its ledger check saying why (the readers may fail first, and say so)."""

    async def probe() -> dict[str, str] | None:
        answer = await client.get("/health")
        stopped = answer.status_code == 503 and answer.json()["ledger"] != "ok"
        return answer.json() if stopped else None

    return await eventually(probe, timeout=30, what="the registry to stop")


async def _refuses_exports(client: httpx.AsyncClient, number: str) -> None:
    declaration = samples.declaration_data(number, "531620260000088001", quantity=1)
    for path in ("/exports", "/exports/check"):
        answer = await client.post(path, json=declaration)
        assert (answer.status_code, answer.json()["code"]) == (503, "ledger_unavailable"), (path, answer.text)


async def test_a_genuine_record_copied_into_another_partition_is_refused_and_replay_stays_deterministic(
    infrastructure: Infrastructure, database_url: str, topics: Topics
) -> None:
    """A verbatim copy of signed records (a grant, an export) produced into partitions that are not their
    cases' (a Kafka write, no key needed): refused ``misplaced_event`` live, in every replay however many
    processes fold it, and by the audit; the ledger is what the honest log gives."""
    history = many_cases(12)
    await publish(infrastructure.kafka, topics.cases, history)
    settings = settings_for(Settings, infrastructure, database_url, topics)
    async with serving(create_app(settings)):
        await _applied(database_url, topics, len(history))
        honest = await _ledger(database_url)
        records = await everything_on(infrastructure.kafka, topics.cases)
        copies = [
            r for r in records if b'"LicenseGranted"' in (r.value or b"") or b'"ExportRecorded"' in (r.value or b"")
        ]
        async with producer(infrastructure.kafka) as send:
            for record in copies[:8]:
                elsewhere = (record.partition + 1) % PARTITIONS
                await send.send_and_wait(
                    topics.cases, record.value, key=record.key, partition=elsewhere, headers=list(record.headers)
                )
        await _applied(database_url, topics, len(history) + 8)
        dead = await read_topic(infrastructure.kafka, topics.dead_letter, until=lambda r: len(r) >= 8)
        assert await _ledger(database_url) == honest
    codes = {dict(r.headers)["dlq.reason-code"] for r in dead}
    assert codes == {b"misplaced_event"}
    sums = set()
    for processes in (1, 2, 1, 3):
        result = await replay(
            database_url=database_url, kafka=infrastructure.kafka, topic=topics.cases, processes=processes
        )
        assert result.matches, (processes, result.differences)
        sums.add(result.rebuilt.digest)
    assert len(sums) == 1, "every replay of the same log gives the same ledger"


async def test_deleted_records_stop_the_registry_and_replay_names_them_leaving_nothing_behind(
    infrastructure: Infrastructure, database_url: str, topics: Topics
) -> None:
    history = many_cases(10)
    await publish(infrastructure.kafka, topics.cases, history)
    settings = settings_for(Settings, infrastructure, database_url, topics)
    async with serving(create_app(settings)) as client:
        await _applied(database_url, topics, len(history))
        number = (await client.get("/licenses", params={"limit": 1})).json()["items"][0]["license_number"]
        partition = case_partition(next(e.case_id for e in history), PARTITIONS)
        admin = AIOKafkaAdminClient(**infrastructure.kafka.options())
        await admin.start()
        try:
            await admin.delete_records({TopicPartition(topics.cases, partition): RecordsToDelete(before_offset=2)})
        finally:
            await admin.close()
        await publish(infrastructure.kafka, topics.cases, many_cases(1, first_number=900))  # a batch to fold
        health = await _stopped(client)
        assert "records 0 to 1 the ledger applied were deleted" in health["ledger"], health
        await _refuses_exports(client, number)
    for processes in (1, 2):  # with two, the fold processes were started before the log was found incomplete
        try:
            await replay(database_url=database_url, kafka=infrastructure.kafka, topic=topics.cases, processes=processes)
        except LogIncomplete as incomplete:
            assert f"partition {partition}: offsets 0 to 1 were deleted" in str(incomplete)
        else:
            raise AssertionError("a replay of a log with deleted records must fail")
        assert _fold_processes() == [], "a failed replay leaves no fold process behind"
    done = licensectl("replay", infrastructure=infrastructure, database_url=database_url, topics=topics)
    assert done.returncode == 1 and "were deleted" in done.stdout + done.stderr, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    connection = await asyncpg.connect(database_url)
    try:
        left = await connection.fetch("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'registry_rebuilt_%'")
    finally:
        await connection.close()
    assert left == [], "a failed replay leaves no schema behind"


async def test_a_case_topic_deleted_and_created_again_stops_the_registry_and_admission_at_once(
    infrastructure: Infrastructure, database_url: str, topics: Topics
) -> None:
    history = many_cases(4)
    await publish(infrastructure.kafka, topics.cases, history)
    settings = settings_for(Settings, infrastructure, database_url, topics)
    async with serving(create_app(settings)) as client:
        await _applied(database_url, topics, len(history))
        number = (await client.get("/licenses", params={"limit": 1})).json()["items"][0]["license_number"]
        admin = AIOKafkaAdminClient(**infrastructure.kafka.options())
        await admin.start()
        try:
            await admin.delete_topics([topics.cases])
        finally:
            await admin.close()
        await asyncio.sleep(1)
        await ensure_topics(infrastructure.kafka, topics)  # the case stream again, empty: another topic
        await publish(infrastructure.kafka, topics.cases, many_cases(1, first_number=700))  # new log, new records
        health = await _stopped(client)
        assert "deleted and created again" in health["ledger"] or "ahead of the log" in health["ledger"], health
        await _refuses_exports(client, number)


def _fold_processes() -> list[int]:
    """The fold processes this process started that are still alive (or not yet waited for)."""
    mine = []
    for entry in Path("/proc").iterdir():
        try:
            status = (entry / "status").read_text()
            command = (entry / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue  # not a process, or gone meanwhile
        parent = next((line.split()[1] for line in status.splitlines() if line.startswith("PPid:")), "")
        if parent == str(os.getpid()) and b"services.registry.fold_process" in command:
            mine.append(int(entry.name))
    return mine
