"""The ledger's benchmark (issue "Ledger performance"): ``python -m bench`` or ``make bench``.

A realistic case log is generated with a fixed seed into a fresh topic namespace, then the same data is
measured several ways: the registry's replay (``fold_log``), the Kafka read ceiling, the PostgreSQL COPY
ceiling, a peer built on the ``eventsourcing`` library, and the running services (live latency, lookups).
See docs/performance.md for the figures and what they mean.
"""
