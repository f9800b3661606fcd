"""The garbage collector, set for processes that make many short-lived objects for every event they read.

Decoding an event, folding it and writing its rows allocate hundreds of container objects, nearly all freed
by reference counting. With Python's default threshold (a young collection every 700 allocations net) the
collector ran thousands of times per second, and each older collection walked every object that had
survived so far: measured on the fold of 100k events (docs/performance.md), a quarter of the CPU time.
"""

from __future__ import annotations

import gc

# A young collection every 50,000 allocations net; older generations as Python's defaults scale them.
THRESHOLDS = (50_000, 20, 100)


def collect_less() -> None:
    """Leave what start-up made (modules, schemas, validators: most of the heap) out of every later garbage
    collection, and collect young objects less often. Freezes once per process: frozen objects are never
    collected, and tests start many apps in one process."""
    if gc.get_freeze_count() == 0:
        gc.collect()
        gc.freeze()
    gc.set_threshold(*THRESHOLDS)
