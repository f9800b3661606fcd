"""How every reader of every topic treats a record it cannot handle: it never stops the partition.

A record's own fault (a :class:`Refusal` raised while reading or judging it, or an exception raised by it
time after time) sends it to the dead-letter topic with a reason, and the reader moves on. A failure
that is not the record's (the database or the broker unreachable, or a refusal of status 500 or more: the
service cannot judge now, as the ledger while it does not follow its log) is retried after a wait that grows,
with jitter, up to a cap: the partition waits rather than spins, and ``/health`` and ``/metrics`` show the
reader as failing until it succeeds again. So is a cancellation the reader's task was not asked for (a future it
awaited, cancelled by a client library under it): without this, it would end the reader's task without a word.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import asyncpg
from prometheus_client import CollectorRegistry, Counter, Gauge
from tenacity import RetryCallState, wait_exponential_jitter

from shared.contract.events import Reason
from shared.contract.refusal import Refusal, readable
from shared.platform import logs
from shared.platform.cancelling import CancelledWithin, cancelled_within

log = logging.getLogger(__name__)

DeadLetter = Callable[[Any, Reason], Awaitable[None]]
Work = Callable[[Any], Awaitable[None]]
T = TypeVar("T")

RECORD_FAULTS: tuple[type[BaseException], ...] = (
    ValueError,  # pydantic's ValidationError, UnicodeError, a value out of range
    TypeError,
    LookupError,
    AttributeError,
    ArithmeticError,
    AssertionError,
    RecursionError,
    asyncpg.DataError,  # a value PostgreSQL will not store (a character, a number out of range)
    asyncpg.IntegrityConstraintViolationError,
)
"""Failures a record's content can cause, so that trying it again fails again: tried ``ATTEMPTS`` times, then
dead-lettered. Any other failure (a connection, the broker, a table gone, a server error) is not the record's:
it is waited out for as long as it lasts, and the record is read again after it, never dead-lettered for it."""
ATTEMPTS = 3
"""Tries before a record that keeps failing for a reason of its own is dead-lettered (``processing_failed``)."""
WAIT = wait_exponential_jitter(multiplier=0.2, max=30, exp_base=2, jitter=0.5)


def is_infrastructure(error: BaseException) -> bool:
    """Whether ``error`` is a failure of what the reader depends on, not of its record (of every one, for a group)."""
    if isinstance(error, BaseExceptionGroup):
        return any(is_infrastructure(inner) for inner in error.exceptions)
    return not isinstance(error, RECORD_FAULTS)


def wait_before(attempt: int) -> float:
    """Seconds to wait before try ``attempt + 1``, after ``attempt`` failed ones: exponential, capped, jittered."""
    state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]  # only the count is read
    state.attempt_number = max(attempt, 1)
    return float(WAIT(state))


class ReaderMetrics:
    """The readers' series in a service's registry: failures by kind, and whether each is failing now."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.failures = Counter(
            "ledger_reader_failures",
            "Failures of a reader: 'infrastructure' (retried after a wait) or 'record' (retried, then dead-lettered)",
            ["reader", "kind"],
            registry=registry,
        )
        self.failing = Gauge(
            "ledger_reader_failing",
            "1 while a reader's last try failed and it is waiting to retry",
            ["reader"],
            registry=registry,
        )


@dataclass
class Reader:
    """One reader of one topic: runs the work on each record, dead-letters what the record is to blame for,
    and waits out what it is not."""

    name: str
    dead_letter: DeadLetter
    metrics: ReaderMetrics | None = None
    attempts: int = ATTEMPTS
    failing: str | None = None  # why the last try failed, while it has not succeeded since (for /health)
    _streak: int = 0  # failed tries in a row, whatever the record
    # The failed tries of the record each partition is stuck on: (its offset, tries). A partition's records are
    # read in order, so one entry each is enough, and whichever path a record later succeeds by (one by one, or
    # in a batch), the next failure in its partition starts a new count: nothing is left behind.
    _tries: dict[tuple[str, int], tuple[int, int]] = field(default_factory=dict)

    async def each(self, record: Any, work: Work) -> None:
        """Run ``work`` on ``record``. A :class:`Refusal` dead-letters the record with its reason, unless its status
        is 500 or more (not the record's fault: it waits, then is raised again). A failure of the
        infrastructure waits, then is raised again (the record is read again). Any other failure waits and is
        raised again ``attempts - 1`` times; then the record is dead-lettered (``processing_failed``). Each log
        line meanwhile names the record (its topic, partition, offset)."""
        with self.context(record):
            await self._each(record, work)

    def context(self, record: Any) -> AbstractContextManager[None]:
        """The log context of work on ``record``: within it, every line names the reader and where the record lies."""
        topic, partition, offset = _position(record)
        return logs.context(reader=self.name, topic=topic, partition=partition, offset=offset)

    async def _each(self, record: Any, work: Work) -> None:
        try:
            await work(record)
        except asyncio.CancelledError as cancelled:
            if (within := cancelled_within(cancelled)) is None:
                raise
            await self._wait(within)
            raise within from cancelled
        except Refusal as refused:
            if refused.status >= 500:  # "cannot judge now": the same record is judged once the service can
                await self._wait(refused)
                raise
            reason = refused.reason
        except Exception as error:  # any failure of any record: dead-lettered or waited out, never left to spin
            if is_infrastructure(error) or self._try_again(record, error):
                await self._wait(error)
                raise
            reason = processing_failed(error)
        else:
            self._succeeded(record)
            return
        await self.run(lambda: self.dead_letter(record, reason))
        self._succeeded(record)

    async def run(self, work: Callable[[], Awaitable[T]]) -> T:
        """Run ``work`` (not about one record: a batch's commit, say) and return what it gives; a failure waits,
        then is raised again."""
        try:
            done = await work()
        except asyncio.CancelledError as cancelled:
            if (within := cancelled_within(cancelled)) is None:
                raise  # the service is stopping
            await self._wait(within)
            raise within from cancelled
        except Exception as error:  # waited out, then raised again: the batch is read again after the wait
            await self._wait(error)
            raise
        self.recovered()
        return done

    def recovered(self) -> None:
        """The reader's work succeeded again (for a reader that runs a loop of its own, as the projector does)."""
        if self._streak or self.failing:
            self._streak, self.failing = 0, None
            if self.metrics is not None:
                self.metrics.failing.labels(self.name).set(0)

    def _try_again(self, record: Any, error: BaseException) -> bool:
        where = _position(record)
        offset, before = self._tries.get(where[:2], (None, 0))
        tries = before + 1 if offset == where[2] else 1
        self._tries[where[:2]] = (where[2], tries)
        if self.metrics is not None:
            self.metrics.failures.labels(self.name, "record").inc()
        if tries == 1:
            log.exception("%s: %s failed on %s/%s/%s; it is tried again", self.name, type(error).__name__, *where)
        if tries < self.attempts:
            return True
        del self._tries[where[:2]]
        log.error("%s: dead-lettering %s/%s/%s after %s failed tries: %s", self.name, *where, tries, error)
        return False

    async def _wait(self, error: BaseException) -> None:
        self._streak += 1
        self.failing = readable(f"{type(error).__name__}: {error}", 300)
        if self.metrics is not None:
            if is_infrastructure(error):
                self.metrics.failures.labels(self.name, "infrastructure").inc()
            self.metrics.failing.labels(self.name).set(1)
        delay = wait_before(self._streak)
        # Where an unasked cancellation came from is not in its message: its traceback says.
        trace = error.__cause__ if isinstance(error, CancelledWithin) else None
        log.warning("%s: %s; trying again in %.1f s", self.name, self.failing, delay, exc_info=trace)
        await asyncio.sleep(delay)

    def _succeeded(self, record: Any) -> None:
        self._tries.pop(_position(record)[:2], None)
        self.recovered()


def processing_failed(error: BaseException) -> Reason:
    """The reason of a record dead-lettered because handling it kept failing: what failed, never a traceback."""
    return Reason(
        code="processing_failed",
        message=readable(f"handling this record failed {ATTEMPTS} times: {type(error).__name__}: {error}", 1000),
    )


def _position(record: Any) -> tuple[str, int, int]:
    return str(getattr(record, "topic", "")), int(getattr(record, "partition", -1)), int(getattr(record, "offset", -1))


@dataclass
class Readers:
    """A service's readers by name, for its health answer."""

    dead_letter: DeadLetter
    metrics: ReaderMetrics | None = None
    readers: dict[str, Reader] = field(default_factory=dict)

    def reader(self, name: str) -> Reader:
        if name not in self.readers:
            self.readers[name] = Reader(name, self.dead_letter, self.metrics)
            if self.metrics is not None:
                self.metrics.failing.labels(name).set(0)  # each reader's series, from its first use
        return self.readers[name]

    def health(self) -> str:
        """``ok``, or each failing reader and why."""
        failing = [f"{r.name}: {r.failing}" for r in self.readers.values() if r.failing]
        return "ok" if not failing else "failing: " + "; ".join(failing)
