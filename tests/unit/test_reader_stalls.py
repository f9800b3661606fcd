"""The stall watch of the topic readers (shared/platform/stalls.py): records waiting at one position for the stall
time, no handler call running, restart a reader once for that position; anything that moves, or a handler call
that runs, does not."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka import TopicPartition
from hypothesis import event, given, settings
from hypothesis import strategies as st

from shared.platform import stalls

A, B = TopicPartition("t", 0), TopicPartition("t", 1)


@dataclass
class Consumer:
    """What the watch asks of a consumer: the partitions it holds, and its position in each (None: it cannot say)."""

    positions: dict[TopicPartition, int | None] = field(default_factory=dict)

    def assignment(self) -> set[TopicPartition]:
        return set(self.positions)

    async def position(self, tp: TopicPartition) -> int:
        at = self.positions[tp]
        if at is None:
            await asyncio.sleep(3600)  # as aiokafka waits for a position it cannot look up
        assert at is not None
        return at


@dataclass
class World:
    """A clock the test moves, and where each partition's log ends."""

    now: float = 1000.0
    ends: dict[TopicPartition, int] = field(default_factory=dict)

    async def end_offsets(self, held: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.ends.get(tp, 0) for tp in held}


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> World:
    monkeypatch.setattr(stalls, "POSITION_SECONDS", 0.01)
    return World()


def watching(world: World) -> stalls.StallWatch:
    return stalls.StallWatch(30, clock=lambda: world.now)


async def check(watch: stalls.StallWatch, consumer: Any, world: World, *, after: float = 0) -> tuple[Any, Any]:
    world.now += after
    return await watch.check(consumer, world.end_offsets)


async def test_records_waiting_at_one_position_for_the_stall_time_restart_the_reader_once(world: World) -> None:
    watch, consumer = watching(world), Consumer({A: 5, B: 7})
    world.ends = {A: 9, B: 7}  # A has records past its position; B has read all there is
    assert await check(watch, consumer, world) == ({}, {})
    assert await check(watch, consumer, world, after=29) == ({}, {})
    assert await check(watch, consumer, world, after=1) == ({A: 5}, {})
    # Started again, it stalls at the same place: told once, never restarted again for it.
    assert await check(watch, consumer, world, after=1) == ({}, {})
    assert await check(watch, consumer, world, after=30) == ({}, {A: 5})
    assert await check(watch, consumer, world, after=30) == ({}, {})
    # Further on, at another position, it may be restarted again.
    consumer.positions[A] = 8
    assert await check(watch, consumer, world, after=1) == ({}, {})
    assert await check(watch, consumer, world, after=30) == ({A: 8}, {})


async def test_a_reader_that_moves_or_has_read_everything_is_never_stalled(world: World) -> None:
    watch, consumer = watching(world), Consumer({A: 0})
    for step in range(1, 20):
        world.ends = {A: step + 3}
        consumer.positions[A] = step  # behind the end all the time, but moving
        assert await check(watch, consumer, world, after=20) == ({}, {})
    world.ends = {A: 100}
    consumer.positions[A] = 100  # caught up, for as long as it likes
    assert await check(watch, consumer, world, after=300) == ({}, {})
    assert await check(watch, consumer, world, after=300) == ({}, {})


async def test_a_handler_call_that_runs_holds_the_watch_off_and_its_wait_starts_anew(world: World) -> None:
    watch, consumer = watching(world), Consumer({A: 5})
    world.ends = {A: 9}
    release = asyncio.Event()

    async def handler() -> None:
        await release.wait()  # as a handler waiting out a database failure

    running = asyncio.create_task(watch.activity.tracking(handler)())
    await asyncio.sleep(0)
    assert watch.activity.running == 1
    assert await check(watch, consumer, world) == ({}, {})
    assert await check(watch, consumer, world, after=300) == ({}, {})
    release.set()
    await running
    assert watch.activity.running == 0
    # Its partition waited all that time, but at each look a handler ran: the wait counts from its end.
    assert await check(watch, consumer, world, after=1) == ({}, {})
    assert await check(watch, consumer, world, after=29) == ({A: 5}, {})


async def test_a_handler_that_fails_is_counted_out_of_the_running_too() -> None:
    watch = stalls.StallWatch(30)

    async def failing(x: int) -> int:
        raise RuntimeError(f"failed on {x}")

    with pytest.raises(RuntimeError, match="failed on 3"):
        await watch.activity.tracking(failing)(3)
    assert watch.activity.running == 0
    assert watch.activity.tracking(failing).__wrapped__ is failing  # type: ignore[attr-defined]  # what faststream reads


async def test_a_consumer_that_cannot_say_where_it_is_stalls_where_records_wait(world: World) -> None:
    watch, consumer = watching(world), Consumer({A: None, B: None})
    world.ends = {A: 4, B: 0}  # B's log is empty: nothing waits there
    assert await check(watch, consumer, world) == ({}, {})
    assert await check(watch, consumer, world, after=30) == ({A: None}, {})


async def test_a_consumer_that_holds_no_partitions_is_not_watched(world: World) -> None:
    watch = watching(world)
    assert await check(watch, Consumer(), world, after=300) == ({}, {})
    assert await check(watch, None, world, after=300) == ({}, {})


def test_a_stall_is_described_by_partition_and_position() -> None:
    assert stalls.describe({B: None, A: 5}) == "t/0 at offset 5, t/1 at an unknown position"


# One look of the watch: seconds since the last, each partition's (position or None, end), whether a handler runs.
Look = tuple[int, tuple[tuple[int | None, int], ...], bool]
look = st.tuples(
    st.integers(0, 20),
    st.tuples(*[st.tuples(st.one_of(st.none(), st.integers(0, 3)), st.integers(0, 4)) for _ in range(2)]),
    st.booleans(),
)
# Spells of looks alike: a partition left at one position for a while, then moving, and so on.
looks = st.lists(st.tuples(look, st.integers(1, 6)), max_size=10).map(
    lambda spells: [s for s, n in spells for _ in range(n)]
)


def model(timeline: list[Look], stall: int) -> list[tuple[dict[int, int | None], dict[int, int | None]]]:
    """What the watch should answer at each look, found by looking back over the timeline from each: a partition
    is late where its records waited at one position at every look since one at least ``stall`` seconds back, with
    no handler running at any look after that one, and no restart at or after it."""
    times = [sum(t for t, _, _ in timeline[: i + 1]) for i in range(len(timeline))]
    restarted: set[tuple[int, int | None]] = set()
    reported: set[tuple[int, int | None]] = set()
    last_restart = -1
    answers = []
    for i, (_, parts, running) in enumerate(timeline):
        late: dict[int, int | None] = {}
        for p, (at, end) in enumerate(parts):
            if running or not end > (at or 0):
                continue
            j = i
            while j - 1 > last_restart and timeline[j - 1][1][p][0] == at and timeline[j - 1][1][p][1] > (at or 0):
                if timeline[j][2]:
                    break  # a handler ran at the look after j - 1: the wait counts from look j
                j -= 1
            if times[i] - times[j] >= stall:
                late[p] = at
        fresh = {p: at for p, at in late.items() if (p, at) not in restarted}
        again = {p: at for p, at in late.items() if (p, at) in restarted and (p, at) not in reported}
        restarted |= set(fresh.items())
        reported |= set(again.items())
        if fresh:
            last_restart = i
        answers.append((fresh, again))
    return answers


@settings(max_examples=300, deadline=None)
@given(timeline=looks)
async def test_the_watch_restarts_a_reader_exactly_where_a_partition_waited_at_one_place_with_no_handler_running(
    timeline: list[Look],
) -> None:
    world, consumer = World(), Consumer()
    watch = stalls.StallWatch(30, clock=lambda: world.now)
    release = asyncio.Event()
    answers = []
    for elapsed, parts, running in timeline:
        consumer.positions = {TopicPartition("t", p): at if at is not None else -1 for p, (at, _) in enumerate(parts)}
        world.ends = {TopicPartition("t", p): end for p, (_, end) in enumerate(parts)}
        task = asyncio.create_task(watch.activity.tracking(release.wait)()) if running else None
        await asyncio.sleep(0)
        fresh, again = await check(watch, Unknowing(consumer), world, after=elapsed)
        if task is not None:
            release.set()
            await task
            release.clear()
        answers.append(({tp.partition: at for tp, at in fresh.items()}, {tp.partition: at for tp, at in again.items()}))
    event(f"restarts: {sum(1 for fresh, _ in answers if fresh)}")
    assert answers == model(timeline, 30)


@dataclass
class Unknowing:
    """A consumer whose position -1 stands for one it cannot say (it answers as aiokafka's does: never)."""

    consumer: Consumer

    def assignment(self) -> set[TopicPartition]:
        return self.consumer.assignment()

    async def position(self, tp: TopicPartition) -> int:
        at = self.consumer.positions[tp]
        if at == -1:
            raise TimeoutError  # as the watch's wait for an answer that never comes ends
        assert at is not None
        return at
