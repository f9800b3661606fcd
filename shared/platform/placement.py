"""Where a case's events live: the one partition of the case stream its key's hash names."""

from __future__ import annotations

import uuid

from aiokafka.partitioner import murmur2


def case_partition(case_id: uuid.UUID | str, partitions: int) -> int:
    """The partition of the case stream that holds case ``case_id``: its key's, by Kafka's default partitioner
    (murmur2 of the key bytes, as the Java client and aiokafka place a keyed record). Every event of a case
    belongs there, and only there (docs/guarantees.md: placement)."""
    hashed: int = murmur2(str(case_id).encode())
    return (hashed & 0x7FFFFFFF) % partitions
