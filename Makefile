# The ledger's benchmark (docs/performance.md). KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL point it at an existing
# broker and database; unset, deploy/local/kafka.sh and deploy/local/postgres.sh are started (scripts/lib.sh).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BENCH_ARGS ?=

.PHONY: bench bench-quick bench-live bench-live-10 bench-5m bench-env faults faults-short

# The project's environment, with its bench extra (the peer's eventsourcing, pyinstrument): scripts/lib.sh.
bench-env:
	@bash -c 'source scripts/lib.sh && ensure_venv'

# 100k and 1M events, the peer at 100k, the live phase; about 10 minutes on the 2-core dev box.
bench: bench-env
	@bash -c 'source scripts/lib.sh && ensure_infra && exec $(PY) -m bench --profile $(BENCH_ARGS)'

# 100k events only, a shorter live phase: about 2 minutes.
bench-quick: bench-env
	@bash -c 'source scripts/lib.sh && ensure_infra && exec $(PY) -m bench --sizes 100k --seconds 10 \
		--query-seconds 5 $(BENCH_ARGS)'

# The live phase alone (200 submissions/s and 100 exports/s for 15 s, one registry), to compare the live path's
# CPU per submission between two commits: about 1 minute.
bench-live: bench-env
	@bash -c 'source scripts/lib.sh && ensure_infra && exec $(PY) -m bench --sizes "" --seconds 15 \
		--query-seconds 5 --registries 1 $(BENCH_ARGS)'

# The live phase ten times, one after the other: the issue's "row p99 within 250 ms in 9 of 10 runs" is judged, and
# each run's p99s are printed. About 7 minutes.
bench-live-10: bench-env
	@bash -c 'source scripts/lib.sh && ensure_infra && exec $(PY) -m bench --sizes "" --seconds 15 \
		--query-seconds 5 --registries 1 --live-runs 10 $(BENCH_ARGS)'

# The large size as well (several GB in Kafka while it runs; deleted at the end).
bench-5m: bench-env
	@bash -c 'source scripts/lib.sh && ensure_infra && exec $(PY) -m bench --sizes 100k,1M,5M $(BENCH_ARGS)'

# The fault test on the three-node cluster (tests/faults/, deploy/local/kafka-cluster.sh): the long version, two
# rounds of every fault under about 3,000 commands, 7 minutes on the 2-core dev box; its figures go to
# .run/faults-report.json (and docs/guarantees.md). LEDGER_FAULTS_SEED=<n> replays a schedule. It starts and stops
# its own cluster (ports 29092-29094) and PostgreSQL (54339): the shared broker and database are not touched.
faults: bench-env
	@bash -c 'source scripts/lib.sh && LEDGER_FAULTS=long exec $(PY) -m pytest -q -s -p no:cacheprovider \
		tests/faults/test_faults.py'

# The short version: three faults, a few hundred commands, with the other cluster tests (./scripts/test runs it too).
faults-short: bench-env
	@bash -c 'source scripts/lib.sh && LEDGER_FAULTS=short exec $(PY) -m pytest -q -s -p no:cacheprovider tests/faults'
