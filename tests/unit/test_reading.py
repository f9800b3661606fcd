"""How every reader treats a record's handling that fails: the record's fault dead-letters it, anything else
(including a refusal meaning "cannot judge now", status 500 or more) is waited out and never dead-lettered."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from shared.contract.events import Reason
from shared.contract.refusal import Refusal
from shared.platform import reading
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
