"""The ledger's seal: what the fold wrote, summed under a key the database never sees, so that a row changed
by SQL is noticed by the registry itself before it builds on it.

Each row of the ledger (the tables of the checksum) has a MAC: HMAC-SHA256, under a key derived from the
registry's signing key, of its table and its text (PostgreSQL's ``row_to_json`` under UTC, as the
checksum reads it). The fold keeps, with the partitions' offsets, sums (mod 2^256) of the MACs of the rows it
has written, adding each new row's and taking away each replaced one's, in the batch's transaction (a batch of
several partitions keeps its change with the first of them): only the total over the partitions counts. At
each checkpoint (and while the ledger is flagged, every few seconds) the registry sums the MACs of every row
in the same snapshot: the two sums differ if any row was inserted, changed or deleted by anyone but the fold,
and no one without the key can make them agree again. The registry then
stops folding and admitting (503) until ``licensectl replay --repair`` rebuilds the ledger from the log
and seals it anew.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from shared.platform.db import Connection

MODULUS = 1 << 256
SEALED = "SELECT coalesce(array_agg(seal), ARRAY[]::bytea[]) FROM {schema}partition_offsets WHERE topic = $1"
RESEAL = """
UPDATE {schema}partition_offsets SET seal = CASE WHEN partition = (
    SELECT min(partition) FROM {schema}partition_offsets WHERE topic = $1) THEN $2::bytea ELSE $3::bytea END
WHERE topic = $1
"""


def key_of(signing_key: Ed25519PrivateKey) -> bytes:
    """The seal's key, derived from the registry's signing key (so no other secret is kept)."""
    raw = signing_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"ledger seal v1").derive(raw)


def mac(key: bytes, table: str, row: str) -> int:
    """One row's MAC, as a number to sum."""
    return int.from_bytes(hmac.new(key, f"{table}\n{row}".encode(), hashlib.sha256).digest(), "big")


def total(key: bytes, rows: Iterable[tuple[str, str]]) -> int:
    """The sum of the MACs of ``rows`` (table, text), mod 2^256."""
    return sum(mac(key, table, row) for table, row in rows) % MODULUS


def as_bytes(value: int) -> bytes:
    return (value % MODULUS).to_bytes(32, "big")


def as_int(value: bytes | None) -> int:
    return int.from_bytes(value, "big") if value else 0


def _in(schema: str | None) -> str:
    return "" if schema is None else '"' + schema.replace('"', '""') + '".'


async def stored(connection: Connection, topic: str, schema: str | None = None) -> int:
    """The sum of the seals the fold keeps with each partition's offsets (in the caller's snapshot)."""
    seals: list[bytes | None] = await connection.fetchval(SEALED.format(schema=_in(schema)), topic)
    return sum(as_int(s) for s in seals) % MODULUS


async def reseal(connection: Connection, topic: str, value: int, schema: str | None = None) -> None:
    """Store ``value`` as the whole ledger's seal (a rebuilt ledger, sealed as a whole)."""
    await connection.execute(RESEAL.format(schema=_in(schema)), topic, as_bytes(value), as_bytes(0))
