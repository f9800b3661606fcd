"""Publishing license changes from the outbox, after the ledger commit that wrote them.

The outbox rows are written in the same transaction as the ledger rows, so a state is published
only once the ledger has it, and a crash between commit and publish delays it but never loses it:
the rows stay until a relay has published them. One relay at a time (an advisory lock) keeps each
license's states in order on the compacted topic.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

RELAY_LOCK = f"SELECT pg_try_advisory_xact_lock({0x4F555442})"  # "OUTB"
PENDING = "SELECT id, license_number, state::text AS state FROM outbox ORDER BY id LIMIT $1"
DONE = "DELETE FROM outbox WHERE id = ANY($1::bigint[])"

# (license number, state as JSON) -> the broker's acknowledgement, once the state is on its way.
Publish = Callable[[str, bytes], Awaitable["asyncio.Future[Any]"]]


async def relay(pool: asyncpg.Pool, publish: Publish, *, limit: int = 1000) -> int:
    """Publish pending changes in order and delete them once the broker has them; return how many."""
    published = 0
    while True:
        async with pool.acquire() as connection, connection.transaction():
            if not await connection.fetchval(RELAY_LOCK):
                return published  # another relay is at work; it publishes these
            rows = await connection.fetch(PENDING, limit)
            # Sent one after another without waiting for each: the producer keeps their order within each
            # license's partition, and the rows go only once the broker has acknowledged every one of them.
            acknowledgements = [await publish(row["license_number"], row["state"].encode()) for row in rows]
            await asyncio.gather(*acknowledgements)
            await connection.execute(DONE, [row["id"] for row in rows])
        published += len(rows)
        if len(rows) < limit:
            return published
