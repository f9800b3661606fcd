"""The registry's ledger against the real broker and database: fold, offsets, redelivery, exports."""

import asyncio
import uuid

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer

import samples
from services.registry import chain, store
from services.registry.app import Settings, create_app
from services.registry.projector import Projector
from shared.contract.events import derived_event_id
from shared.contract.topics import Topics
from shared.platform.db import create_pool
from tests.histories import case, publish
from tests.infra import Infrastructure
from tests.support import eventually, producer, read_topic, send_signed, serving, settings_for, trust_log


async def _ledger(database_url: str) -> dict[str, list[tuple[object, ...]]]:
    connection = await asyncpg.connect(database_url)
    try:
        return {
            "licenses": [
                tuple(r)
                for r in await connection.fetch(
                    "SELECT license_number, status, balance, declarations_used FROM registry.licenses ORDER BY 1"
                )
            ],
            "exports": [
                tuple(r)
                for r in await connection.fetch(
                    "SELECT declaration_number, outcome, reason_code FROM registry.exports ORDER BY 1"
                )
            ],
            "applications": [
                tuple(r)
                for r in await connection.fetch(
                    "SELECT application_id, status, license_number FROM registry.applications ORDER BY 1"
                )
            ],
        }
    finally:
        await connection.close()


async def _project_until(infrastructure: Infrastructure, database_url: str, topics: Topics, applied: int) -> int:
    """Run a projector until it has applied ``applied`` events; return how many it applied."""
    pool = await create_pool(database_url, schema="registry")
    dead: list[object] = []

    async def dead_letter(record: object, reason: object) -> None:
        dead.append((record, reason))

    async with trust_log(infrastructure.kafka, topics) as trust:
        projector = Projector(
            kafka=infrastructure.kafka,
            topic=topics.cases,
            pool=pool,
            dead_letter=dead_letter,
            group_id=topics.group("registry"),
            trust=trust,
        )
        task = asyncio.create_task(projector.run())
        try:
            await eventually(lambda: _done(projector.applied >= applied), timeout=30, what=f"{applied} events applied")
            await asyncio.sleep(0.5)  # nothing more arrives that should not
            return projector.applied
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await pool.close()


async def _done(condition: bool) -> bool | None:
    return True if condition else None


async def test_the_ledger_folds_grants_and_judges_exports(
    infrastructure: Infrastructure, database_url: str, topics: Topics
) -> None:
    events = case("26-44-000101", (1, 6), (2, 5), (3, 4))
    await publish(infrastructure.kafka, topics.cases, events)
    await _project_until(infrastructure, database_url, topics, applied=len(events))
    ledger = await _ledger(database_url)
    assert ledger["licenses"] == [("26-44-000101", "exhausted", 0, 2)]
    assert ledger["exports"] == [
        ("531620260000000001", "accepted", None),
        ("531620260000000002", "refused", "exceeds_balance"),
        ("531620260000000003", "accepted", None),
    ]
    assert ledger["applications"] == [(events[0].case_id, "approved", "26-44-000101")]


async def test_a_restarted_projector_resumes_from_its_stored_offsets_and_applies_nothing_twice(
    infrastructure: Infrastructure, database_url: str, topics: Topics
) -> None:
    first = case("26-44-000201", (1, 3))
    second = case("26-44-000202", (2, 4))
    await publish(infrastructure.kafka, topics.cases, first)
    assert await _project_until(infrastructure, database_url, topics, applied=len(first)) == len(first)
    await publish(infrastructure.kafka, topics.cases, second)
    # A new projector applies only what came after the offsets stored with the ledger rows.
    assert await _project_until(infrastructure, database_url, topics, applied=len(second)) == len(second)
    ledger = await _ledger(database_url)
    assert [(n, b) for n, _, b, _ in ledger["licenses"]] == [("26-44-000201", 7), ("26-44-000202", 6)]
    connection = await asyncpg.connect(database_url)
    stored = await connection.fetchval("SELECT sum(next_offset) FROM registry.partition_offsets")
    await connection.close()
    assert stored == len(first) + len(second)


async def test_delivering_every_event_twice_leaves_the_ledger_unchanged(
    infrastructure: Infrastructure, database_url: str, topics: Topics
) -> None:
    events = case("26-44-000301", (1, 4), (2, 4), (3, 4))
    await publish(infrastructure.kafka, topics.cases, events)
    await _project_until(infrastructure, database_url, topics, applied=len(events))
    once = await _ledger(database_url)
    await publish(infrastructure.kafka, topics.cases, events)
    await _project_until(infrastructure, database_url, topics, applied=0)
    assert await _ledger(database_url) == once
    assert once["licenses"] == [("26-44-000301", "active", 2, 2)]


async def test_an_unreadable_event_is_dead_lettered_and_the_events_behind_it_still_apply(
    infrastructure: Infrastructure, database_url: str, topics: Topics
) -> None:
    events = case("26-44-000401", (1, 2))
    async with producer(infrastructure.kafka) as send:
        await send.send_and_wait(topics.cases, b'{"type": "LicenseGranted"', key=str(events[0].case_id).encode())
    await publish(infrastructure.kafka, topics.cases, events)
    settings = settings_for(Settings, infrastructure, database_url, topics)
    async with serving(create_app(settings)) as client:
        answer = await _license_when(client, "26-44-000401", balance=8)
        dead = await read_topic(infrastructure.kafka, topics.dead_letter, until=lambda r: len(r) >= 1)
    assert answer["declarations_used"] == 1
    assert dict(dead[0].headers)["dlq.reason-code"] == b"unreadable_event"


async def _license_when(client, number: str, **expected: object) -> dict:  # type: ignore[no-untyped-def,type-arg]
    async def probe() -> dict | None:  # type: ignore[type-arg]
        answer = await client.get(f"/licenses/{number}")
        body = answer.json() if answer.status_code == 200 else {}
        return body if all(body.get(k) == v for k, v in expected.items()) else None

    return await eventually(probe, what=f"license {number} with {expected}")


async def test_customs_exports_over_http_and_intake_are_judged_by_the_ledger(
    infrastructure: Infrastructure, database_url: str, topics: Topics
) -> None:
    number = "26-44-000501"
    await publish(infrastructure.kafka, topics.cases, case(number))
    settings = settings_for(Settings, infrastructure, database_url, topics)
    async with serving(create_app(settings)) as client:
        await _license_when(client, number, balance=10)
        accepted = await client.post(
            "/exports", json=samples.declaration_data(number, "531620260000000011", quantity=7)
        )
        assert accepted.status_code == 202, accepted.text
        resent = await client.post("/exports", json=samples.declaration_data(number, "531620260000000011", quantity=7))
        assert resent.json()["event_id"] == accepted.json()["event_id"]
        unknown = await client.post("/exports", json=samples.declaration_data("26-44-999999", "531620260000000012"))
        assert unknown.status_code == 422 and unknown.json()["errors"][0]["code"] == "unknown_license"
        command = {
            "command_id": str(uuid.uuid4()),
            "type": "RecordExport",
            "schema_version": 1,
            "sender": "gac-shenzhen",
            "payload": {"declaration": samples.declaration_data(number, "531620260000000013", quantity=4)},
        }
        import json

        async with producer(infrastructure.kafka) as send:
            await send_signed(send, topics.intake_exports, json.dumps(command).encode())
        await _license_when(client, number, balance=3, declarations_used=1)
        refused = await eventually(
            lambda: _json_if_found(client, "/exports/531620260000000013"), what="the intake export judged"
        )
    assert refused[0]["outcome"] == "refused"
    assert refused[0]["reason"]["code"] == "exceeds_balance"
    assert derived_event_id(f"{number}/531620260000000011", "export") == uuid.UUID(accepted.json()["event_id"])


async def _json_if_found(client, path: str):  # type: ignore[no-untyped-def]
    answer = await client.get(path)
    return answer.json() if answer.status_code == 200 else None


async def test_a_ledger_ahead_of_its_log_stops_and_says_so_instead_of_skipping_events(
    infrastructure: Infrastructure, database_url: str, topics: Topics
) -> None:
    # The ledger has applied 50 records of partition 0, but this (recreated) topic holds fewer.
    connection = await asyncpg.connect(database_url)
    await connection.execute(
        "INSERT INTO registry.partition_offsets (topic, partition, next_offset, chain_head, chain_start)"
        " VALUES ($1, 0, 50, $2, 0)",
        topics.cases,
        bytes(32),
    )
    await connection.close()
    async with producer(infrastructure.kafka) as send:
        for envelope in case("26-44-000601", (1, 2), partition=0):  # partition 0, the one the ledger is ahead on
            await send_signed(send, topics.cases, envelope.to_bytes(), key=str(envelope.case_id).encode())
    settings = settings_for(Settings, infrastructure, database_url, topics)
    async with serving(create_app(settings)) as client:

        async def refused() -> dict | None:  # type: ignore[type-arg]
            answer = await client.get("/health")
            stopped = answer.status_code == 503 and answer.json()["ledger"] != "ok"
            return answer.json() if stopped else None

        health = await eventually(refused, timeout=30, what="/health to report the ledger ahead of the log")
    assert health["ledger"].startswith("the ledger is ahead of the log")
    assert f"{topics.cases}/0: applied up to 50" in health["ledger"]
    assert (await _ledger(database_url))["licenses"] == []  # partition 0's new events were not skipped past


async def test_placement_is_judged_against_the_brokers_partition_count_not_the_consumers_metadata(
    infrastructure: Infrastructure, database_url: str, topics: Topics, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The consumer's cached metadata may lack the topic for a moment (its count then 0): no genuine event may
    be refused for that. The projector asks the broker how many partitions the case stream has."""
    monkeypatch.setattr(AIOKafkaConsumer, "partitions_for_topic", lambda self, topic: None)
    events = case("26-44-000301", (1, 2), (2, 3))
    await publish(infrastructure.kafka, topics.cases, events)
    assert await _project_until(infrastructure, database_url, topics, applied=len(events)) == len(events)
    connection = await asyncpg.connect(database_url)
    try:
        refused = await connection.fetch('SELECT partition, "offset", reason_code FROM registry.refused_events')
    finally:
        await connection.close()
    assert refused == []
    assert (await _ledger(database_url))["licenses"] == [("26-44-000301", "active", 5, 2)]


async def test_a_batch_that_does_not_start_where_the_partitions_applied_records_end_is_refused_writing_nothing(
    database_url: str,
) -> None:
    """Whatever hands a reader records beyond the stored offset (a stale batch held across rebalances, a zombie
    member), applying them would move the offset past records never applied: the batch raises and the reader
    reads again from the stored offset. A batch that overlaps what was applied is fine."""
    raw = [chain.Raw(offset, f"record {offset}".encode()) for offset in range(10)]
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute("SET search_path TO registry")

        async def apply(records: list[chain.Raw]) -> int:
            async with connection.transaction():
                batch = store.Batch(0, events=[], next_offset=records[-1].offset + 1, records=records)
                await store.apply_batches(connection, topic="c", batches=[batch])
            return int(await connection.fetchval("SELECT next_offset FROM partition_offsets WHERE topic = 'c'"))

        assert await apply(raw[0:3]) == 3
        with pytest.raises(store.BatchNotContiguous, match="applied up to 3"):
            await apply(raw[5:8])
        assert await apply(raw[2:6]) == 6
        assert await apply(raw[6:10]) == 10
        head = await connection.fetchval("SELECT chain_head FROM partition_offsets WHERE topic = 'c'")
    finally:
        await connection.close()
    assert bytes(head) == chain.extend(chain.GENESIS, 0, raw)  # every record chained once, in order
