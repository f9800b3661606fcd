"""Rule 9: a VIN is exported at most once, across all licenses (docs/vin-uniqueness.md).

The fold decides within a case; across cases the intake decides before it appends, so that the verdict
is in the log and every replay folds the same one. What holds a VIN is ledger content, in the checksum:
an accepted export's row of ``exports``. While a declaration is between the intake and the fold, a
*pending* claim in ``vin_claims`` holds its VINs; the fold deletes it in the transaction that writes the
export's row, accepted or refused. So a VIN is free only if no accepted export and no pending claim of
another declaration names it, and no row outside the checksum can make it free: deleting a pending claim
frees it for the milliseconds until the fold, deleting an export's row breaks the ledger's seal
(``services/registry/seal.py``). A double export that reached the log anyway is named by ``licensectl audit
verify``, from the log alone (``doubly_exported`` of a replay).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence

import asyncpg

from shared.contract.events import Reason
from shared.fold import ExportEntry
from shared.platform.db import Connection

CLAIM = """
INSERT INTO vin_claims (vin, declaration_number, license_number, event_id)
SELECT vin, $2, $3, $4 FROM unnest($1::text[]) AS vin
ON CONFLICT (vin) DO NOTHING
"""
# Another declaration's pending claim, or an accepted export (``vins <> '{}'``: the partial GIN index of 0007).
HELD_ELSEWHERE = """
SELECT vin, declaration_number, license_number, 'pending' AS state FROM vin_claims
WHERE vin = ANY($1::text[]) AND event_id <> $2
UNION ALL
SELECT vin, declaration_number, license_number, 'accepted' FROM exports, unnest(vins) AS vin
WHERE vins && $1::text[] AND vins <> '{}' AND outcome = 'accepted' AND event_id <> $2 AND vin = ANY($1::text[])
ORDER BY 1, 4 LIMIT 1
"""
SETTLE = "DELETE FROM vin_claims WHERE event_id = ANY($1::uuid[])"
DOUBLY_EXPORTED = """
SELECT vin, array_agg(declaration_number || ' on ' || license_number ORDER BY recorded_at, event_id) AS exports
FROM exports, unnest(vins) AS vin WHERE vins <> '{}' AND outcome = 'accepted'
GROUP BY vin HAVING count(*) > 1 ORDER BY vin
"""
AnyConnection = Connection | asyncpg.Pool


class _Held(Exception):
    def __init__(self, reason: Reason) -> None:
        self.reason = reason


async def claim(
    connection: Connection,
    *,
    vins: Iterable[str],
    declaration: str,
    license_number: str,
    event_id: uuid.UUID,
) -> Reason | None:
    """Claim ``vins`` for the declaration in the caller's transaction, or say which another holds (then none)."""
    wanted = sorted(set(vins))  # one order for every intake, so two claiming overlapping sets cannot deadlock
    if not wanted:
        return None
    try:
        async with connection.transaction():  # a savepoint: a refused claim leaves no VIN half-claimed
            await connection.execute(CLAIM, wanted, declaration, license_number, event_id)
            held = await held_elsewhere(connection, wanted, event_id)
            if held is not None:
                raise _Held(held)
    except _Held as refused:
        return refused.reason
    return None


async def held_elsewhere(connection: AnyConnection, vins: Iterable[str], event_id: uuid.UUID) -> Reason | None:
    """``vin_already_exported`` if an accepted export, or another declaration being judged, holds one of ``vins``."""
    row = await connection.fetchrow(HELD_ELSEWHERE, sorted(set(vins)), event_id)
    if row is None:
        return None
    how = "exported" if row["state"] == "accepted" else "declared, and the ledger is judging it,"
    return Reason(
        code="vin_already_exported",
        message=f"VIN {row['vin']} was {how} under declaration {row['declaration_number']} "
        f"on license {row['license_number']}",
    )


async def settle(connection: Connection, exports: Sequence[ExportEntry]) -> None:
    """The fold judged these exports: their pending claims go (an accepted one's row of ``exports`` holds its
    VINs from now on, in the same transaction; a refused one's VINs are free)."""
    judged = [e.event_id for e in exports if e.vins]
    if judged:
        await connection.execute(SETTLE, judged)


async def doubly_exported(connection: AnyConnection) -> list[str]:
    """Each VIN the ledger holds as accepted on more than one export, described (none, where rule 9 held)."""
    rows = await connection.fetch(DOUBLY_EXPORTED)
    return [f"VIN {r['vin']} accepted {len(r['exports'])} times: {'; '.join(r['exports'])}" for r in rows]
