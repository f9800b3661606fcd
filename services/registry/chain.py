"""A hash chain over the case stream, per partition: tamper evidence for the log itself.

``head_n = SHA-256(head_{n-1} || partition || offset || SHA-256(value))``, over every record read from
the partition, whether the fold applied it, skipped it as a duplicate, or dead-lettered it as
unreadable: the chain covers the log, not the ledger. The live projector and a replay compute it the
same way, so a head stored with the ledger (or published in a checkpoint) pins the whole partition
up to that offset: altering, deleting or reordering any record before it changes the head.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

# The head of a partition before its first record.
GENESIS = bytes(32)
# A record with no value (a tombstone) is not the same as one with an empty value.
_NO_VALUE = bytes(32)


class Raw(NamedTuple):
    """A record as read from the log: its offset and its value bytes, undecoded. (A tuple: one per record read,
    made at a fifth of a frozen dataclass's cost.)"""

    offset: int
    value: bytes | None


def link(head: bytes, partition: int, offset: int, value: bytes | None) -> bytes:
    """The head after the record at ``offset`` of ``partition`` with ``value``."""
    digest = _NO_VALUE if value is None else hashlib.sha256(value).digest()
    # Fixed widths, so no two (partition, offset) pairs encode to the same bytes.
    return hashlib.sha256(head + struct.pack(">IQ", partition, offset) + digest).digest()


def extend(head: bytes, partition: int, records: Iterable[Raw]) -> bytes:
    """The head after each of ``records``, in order, starting from ``head``."""
    for record in records:
        head = link(head, partition, record.offset, record.value)
    return head


@dataclass(frozen=True)
class ChainBreak:
    """A partition whose head, recomputed from the log, differs from the one recorded for ``offset``."""

    partition: int
    offset: int  # the recorded head covers the records before this offset
    recorded: str
    recomputed: str
    since: int = 0  # the last offset at which the chain still agreed: the change lies in [since, offset)

    def describe(self) -> str:
        where = f"before offset {self.offset}" + (f", at or after offset {self.since}" if self.since else "")
        return (
            f"partition {self.partition} offset {self.offset}: chain differs "
            f"(an event was altered, deleted or reordered {where})"
        )


class Walker:
    """Recomputes one partition's chain as its records stream by, keeping its heads at wanted offsets.

    ``wanted`` maps a chain start (0, or where a ledger older than the chain began) to the offsets at
    which the head is wanted: the head at offset ``n`` covers the records from the start before ``n``.
    """

    def __init__(self, partition: int, wanted: dict[int, set[int]]) -> None:
        self.partition = partition
        self._heads = {start: GENESIS for start in wanted}
        self._pending = {start: sorted(offsets) for start, offsets in wanted.items()}
        self.found: dict[tuple[int, int], bytes] = {}

    def feed(self, record: Raw) -> None:
        self._settle(record.offset)
        for start, head in self._heads.items():
            if record.offset >= start:
                self._heads[start] = link(head, self.partition, record.offset, record.value)

    def finish(self, end: int) -> dict[tuple[int, int], bytes]:
        """The heads found, by (start, offset); an offset past ``end`` (the log's end) has none."""
        self._settle(end)
        return self.found

    def _settle(self, before: int) -> None:
        for start, offsets in self._pending.items():
            while offsets and offsets[0] <= before:
                self.found[(start, offsets.pop(0))] = self._heads[start]
