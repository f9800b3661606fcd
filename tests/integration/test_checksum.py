"""The ledger's checksum streams each table through COPY, and must give the digest the row-by-row reading gives:
checkpoints signed before it, and the seal's pass (which reads row by row for the MACs), hold to that digest."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import asyncpg
import pytest

from services.registry import checksum as checksums
from services.registry.checksum import checksum

# Texts that a COPY would escape or quote, or that sit at a chunk's edge: backslashes alone and in runs, quotes,
# the delimiter and quote characters the COPY uses, control characters, line ends, and text past 64 kB.
AWKWARD = [
    "\\",
    "\\\\",
    "\\\\\\",
    'say "no"',
    "\x01",
    "\x02",
    "a\nb",
    "a\r\nb",
    "tab\there",
    "\\N",
    "\\.",
    "é ü 中文 🚗",
    "\u2028\u202e",
    "x" * 70_000 + "\\",
    "\\" * 33_000,
    "",
]


async def _awkward_ledger(connection: asyncpg.Connection) -> None:
    rows = [
        (
            uuid.uuid4(),
            f"DECL{i:06d}",
            "26-44-000001",
            uuid.uuid4(),
            "refused",
            "awkward",
            text,
            1,
            "CNSZX",
            date(2026, 3, 1),
            [text[:40], "LA1AB2CD3EF456789"],
            Decimal("12.50"),
            "CNY",
            datetime(2026, 3, 1, 8, tzinfo=UTC),
        )
        for i, text in enumerate(AWKWARD * 40)
    ]
    await connection.copy_records_to_table("exports", records=rows, schema_name="registry")
    refusals = [("licensing.cases" + text[:30], i, i, "unreadable_event") for i, text in enumerate(AWKWARD)]
    await connection.copy_records_to_table("refused_events", records=refusals, schema_name="registry")


async def _both(connection: asyncpg.Connection) -> tuple[checksums.Checksum, checksums.Checksum]:
    async with connection.transaction(readonly=True):
        streamed = await checksum(connection, "registry")
        by_row = await checksum(connection, "registry", seal_key=b"k" * 32)  # the seal's pass reads row by row
    return streamed, by_row


async def test_the_streamed_checksum_is_the_row_by_row_one_whatever_the_text(database_url: str) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        await _awkward_ledger(connection)
        streamed, by_row = await _both(connection)
    finally:
        await connection.close()
    assert streamed.rows == by_row.rows == len(AWKWARD) * 41
    assert streamed.tables == by_row.tables
    assert streamed.digest == by_row.digest


async def test_a_table_that_copy_would_quote_is_read_row_by_row(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every row's JSON holds a double quote: with it as the COPY's quote character every row comes quoted, and
    the table is hashed row by row instead, to the same digest."""
    connection = await asyncpg.connect(database_url)
    try:
        await _awkward_ledger(connection)
        streamed, _ = await _both(connection)
        monkeypatch.setattr(checksums, "_QUOTE", '"')
        quoted, by_row = await _both(connection)
    finally:
        await connection.close()
    assert quoted.digest == streamed.digest == by_row.digest
    assert quoted.rows == streamed.rows
