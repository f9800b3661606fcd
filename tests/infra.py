"""Where the tests find a real Kafka broker and a real PostgreSQL.

In order: ``KAFKA_BOOTSTRAP_SERVERS`` / ``DATABASE_URL`` when set (with ``KAFKA_USERNAME`` /
``KAFKA_PASSWORD`` for a broker that wants a login); testcontainers when a Docker engine answers;
otherwise the project's own scripts in deploy/local/ provision and start both, and the tests log in
as the broker's admin (``kafka.sh credentials``). A broker or database that cannot be had fails the
run: no test skips for want of a service.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient

from shared.platform.kafka_access import DEFAULT_BOOTSTRAP, KafkaConnection
from shared.platform.settings import DEFAULT_DATABASE_URL

ROOT = Path(__file__).resolve().parent.parent
KAFKA_IMAGE = "apache/kafka:4.1.1"
POSTGRES_IMAGE = "postgres:16"
# What .ci/run sets (and CI systems set, as "true" or "1"): no service may be missing, nothing skips for want of one.
IN_CI = os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


@dataclass(frozen=True)
class Infrastructure:
    kafka: KafkaConnection  # the broker, logged in as a principal that may do anything (its admin)
    database_url: str
    source: str

    def service_kafka(self) -> dict[str, Any]:
        """A service's settings for this broker and login."""
        password = self.kafka.password.get_secret_value() if self.kafka.password else None
        return {"kafka_bootstrap_servers": self.kafka.bootstrap_servers, "kafka_username": self.kafka.username} | (
            {"kafka_password": password} if password else {}
        )


class Unavailable(RuntimeError):
    """A broker or database the tests need cannot be had."""


def _docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _run_script(script: str, command: str = "start") -> str:
    result = subprocess.run(
        ["bash", str(ROOT / "deploy" / "local" / script), command], capture_output=True, text=True, timeout=900
    )
    if result.returncode != 0:
        raise Unavailable(f"deploy/local/{script} {command} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def _local_kafka() -> KafkaConnection:
    """Start the project's broker and log in as its admin, whose login ``kafka.sh credentials`` prints."""
    _run_script("kafka.sh")
    exports = dict(
        line.removeprefix("export ").split("=", 1)
        for line in _run_script("kafka.sh", "credentials").splitlines()
        if line.startswith("export ")
    )
    return KafkaConnection(bootstrap_servers=DEFAULT_BOOTSTRAP).login(
        exports["KAFKA_USERNAME"], exports["KAFKA_PASSWORD"]
    )


@contextlib.contextmanager
def provide() -> Iterator[Infrastructure]:
    """The broker and database for this test session, started if need be."""
    database = os.environ.get("DATABASE_URL")
    with contextlib.ExitStack() as stack:
        sources = []
        if "KAFKA_BOOTSTRAP_SERVERS" in os.environ:
            kafka = KafkaConnection()
            sources.append("kafka: KAFKA_BOOTSTRAP_SERVERS" + (f" as {kafka.username}" if kafka.username else ""))
        elif _docker_answers():
            kafka = KafkaConnection(bootstrap_servers=stack.enter_context(_kafka_container()))
            sources.append("kafka: testcontainers")
        else:
            kafka = _local_kafka()
            sources.append("kafka: deploy/local/kafka.sh")
        if database is None:
            if _docker_answers():
                database = stack.enter_context(_postgres_container())
                sources.append("postgres: testcontainers")
            else:
                _run_script("postgres.sh")
                database = DEFAULT_DATABASE_URL
                sources.append("postgres: deploy/local/postgres.sh")
        else:
            sources.append("postgres: DATABASE_URL")
        asyncio.run(_check(kafka, database))
        yield Infrastructure(kafka, database, ", ".join(sources))


@contextlib.contextmanager
def _kafka_container() -> Iterator[str]:
    from testcontainers.kafka import KafkaContainer

    with KafkaContainer(KAFKA_IMAGE).with_kraft() as kafka:
        yield kafka.get_bootstrap_server()


@contextlib.contextmanager
def _postgres_container() -> Iterator[str]:
    from testcontainers.postgres import PostgresContainer

    with PostgresContainer(POSTGRES_IMAGE, driver=None) as postgres:
        yield postgres.get_connection_url()


async def _check(kafka: KafkaConnection, database: str) -> None:
    admin = AIOKafkaAdminClient(**kafka.options(), request_timeout_ms=10000)
    try:
        await asyncio.wait_for(admin.start(), 30)
        await admin.list_topics()
    except Exception as exc:
        login = f" as {kafka.username}" if kafka.username else " without a login (KAFKA_USERNAME)"
        raise Unavailable(f"no Kafka broker answers at {kafka.bootstrap_servers}{login}: {exc!r}") from exc
    finally:
        await admin.close()
    try:
        connection = await asyncpg.connect(database, timeout=10)
        await connection.close()
    except Exception as exc:
        raise Unavailable(f"no PostgreSQL answers at {database}: {exc!r}") from exc
