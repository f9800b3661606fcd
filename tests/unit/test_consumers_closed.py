"""Every reader of Kafka closes its consumer when it cannot start it (the broker away, a login refused): a reader
that retries must not leave a consumer behind on each try ("Unclosed AIOKafkaConsumer" at the end of a run)."""

from __future__ import annotations

import gc
import socket
import warnings
from collections.abc import Awaitable, Callable, Iterator
from contextlib import aclosing
from typing import Any

import pytest

from services.registry import replay, store
from services.registry.guard import LogGuard
from services.registry.projector import Projector
from shared.platform.kafka_access import KafkaConnection
from shared.platform.ranges import read_range
from shared.platform.trust import TrustLog


@pytest.fixture
def nobody() -> Iterator[KafkaConnection]:
    """A broker address nothing listens on: a consumer's start fails at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    yield KafkaConnection(bootstrap_servers=f"127.0.0.1:{port}")


async def _read_range(kafka: KafkaConnection) -> None:
    async with aclosing(read_range(kafka, "licensing.cases")) as batches:
        async for _ in batches:
            pass


async def _whole(kafka: KafkaConnection) -> None:
    log = replay.CaseLog(kafka, "licensing.cases", "licensing.trust", (), 1, trust=None)  # type: ignore[arg-type]
    await replay.whole(log, {0: store.Position(1, b"", 0)})


async def _trust_log(kafka: KafkaConnection) -> None:
    await TrustLog(kafka, "licensing.trust", {}).start()


async def _guard(kafka: KafkaConnection) -> None:
    await LogGuard(kafka, "licensing.cases", pool=None).start()  # type: ignore[arg-type]


async def _projector(kafka: KafkaConnection) -> None:
    projector = Projector(kafka=kafka, topic="licensing.cases", pool=None, dead_letter=None, trust=None)  # type: ignore[arg-type]
    await projector.run()


READERS: dict[str, Callable[[KafkaConnection], Awaitable[Any]]] = {
    "read_range": _read_range,
    "replay.whole": _whole,
    "TrustLog.start": _trust_log,
    "LogGuard.start": _guard,
    "Projector.run": _projector,
}


@pytest.mark.parametrize("reader", READERS)
async def test_a_consumer_that_cannot_start_is_closed(reader: str, nobody: KafkaConnection) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(Exception):  # noqa: B017 - whatever aiokafka raises for a broker it cannot reach
            await READERS[reader](nobody)
        gc.collect()
    assert [str(w.message) for w in caught if "Unclosed AIOKafkaConsumer" in str(w.message)] == []
