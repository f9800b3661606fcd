"""Fixtures of the fault tests: the three-node cluster and a PostgreSQL of their own (started once, stopped once the
package's tests are done: three JVMs must not go on taking the cores the rest of the suite runs on), a database
and a replicated topic namespace per test."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from shared.contract.topics import Topics
from shared.platform import trust
from shared.platform.db import drop_database, migrate_all
from shared.platform.kafka_access import KafkaConnection
from shared.platform.kafka_admin import delete_topics, ensure_topics
from tests.conftest import _add_credentials, with_database
from tests.faults.cluster import KafkaCluster, Postgres
from tests.support import ROOT_KEY, trust_for_tests


@pytest.fixture(scope="package")
def kafka_cluster() -> Iterator[KafkaCluster]:
    cluster = KafkaCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()  # three JVMs on two shared cores: not one second longer than the tests need them


@pytest.fixture(scope="package")
def cluster_kafka(kafka_cluster: KafkaCluster) -> KafkaConnection:
    return kafka_cluster.connection()


@pytest.fixture(scope="package")
def fault_postgres() -> Iterator[Postgres]:
    postgres = Postgres()
    postgres.start()
    yield postgres
    postgres.stop()


@pytest.fixture
async def fault_database(fault_postgres: Postgres) -> AsyncIterator[str]:
    name = f"faults_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(fault_postgres.url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = with_database(fault_postgres.url, name)
    await asyncio.to_thread(migrate_all, url)
    await _add_credentials(url)
    yield url
    if not await fault_postgres.answers():
        await asyncio.to_thread(fault_postgres.start)  # a test that broke it leaves it to be dropped
    admin = await asyncpg.connect(fault_postgres.url)
    await drop_database(admin, name)
    await admin.close()


@pytest.fixture
async def cluster_topics(cluster_kafka: KafkaConnection) -> AsyncIterator[Topics]:
    """A topic namespace of this test's own on the cluster, every topic with three replicas."""
    names = Topics(namespace=f"f{uuid.uuid4().hex[:10]}")
    await ensure_topics(cluster_kafka, names, replication_factor=3)
    await trust.publish(cluster_kafka, names.trust, trust_for_tests(), ROOT_KEY)
    yield names
    await delete_topics(cluster_kafka, names)
