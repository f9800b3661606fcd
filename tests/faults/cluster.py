"""The fault tests' own infrastructure: a three-node Kafka cluster (deploy/local/kafka-cluster.sh) and a PostgreSQL
cluster (deploy/local/postgres.sh), on ports and in directories of their own. The tests kill, pause and restart
them; the shared broker (9092) and database (54329) other tests use are never touched."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from shared.platform.kafka_access import KafkaConnection
from tests.infra import ROOT

CACHE = Path(os.environ.get("LEDGER_CACHE_DIR", Path.home() / ".cache" / "export-ledger"))
NODES = (1, 2, 3)


class ScriptFailed(RuntimeError):
    """A deploy/local script did not do what it was asked."""


def _run(script: str, *args: str, env: dict[str, str], timeout: float = 300) -> str:
    done = subprocess.run(
        ["bash", str(ROOT / "deploy" / "local" / script), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise ScriptFailed(f"{script} {' '.join(args)}: exit {done.returncode}\n{done.stdout}\n{done.stderr}")
    return done.stdout


@dataclass
class KafkaCluster:
    """Three KRaft nodes, each broker and controller; a node can be killed, paused and started again."""

    directory: Path = CACHE / "kafka-faults-cluster"
    port: int = 29092
    controller_port: int = 29192

    @property
    def env(self) -> dict[str, str]:
        return {
            "KAFKA_CLUSTER_DIR": str(self.directory),
            "KAFKA_CLUSTER_PORT": str(self.port),
            "KAFKA_CLUSTER_CONTROLLER_PORT": str(self.controller_port),
        }

    def start(self, node: int | None = None) -> None:
        _run("kafka-cluster.sh", "start", *([str(node)] if node else []), env=self.env)

    def stop(self, node: int | None = None) -> None:
        for n in [node] if node else NODES:
            self.resume(n)  # a paused node cannot hear its TERM
        _run("kafka-cluster.sh", "stop", *([str(node)] if node else []), env=self.env)

    def connection(self) -> KafkaConnection:
        """The cluster's admin login, every node in its bootstrap list."""
        exports = dict(
            line.removeprefix("export ").split("=", 1)
            for line in _run("kafka-cluster.sh", "credentials", env=self.env).splitlines()
            if line.startswith("export ")
        )
        connection = KafkaConnection(bootstrap_servers=exports["KAFKA_BOOTSTRAP_SERVERS"])
        return connection.login(exports["KAFKA_USERNAME"], exports["KAFKA_PASSWORD"])

    def pid(self, node: int) -> int | None:
        file = self.directory / f"node-{node}" / "kafka.pid"
        try:
            pid = int(file.read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid

    def kill(self, node: int) -> None:
        """SIGKILL: the node dies mid-write, as on a power cut."""
        pid = self.pid(node)
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            while self.pid(node) is not None:
                time.sleep(0.05)

    def pause(self, node: int) -> None:
        """SIGSTOP: the node holds its connections and answers nothing, as in a long GC pause."""
        if (pid := self.pid(node)) is not None:
            os.kill(pid, signal.SIGSTOP)

    def resume(self, node: int) -> None:
        if (pid := self.pid(node)) is not None:
            os.kill(pid, signal.SIGCONT)

    def active_controller(self) -> int:
        """The KRaft quorum's leader, as Kafka's own tool reports it."""
        status = _run("kafka-cluster.sh", "quorum", env=self.env, timeout=60)
        found = re.search(r"^LeaderId:\s+(\d+)", status, re.MULTILINE)
        if found is None:
            raise ScriptFailed(f"no LeaderId in the quorum's status:\n{status}")
        return int(found.group(1))


async def partition_leaders(kafka: KafkaConnection, topic: str) -> dict[int, tuple[int, list[int]]]:
    """Each partition of ``topic``: its leader's node id (-1: none) and its in-sync replicas."""
    admin = AIOKafkaAdminClient(**kafka.options(), request_timeout_ms=10000)
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return {p["partition"]: (p["leader"], list(p["isr"])) for p in described[0]["partitions"]}


@dataclass
class Postgres:
    """A PostgreSQL cluster of the fault tests' own (postgresql-common, as deploy/local/postgres.sh makes it)."""

    name: str = "ledgerfaults"
    port: int = 54339

    @property
    def env(self) -> dict[str, str]:
        return {"LEDGER_PG_CLUSTER": self.name, "PGPORT_LEDGER": str(self.port)}

    @property
    def url(self) -> str:
        return f"postgresql://ledger:ledger@127.0.0.1:{self.port}/ledger"

    def start(self) -> None:
        _run("postgres.sh", "start", env=self.env)

    def stop(self) -> None:
        _run("postgres.sh", "stop", env=self.env)

    def restart(self) -> None:
        """Stop (fast: every client's connection is ended) and start again."""
        self.stop()
        self.start()

    async def answers(self) -> bool:
        try:
            connection = await asyncpg.connect(self.url, timeout=2)
        except (OSError, asyncpg.PostgresError):
            return False
        await connection.close()
        return True


async def busiest_partition(kafka: KafkaConnection, topic: str) -> int:
    """The partition of ``topic`` holding the most records."""
    partitions = [TopicPartition(topic, p) for p in await partition_leaders(kafka, topic)]
    consumer = AIOKafkaConsumer(**kafka.options(), enable_auto_commit=False)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    busiest: int = max(ends, key=lambda tp: ends[tp]).partition
    return busiest
