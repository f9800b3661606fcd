"""The ledger's services as processes on the three-node cluster: applications, review, and registry instances
sharing the case stream's partitions in one consumer group, each service under its own Kafka principal."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx

from licensectl.kafka import grant_services, service_principal
from shared.contract.topics import Topics
from shared.platform.kafka_access import SERVICES, KafkaConnection
from shared.platform.kafka_admin import revoke
from tests.infra import ROOT
from tests.processes import ServiceProcess


@dataclass
class LedgerSystem:
    kafka: KafkaConnection
    database_url: str
    topics: Topics
    logs: Path
    env: dict[str, str] = field(default_factory=dict)
    applications: ServiceProcess | None = None
    review: ServiceProcess | None = None
    registries: list[ServiceProcess] = field(default_factory=list)

    def start(self, registries: int = 2, *, registries_only: bool = False, extra: dict[str, str] | None = None) -> None:
        """Start the services; ``registries_only`` leaves out applications and review (a test that writes the
        case stream itself, whose events review must not decide on)."""
        self.env = {
            **self.kafka.environment(),
            **grant_services(self.kafka, self.topics),
            "DATABASE_URL": self.database_url,
            "LEDGER_TOPIC_NAMESPACE": self.topics.namespace,
            "LEDGER_TOPIC_REPLICATION_FACTOR": "3",
            # One client sends everything here, from one address under one key: no rate limit applies.
            **{f"{s}_RATE_LIMIT_PER_SECOND": "0" for s in ("APPLICATIONS", "REVIEW", "REGISTRY")},
            **{f"{s}_RATE_LIMIT_PER_CREDENTIAL_PER_SECOND": "0" for s in ("APPLICATIONS", "REVIEW", "REGISTRY")},
            "REGISTRY_CHECKPOINT_INTERVAL_SECONDS": "5",
            "REGISTRY_BATCH_SIZE": "200",
            "APPLICATIONS_LOG_FORMAT": "text",
            "REVIEW_LOG_FORMAT": "text",
            "REGISTRY_LOG_FORMAT": "text",
            **(extra or {}),
        }
        if not registries_only:
            self.applications = ServiceProcess("applications", self.env, self.logs)
            self.review = ServiceProcess("review", self.env, self.logs)
        self.registries = [self.registry(i) for i in range(1, registries + 1)]
        for process in self.processes:
            process.start()
        for process in self.processes:
            wait_ready(process)

    def registry(self, number: int) -> ServiceProcess:
        """Registry instance ``number``: a static member of the group (REGISTRY_INSTANCE_ID), log of its own."""
        directory = self.logs / f"registry-{number}"
        directory.mkdir(exist_ok=True)
        return ServiceProcess("registry", {**self.env, "REGISTRY_INSTANCE_ID": f"registry-{number}"}, directory)

    @property
    def processes(self) -> list[ServiceProcess]:
        return [p for p in (self.applications, self.review, *self.registries) if p is not None]

    @property
    def registry_urls(self) -> list[str]:
        return [r.url for r in self.registries]

    async def restart_registry(self, index: int) -> None:
        """SIGKILL registry instance ``index`` mid-batch, and start it again under the same instance id."""
        process = self.registries[index]
        process.kill(signal.SIGKILL)
        process.start()
        await asyncio.to_thread(wait_ready, process)

    def stop(self) -> None:
        for process in self.processes:
            process.stop()
        with contextlib.suppress(Exception):  # the principals are the test namespace's; they go with it
            for role in SERVICES:
                revoke(self.kafka, service_principal(role, self.topics))

    def licensectl(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``python -m licensectl ARGS`` as an auditor runs it against this system (as the cluster's admin)."""
        env = {
            **self.env,
            **self.kafka.environment(),
            "COLUMNS": "250",
        }
        command = [sys.executable, "-m", "licensectl", *args]
        return subprocess.run(command, cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=600)


def wait_ready(process: ServiceProcess, timeout: float = 120) -> None:
    """Wait until ``process`` answers ``/health/ready`` with 200. Its answer takes seconds on a busy cluster (it
    asks Kafka for every watched group's lag), longer than ``ServiceProcess.wait_healthy`` waits for one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{process.url}/health/ready", timeout=30).status_code == 200:
                return
        time.sleep(0.3)
    raise AssertionError(f"{process.name} at {process.url} is not ready after {timeout}s:\n{process.log()[-3000:]}")


@contextlib.contextmanager
def running(
    kafka: KafkaConnection,
    database_url: str,
    topics: Topics,
    logs: Path,
    registries: int = 2,
    *,
    registries_only: bool = False,
    extra: dict[str, str] | None = None,
) -> Iterator[LedgerSystem]:
    system = LedgerSystem(kafka, database_url, topics, logs)
    try:
        system.start(registries, registries_only=registries_only, extra=extra)
        yield system
    finally:
        system.stop()


async def ledger_rows(database_url: str) -> dict[str, list[asyncpg.Record]]:
    """The registry's rows the comparison reads: applications, licenses, exports, and the stored offsets."""
    connection = await asyncpg.connect(database_url)
    try:
        return {
            "applications": await connection.fetch(
                "SELECT application_id, status, license_number FROM registry.applications"
            ),
            "licenses": await connection.fetch(
                "SELECT license_number, status, balance, declarations_used FROM registry.licenses"
            ),
            "exports": await connection.fetch(
                "SELECT declaration_number, license_number, outcome, reason_code FROM registry.exports"
            ),
            "offsets": await connection.fetch("SELECT topic, partition, next_offset FROM registry.partition_offsets"),
        }
    finally:
        await connection.close()


async def stored_offsets(database_url: str, topic: str) -> dict[int, int]:
    """Each partition's offset the ledger has applied up to (stored with its rows)."""
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(
            "SELECT partition, next_offset FROM registry.partition_offsets WHERE topic = $1", topic
        )
    finally:
        await connection.close()
    return {int(r["partition"]): int(r["next_offset"]) for r in rows}
