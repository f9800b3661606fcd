"""License expiry: review knows each license's validity and appends ``LicenseExpired`` once it has passed.

The id of a ``LicenseExpired`` is derived from the license number alone, so two schedulers, or one
restarted after a crash between sending and recording, append the same event and readers drop the
second. The table only spares the broker needless re-sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import asyncpg
from prometheus_client import Gauge

from shared.contract.events import (
    Envelope,
    LicenseExpired,
    LicenseGranted,
    LicenseReplaced,
    LicenseRevoked,
    derived_event_id,
)
from shared.platform.db import Connection
from shared.platform.reading import Reader

log = logging.getLogger(__name__)

PRODUCER = "review"
BATCH = 500

Append = Callable[[Envelope], Awaitable[None]]
Clock = Callable[[], date]

RECORD_GRANT = """
INSERT INTO license_validity (license_number, case_id, valid_to) VALUES ($1, $2, $3)
ON CONFLICT (license_number) DO NOTHING
"""
RECORD_GRANTS = """
INSERT INTO license_validity (license_number, case_id, valid_to)
SELECT * FROM unnest($1::text[], $2::uuid[], $3::date[])
ON CONFLICT (license_number) DO NOTHING
"""
RECORD_EXPIRED = """
INSERT INTO license_validity (license_number, case_id, valid_to, expired_on) VALUES ($1, $2, $3, $4)
ON CONFLICT (license_number) DO UPDATE SET expired_on = EXCLUDED.expired_on
"""
# A revoked or replaced license has ended otherwise: expiring it would say nothing (a successor expires anew).
RECORD_ENDED = "UPDATE license_validity SET ended = true WHERE license_number = $1"
# SKIP LOCKED: a second scheduler passes over the rows the first is sending, instead of sending them too.
# The date narrows the scan through the partial index; due_to_expire is the rule itself.
CANDIDATES = """
SELECT license_number, case_id, valid_to, expired_on, ended FROM license_validity
WHERE expired_on IS NULL AND NOT ended AND expiry_sent_at IS NULL AND valid_to < $1
ORDER BY license_number LIMIT $2 FOR UPDATE SKIP LOCKED
"""
MARK_SENT = "UPDATE license_validity SET expiry_sent_at = now() WHERE license_number = ANY($1::text[])"


@dataclass(frozen=True)
class KnownLicense:
    """What review needs to know of a license to expire it."""

    license_number: str
    case_id: uuid.UUID
    valid_to: date
    expired_on: date | None = None
    ended: bool = False


def due_to_expire(licenses: Iterable[KnownLicense], today: date) -> list[KnownLicense]:
    """The licenses whose validity has passed by ``today`` (China's date) and that have not expired yet."""
    return [lic for lic in licenses if lic.expired_on is None and not lic.ended and lic.valid_to < today]


def expiry_event(license_: KnownLicense) -> Envelope:
    """The ``LicenseExpired`` of ``license_``: the same id and payload whoever emits it, whenever."""
    event = LicenseExpired(license_number=license_.license_number, expired_on=license_.valid_to + timedelta(days=1))
    return Envelope.wrap(
        event,
        case_id=license_.case_id,
        producer=PRODUCER,
        event_id=derived_event_id(license_.license_number, "expired"),
    )


async def remember(connection: Connection, envelope: Envelope) -> None:
    """Fold the license events read from the case stream into review's table of validities."""
    event = envelope.payload
    if isinstance(event, LicenseGranted):
        await connection.execute(RECORD_GRANT, event.license_number, envelope.case_id, event.valid_to)
    elif isinstance(event, LicenseReplaced):
        await connection.execute(RECORD_GRANT, event.successor_license_number, envelope.case_id, event.valid_to)
        await connection.execute(RECORD_ENDED, event.license_number)
    elif isinstance(event, LicenseRevoked):
        await connection.execute(RECORD_ENDED, event.license_number)
    elif isinstance(event, LicenseExpired):
        valid_to = event.expired_on - timedelta(days=1)
        await connection.execute(RECORD_EXPIRED, event.license_number, envelope.case_id, valid_to, event.expired_on)


async def remember_all(connection: Connection, envelopes: Sequence[Envelope]) -> None:
    """:func:`remember` for each envelope: the grants in one statement (first: every other license event of a
    batch comes after its license's grant), the rest in order."""
    grants = [(e.payload, e.case_id) for e in envelopes if isinstance(e.payload, LicenseGranted)]
    if grants:
        await connection.execute(
            RECORD_GRANTS,
            [grant.license_number for grant, _ in grants],
            [case_id for _, case_id in grants],
            [grant.valid_to for grant, _ in grants],
        )
    for envelope in envelopes:
        if not isinstance(envelope.payload, LicenseGranted):
            await remember(connection, envelope)


async def expire_due(pool: asyncpg.Pool, append: Append, today: date) -> int:
    """Append ``LicenseExpired`` for every license due by ``today``; how many were appended."""
    appended = 0
    while True:
        async with pool.acquire() as connection, connection.transaction():
            rows = await connection.fetch(CANDIDATES, today, BATCH)
            due = due_to_expire((KnownLicense(**dict(r)) for r in rows), today)
            for license_ in due:
                await append(expiry_event(license_))
            # Marked in the transaction that held the rows: a crash before commit leaves them to send again.
            await connection.execute(MARK_SENT, [lic.license_number for lic in due])
        appended += len(due)
        if not due or len(rows) < BATCH:
            return appended


async def run_forever(
    pool: asyncpg.Pool, append: Append, clock: Clock, interval: float, reader: Reader, ran: Gauge
) -> None:
    """Expire what is due every ``interval`` seconds. A failed round is waited out and tried again by ``reader``
    (growing, jittered, capped waits; ``/health/ready`` shows it meanwhile); ``ran`` is set at each round done."""
    while True:
        with contextlib.suppress(Exception):  # reader.run logged it and waited; unsent expiries are found again
            expired = await reader.run(lambda: expire_due(pool, append, clock()))
            ran.set_to_current_time()
            if expired:
                log.info("expired %d license(s)", expired)
        await asyncio.sleep(interval)
