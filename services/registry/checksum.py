"""A checksum of the ledger: a streaming SHA-256 over every row, table by table, in key order.

Two ledgers with the same checksum hold the same rows. Rows are hashed in PostgreSQL's own JSON
form under UTC, so the checksum depends on the data only, never on the session that reads it.
Delivery plumbing (the outbox, the applied-event index, the stored offsets) is not ledger content; which
records of the log were refused is (``refused_events``): a checkpoint's checksum vouches for it too.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import asyncpg

from services.registry.seal import MODULUS, mac
from shared.platform.db import Connection

# Each ledger table with the key that orders it (and names a row in a report).
LEDGER_TABLES: dict[str, tuple[str, ...]] = {
    "applications": ("application_id",),
    "licenses": ("license_number",),
    "exports": ("event_id",),
    "license_history": ("license_number", "event_id"),
    "refused_events": ("topic", "partition", "offset"),
}


@dataclass(frozen=True)
class Checksum:
    digest: str
    rows: int
    tables: dict[str, str]
    sealed: int | None = None  # the sum of the rows' MACs, when asked with the seal's key (services/registry/seal.py)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def checksum(connection: Connection, schema: str, seal_key: bytes | None = None) -> Checksum:
    """The checksum of the ledger in ``schema``; call inside a transaction (it streams each table's rows). With
    ``seal_key``, the sum of the rows' MACs too, from the same rows in the same pass."""
    await connection.execute("SET LOCAL TimeZone = 'UTC'")
    whole, tables, rows, sealed = hashlib.sha256(), {}, 0, 0
    for table, key in LEDGER_TABLES.items():
        order = ", ".join(f"t.{_quote(k)}" for k in key)
        query = f"SELECT row_to_json(t)::text FROM {_quote(schema)}.{_quote(table)} t ORDER BY {order}"
        streamed = await _copied(connection, query) if seal_key is None else None
        if streamed is None:
            part, count = hashlib.sha256(), 0
            async for record in connection.cursor(query, prefetch=5000):
                part.update(record[0].encode())
                part.update(b"\n")
                count += 1
                if seal_key is not None:
                    sealed += mac(seal_key, table, record[0])
            streamed = part.hexdigest(), count
        tables[table] = streamed[0]
        rows += streamed[1]
        whole.update(f"{table}:{tables[table]}\n".encode())
    return Checksum(whole.hexdigest(), rows, tables, sealed % MODULUS if seal_key is not None else None)


# The rows' texts as COPY writes them in CSV with a delimiter and a quote character no row's JSON holds (JSON
# escapes every control character): each text verbatim, then a newline, exactly what the row-by-row loop hashes,
# in a fifth less time (docs/performance.md). Should COPY ever quote a text, the quote character shows up in its
# bytes: that table is then hashed row by row instead.
_DELIMITER, _QUOTE = "\x02", "\x01"


async def _copied(connection: Connection, query: str) -> tuple[str, int] | None:
    """The SHA-256 of the query's texts, each followed by a newline, and how many rows; None if COPY quoted one."""
    part, count, quoted = hashlib.sha256(), 0, False

    async def hashed(chunk: bytes) -> None:
        nonlocal count, quoted
        quoted = quoted or _QUOTE.encode() in chunk
        part.update(chunk)
        count += chunk.count(b"\n")

    await connection.copy_from_query(query, output=hashed, format="csv", delimiter=_DELIMITER, quote=_QUOTE)
    return None if quoted else (part.hexdigest(), count)


@dataclass(frozen=True)
class RowDifference:
    table: str
    key: str
    kind: str  # "unsupported": only in the live ledger; "altered": differs; "missing": only in the replay

    def describe(self) -> str:
        return {
            "unsupported": f"{self.table} {self.key}: in the live ledger, supported by no event",
            "altered": f"{self.table} {self.key}: differs from what the events give",
            "missing": f"{self.table} {self.key}: the events give it, the live ledger lacks it",
        }[self.kind]


async def differences(
    connection: asyncpg.Connection, *, live: str, rebuilt: str, limit: int = 20
) -> list[RowDifference]:
    """The rows by which the two ledgers differ, each named by its table and key."""
    await connection.execute("SET LOCAL TimeZone = 'UTC'")
    found: list[RowDifference] = []
    for table, key in LEDGER_TABLES.items():
        only_live = await _keys_only_in(connection, table, key, live, rebuilt, limit)
        only_rebuilt = await _keys_only_in(connection, table, key, rebuilt, live, limit)
        for k in sorted(only_live | only_rebuilt):
            kind = "altered" if k in only_live and k in only_rebuilt else "unsupported" if k in only_live else "missing"
            found.append(RowDifference(table, k, kind))
    return found[:limit]


async def _keys_only_in(
    connection: asyncpg.Connection, table: str, key: tuple[str, ...], schema: str, other: str, limit: int
) -> set[str]:
    t = _quote(table)
    named = ", ".join(f"j->>'{k}'" for k in key)
    query = (
        f"SELECT concat_ws('/', {named}) FROM ("
        f"SELECT row_to_json(a)::jsonb AS j FROM {_quote(schema)}.{t} a "
        f"EXCEPT SELECT row_to_json(b)::jsonb FROM {_quote(other)}.{t} b) d ORDER BY 1 LIMIT {int(limit)}"
    )
    return {r[0] for r in await connection.fetch(query)}
