"""The body of every service's alembic ``env.py``: raw-SQL migrations into the service's own schema."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import create_async_engine


def _run(connection: Connection, schema: str) -> None:
    connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    # Migrations name tables unqualified: the schema is chosen here, so a replay can build a second one.
    connection.execute(text(f'SET search_path TO "{schema}"'))
    context.configure(connection=connection, version_table="alembic_version", version_table_schema=schema)
    with context.begin_transaction():
        context.run_migrations()


async def _online(url: str, schema: str) -> None:
    engine = create_async_engine(url)
    async with engine.begin() as connection:
        await connection.run_sync(_run, schema)
    await engine.dispose()


def run() -> None:
    config = context.config
    schema = config.attributes["schema"]
    url = config.get_main_option("sqlalchemy.url")
    assert url is not None
    asyncio.run(_online(url, schema))
