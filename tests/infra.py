"""Where the tests find a real Kafka broker and a real PostgreSQL.

In order: ``KAFKA_BOOTSTRAP_SERVERS`` / ``DATABASE_URL`` when set; testcontainers when a Docker
engine answers; otherwise the project's own scripts in deploy/local/ provision and start both.
A broker or database that cannot be had fails the run: no test skips for want of a service.
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

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient

from shared.settings import DEFAULT_BOOTSTRAP, DEFAULT_DATABASE_URL

ROOT = Path(__file__).resolve().parent.parent
KAFKA_IMAGE = "apache/kafka:4.1.1"
POSTGRES_IMAGE = "postgres:16"


@dataclass(frozen=True)
class Infrastructure:
    bootstrap_servers: str
    database_url: str
    source: str


class Unavailable(RuntimeError):
    """A broker or database the tests need cannot be had."""


def _docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _run_script(script: str) -> None:
    result = subprocess.run(
        ["bash", str(ROOT / "deploy" / "local" / script), "start"], capture_output=True, text=True, timeout=900
    )
    if result.returncode != 0:
        raise Unavailable(f"deploy/local/{script} start failed:\n{result.stdout}\n{result.stderr}")


@contextlib.contextmanager
def provide() -> Iterator[Infrastructure]:
    """The broker and database for this test session, started if need be."""
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    database = os.environ.get("DATABASE_URL")
    with contextlib.ExitStack() as stack:
        sources = []
        if bootstrap is None:
            if _docker_answers():
                bootstrap = stack.enter_context(_kafka_container())
                sources.append("kafka: testcontainers")
            else:
                _run_script("kafka.sh")
                bootstrap = DEFAULT_BOOTSTRAP
                sources.append("kafka: deploy/local/kafka.sh")
        else:
            sources.append("kafka: KAFKA_BOOTSTRAP_SERVERS")
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
        asyncio.run(_check(bootstrap, database))
        yield Infrastructure(bootstrap, database, ", ".join(sources))


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


async def _check(bootstrap: str, database: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    try:
        await asyncio.wait_for(admin.start(), 30)
        await admin.list_topics()
    except Exception as exc:
        raise Unavailable(f"no Kafka broker answers at {bootstrap}: {exc!r}") from exc
    finally:
        await admin.close()
    try:
        connection = await asyncpg.connect(database, timeout=10)
        await connection.close()
    except Exception as exc:
        raise Unavailable(f"no PostgreSQL answers at {database}: {exc!r}") from exc
