"""How every reader treats a record's handling that fails: the record's fault dead-letters it, anything else
(including a refusal meaning "cannot judge now", status 500 or more) is waited out and never dead-lettered."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.contract.events import Reason
from shared.contract.refusal import Refusal
from shared.platform import cancelling, reading
from shared.platform.kafka_access import stop_consumer
from shared.platform.reading import Reader

RECORD = SimpleNamespace(topic="licensing.intake.exports", partition=1, offset=7)


def _reader(dead: list[tuple[Any, Reason]]) -> Reader:
    async def dead_letter(record: Any, reason: Reason) -> None:
        dead.append((record, reason))

    return Reader("intake-exports", dead_letter)


@pytest.fixture(autouse=True)
def _no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reading, "wait_before", lambda attempt: 0.0)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_a_refusal_that_means_cannot_judge_now_is_waited_out_and_the_record_taken_later(status: int) -> None:
    dead: list[tuple[Any, Reason]] = []
    reader = _reader(dead)
    tries = 0

    async def work(record: Any) -> None:
        nonlocal tries
        tries += 1
        if tries <= 5:  # more tries than a record's own fault gets before it is dead-lettered
            raise Refusal(status, "ledger_unavailable", "the ledger does not follow its log now")

    for _ in range(5):
        with pytest.raises(Refusal):
            await reader.each(RECORD, work)
        assert reader.failing is not None and "ledger_unavailable" not in (r.code for _, r in dead)
    await reader.each(RECORD, work)
    assert dead == [] and reader.failing is None and tries == 6


@pytest.mark.parametrize("status", [400, 403, 404, 409, 422])
async def test_a_refusal_of_the_record_itself_dead_letters_it_at_once_with_its_reason(status: int) -> None:
    dead: list[tuple[Any, Reason]] = []

    async def work(record: Any) -> None:
        raise Refusal(status, "declaration_conflict", "recorded before with other content")

    await _reader(dead).each(RECORD, work)
    assert [(r, reason.code) for r, reason in dead] == [(RECORD, "declaration_conflict")]


def _failing(times: int) -> Any:
    """Work that fails ``times`` times in a row, then succeeds."""
    failed = 0

    async def work(record: Any) -> None:
        nonlocal failed
        if failed < times:
            failed += 1
            raise ValueError("the handler failed on this record")

    return work


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 1), st.integers(0, reading.ATTEMPTS + 1), st.booleans()),
        min_size=1,
        max_size=40,
    )
)
async def test_a_record_is_dead_lettered_after_its_own_failed_tries_and_nothing_is_kept_of_records_done(
    steps: list[tuple[int, int, bool]],
) -> None:
    """Records of several partitions, each failing some times in a row, then taken one by one or in a batch
    (the reader not told): each is dead-lettered exactly when its own failures reach ``attempts``, whatever came
    before in its partition, and the reader keeps a count for no more than one record a partition."""
    dead: list[tuple[Any, Reason]] = []
    reader = _reader(dead)
    offsets = dict.fromkeys(range(2), 0)
    expected = []
    for partition, failures, in_a_batch in steps:
        record = SimpleNamespace(topic="licensing.cases", partition=partition, offset=offsets[partition])
        offsets[partition] += 1
        work = _failing(failures)
        for _ in range(min(failures, reading.ATTEMPTS - 1)):
            with pytest.raises(ValueError):
                await reader.each(record, work)
        if failures >= reading.ATTEMPTS:
            await reader.each(record, work)  # its last try: dead-lettered
            expected.append(record)
        elif not in_a_batch:
            await reader.each(record, work)
        # else: it succeeds in a batch of the same partition, which does not go through ``each``
        assert len(reader._tries) <= len(offsets)
    assert [r for r, _ in dead] == expected
    assert all(reason.code == "processing_failed" for _, reason in dead)


async def test_a_cancellation_under_the_work_is_a_failure_waited_out_but_a_cancel_of_the_reader_stops_it() -> None:
    """A future cancelled under the work (a client library's) would end the reader's task without a word: it is a
    failure of the infrastructure instead. The reader's own task cancelled (the service stopping) stops it."""
    dead: list[tuple[Any, Reason]] = []
    reader = _reader(dead)

    async def cancelled_under(_: Any = None) -> None:
        raise asyncio.CancelledError

    with pytest.raises(cancelling.CancelledWithin):
        await reader.run(cancelled_under)
    assert reader.failing is not None and "cancelled under the reader" in reader.failing
    with pytest.raises(cancelling.CancelledWithin):
        await reader.each(RECORD, cancelled_under)
    assert dead == []  # not the record's fault: never dead-lettered

    started = asyncio.Event()

    async def waits(_: Any = None) -> None:
        started.set()
        await asyncio.Event().wait()

    for run in (reader.run(waits), reader.each(RECORD, waits)):
        started.clear()
        task = asyncio.create_task(run)
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_a_consumer_stop_raising_its_own_fetchs_cancellation_neither_hides_the_error_nor_ends_the_task() -> None:
    """aiokafka's ``stop()`` can raise the CancelledError of a fetch it cancelled (brokers down): the projector's
    TimeoutError was replaced by it, and its task ended. ``stop_consumer`` swallows that one, not a real cancel."""

    class Consumer:
        def __init__(self, hang: bool = False) -> None:
            self.hang = hang

        async def stop(self) -> None:
            if self.hang:
                await asyncio.Event().wait()
            raise asyncio.CancelledError

    async def folds() -> None:
        try:
            raise TimeoutError("describing the topic timed out")
        finally:
            await stop_consumer(Consumer())

    with pytest.raises(TimeoutError, match="describing the topic"):
        await folds()
    stopping = asyncio.create_task(stop_consumer(Consumer(hang=True)))
    await asyncio.sleep(0)
    stopping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopping
