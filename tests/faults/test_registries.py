"""Registry instances in one consumer group on the cluster: a third joins and takes partitions, one dies and its
partitions go to the others; every instance answers for every license (the ledger is shared), and no record is
applied twice across the hand-overs: each partition's offset, stored in the batch's own transaction, ends where
the log ends, and the ledger is the one a pure fold of the log gives."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import asyncpg
import httpx
from confluent_kafka.admin import AdminClient

from shared.contract.events import Envelope
from shared.contract.topics import Topics
from shared.platform.kafka_access import KafkaConnection
from tests.faults.system import running, stored_offsets, wait_ready
from tests.histories import many_cases, publish
from tests.integration.test_exactly_once import pure_fold
from tests.support import auth, eventually, everything_on

CASES = 240


def assignment(kafka: KafkaConnection, group: str, topic: str) -> dict[str, list[int]]:
    """Each member of ``group`` (by its instance id) and the partitions of ``topic`` it holds."""
    admin = AdminClient({**kafka.librdkafka(), "log_level": 4})
    described = admin.describe_consumer_groups([group], request_timeout=20)[group].result()
    return {
        str(m.group_instance_id or m.member_id): sorted(
            tp.partition for tp in m.assignment.topic_partitions if tp.topic == topic
        )
        for m in described.members
    }


async def test_registries_share_partitions_through_joins_and_deaths_and_apply_nothing_twice(
    cluster_kafka: KafkaConnection, fault_database: str, cluster_topics: Topics, tmp_path: Path
) -> None:
    history = many_cases(CASES)
    group, cases = cluster_topics.group("registry"), cluster_topics.cases
    with running(
        cluster_kafka,
        fault_database,
        cluster_topics,
        tmp_path,
        registries=2,
        registries_only=True,
        extra={"REGISTRY_BATCH_SIZE": "25"},
    ) as system:

        async def shared_by(*instances: str) -> dict[str, list[int]] | None:
            held = await asyncio.to_thread(assignment, cluster_kafka, group, cases)
            partitions = sorted(p for ps in held.values() for p in ps)
            # Settled: a snapshot mid-rebalance shows a member that joined holding nothing yet.
            settled = set(held) == set(instances) and all(held.values()) and partitions == list(range(6))
            return held if settled else None

        two = await eventually(lambda: shared_by("registry-1", "registry-2"), timeout=60, what="two members")
        third = len(history) // 3
        await publish(cluster_kafka, cases, history[:third])
        system.registries.append(system.registry(3))
        system.registries[2].start()
        await asyncio.to_thread(wait_ready, system.registries[2])
        publishing = asyncio.create_task(publish(cluster_kafka, cases, history[third : 2 * third]))
        three = await eventually(
            lambda: shared_by("registry-1", "registry-2", "registry-3"), timeout=60, what="three members"
        )
        await publishing
        system.registries[0].kill(signal.SIGKILL)  # mid-batch: its partitions are handed over after its session
        died = time.monotonic()
        await publish(cluster_kafka, cases, history[2 * third :])
        after = await eventually(lambda: shared_by("registry-2", "registry-3"), timeout=60, what="the survivors")
        handed_over = time.monotonic() - died

        log = await everything_on(cluster_kafka, cases)
        ends = {p: 1 + max(r.offset for r in log if r.partition == p) for p in {r.partition for r in log}}

        async def caught_up() -> bool | None:
            return True if await stored_offsets(fault_database, cases) == ends else None

        await eventually(caught_up, timeout=120, what="the survivors to apply the whole log")
        numbers = [f"26-44-{n:06d}" for n in range(1, CASES + 1, 17)]
        async with httpx.AsyncClient(timeout=30, headers=auth()) as client:
            answers = {
                url: [(await client.get(f"{url}/licenses/{n}")).json() for n in numbers]
                for url in system.registry_urls[1:]
            }
    print(
        f"\n[faults] two: {two}\n[faults] three: {three}\n[faults] after registry-1 died: {after} ({handed_over:.1f}s)"
    )
    assert all(len(ps) >= 1 for ps in three.values())  # the one that joined took a share
    expected_licenses, expected_exports = pure_fold(history)
    connection = await asyncpg.connect(fault_database)
    try:
        licenses = {
            tuple(r)
            for r in await connection.fetch(
                "SELECT license_number, status, balance, declarations_used FROM registry.licenses"
            )
        }
        exports = [
            tuple(r)
            for r in await connection.fetch("SELECT declaration_number, outcome, reason_code FROM registry.exports")
        ]
        applied = {r["event_id"] for r in await connection.fetch("SELECT event_id FROM registry.applied_events")}
        rows = await connection.fetch(
            "SELECT partition, next_offset FROM registry.partition_offsets WHERE topic = $1", cases
        )
        stored = {int(r["partition"]): int(r["next_offset"]) for r in rows}
        refused = [
            dict(r)
            for r in await connection.fetch('SELECT partition, "offset", reason_code FROM registry.refused_events')
        ]
    finally:
        await connection.close()
    logged: dict[object, Envelope] = {}  # each event once, in log order: a producer's retry may append it twice
    for record in sorted(log, key=lambda r: (r.partition, r.offset)):
        logged.setdefault((e := Envelope.from_bytes(record.value or b"")).event_id, e)
    print(f"[faults] the log holds {len(log)} records of {len(logged)} events ({len(history)} sent)")
    assert set(logged) == {e.event_id for e in history}
    reordered = [
        c
        for c in {e.case_id for e in history}
        if [e.event_id for e in logged.values() if e.case_id == c] != [e.event_id for e in history if e.case_id == c]
    ]
    assert not reordered, f"the log holds these cases' events out of the order sent: {reordered}"
    assert refused == [], f"genuine events refused: {refused}"  # every record of the history is signed and placed
    unapplied = [
        (r.partition, r.offset, e.type, str(e.case_id))
        for r in log
        if (e := Envelope.from_bytes(r.value or b"")).event_id not in applied
    ]
    assert not unapplied, f"records below the stored offsets never applied: {unapplied}"
    assert licenses == expected_licenses  # a batch applied twice would have drawn on a balance twice
    assert len(exports) == len(set(exports)) == len(expected_exports) and set(exports) == expected_exports
    assert applied == {e.event_id for e in history}
    first, second = answers.values()
    wrong = [a for a, n in zip(first + second, numbers + numbers, strict=True) if a.get("license_number") != n]
    assert first == second and not wrong, wrong
    assert stored == ends  # each partition's stored offset is where its log ends
