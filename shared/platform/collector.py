"""The garbage collector: what start-up made is left out of it everywhere, and a fold collects less often.

Start-up (modules, schemas, validators) is most of a service's heap. Each full collection walked all of
it, stopping the event loop, and so every query and handler, for about 100 ms while the registry folded a
backlog; frozen, the longest stop is about 20 ms.

A fold (a replay's, in a process of its own) allocates hundreds of short-lived containers per event,
nearly all freed by reference counting. With Python's default threshold (a young collection every 700
allocations net) the collector took about a quarter of its CPU: 100k events in one process folded at
10.1k events/s with the defaults, 11.4k frozen, 13.9k frozen with a young collection every 50,000.

Even so, each of those collections walked the batch in hand (5,000 records, some 67,000 containers alive), about
every 5,000 events: 4 µs an event, a tenth of the fold's CPU. What a fold allocates it frees by reference
counting, and it leaves no garbage in cycles per event (tests/integration/test_fold_garbage.py): so the threshold
is now above any batch's containers, and a collection runs only when that many more stay alive than at the last
one, once in 100k events (0.05 s in all, against 0.33 to 0.55 s). It is a safety valve against a leak, not a
schedule.

The live services keep the defaults: with a young collection every 50,000 their CPU per submission rose by a
tenth and the decision p99 at 200 submissions/s went from under 0.5 s to several seconds (docs/performance.md).
"""

from __future__ import annotations

import gc

# A young collection when 200,000 more containers are alive than at the last one (a batch in hand holds about
# 67,000); older generations as Python's defaults scale them.
FOLD_THRESHOLDS = (200_000, 20, 100)


def freeze_startup_objects() -> None:
    """Leave what start-up made out of every later collection. Once per process: frozen objects are never
    collected, and tests start many apps in one process."""
    if gc.get_freeze_count() == 0:
        gc.collect()
        gc.freeze()


def collect_less() -> None:
    """For a process that folds the log: freeze start-up, and collect young objects less often."""
    freeze_startup_objects()
    gc.set_threshold(*FOLD_THRESHOLDS)
