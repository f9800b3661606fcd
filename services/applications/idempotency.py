"""The idempotency keys of HTTP submissions, in the service's own schema."""

from __future__ import annotations

import uuid

import asyncpg

CLAIM = """
INSERT INTO idempotency_keys (key, application_id, fingerprint)
VALUES ($1, $2, $3)
ON CONFLICT (key) DO NOTHING
"""
LOOKUP = "SELECT application_id, fingerprint FROM idempotency_keys WHERE key = $1"


class KeyReused(Exception):
    """The key was first used for a different application."""


async def claim(pool: asyncpg.Pool, *, key: str, application_id: uuid.UUID, fingerprint: str) -> uuid.UUID:
    """The application id that ``key`` stands for: ``application_id`` if the key is new."""
    async with pool.acquire() as connection:
        await connection.execute(CLAIM, key, application_id, fingerprint)
        row = await connection.fetchrow(LOOKUP, key)
    assert row is not None
    if row["fingerprint"] != fingerprint:
        raise KeyReused(key)
    stored: uuid.UUID = row["application_id"]
    return stored
