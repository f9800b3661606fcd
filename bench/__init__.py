"""The ledger's benchmark (issue "Ledger performance"): ``python -m bench`` or ``make bench``.

A realistic case log is generated with a fixed seed into a fresh topic namespace, then the same data is
measured several ways: the registry's replay (``fold_log``), the Kafka read ceiling, the PostgreSQL COPY
ceiling, a peer built on the ``eventsourcing`` library, and the running services (live latency, lookups).
See docs/performance.md for the figures and what they mean.
"""

import os
from pathlib import Path


def machine_cpu() -> tuple[float, float]:
    """CPU seconds the whole machine has been busy so far, and in all, over all its cores (``/proc/stat``;
    busy is all but idle and iowait). Nothing else runs during a bench, so the difference is what it cost."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK"), sum(fields) / os.sysconf("SC_CLK_TCK")
