"""Killing the registry at any moment loses no event and applies none twice."""

from __future__ import annotations

import asyncio
import random
import signal
from pathlib import Path

import asyncpg

from shared.contract.events import Envelope
from shared.contract.topics import Topics
from shared.fold import Case, apply
from shared.platform.kafka_access import KafkaConnection
from tests.histories import applied_offsets, many_cases, publish
from tests.infra import Infrastructure
from tests.processes import ServiceProcess
from tests.support import eventually


def pure_fold(history: list[Envelope]) -> tuple[set[tuple[object, ...]], set[tuple[object, ...]]]:
    """The licenses and exports the log gives, folded in memory with no database at all."""
    cases: dict[object, Case] = {}
    exports: set[tuple[object, ...]] = set()
    for envelope in history:
        case = cases.get(envelope.case_id) or Case(case_id=envelope.case_id)
        cases[envelope.case_id], export = apply(case, envelope)
        if export is not None:
            exports.add(
                (export.declaration_number, export.outcome.value, export.reason.code if export.reason else None)
            )
    licenses: set[tuple[object, ...]] = {
        (n, lic.status.value, lic.balance, lic.declarations_used)
        for case in cases.values()
        for n, lic in case.licenses.items()
    }
    return licenses, exports


async def _ledger(database_url: str) -> tuple[set[tuple[object, ...]], list[tuple[object, ...]]]:
    connection = await asyncpg.connect(database_url)
    try:
        licenses = await connection.fetch(
            "SELECT license_number, status, balance, declarations_used FROM registry.licenses"
        )
        exports = await connection.fetch("SELECT declaration_number, outcome, reason_code FROM registry.exports")
        return {tuple(r) for r in licenses}, [tuple(r) for r in exports]
    finally:
        await connection.close()


async def _trickle(kafka: KafkaConnection, topic: str, history: list[Envelope], published: list[int]) -> None:
    """Publish the history a few events at a time, so that kills find events in flight."""
    for i in range(0, len(history), 20):
        await publish(kafka, topic, history[i : i + 20])
        published[0] = min(i + 20, len(history))
        await asyncio.sleep(0.03)


async def test_killing_the_registry_at_random_moments_loses_nothing_and_applies_nothing_twice(
    infrastructure: Infrastructure, database_url: str, topics: Topics, tmp_path: Path
) -> None:
    rng = random.Random(20261128)
    history = many_cases(1000)
    registry = ServiceProcess(
        "registry",
        {
            **infrastructure.kafka.environment(),
            "DATABASE_URL": database_url,
            "LEDGER_TOPIC_NAMESPACE": topics.namespace,
            "REGISTRY_INSTANCE_ID": "registry-0",
            "REGISTRY_BATCH_SIZE": "25",
        },
        tmp_path,
    )
    published = [0]
    registry.start()
    kills_in_flight = kills = 0
    try:
        await asyncio.to_thread(registry.wait_healthy)
        trickle = asyncio.create_task(_trickle(infrastructure.kafka, topics.cases, history, published))
        while not trickle.done():
            # Soon after a restart the registry is still working off what arrived while it was down. Otherwise it
            # keeps up with the trickle, so the kill comes at a random moment soon after a publish.
            seen = published[0]
            while published[0] == seen and not trickle.done():
                await asyncio.sleep(0.002)
            await asyncio.sleep(rng.uniform(0.0, 0.05))
            in_flight = published[0] - await applied_offsets(database_url, topics.cases)
            registry.kill(signal.SIGKILL)
            kills_in_flight += in_flight > 0
            kills += 1
            registry.start()
            await asyncio.to_thread(registry.wait_healthy)
        await trickle

        async def caught_up() -> bool | None:
            return True if await applied_offsets(database_url, topics.cases) == len(history) else None

        await eventually(caught_up, timeout=60, what="the registry to apply the whole log")
    finally:
        registry.stop()
    expected_licenses, expected_exports = pure_fold(history)
    licenses, exports = await _ledger(database_url)
    assert licenses == expected_licenses
    assert len(exports) == len(set(exports)) == len(expected_exports)  # none lost, none twice
    assert set(exports) == expected_exports
    # Kills landed while events were published but not yet applied.
    assert kills_in_flight >= 2, (kills_in_flight, kills)
