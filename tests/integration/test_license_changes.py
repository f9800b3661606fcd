"""Subscribers see each license's state after each ledger commit, and a crash loses no change."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from services.registry import outbox
from services.registry.app import Settings, create_app
from services.registry.projector import Projector
from shared.contract.events import LicenseState
from shared.contract.topics import Topics
from shared.platform.db import create_pool
from shared.platform.kafka_access import KafkaConnection
from tests.histories import applied_offsets, many_cases, publish
from tests.infra import Infrastructure
from tests.support import eventually, read_topic, serving, settings_for, trust_log


async def _ledger_licenses(database_url: str) -> dict[str, tuple[object, ...]]:
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(
            "SELECT license_number, status, balance, declarations_used FROM registry.licenses"
        )
        return {r["license_number"]: tuple(r)[1:] for r in rows}
    finally:
        await connection.close()


async def _subscriber_view(kafka: KafkaConnection, topic: str, licenses: int) -> dict[str, tuple[object, ...]]:
    """What a new subscriber has after reading the compacted topic from the start: the last state per key."""

    def complete(records: list) -> bool:  # type: ignore[type-arg]
        return len({r.key for r in records}) >= licenses

    latest: dict[str, LicenseState] = {}
    for record in await read_topic(kafka, topic, until=complete, timeout=30):
        state = LicenseState.model_validate_json(record.value or b"")
        assert record.key == state.license_number.encode()
        latest[state.license_number] = state
    return {n: (s.status, s.balance, s.declarations_used) for n, s in latest.items()}


async def test_a_subscriber_from_the_beginning_ends_with_the_ledgers_state_of_every_license(
    infrastructure: Infrastructure, database_url: str, topics: Topics
) -> None:
    history = many_cases(25)
    async with serving(create_app(settings_for(Settings, infrastructure, database_url, topics))):
        await publish(infrastructure.kafka, topics.cases, history)

        async def caught_up() -> bool | None:
            return True if await applied_offsets(database_url) == len(history) else None

        await eventually(caught_up, timeout=60, what="the ledger to apply the history")
        ledger = await _ledger_licenses(database_url)
        # Let the last relay finish; then a subscriber must find exactly the ledger's states.
        view = await eventually(
            lambda: _matching(infrastructure.kafka, topics.license_changes, ledger),
            timeout=30,
            what="the subscriber's view to match the ledger",
        )
    assert view == ledger and len(ledger) == 25


async def _matching(kafka: KafkaConnection, topic: str, ledger: dict[str, tuple[object, ...]]) -> dict | None:  # type: ignore[type-arg]
    view = await _subscriber_view(kafka, topic, len(ledger))
    return view if view == ledger else None


async def _gone_before_sending(license_number: str, state: bytes) -> asyncio.Future[None]:
    raise ConnectionError("the broker went away right after the ledger commit")


async def _acknowledgement_refused(license_number: str, state: bytes) -> asyncio.Future[None]:
    # Each state is on its way (sent without waiting), and the broker then refuses it.
    refused: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    refused.set_exception(ConnectionError("the broker did not acknowledge the state"))
    return refused


@pytest.mark.parametrize("broker_gone", [_gone_before_sending, _acknowledgement_refused], ids=["send", "ack"])
async def test_a_crash_between_ledger_commit_and_publish_loses_no_change(
    infrastructure: Infrastructure, database_url: str, topics: Topics, broker_gone: outbox.Publish
) -> None:
    history = many_cases(10)
    await publish(infrastructure.kafka, topics.cases, history)

    async def no_dead_letters(record: object, reason: object) -> None:
        raise AssertionError("nothing here is unreadable")

    pool = await create_pool(database_url, schema="registry")
    async with trust_log(infrastructure.kafka, topics) as trust:
        crashed = Projector(
            kafka=infrastructure.kafka,
            topic=topics.cases,
            pool=pool,
            dead_letter=no_dead_letters,
            group_id=topics.group("registry"),
            publish=broker_gone,
            trust=trust,
        )
        # Bounded: a projector that never meets the failure would otherwise fold on forever.
        outcome = await asyncio.gather(asyncio.wait_for(crashed.run(), 60), return_exceptions=True)
    assert isinstance(outcome[0], ConnectionError)
    pending = await pool.fetchval("SELECT count(*) FROM outbox")
    await pool.close()
    assert crashed.applied > 0 and pending > 0  # committed to the ledger, never published

    async with serving(create_app(settings_for(Settings, infrastructure, database_url, topics))):

        async def caught_up() -> bool | None:
            return True if await applied_offsets(database_url) == len(history) else None

        await eventually(caught_up, timeout=60, what="the restarted registry to apply the rest")
        ledger = await _ledger_licenses(database_url)
        view = await eventually(
            lambda: _matching(infrastructure.kafka, topics.license_changes, ledger),
            timeout=30,
            what="every change, including those left in the outbox, to reach subscribers",
        )
    assert view == ledger and len(ledger) == 10
