"""Fixtures over the real broker and database: a fresh database and topic namespace per test."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Generator, Iterator

import asyncpg
import pytest
from hypothesis import settings as hypothesis_settings

from shared.contract import signatures
from shared.contract.topics import Topics
from shared.platform import access, trust
from shared.platform.db import drop_database, migrate_all
from shared.platform.kafka_admin import delete_topics, ensure_topics
from tests import infra
from tests.support import CREDENTIALS, OFFICERS, ROOT_KEY, SENDERS, key, trust_for_tests

# Services started by the tests (in-process or as processes), replay and audit pin the tests' root key: each
# test's trust topic holds its statements (the topics fixture), as an operator's would (docs/signing.md).
os.environ.setdefault("LEDGER_TRUST_ROOT_KEYS", signatures.public_b64(ROOT_KEY.public_key()))

# Under CI every run draws the same examples, so a red run can be reproduced and is never a coin toss;
# local runs keep exploring new ones (and keep what they find in .hypothesis/).
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
if infra.IN_CI:
    hypothesis_settings.load_profile("ci")

# pytest-timeout (300 s) shows the threads' stacks when a test hangs, and an idle event loop is all they show. A
# test still running after this long has every task of the tests' event loop print where it waits, into the test's
# captured output: the await that never returns is named when the timeout then fails it.
STALLED_AFTER_SECONDS = 240.0
_loop: asyncio.AbstractEventLoop | None = None


@pytest.fixture(scope="session", autouse=True)
async def _tests_event_loop() -> None:
    global _loop
    _loop = asyncio.get_running_loop()


def _print_tasks() -> None:
    print(f"\n[stalled] a test has run {STALLED_AFTER_SECONDS:.0f} s; where each task waits:", flush=True)
    for task in asyncio.all_tasks():
        print(f"[stalled] {task.get_name()}:", flush=True)
        task.print_stack(file=sys.stdout)


def _tasks_stalled() -> None:
    if _loop is not None and not _loop.is_closed():
        _loop.call_soon_threadsafe(_print_tasks)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    watchdog = threading.Timer(STALLED_AFTER_SECONDS, _tasks_stalled)
    watchdog.daemon = True
    watchdog.start()
    try:
        return (yield)
    finally:
        watchdog.cancel()


@pytest.fixture(scope="session")
def infrastructure() -> Iterator[infra.Infrastructure]:
    try:
        with infra.provide() as provided:
            print(f"\n[tests] infrastructure: {provided.source}")
            yield provided
    except infra.Unavailable as missing:
        pytest.fail(f"{missing}\n(no test skips for want of a service; start it or point the env at one)")


def with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


async def _admin(url: str) -> asyncpg.Connection:
    return await asyncpg.connect(url)


@pytest.fixture(scope="session")
def template_database(infrastructure: infra.Infrastructure) -> Iterator[str]:
    """A database migrated once, copied for each test (a copy is far faster than migrating)."""

    name = f"ledger_template_{os.getpid()}"

    async def create() -> None:
        connection = await _admin(infrastructure.database_url)
        await drop_database(connection, name)
        await connection.execute(f'CREATE DATABASE "{name}"')
        await connection.close()

    async def drop() -> None:
        connection = await _admin(infrastructure.database_url)
        await drop_database(connection, name)
        await connection.close()

    asyncio.run(create())
    migrate_all(with_database(infrastructure.database_url, name))
    asyncio.run(_add_credentials(with_database(infrastructure.database_url, name)))
    yield name
    asyncio.run(drop())


async def _add_credentials(url: str) -> None:
    """One credential per role of agency 44, submitter and officer of 32, and one of every role (copied with the
    template into each test's database)."""
    connection = await asyncpg.connect(url)
    try:
        for name, (agency, roles) in CREDENTIALS.items():
            await access.create(
                connection,
                agency_code=agency,
                roles=roles,
                label=f"test {name}",
                key=key(name),
                officer=OFFICERS.get(name),
                sender=SENDERS.get(name),
            )
    finally:
        await connection.close()


@pytest.fixture
def credentials() -> dict[str, str]:
    """The API key of each test credential by name (tests/support.py CREDENTIALS): in every test database."""
    return {name: key(name) for name in CREDENTIALS}


@pytest.fixture
async def database_url(infrastructure: infra.Infrastructure, template_database: str) -> AsyncIterator[str]:
    name = f"ledger_test_{uuid.uuid4().hex[:12]}"
    connection = await _admin(infrastructure.database_url)
    await connection.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
    yield with_database(infrastructure.database_url, name)
    await drop_database(connection, name)
    await connection.close()


@pytest.fixture
async def topics(infrastructure: infra.Infrastructure) -> AsyncIterator[Topics]:
    """A topic namespace of this test's own, so tests never read each other's events; deleted after."""
    names = Topics(namespace=f"t{uuid.uuid4().hex[:10]}")
    await ensure_topics(infrastructure.kafka, names)
    await trust.publish(infrastructure.kafka, names.trust, trust_for_tests(), ROOT_KEY)
    yield names
    await delete_topics(infrastructure.kafka, names)
