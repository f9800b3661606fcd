"""Fewer brokers than ``min.insync.replicas``: the event store refuses writes, the HTTP APIs answer 503 with
Retry-After, and nothing is half-written: sent again once the brokers are back, each request takes effect once."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from pathlib import Path

import asyncpg
import httpx

import samples
from services.applications.idempotency import application_id_of, http_key
from shared.contract.events import Envelope
from shared.contract.topics import Topics
from shared.platform.kafka_access import KafkaConnection
from tests.faults.cluster import KafkaCluster, Postgres
from tests.faults.schedule import Injector
from tests.faults.system import running, stored_offsets
from tests.support import auth, everything_on


async def test_below_min_insync_replicas_writes_answer_503_and_nothing_is_half_written(
    kafka_cluster: KafkaCluster,
    cluster_kafka: KafkaConnection,
    fault_postgres: Postgres,
    fault_database: str,
    cluster_topics: Topics,
    tmp_path: Path,
) -> None:
    timeouts = {"APPLICATIONS_APPEND_TIMEOUT_SECONDS": "5", "REGISTRY_APPEND_TIMEOUT_SECONDS": "5"}
    with running(cluster_kafka, fault_database, cluster_topics, tmp_path, registries=1, extra=timeouts) as system:
        assert system.applications is not None
        applications, registry = system.applications.url, system.registry_urls[0]
        async with httpx.AsyncClient(timeout=120, headers=auth()) as client:
            number = await _license(client, applications, registry)
            down = random.Random().sample((1, 2, 3), 2)
            for node in down:
                kafka_cluster.kill(node)
            try:
                key, declaration = f"insync-{uuid.uuid4()}", "INSYNC" + uuid.uuid4().hex[:12].upper()
                application = samples.application_data()
                kept = http_key(application["agency_code"], key)  # the key as the service keeps it
                export = samples.declaration_data(number, declaration, quantity=3)
                began = time.monotonic()
                submitted = await client.post(
                    f"{applications}/applications", json=application, headers={"Idempotency-Key": key}
                )
                recorded = await client.post(f"{registry}/exports", json=export)
                waited = time.monotonic() - began
                half_written = await _rows_of(fault_database, kept, declaration)
            finally:
                await asyncio.to_thread(kafka_cluster.start)
            print(f"\n[faults] nodes {down} killed: both writes refused after {waited:.1f}s")
            for answer in (submitted, recorded):
                assert answer.status_code == 503, answer.text
                assert answer.json()["code"] == "broker_unavailable", answer.text
                assert int(answer.headers["Retry-After"]) >= 1
            assert half_written == {"idempotency_keys": 0, "declarations": 0, "vin_claims": 0}

            await Injector(kafka_cluster, fault_postgres, system, random.Random()).healed(since=time.monotonic())
            again = await client.post(
                f"{applications}/applications", json=application, headers={"Idempotency-Key": key}
            )
            assert again.status_code == 202, again.text
            assert again.json()["application_id"] == str(application_id_of(kept))  # the refused request's id
            assert (await client.post(f"{registry}/exports", json=export)).status_code == 202
            verdict = await _verdict(client, registry, declaration)
            if verdict is None:
                where = await _where(cluster_kafka, cluster_topics.cases, fault_database, declaration)
                health = (await client.get(f"{registry}/health")).text
                tasks = await asyncio.to_thread(system.registries[0].tasks)
                raise AssertionError(
                    f"no verdict on {declaration} within 60 s; {where}; the registry's /health: {health}; "
                    f"its tasks wait at:\n{tasks}"
                )
            balance = (await client.get(f"{registry}/licenses/{number}")).json()["balance"]
    assert verdict == "accepted" and balance == 10 - 3, (verdict, balance)
    events = [Envelope.from_bytes(r.value or b"") for r in await everything_on(cluster_kafka, cluster_topics.cases)]
    submissions = [e for e in events if str(e.case_id) == again.json()["application_id"]]
    exports = [e for e in events if getattr(e.payload, "declaration_number", None) == declaration]
    assert [e.type for e in submissions[:1]] == ["ApplicationSubmitted"]
    assert len({e.event_id for e in submissions if e.type == "ApplicationSubmitted"}) == 1
    assert len({e.event_id for e in exports}) == 1


async def _license(client: httpx.AsyncClient, applications: str, registry: str) -> str:
    answer = await client.post(f"{applications}/applications", json=samples.application_data())
    assert answer.status_code == 202, answer.text
    application_id = answer.json()["application_id"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = await client.get(f"{registry}/applications/{application_id}")
        if found.status_code == 200 and found.json()["status"] == "approved":
            return str(found.json()["license_number"])
        await asyncio.sleep(0.2)
    raise AssertionError("no license granted within 60 s")


async def _verdict(client: httpx.AsyncClient, registry: str, declaration: str) -> str | None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = await client.get(f"{registry}/exports/{declaration}")
        if found.status_code == 200:
            return str(found.json()[0]["outcome"])
        await asyncio.sleep(0.2)
    return None


async def _where(kafka: KafkaConnection, topic: str, database_url: str, declaration: str) -> str:
    """Where a verdict that did not come stands: its events in the log (partition, offset, id), and how far the
    ledger has applied each partition, against the log's end."""
    records = await everything_on(kafka, topic)
    ends: dict[int, int] = {}
    for record in records:
        ends[record.partition] = max(ends.get(record.partition, 0), record.offset + 1)
    found = [
        f"{r.partition}/{r.offset} {e.type} {e.event_id}"
        for r in records
        if getattr((e := Envelope.from_bytes(r.value or b"")).payload, "declaration_number", None) == declaration
    ]
    applied = await stored_offsets(database_url, topic)
    return f"its events in the log: {found or 'none'}; applied up to {applied}, the log ends at {ends}"


async def _rows_of(database_url: str, key: str, declaration: str) -> dict[str, int]:
    """What the refused requests left in the database: the idempotency key, the declaration, its VIN claims."""
    connection = await asyncpg.connect(database_url)
    try:
        return {
            "idempotency_keys": await connection.fetchval(
                "SELECT count(*) FROM applications.idempotency_keys WHERE key = $1", key
            ),
            "declarations": await connection.fetchval(
                "SELECT count(*) FROM registry.declarations WHERE declaration_number = $1", declaration
            ),
            "vin_claims": await connection.fetchval(
                "SELECT count(*) FROM registry.vin_claims WHERE declaration_number = $1", declaration
            ),
        }
    finally:
        await connection.close()
