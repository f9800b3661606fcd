"""The platform: how a service of the ledger runs (its runtime, HTTP edge, access, signing and trust,
database, Kafka administration, metrics, logs). Services build on it; outside clients never need it."""
