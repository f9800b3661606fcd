"""PostgreSQL: the connection pool and the migrations of each service's own schema."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
from alembic import command
from alembic.config import Config

SERVICES_DIR = Path(__file__).resolve().parent.parent / "services"


def sqlalchemy_url(database_url: str) -> str:
    """The asyncpg URL as SQLAlchemy (used only by alembic) spells it."""
    scheme, _, rest = database_url.partition("://")
    return f"postgresql+asyncpg://{rest}" if scheme in {"postgres", "postgresql"} else database_url


async def create_pool(database_url: str, *, max_size: int = 10) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=max_size, command_timeout=30)
    assert pool is not None
    return pool


def alembic_config(service: str, database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SERVICES_DIR / service / "migrations"))
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(database_url))
    config.attributes["schema"] = service
    return config


def migrate(service: str, database_url: str, revision: str = "head") -> None:
    """Bring ``service``'s schema to ``revision`` (alembic runs its own event loop)."""
    command.upgrade(alembic_config(service, database_url), revision)


async def migrate_async(service: str, database_url: str) -> None:
    await asyncio.to_thread(migrate, service, database_url)


MIGRATED_SERVICES = ("applications", "review", "registry")


def migrate_all(database_url: str) -> None:
    for service in MIGRATED_SERVICES:
        migrate(service, database_url)
