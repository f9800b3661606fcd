"""PostgreSQL: the connection pool and the migrations of each service's own schema."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote

import asyncpg

if TYPE_CHECKING:
    from alembic.config import Config

Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy
"""A connection, whether opened alone or taken from a pool."""

SERVICES_DIR = Path(__file__).resolve().parents[2] / "services"
# The credentials every service checks keys against live in a schema of their own, migrated like a service's.
SHARED_MIGRATIONS = {"access": Path(__file__).resolve().parent / "access_migrations"}


# This role's own clients of a database; not an autovacuum worker, which runs as a superuser that only a
# superuser may end (and which DROP DATABASE asks to stop by itself).
END_OWN_CLIENTS = """
SELECT pg_terminate_backend(pid) FROM pg_stat_activity
WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_type = 'client backend' AND usename = current_user
"""


async def drop_database(connection: asyncpg.Connection, name: str) -> None:
    """Drop the database ``name`` (a test's, the bench's), ending this role's clients still connected to it.

    ``DROP DATABASE ... WITH (FORCE)`` would end every backend, and fails without a superuser's rights when
    autovacuum is at work on the database after a load that wrote much."""
    await connection.execute(END_OWN_CLIENTS, name)
    await connection.execute(f'DROP DATABASE IF EXISTS "{name}"')


def redact(text: str, database_url: str) -> str:
    """``text`` without the password of ``database_url`` (in its user part or its query): safe to log or answer.

    Read by hand rather than with ``urlsplit``, which raises on a malformed URL: this must work on any.
    """
    for password in _passwords(database_url):
        for spelling in {password, unquote(password)}:
            text = text.replace(spelling, "***")
    return text


def _passwords(database_url: str) -> list[str]:
    userinfo, at, _ = database_url.partition("://")[2].rpartition("@")
    found = [userinfo.partition(":")[2]] if at else []
    found += re.findall(r"[?&]password=([^&#]*)", database_url)
    return [p for p in found if p]


def sqlalchemy_url(database_url: str) -> str:
    """The asyncpg URL as SQLAlchemy (used only by alembic) spells it."""
    scheme, _, rest = database_url.partition("://")
    return f"postgresql+asyncpg://{rest}" if scheme in {"postgres", "postgresql"} else database_url


async def create_pool(database_url: str, *, schema: str, max_size: int = 10) -> asyncpg.Pool:
    """A pool whose connections resolve table names in ``schema`` (a replay folds into another one)."""
    pool = await asyncpg.create_pool(
        database_url,
        min_size=1,
        max_size=max_size,
        command_timeout=30,
        server_settings={"search_path": schema},
        reset=_keep_session,
    )
    assert pool is not None
    return pool


async def _keep_session(_: asyncpg.Connection) -> None:
    """What a connection needs before it goes back to the pool, beyond asyncpg rolling back a transaction
    left open: nothing. Our code keeps no session state (advisory locks are taken per transaction, settings
    with SET LOCAL, cursors inside transactions), and asyncpg's own reset query, sent on every release,
    doubled the cost of a one-query ``pool.fetchval``."""


def alembic_config(service: str, database_url: str, schema: str | None = None) -> Config:
    # alembic (and SQLAlchemy under it) is imported when a migration runs, not by every process that
    # imports this module: it took 0.6 s of CPU, a fold process's whole start-up in a short replay.
    from alembic.config import Config

    config = Config()
    location = SHARED_MIGRATIONS.get(service, SERVICES_DIR / service / "migrations")
    config.set_main_option("script_location", str(location))
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(database_url))
    config.attributes["schema"] = schema or service
    return config


def migrate(service: str, database_url: str, *, schema: str | None = None, revision: str = "head") -> None:
    """Bring ``service``'s tables in ``schema`` (its own by default) to ``revision``."""
    from alembic import command

    command.upgrade(alembic_config(service, database_url, schema), revision)


async def migrate_async(service: str, database_url: str, *, schema: str | None = None) -> None:
    """:func:`migrate` from async code (alembic runs an event loop of its own, so in a thread)."""
    await asyncio.to_thread(migrate, service, database_url, schema=schema)


MIGRATED_SERVICES = ("access", "applications", "review", "registry")


def migrate_all(database_url: str) -> None:
    for service in MIGRATED_SERVICES:
        migrate(service, database_url)
