"""Old event versions read as today's: small pure functions, one per version step.

An event keeps the schema version it was written in, forever: the log is never rewritten. Readers
bring each old payload to the current version with ``upcast_<type>_v<N>_v<N+1>(payload) -> payload``,
chained step by step, before the typed model validates it.

History of the contract:
- ApplicationSubmitted v2 added ``channel`` (HTTP portal or agency intake); v1 events all came from
  the HTTP portal, the only channel then.
- ExportRecorded v2 carries ``vins`` as a list; v1 carried them as one comma-separated string.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Payload = dict[str, Any]
Upcaster = Callable[[Payload], Payload]


def upcast_application_submitted_v1_v2(payload: Payload) -> Payload:
    return {**payload, "channel": "http"}


def upcast_export_recorded_v1_v2(payload: Payload) -> Payload:
    vins = payload.get("vins", "")
    listed = [v.strip() for v in vins.split(",") if v.strip()] if isinstance(vins, str) else vins
    return {**payload, "vins": listed}


UPCASTERS: dict[tuple[str, int], Upcaster] = {
    ("ApplicationSubmitted", 1): upcast_application_submitted_v1_v2,
    ("ExportRecorded", 1): upcast_export_recorded_v1_v2,
}


def upcast(kind: str, version: int, payload: Payload, current: int) -> Payload | None:
    """``payload`` of ``kind`` brought from ``version`` to ``current``, or None if a step is missing."""
    while version < current:
        step = UPCASTERS.get((kind, version))
        if step is None:
            return None
        payload, version = step(payload), version + 1
    return payload if version == current else None
