"""The faults, injected on a seeded schedule while the clients send: each one held for a while, undone, and
timed until the whole system is healthy again (every node serving, every partition fully replicated, every
service ready) before the next."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass

import httpx

from tests.faults.cluster import NODES, KafkaCluster, Postgres, busiest_partition, partition_leaders
from tests.faults.system import LedgerSystem

KINDS = ("leader-kill", "broker-pause", "controller-kill", "registry-kill", "postgres-restart")
PAUSE_SECONDS = 13.0  # past the brokers' session (6 s) and the consumers' (10 s): the paused node is fenced
HEALED_WITHIN = 180.0


@dataclass
class Fault:
    kind: str
    gap: float  # seconds of normal running before it
    hold: float  # seconds it lasts before it is undone
    target: str = ""
    injected: float = 0.0
    recovered: float = 0.0

    @property
    def recovery(self) -> float:
        """Seconds from injection until every part was healthy again."""
        return self.recovered - self.injected

    def __str__(self) -> str:
        return f"{self.kind} after {self.gap:.1f}s, held {self.hold:.1f}s"


def plan(seed: int, kinds: tuple[str, ...], rounds: int = 1, gap: float = 3.0) -> list[Fault]:
    """``rounds`` of every fault kind in ``kinds``, each round in a seeded order, with seeded gaps and holds."""
    rng = random.Random(seed)
    faults: list[Fault] = []
    for _ in range(rounds):
        for kind in rng.sample(kinds, len(kinds)):
            hold = PAUSE_SECONDS if kind == "broker-pause" else rng.uniform(2.0, 6.0)
            faults.append(Fault(kind, round(rng.uniform(gap / 2, gap * 1.5), 1), round(hold, 1)))
    return faults


@dataclass
class Injector:
    cluster: KafkaCluster
    postgres: Postgres
    system: LedgerSystem
    rng: random.Random

    async def run(self, faults: list[Fault], done: asyncio.Event) -> None:
        try:
            for fault in faults:
                await asyncio.sleep(fault.gap)
                await self.inject(fault)
                fault.recovered = await self.healed(since=fault.injected)
                print(f"[faults] {fault.kind} {fault.target}: healthy again {fault.recovery:.1f}s after injection")
        finally:
            done.set()

    async def inject(self, fault: Fault) -> None:
        cases = self.system.topics.cases
        fault.injected = time.monotonic()
        if fault.kind == "leader-kill":
            partition = await busiest_partition(self.system.kafka, cases)
            node = (await partition_leaders(self.system.kafka, cases))[partition][0]
            fault.target = f"node {node} (leader of {cases}/{partition})"
            await self._down(node, fault, kill=True)
        elif fault.kind == "broker-pause":
            partition = await busiest_partition(self.system.kafka, cases)
            node = (await partition_leaders(self.system.kafka, cases))[partition][0]
            fault.target = f"node {node} (leader of {cases}/{partition}), past its session timeout"
            await self._down(node, fault, kill=False)
        elif fault.kind == "controller-kill":
            node = await asyncio.to_thread(self.cluster.active_controller)
            fault.injected = time.monotonic()
            fault.target = f"node {node} (active controller)"
            await self._down(node, fault, kill=True)
        elif fault.kind == "registry-kill":
            index = self.rng.randrange(len(self.system.registries))
            fault.target = f"registry-{index + 1}"
            await asyncio.sleep(0)
            await self.system.restart_registry(index)
        elif fault.kind == "postgres-restart":
            fault.target = f"postgresql :{self.postgres.port}"
            await asyncio.to_thread(self.postgres.restart)
        else:
            raise ValueError(fault.kind)

    async def _down(self, node: int, fault: Fault, *, kill: bool) -> None:
        if kill:
            self.cluster.kill(node)
        else:
            self.cluster.pause(node)
        await asyncio.sleep(fault.hold)
        if kill:
            await asyncio.to_thread(self.cluster.start, node)
        else:
            self.cluster.resume(node)

    async def healed(self, since: float) -> float:
        """When every node served, every partition of the case stream had its three replicas in sync, the database
        answered and every service was ready again."""
        deadline = since + HEALED_WITHIN
        while time.monotonic() < deadline:
            if (unhealthy := await self.unhealthy()) is None:
                return time.monotonic()
            await asyncio.sleep(0.5)
        raise AssertionError(f"the system was not healthy again {HEALED_WITHIN}s after the fault: {unhealthy}")

    async def unhealthy(self) -> str | None:
        """What is not healthy yet, or None."""
        if down := [n for n in NODES if self.cluster.pid(n) is None]:
            return f"nodes {down} down"
        if not await self.postgres.answers():
            return "postgresql does not answer"
        try:
            leaders = await asyncio.wait_for(partition_leaders(self.system.kafka, self.system.topics.cases), 10)
        except Exception as exc:  # a cluster still electing answers nothing useful: not healthy yet
            return f"no metadata: {exc!r}"
        if short := {p: (leader, isr) for p, (leader, isr) in leaders.items() if leader < 0 or len(isr) < len(NODES)}:
            return f"partitions without a leader or a full ISR: {short}"
        async with httpx.AsyncClient(timeout=30) as client:
            for process in self.system.processes:
                try:
                    answer = await client.get(f"{process.url}/health/ready")
                except httpx.HTTPError as exc:
                    return f"{process.url} ({process.name}): {exc!r}"
                if answer.status_code != 200:
                    return f"{process.url} ({process.name}): {answer.text}"
        return None
