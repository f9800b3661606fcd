"""One logging set-up for every service: one JSON line per event, with the service, the level, the logger, the
time (UTC), and what the event happened in: the request (its id, the calling credential) or the record (its
topic, partition and offset; the case, event and correlation ids of a case event). On a terminal the same events
read as text.

Every library's records go through the same processors (structlog over the standard library's logging), so a
line from aiokafka, uvicorn or faststream is JSON too. faststream's line per message is at debug; the transient
errors aiokafka logs while a consumer group or a new topic settles at start are warnings, not errors.
``kill -USR1`` makes a service log where each of its tasks waits (``tasks_on_signal``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

import structlog
from structlog.contextvars import bind_contextvars, clear_contextvars, get_contextvars, merge_contextvars

_log = logging.getLogger(__name__)

TRANSIENT = (
    # A consumer group's coordinator is elected as the broker starts or as the group is first used: retried.
    "GroupCoordinatorNotAvailable",
    "NotCoordinatorForGroup",
    # A topic just created is not yet in every broker's metadata: asked again.
    "not found in cluster metadata",
)


def configure(service: str, level: str = "INFO", *, json: bool | None = None) -> None:
    """Log as ``service``: JSON lines on stderr, or readable text when it is a terminal (``json`` decides)."""
    as_json = not sys.stderr.isatty() if json is None else json
    shared: list[Any] = [
        merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _named(service),
        structlog.stdlib.ExtraAdder(),
    ]
    renderer: Any = structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer(colors=False)
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler()
    handler.setFormatter(formatter)
    handler.addFilter(_transient_as_warning)
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    # Each join of a consumer group, its generation and its assignment: rare, and what a reader that reads
    # nothing can be read from afterwards.
    logging.getLogger("aiokafka.consumer.group_coordinator").setLevel(logging.INFO)
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def _named(service: str) -> Any:
    def add(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        event.setdefault("service", service)
        event.pop("color_message", None)  # uvicorn's copy of its message with terminal colours
        return event

    return add


def _transient_as_warning(record: logging.LogRecord) -> bool:
    if record.levelno >= logging.ERROR and record.name.startswith("aiokafka"):
        text = record.getMessage() + (str(record.exc_info[1]) if record.exc_info else "")
        if any(mark in text for mark in TRANSIENT):
            record.levelno, record.levelname = logging.WARNING, "WARNING"
    return True


@contextlib.contextmanager
def context(**values: Any) -> Iterator[None]:
    """Within the block, every log line carries ``values`` (and what is bound inside it, such as a case event's
    ids); after it, the context is as it was."""
    before = get_contextvars()
    bind_contextvars(**values)
    try:
        yield
    finally:
        clear_contextvars()
        bind_contextvars(**before)


def bind(**values: Any) -> None:
    """Add ``values`` to the log context of what is being done now (a request, a record)."""
    bind_contextvars(**values)


def tasks_on_signal(signal_number: int = signal.SIGUSR1) -> Callable[[], None]:
    """Log what every task of the running loop is waiting on when the process gets ``signal_number``
    (``kill -USR1 <pid>``): for a service that has stopped moving without failing, the await it hangs on.
    Returns the function that removes the handler. Only a loop of the main thread can have one: elsewhere, none."""
    loop = asyncio.get_running_loop()

    def dump() -> None:
        tasks = sorted(asyncio.all_tasks(loop), key=lambda t: t.get_name())
        for task in tasks:
            _log.warning("task %s awaits:\n%s", task.get_name(), "\n".join(awaits(task.get_coro())))
        _log.warning("%s tasks", len(tasks))

    try:
        loop.add_signal_handler(signal_number, dump)
    except (ValueError, RuntimeError, NotImplementedError):  # not the main thread's loop (a test client's)
        return lambda: None

    def remove() -> None:
        loop.remove_signal_handler(signal_number)

    return remove


def awaits(awaitable: Any) -> list[str]:
    """Where a coroutine is suspended, down its chain of awaits: one line per frame, outermost first."""
    lines: list[str] = []
    while awaitable is not None and len(lines) < 100:
        frame = getattr(awaitable, "cr_frame", None) or getattr(awaitable, "gi_frame", None)
        if frame is not None:
            lines.append(f"  {frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
        elif not hasattr(awaitable, "cr_await") and not hasattr(awaitable, "gi_yieldfrom"):
            lines.append(f"  {awaitable!r}"[:300])  # a future, say: what the chain ends on
        awaitable = getattr(awaitable, "cr_await", None) or getattr(awaitable, "gi_yieldfrom", None)
    return lines
