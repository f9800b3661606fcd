"""Submissions appended once: a retry under the same key (an HTTP ``Idempotency-Key``, a Kafka command's id)
returns the event the first one appended, and appends nothing. Each key's row in the service's own schema
keeps the event; the row is locked while the event is appended, so concurrent retries wait for the first.

Keys are kept by whose they are: an HTTP key within its agency's (``http_key``), a command's within its
sender's (``intake:<sender>:<command id>``). No party's key meets another's."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import asyncpg

from shared.contract.events import Envelope
from shared.contract.refusal import Refusal

# A new key's row comes with its event: the row is this transaction's own until the event is in the log.
CLAIM = """
INSERT INTO idempotency_keys (key, application_id, fingerprint, event) VALUES ($1, $2, $3, $4)
ON CONFLICT (key) DO NOTHING RETURNING true
"""
CLAIMED = "SELECT application_id, fingerprint, event FROM idempotency_keys WHERE key = $1 FOR UPDATE"
KEEP = "UPDATE idempotency_keys SET event = $2 WHERE key = $1"


def http_key(agency_code: str, key: str) -> str:
    """Where agency ``agency_code``'s ``Idempotency-Key`` is kept: among its own keys only. Another agency may use
    the same key for its own submission, and learns nothing of this one."""
    return f"http:{agency_code}:{key}"


KEYED_APPLICATIONS = uuid.UUID("5b0e7c4e-2f59-4d0e-9a53-8f1f0c6f7d21")


def application_id_of(key: str) -> uuid.UUID:
    """The application id a key's submission gets (``key`` as kept: ``http_key``'s for an HTTP one): the same for
    every retry, even one whose first append was written after its request had given up (a cluster that took
    writes again), so that both are one event."""
    return uuid.uuid5(KEYED_APPLICATIONS, key)


async def append_once(
    pool: asyncpg.Pool,
    *,
    key: str,
    fingerprint: str,
    make: Callable[[uuid.UUID], Envelope],
    append: Callable[[Envelope], Awaitable[object]],
    reused: Refusal,
) -> Envelope:
    """The event of ``key``'s submission: appended now (``make`` given the key's application id), or, for a
    retry, the one appended before. ``reused`` is refused if the key was first used for other content."""
    async with pool.acquire() as connection, connection.transaction():
        # Appended before the commit, and kept with the key: a failed append keeps no key; a failed commit after
        # a good append leaves a retry to append the event again (readers drop the copy by its id).
        envelope = make(application_id_of(key))
        if await connection.fetchval(CLAIM, key, envelope.case_id, fingerprint, envelope.to_bytes()):
            await append(envelope)
            return envelope
        # The key was used before: its row, locked (a retry waits here for the first to commit).
        row = await connection.fetchrow(CLAIMED, key)
        assert row is not None
        if row["fingerprint"] != fingerprint:
            raise reused
        if row["event"] is not None:
            return Envelope.from_bytes(row["event"])
        envelope = make(row["application_id"])  # a key kept without its event (before events were kept with it)
        await append(envelope)
        await connection.execute(KEEP, key, envelope.to_bytes())
        return envelope
