"""The projector tells a consumer that has stopped moving from one that is waiting: records past the ledger's
offset in a partition no other member of the group holds, and no records at all handed over for
``STALL_SECONDS``, make it start again with a new consumer. A partition that moves, or that another member holds,
or a consumer handing over other partitions' records meanwhile (catching up a long log), never."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka import TopicPartition
from hypothesis import event, given, settings
from hypothesis import strategies as st

from services.registry import projector
from services.registry.projector import Projector, ProjectorStalled

TOPIC = "licensing.cases"


@dataclass
class Guard:
    behind: dict[int, tuple[int, int]] = field(default_factory=dict)
    held_by_others: set[int] = field(default_factory=set)

    async def members_hold(self, group_id: str, partitions: set[int]) -> set[int]:
        return self.held_by_others & partitions


@dataclass
class Consumer:
    mine: set[int]

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition(TOPIC, p) for p in self.mine}


def _projector(guard: Guard) -> Projector:
    return Projector(
        kafka=None,  # type: ignore[arg-type]  # only the stall check runs
        topic=TOPIC,
        pool=None,  # type: ignore[arg-type]
        dead_letter=None,  # type: ignore[arg-type]
        trust=None,  # type: ignore[arg-type]
        guard=guard,  # type: ignore[arg-type]
    )


# One second of the projector's loop: for each of partitions 0..2, whether its log is behind the ledger (and at
# which applied offset), whether a batch of it was handed over.
Second = tuple[tuple[int | None, bool], ...]
second = st.tuples(*[st.tuples(st.one_of(st.none(), st.integers(0, 2)), st.booleans()) for _ in range(3)])
# Spells of seconds alike: a partition left behind at one offset for a while, then moving, and so on.
seconds = st.lists(st.tuples(second, st.integers(1, 30)), max_size=8).map(
    lambda spells: [s for s, n in spells for _ in range(n)]
)


@settings(max_examples=300, deadline=None)
@given(seconds, st.sets(st.integers(0, 2)), st.sets(st.integers(0, 2)))
async def test_only_a_partition_behind_without_moving_for_the_stall_time_and_held_by_no_other_member_stops_it(
    timeline: list[Second], mine: set[int], others: set[int]
) -> None:
    now = [1000.0]
    guard = Guard(held_by_others=others - mine)
    consumer = Consumer(mine)
    since: dict[int, tuple[int, float]] = {}  # the model: partition -> (applied offset, since when behind)
    moved = now[0]  # the model: when records were last handed over
    raises = 0
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(time, "monotonic", lambda: now[0])
        watched = _projector(guard)
        for second in timeline:
            guard.behind = {p: (applied, applied + 5) for p, (applied, _) in enumerate(second) if applied is not None}
            fetched = {TopicPartition(TOPIC, p) for p, (_, handed) in enumerate(second) if handed}
            moved = now[0] if fetched else moved
            for p, (applied, handed) in enumerate(second):
                if applied is None or handed:
                    since.pop(p, None)
                elif p not in since or since[p][0] != applied:
                    since[p] = (applied, now[0])
            stuck = {
                p
                for p, (_, t) in since.items()
                if now[0] - t >= projector.STALL_SECONDS and (p in mine or p not in guard.held_by_others)
            }
            stuck = stuck if now[0] - moved >= projector.STALL_SECONDS else set()
            raised: Any = None
            try:
                await watched._check_moving(consumer, fetched)
            except ProjectorStalled as stalled:
                raised = stalled
            assert (raised is not None) == bool(stuck), (second, since, raised)
            if raised is not None:
                assert all(f"partition {p}:" in str(raised) for p in stuck), str(raised)
                since.clear()
                raises += 1
            now[0] += 1.0
    event("stopped" if raises else "went on")
