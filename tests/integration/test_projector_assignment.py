"""A projector whose consumer joins its group but is given no partitions says so and joins again, rather than
waiting in silence: aiokafka's ``start()`` waits for the assignment without bound, and while it waits nothing is
folded and ``/health`` says nothing.

A member of the group that stopped answering holds a join up for as long as its rebalance timeout: here another
process in the projector's group, assigned the topic's partitions, then paused (SIGSTOP) with a rebalance timeout
of 20 s. The projector's join cannot complete while it lasts (and its consumer's ``stop()`` waits for the
join's answer: the error is raised once it is stopped)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from services.registry.projector import Projector, ProjectorNotAssigned
from shared.contract.topics import Topics
from tests.infra import Infrastructure

MEMBER = """
import asyncio, sys
from aiokafka import AIOKafkaConsumer
from shared.platform.kafka_access import KafkaConnection

async def main() -> None:
    consumer = AIOKafkaConsumer(
        **KafkaConnection().options(), group_id=sys.argv[1], enable_auto_commit=False,
        session_timeout_ms=20000, rebalance_timeout_ms=20000, heartbeat_interval_ms=3000,
    )
    consumer.subscribe([sys.argv[2]])
    await consumer.start()
    print("assigned", len(consumer.assignment()), flush=True)
    while True:
        await consumer.getmany(timeout_ms=500)

asyncio.run(main())
"""


async def test_a_join_that_does_not_complete_is_named_and_tried_again(
    infrastructure: Infrastructure, topics: Topics
) -> None:
    group = f"{topics.namespace}.registry-{uuid.uuid4().hex[:6]}"
    member = subprocess.Popen(
        [sys.executable, "-c", MEMBER, group, topics.cases],
        env={**os.environ, **infrastructure.kafka.environment()},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert member.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(member.stdout.readline), 60)
        assert line.startswith("assigned"), line
        member.send_signal(signal.SIGSTOP)  # still in the group, answering nothing: a rejoin waits 20 s for it
        projector = Projector(
            kafka=infrastructure.kafka,
            topic=topics.cases,
            pool=None,  # type: ignore[arg-type]  # never assigned: nothing is read or folded
            dead_letter=None,  # type: ignore[arg-type]
            trust=None,  # type: ignore[arg-type]
            group_id=group,
            assigned_within=5,
        )
        started = time.monotonic()
        with pytest.raises(ProjectorNotAssigned) as raised:
            # Without the bound, start() would wait the paused member out, then the projector would fold for ever.
            await asyncio.wait_for(projector.run(), 45)
        assert time.monotonic() - started < 45
        assert f"within 5 s of joining group {group}" in str(raised.value)
    finally:
        member.kill()
        member.wait(timeout=30)
