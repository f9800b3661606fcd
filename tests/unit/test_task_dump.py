"""``kill -USR1`` on a service logs where each of its tasks waits, down the chain of awaits."""

from __future__ import annotations

import asyncio
import logging
import os
import signal

import pytest

from shared.platform import logs


async def _innermost(ready: asyncio.Event, never: asyncio.Event) -> None:
    ready.set()
    await never.wait()


async def _middle(ready: asyncio.Event, never: asyncio.Event) -> None:
    await _innermost(ready, never)


async def test_sigusr1_logs_each_task_down_to_the_await_it_hangs_on(caplog: pytest.LogCaptureFixture) -> None:
    ready, never = asyncio.Event(), asyncio.Event()
    stuck = asyncio.create_task(_middle(ready, never), name="the-stuck-one")
    await ready.wait()
    remove = logs.tasks_on_signal()
    try:
        with caplog.at_level(logging.WARNING, logger="shared.platform.logs"):
            os.kill(os.getpid(), signal.SIGUSR1)
            for _ in range(50):
                await asyncio.sleep(0.01)
                if any(r.getMessage().split()[-1] == "tasks" for r in caplog.records):
                    break
    finally:
        remove()
        stuck.cancel()
    [dumped] = [r.getMessage() for r in caplog.records if "the-stuck-one" in r.getMessage()]
    lines = dumped.splitlines()
    names = [line.split()[-1] for line in lines[1:] if line.strip().startswith("/")]
    assert names[:2] == ["_middle", "_innermost"], dumped
    assert "wait" in names, dumped  # asyncio.Event.wait: the await it hangs on
