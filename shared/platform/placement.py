"""Where a case's events live: the one partition of the case stream its key's hash names."""

from __future__ import annotations

import uuid
from functools import lru_cache

from aiokafka.partitioner import murmur2


def case_partition(case_id: uuid.UUID | str, partitions: int) -> int:
    """The partition of the case stream that holds case ``case_id``: its key's, by Kafka's default partitioner
    (murmur2 of the key bytes, as the Java client and aiokafka place a keyed record). Every event of a case
    belongs there, and only there (docs/guarantees.md: placement)."""
    if partitions < 1:
        raise ValueError(f"a case stream has at least one partition, not {partitions}")
    return _key_partition(str(case_id), partitions)


@lru_cache(maxsize=1 << 16)
def _key_partition(key: str, partitions: int) -> int:
    # aiokafka's murmur2 is pure Python (~10 µs a key): a case's events are read one after another, so its
    # partition is computed once for most of them (docs/performance.md).
    hashed: int = murmur2(key.encode())
    return (hashed & 0x7FFFFFFF) % partitions
