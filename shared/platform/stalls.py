"""A topic reader that stops fetching without a word is found, and started again with a new consumer.

faststream's consume loop awaits aiokafka's ``getmany``, which can go on returning nothing while records wait,
and raise nothing: a consumer that looks its partitions' positions up again and again at a broker that no
longer leads them did so for minutes (docs/operations.md). Its loop runs, its handlers are never called, and
``/health`` says nothing; the senders wait for answers that never come.

So every service watches its readers (``Runtime.keep_readers_consuming``): a reader is stalled when records
have waited past its position in a partition it holds, at the same position, for ``stall_seconds``, and none
of its handler calls is running (a call that waits out a database failure holds its partition's position
up, rightly). A stalled reader is stopped and started again, once for each position it stalled at: one that
stalls at the same position again is logged and left alone, so that nothing can make the watch restart a
reader forever.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition

P = ParamSpec("P")
T = TypeVar("T")

Stalled = dict[TopicPartition, int | None]  # partition -> the position it waits at (None: the consumer cannot say)
Ends = Callable[[Iterable[TopicPartition]], Awaitable[dict[TopicPartition, int]]]
POSITION_SECONDS = 2.0
"""How long the watch waits for a consumer to say where it is in a partition: one that cannot say is not moving."""


@dataclass
class Activity:
    """How many of a reader's handler calls run now: the watch never restarts a reader in the middle of one."""

    running: int = 0

    def tracking(self, handler: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
        """``handler``, counted while it runs (faststream reads the handler's own signature through the wrapper)."""

        @functools.wraps(handler)
        async def tracked(*args: P.args, **kwargs: P.kwargs) -> T:
            self.running += 1
            try:
                return await handler(*args, **kwargs)
            finally:
                self.running -= 1

        return tracked


@dataclass
class StallWatch:
    """One reader's partitions that wait at a position, and since when; the positions it was restarted at."""

    stall_seconds: float
    activity: Activity = field(default_factory=Activity)
    clock: Callable[[], float] = time.monotonic
    _waiting: dict[TopicPartition, tuple[int | None, float]] = field(default_factory=dict)
    _restarted: set[tuple[TopicPartition, int | None]] = field(default_factory=set)  # positions restarted at
    _reported: set[tuple[TopicPartition, int | None]] = field(default_factory=set)  # stuck again there, logged

    async def check(self, consumer: AIOKafkaConsumer | None, ends: Ends) -> tuple[Stalled, Stalled]:
        """The partitions whose records have waited past the same position for ``stall_seconds`` while no
        handler call was seen running (position None: the consumer could not say where it is): first those never seen
        stalled at that position (restart the reader), then those it was restarted at already (report them,
        once). Nothing while a handler call runs, or while the consumer holds no partitions."""
        held = set(consumer.assignment()) if consumer is not None else set()
        if not held:
            self._waiting.clear()
            return {}, {}
        positions = {tp: await _position(consumer, tp) for tp in held}
        found = await ends(held)
        now = self.clock()
        self._waiting = {
            tp: self._waiting[tp] if tp in self._waiting and self._waiting[tp][0] == at else (at, now)
            for tp, at in positions.items()
            if found.get(tp, 0) > (at or 0)  # unknown: records wait if the partition has any
        }
        if self.activity.running:  # it holds its partition's position up, rightly: every wait starts anew
            self._waiting = {tp: (at, now) for tp, (at, _) in self._waiting.items()}
            return {}, {}
        late = {tp: at for tp, (at, since) in self._waiting.items() if now - since >= self.stall_seconds}
        fresh = {tp: at for tp, at in late.items() if (tp, at) not in self._restarted}
        again = {tp: at for tp, at in late.items() if (tp, at) in self._restarted and (tp, at) not in self._reported}
        self._restarted |= set(fresh.items())
        self._reported |= set(again.items())
        if fresh:
            self._waiting.clear()  # the reader starts again: its waits start anew
        return fresh, again


async def _position(consumer: Any, tp: TopicPartition) -> int | None:
    """Where ``consumer`` is in ``tp``: the offset of the next record it hands over (None: it cannot say now)."""
    try:
        position: int = await asyncio.wait_for(consumer.position(tp), POSITION_SECONDS)
    except Exception:  # a timeout, or unassigned meanwhile: not moving, as far as the watch can see
        return None
    return position


def describe(stalled: Stalled) -> str:
    """The partitions and where each waits, for a log line."""
    return ", ".join(
        f"{tp.topic}/{tp.partition} at {'an unknown position' if at is None else f'offset {at}'}"
        for tp, at in sorted(stalled.items())
    )
