"""The registry's background work (the projector, the outbox relay, the checkpoints) runs until the service
stops: a cancellation it was not asked for (a future cancelled under it by a client library, as after brokers
restart) is a failure it waits out and recovers from, and work that ends anyway is an error named on /health."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from services.registry import projector
from services.registry.app import Settings, create_app
from shared.contract.topics import Topics
from shared.platform import service
from tests.histories import case, publish
from tests.infra import Infrastructure
from tests.support import eventually, producer, read_topic, serving, settings_for


async def test_a_cancellation_under_the_projector_is_waited_out_and_the_ledger_still_follows_its_log(
    infrastructure: Infrastructure, database_url: str, topics: Topics, monkeypatch: pytest.MonkeyPatch
) -> None:
    folds, real = [], projector.fold_all

    async def cancelled_once(*args: Any, **kwargs: Any) -> Any:
        folds.append(1)
        if len(folds) == 1:
            raise asyncio.CancelledError  # as a broker client's future cancelled under the fold
        return await real(*args, **kwargs)

    monkeypatch.setattr(projector, "fold_all", cancelled_once)
    events = case("26-44-000301", (1, 3))
    await publish(infrastructure.kafka, topics.cases, events)
    async with serving(create_app(settings_for(Settings, infrastructure, database_url, topics))) as client:

        async def licensed() -> dict[str, Any] | None:
            answer = await client.get("/licenses/26-44-000301")
            return answer.json() if answer.status_code == 200 and answer.json()["balance"] == 7 else None

        await eventually(licensed, timeout=60, what="the license folded after the cancellation")
        health = (await client.get("/health")).json()
    assert len(folds) >= 2 and health["background"] == "ok", health


async def test_background_work_that_ends_while_the_service_runs_is_named_on_health(
    infrastructure: Infrastructure, database_url: str, topics: Topics
) -> None:
    app = create_app(settings_for(Settings, infrastructure, database_url, topics))
    async with serving(app) as client:
        assert (await client.get("/health")).json()["background"] == "ok"

        async def gone() -> None:
            raise RuntimeError("the relay's connection went away for good")

        app.state.runtime.run_in_background(gone(), name="relay-of-tests")

        health = await eventually(lambda: _not_ready(client), what="/health naming the stopped work")
    assert "relay-of-tests stopped (RuntimeError: the relay's connection went away for good)" in health["background"]
    assert health["status"] == "degraded"


async def test_a_reader_whose_consume_loop_was_cancelled_under_it_is_named_on_health(
    infrastructure: Infrastructure, database_url: str, topics: Topics
) -> None:
    """faststream restarts a consume loop that failed, not one a cancellation ended: /health says so meanwhile."""
    async with _intake_cancelled(infrastructure, database_url, topics, watch_seconds=600) as (_, client):
        health = await eventually(lambda: _not_ready(client), what="/health naming the reader that stopped")
    assert f"the reader of {topics.intake_exports} stopped consuming" in health["background"], health


async def test_a_reader_whose_consume_loop_was_cancelled_is_started_again_and_reads_on(
    infrastructure: Infrastructure, database_url: str, topics: Topics
) -> None:
    async with _intake_cancelled(infrastructure, database_url, topics, watch_seconds=0.5) as (app, client):
        await asyncio.sleep(0.1)

        async def consuming() -> bool | None:
            tasks = _intake(app, topics).tasks
            healthy = (await client.get("/health")).json()["background"] == "ok"
            return True if healthy and tasks and not any(t.done() for t in tasks) else None

        await eventually(consuming, what="the reader started again")
        async with producer(infrastructure.kafka) as send:
            await send.send_and_wait(topics.intake_exports, b"{not a command", key=b"after-the-restart")
        dead = await read_topic(infrastructure.kafka, topics.dead_letter, until=lambda r: len(r) >= 1)
    assert [r.value for r in dead] == [b"{not a command"]  # read, judged and refused: the reader reads on


async def test_a_reader_that_fetches_nothing_while_records_wait_is_started_again_and_reads_on(
    infrastructure: Infrastructure, database_url: str, topics: Topics
) -> None:
    """A consume loop that runs on but fetches nothing, and raises nothing (as aiokafka's did, looking a position
    up at a broker that no longer led the partition): the stall watch starts the reader again with a new
    consumer, which reads the record that waited."""
    settings = settings_for(
        Settings, infrastructure, database_url, topics, readers_watch_seconds=0.5, readers_stall_seconds=4
    )
    app = create_app(settings)
    async with serving(app) as client:
        intake = _intake(app, topics)
        stalled = intake.consumer
        held = await eventually(lambda: _assigned(stalled), what="the export intake's partitions assigned")
        stalled.pause(*held)  # it fetches nothing more, and says nothing
        async with producer(infrastructure.kafka) as send:
            await send.send_and_wait(topics.intake_exports, b"{not a command", key=b"while-stalled")
        await asyncio.sleep(2)
        assert intake.consumer is stalled and (await client.get("/health")).json()["background"] == "ok"
        dead = await read_topic(infrastructure.kafka, topics.dead_letter, until=lambda r: len(r) >= 1, timeout=30)
        restarts = app.state.runtime.metrics.registry.get_sample_value(
            "ledger_readers_restarted_total", {"topics": topics.intake_exports}
        )
    assert [r.value for r in dead] == [b"{not a command"]  # read, judged and refused by the new consumer
    assert intake.consumer is not stalled and restarts == 1


async def test_a_reader_whose_start_hangs_is_started_again_by_the_next_round(
    infrastructure: Infrastructure, database_url: str, topics: Topics, monkeypatch: pytest.MonkeyPatch
) -> None:
    """aiokafka's start waits for the group's assignment without bound: the watch bounds each start, and the
    reader it left without a consume loop is started again by the next round."""
    monkeypatch.setattr(service, "RESTART_SECONDS", 1.0)
    async with _intake_cancelled(infrastructure, database_url, topics, watch_seconds=0.5) as (app, client):
        intake = _intake(app, topics)
        starts: list[float] = []
        real_start = intake.start

        async def hangs_once() -> None:
            starts.append(asyncio.get_running_loop().time())
            if len(starts) == 1:
                await asyncio.Event().wait()  # as a join whose assignment never comes
            await real_start()

        monkeypatch.setattr(intake, "start", hangs_once)

        async def consuming() -> bool | None:
            tasks = _intake(app, topics).tasks
            healthy = (await client.get("/health")).json()["background"] == "ok"
            return True if healthy and tasks and not any(t.done() for t in tasks) else None

        await eventually(consuming, timeout=30, what="the reader started again after a start that hung")
        async with producer(infrastructure.kafka) as send:
            await send.send_and_wait(topics.intake_exports, b"{not a command", key=b"after-the-hang")
        dead = await read_topic(infrastructure.kafka, topics.dead_letter, until=lambda r: len(r) >= 1)
    assert [r.value for r in dead] == [b"{not a command"]
    assert len(starts) >= 2 and starts[1] - starts[0] >= 1.0  # the hung start was given up, then tried again


async def _assigned(consumer: Any) -> set[Any] | None:
    return consumer.assignment() or None


@contextlib.asynccontextmanager
async def _intake_cancelled(
    infrastructure: Infrastructure, database_url: str, topics: Topics, *, watch_seconds: float
) -> AsyncIterator[tuple[Any, Any]]:
    """The registry serving (its app and a client), its export intake's consume loops cancelled from under them
    once it is healthy, as a CancelledError from under a loop would end it; its readers watched every
    ``watch_seconds``."""
    settings = settings_for(Settings, infrastructure, database_url, topics, readers_watch_seconds=watch_seconds)
    app = create_app(settings)
    async with serving(app) as client:
        assert (await client.get("/health")).json()["background"] == "ok"
        for task in _intake(app, topics).tasks:
            task.cancel()
        yield app, client


async def _not_ready(client: Any) -> dict[str, Any] | None:
    """The /health answer once it is 503 (None before)."""
    answer = await client.get("/health")
    return answer.json() if answer.status_code == 503 else None


def _intake(app: Any, topics: Topics) -> Any:
    [intake] = [s for s in app.state.runtime.broker.subscribers if topics.intake_exports in s.topic_names]
    return intake
