"""A cancellation the current task was not asked for, told apart from one it was: what every reader, the Kafka
clients' wrappers and the registry's background work each need, without the readers' machinery (metrics, logs).
A fold process imports only this of it (``services/registry/fold_process.py``)."""

from __future__ import annotations

import asyncio


class CancelledWithin(Exception):
    """A cancellation the task was not asked for: something the work awaited was cancelled under it (a broker
    client's future, say). A failure of the infrastructure like any other: waited out, then tried again."""


def cancelled_within(error: BaseException) -> CancelledWithin | None:
    """``error`` as a :class:`CancelledWithin` if it is a CancelledError the current task was not asked for (no
    ``cancel()`` of the task pending: the service is not stopping), else None."""
    task = asyncio.current_task()
    if not isinstance(error, asyncio.CancelledError) or task is None or task.cancelling():
        return None
    found = CancelledWithin(f"an awaited operation was cancelled under the reader: {error!r}")
    found.__cause__ = error
    return found
