"""``python -m bench [--sizes 100k,1M] [--no-live] [--profile]``: generate, measure, print, write results/*.json.

Every size gets a fresh topic namespace and fresh schemas; they are deleted at the end of the run
(``--keep`` keeps them). Each measurement runs in a process of its own (``bench.worker``) so its peak RSS
is its own. KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL say where to run (the Makefile sets them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient

from bench.generate import BENCH_ROOT, SEED, publish, trust_bench_key
from bench.live import quiet_machine, run_live
from shared.contract import signatures
from shared.contract.topics import Topics
from shared.platform import trust
from shared.platform.db import migrate_async
from shared.platform.kafka_access import DEFAULT_BOOTSTRAP, KafkaConnection
from shared.platform.kafka_admin import ensure_topics
from shared.platform.settings import DEFAULT_DATABASE_URL

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results"
"""Where a run writes its JSON, profile and service logs unless ``--results`` says otherwise (gitignored)."""
# The issue "Ledger performance, round two" (docs/performance.md): one run, this machine.
TARGETS = {
    "replay_events_per_s": 60_000,  # from a trusted checkpoint
    "replay_verified_events_per_s": 30_000,  # every signature checked
    "replay_vs_slower_ceiling": 0.6,
    "replay_vs_peer": 10.0,
    "linearity": 0.9,
    "replay_rss_mb": 300,
    "live_p99_ms": 250,
    "live_runs_met": 0.9,  # the row p99 within its target in at least 9 runs of 10 (``--live-runs``)
    "decision_p99_ms": 500,
    "lookup_p99_ms": 5,
}


def parse_size(text: str) -> int:
    text = text.strip().lower()
    factor = {"k": 1_000, "m": 1_000_000}.get(text[-1], 1)
    return int(float(text.rstrip("km")) * factor)


def shown(path: Path) -> str:
    """``path`` as the run prints it: relative to the repository when it lies inside it."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def label(size: int) -> str:
    return f"{size // 1_000_000}M" if size % 1_000_000 == 0 else f"{size // 1_000}k"


def worker(kind: str, args: dict[str, Any]) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, "-m", "bench.worker", kind, json.dumps(args)], cwd=ROOT, capture_output=True, text=True
    )
    if completed.returncode != 0:
        print(completed.stderr[-4000:], file=sys.stderr)
        return {"error": completed.stderr.strip().splitlines()[-1] if completed.stderr.strip() else "failed"}
    answer: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return answer


# A measurement of a few seconds moves with whatever else the box does then (runs of the same code at 100k have
# spread 3.0-3.5 s): at sizes up to this, the replay from a checkpoint and the COPY ceiling it is set against run
# ``REPEATS`` times each, one after the other, and the median run is the figure; every run is kept in ``runs``.
REPEATED_UP_TO = 100_000
REPEATS = 3


# Each timed run of a replay, a ceiling or the peer starts once the cores and disks are quiet, as the live load does:
# what the run before leaves behind (PostgreSQL writing out its rows, autovacuum analysing its tables, the broker
# flushing) would otherwise be timed as this run's. At most this long (and never longer than ``--quiet-seconds``).
RUN_QUIET_SECONDS = 30.0


async def timed(kind: str, args: dict[str, Any], quiet_seconds: float) -> dict[str, Any]:
    """Worker ``kind`` run once the machine is quiet (``quiet_machine``); how long it waited in ``quiet_before``."""
    quiet = await quiet_machine(window=1.0, limit=min(quiet_seconds, RUN_QUIET_SECONDS))
    answer = await asyncio.to_thread(worker, kind, args)
    return {**answer, "quiet_before": quiet}


async def median_run(
    kind: str, args: dict[str, Any], times: int, rate: Callable[[dict[str, Any]], float], quiet_seconds: float
) -> dict[str, Any]:
    """Worker ``kind`` run ``times`` times: the run whose ``rate`` is the median, with every run's in ``runs``."""
    runs = [await timed(kind, args, quiet_seconds) for _ in range(times)]
    for run in runs:
        if "error" in run:
            return run
    ordered = sorted(runs, key=rate)
    waits = [run["quiet_before"]["waited_s"] for run in runs]
    return {**ordered[len(ordered) // 2], "runs": [rate(run) for run in runs], "quiet_waits": waits}


def machine() -> dict[str, Any]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem_kb = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
    )
    return {
        "nproc": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "cpu": model,
        "python": platform.python_version(),
    }


async def drop(bootstrap: str, database_url: str, topics: list[str], schemas: list[str]) -> None:
    if topics:
        admin = AIOKafkaAdminClient(**KafkaConnection(bootstrap_servers=bootstrap).options())
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            doomed = [t for t in topics if t in existing]
            if doomed:
                await admin.delete_topics(doomed)
        finally:
            await admin.close()
    connection = await asyncpg.connect(database_url)
    try:
        for schema in schemas:
            await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await connection.close()


async def measure_size(size: int, args: argparse.Namespace, bootstrap: str, url: str, run_id: str) -> dict[str, Any]:
    namespace = f"bench-{run_id}-{label(size).lower()}"
    topics = Topics(namespace)
    schema = f"bench_{run_id}_{label(size).lower()}"
    schemas = [f"{schema}_{part}" for part in ("ledger", "scratch", "peer", "vouched", "shared", "profile")]
    result: dict[str, Any] = {"size": size, "namespace": namespace}
    args.results.mkdir(parents=True, exist_ok=True)
    await ensure_topics(KafkaConnection(bootstrap_servers=bootstrap), topics)
    try:
        await trust.publish(KafkaConnection(bootstrap_servers=bootstrap), topics.trust, trust_bench_key(), BENCH_ROOT)
        print(f"[{label(size)}] generating {size:,} events into {topics.cases} ...", flush=True)
        generated = await publish(bootstrap, topics.cases, size, seed=args.seed)
        result["generate"] = {
            "seconds": generated.seconds,
            "events_per_s": size / generated.seconds,
            "bytes": generated.bytes,
            "types": generated.counts,
        }
        end = {str(p): o for p, o in generated.end_offsets.items()}
        base = {"bootstrap": bootstrap, "topic": topics.cases, "end": end, "database_url": url}
        print(f"[{label(size)}] kafka read ceiling ...", flush=True)
        quiet = args.quiet_seconds
        result["kafka_read"] = await timed("kafka_read", base, quiet)
        print(f"[{label(size)}] replay, one process (fold_log) ...", flush=True)
        result["replay"] = await timed("replay", {**base, "schema": schemas[0]}, quiet)
        if args.registries > 1:
            print(f"[{label(size)}] replay, {args.registries} processes sharing the partitions ...", flush=True)
            shared = {**base, "schema": schemas[4], "processes": args.registries}
            result["replay_shared"] = await timed("replay_processes", shared, quiet)
        print(f"[{label(size)}] signature ceiling ...", flush=True)
        # Every record's signature checked and nothing else, over as many processes as the replay shares the log
        # among: what a replay checking every signature cannot beat.
        checking = {**base, "processes": max(1, args.registries)}
        result["signatures"] = await timed("signature_checks", checking, quiet)
        print(f"[{label(size)}] replay from a trusted checkpoint (--trust-checkpoints) ...", flush=True)
        anchored = {**base, "live_schema": schemas[0], "checkpoints_topic": topics.checkpoints}
        times = REPEATS if size <= REPEATED_UP_TO else 1
        result["replay_checkpoint"] = await median_run(
            "replay_checkpoint", anchored | {"processes": args.registries}, times, lambda r: r["events_per_s"], quiet
        )
        print(f"[{label(size)}] COPY ceiling ...", flush=True)
        # The same number of rows as the replay wrote (every table), as the issue defines the write ceiling.
        rows = sum(result["replay"]["rows"].values())
        # As many connections as the replay's processes: the ceiling of the same parallelism.
        copying = {**base, "schema": schemas[1], "rows": rows, "connections": max(1, args.registries)}
        result["copy"] = await median_run("copy", copying, times, lambda r: r["rows_per_s"], quiet)
        result["copy"]["events_per_s"] = size / result["copy"]["seconds"]  # the log's size over the same rows
        if size <= args.peer_max_size:
            print(f"[{label(size)}] peer (eventsourcing, at most {args.peer_seconds:.0f} s) ...", flush=True)
            connection = await asyncpg.connect(url)
            await connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{schemas[2]}"')
            await connection.close()
            result["peer"] = await timed("peer", {**base, "schema": schemas[2], "seconds": args.peer_seconds}, quiet)
        if args.profile and size == min(args.sizes):
            # The fold as a replay from a checkpoint does it, in one process, without and then with the profiler:
            # its CPU per event is what is left to cut, and the profile says where it goes.
            print(f"[{label(size)}] replay again, one process, no signature checked ...", flush=True)
            plain = {**base, "schema": schemas[3], "vouched": True}
            result["replay_vouched"] = await timed("replay", plain, quiet)
            print(f"[{label(size)}] replay again under pyinstrument ...", flush=True)
            path = args.results / f"profile-replay-{run_id}-{label(size)}.txt"
            # The fold as a replay from a checkpoint does it (no signature checked): what is left to speed up.
            profiled = {**base, "schema": schemas[5], "profile": str(path), "vouched": True}
            result["profile"] = worker("replay", profiled)
            result["profile"]["file"] = shown(path)
    finally:
        if not args.keep:
            await drop(bootstrap, url, [s.name for s in topics.specs()], schemas)
    return result


def quiet_waits(entry: dict[str, Any]) -> list[float]:
    """How long each timed run of a size waited for quiet cores and disks (``timed``)."""
    waits: list[float] = []
    for measured in entry.values():
        if isinstance(measured, dict) and "quiet_waits" in measured:
            waits += measured["quiet_waits"]
        elif isinstance(measured, dict) and "quiet_before" in measured:
            waits.append(measured["quiet_before"]["waited_s"])
    return waits


def best_replay(entry: dict[str, Any]) -> float | None:
    """The fastest replay of a size: one process, several sharing the partitions (as licensectl replay), or
    several relying on a trusted checkpoint (licensectl replay --trust-checkpoints)."""
    rates = [entry.get(k, {}).get("events_per_s") for k in ("replay", "replay_shared", "replay_checkpoint")]
    found = [r for r in rates if r]
    return max(found) if found else None


def verified_replay(entry: dict[str, Any]) -> float | None:
    """The fastest replay of a size that checked every record's signature: one process, or several sharing
    the partitions (licensectl replay without --trust-checkpoints)."""
    rates = [entry.get(k, {}).get("events_per_s") for k in ("replay", "replay_shared")]
    found = [r for r in rates if r]
    return max(found) if found else None


def slower_ceiling(entry: dict[str, Any]) -> float | None:
    """The slower of a size's Kafka read and COPY ceilings, events/s: what no replay of that size can beat."""
    found = [c for c in (entry.get(k, {}).get("events_per_s") for k in ("kafka_read", "copy")) if c]
    return min(found) if found else None


def ratios(result: dict[str, Any]) -> None:
    for entry in result["sizes"]:
        replay = best_replay(entry)
        if not replay:
            continue
        kafka = entry.get("kafka_read", {}).get("events_per_s")
        copy = entry.get("copy", {}).get("events_per_s")
        peer = entry.get("peer", {}).get("events_per_s")
        r: dict[str, float] = {}
        if kafka:
            r["replay_vs_kafka_read"] = replay / kafka
        if copy:
            r["replay_vs_copy"] = replay / copy
        if kafka and copy and (ceiling := slower_ceiling(entry)):
            r["replay_vs_slower_ceiling"] = replay / ceiling
        if peer:
            r["replay_vs_peer"] = replay / peer
        verified, checks = verified_replay(entry), entry.get("signatures", {}).get("events_per_s")
        if verified and checks:
            r["verified_replay_vs_signature_ceiling"] = verified / checks
        entry["ratios"] = r
    rates = [(e["size"], rate) for e in result["sizes"] if (rate := best_replay(e))]
    if len(rates) >= 2:
        result["linearity"] = rates[-1][1] / rates[0][1]


def verdicts(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}

    def judge(
        name: str, value: float | None, target: float, higher_is_better: bool = True, ceiling: float | None = None
    ) -> None:
        if value is None:
            out[name] = {"value": None, "target": target, "met": None, "ceiling": ceiling}
            return
        met = value >= target if higher_is_better else value <= target
        out[name] = {"value": value, "target": target, "met": met, "ceiling": ceiling}

    sizes = result["sizes"]
    # The replay targets are judged at the slowest size; their ceilings are the lowest any size measured.
    judge(
        "replay_events_per_s (min over sizes)",
        min((rate for e in sizes if (rate := best_replay(e))), default=None),
        TARGETS["replay_events_per_s"],
        ceiling=min((c for e in sizes if (c := slower_ceiling(e))), default=None),
    )
    judge(
        "replay verifying every signature, events/s (min over sizes)",
        min((rate for e in sizes if (rate := verified_replay(e))), default=None),
        TARGETS["replay_verified_events_per_s"],
        ceiling=min((c for e in sizes if (c := e.get("signatures", {}).get("events_per_s"))), default=None),
    )
    judge(
        "replay / slower ceiling (min)",
        min(
            (
                e["ratios"]["replay_vs_slower_ceiling"]
                for e in sizes
                if "replay_vs_slower_ceiling" in e.get("ratios", {})
            ),
            default=None,
        ),
        TARGETS["replay_vs_slower_ceiling"],
    )
    judge(
        "replay / peer",
        next((e["ratios"]["replay_vs_peer"] for e in sizes if "replay_vs_peer" in e.get("ratios", {})), None),
        TARGETS["replay_vs_peer"],
    )
    judge("linearity (events/s largest / smallest)", result.get("linearity"), TARGETS["linearity"])
    judge(
        "replay peak RSS MB (max)",
        max(
            (
                e[k]["peak_rss_mb"]
                for e in sizes
                for k in ("replay", "replay_shared", "replay_checkpoint")
                if "peak_rss_mb" in e.get(k, {})
            ),
            default=None,
        ),
        TARGETS["replay_rss_mb"],
        higher_is_better=False,
    )
    live = result.get("live") or {}
    judge(
        "live submission-to-ledger p99 ms",
        (live.get("to_ledger_row") or {}).get("p99_ms"),
        TARGETS["live_p99_ms"],
        higher_is_better=False,
    )
    runs = result.get("live_runs") or []
    if len(runs) > 1:
        within = [r["row_ms"] is not None and r["row_ms"] <= TARGETS["live_p99_ms"] for r in runs]
        judge(
            f"live runs with submission-to-ledger p99 within {TARGETS['live_p99_ms']} ms, share of {len(runs)}",
            sum(within) / len(runs),
            TARGETS["live_runs_met"],
        )
    judge(
        "live submission-to-decision p99 ms",
        (live.get("to_decision_in_ledger") or {}).get("p99_ms"),
        TARGETS["decision_p99_ms"],
        higher_is_better=False,
    )
    judge(
        "lookup p99 ms at 500 rps",
        ((live.get("lookups") or {}).get("latency") or {}).get("p99_ms"),
        TARGETS["lookup_p99_ms"],
        higher_is_better=False,
    )
    judge(
        "registry peak RSS MB (live)",
        (live.get("peak_rss_mb") or {}).get("registry"),
        TARGETS["replay_rss_mb"],
        higher_is_better=False,
    )
    return out


def live_p99s(live: dict[str, Any]) -> dict[str, float | None]:
    """One live run's p99s: submission to row and to decision, and the lookups'; and how late the load generator
    sent its latest request (submissions, exports or lookups): a pause of its own shows there, not as the
    system's latency (``bench/live.py``, ``steady_generator``)."""
    late = [
        ((live.get(load) or {}).get("client_lateness") or {}).get("max_ms")
        for load in ("submissions", "exports", "lookups")
    ]
    return {
        "row_ms": (live.get("to_ledger_row") or {}).get("p99_ms"),
        "decision_ms": (live.get("to_decision_in_ledger") or {}).get("p99_ms"),
        "lookup_ms": ((live.get("lookups") or {}).get("latency") or {}).get("p99_ms"),
        "late_ms": max((v for v in late if v is not None), default=None),
    }


def fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def table(result: dict[str, Any]) -> str:
    lines = [
        "| figure | " + " | ".join(label(e["size"]) for e in result["sizes"]) + " |",
        "| --- | " + " | ".join("---:" for _ in result["sizes"]) + " |",
    ]

    def row(name: str, get: Any, digits: int = 0) -> None:
        values = []
        for e in result["sizes"]:
            try:
                values.append(fmt(get(e), digits))
            except (KeyError, TypeError, ValueError):  # not measured at this size (or by the run that wrote it)
                values.append("-")
        lines.append(f"| {name} | " + " | ".join(values) + " |")

    row("generate, events/s", lambda e: e["generate"]["events_per_s"])
    row("log size, MB", lambda e: e["generate"]["bytes"] / 1e6)
    row("replay, one process (fold_log), events/s", lambda e: e["replay"]["events_per_s"])
    row("replay wall time, s", lambda e: e["replay"]["seconds"], 1)
    row("replay peak RSS, MB", lambda e: e["replay"]["peak_rss_mb"])

    def cpu_per_event(replay: str) -> Callable[[dict[str, Any]], str]:
        return lambda e: "{fold_process:.0f} / {machine:.0f}".format(**e[replay]["cpu_us_per_event"])

    row("replay, one process: CPU per event, fold process / whole machine, µs", cpu_per_event("replay"))
    row(
        "replay, one process, no signature checked (as from a checkpoint), events/s",
        lambda e: e["replay_vouched"]["events_per_s"],
    )
    row("the same: CPU per event, fold process / whole machine, µs", cpu_per_event("replay_vouched"))
    row(
        "**replay, N processes sharing the partitions (licensectl replay), events/s**",
        lambda e: e["replay_shared"]["events_per_s"],
    )
    row("replay, N processes: wall time, s", lambda e: e["replay_shared"]["seconds"], 1)
    row("replay, N processes: peak RSS of each, MB", lambda e: e["replay_shared"]["peak_rss_mb"])
    row("N processes ÷ one", lambda e: e["replay_shared"]["events_per_s"] / e["replay"]["events_per_s"], 2)
    row(
        "**replay from a trusted checkpoint, N processes (--trust-checkpoints), events/s**",
        lambda e: e["replay_checkpoint"]["events_per_s"],
    )
    row(
        "replay from a checkpoint: fold / whole replay with checksums, s",
        lambda e: f"{e['replay_checkpoint']['fold_seconds']:.1f} / {e['replay_checkpoint']['seconds']:.1f}",
    )
    row(
        "the same, each run (the median counts), events/s",
        lambda e: " / ".join(fmt(r) for r in e["replay_checkpoint"]["runs"]),
    )
    row("replay from a checkpoint: peak RSS, MB", lambda e: e["replay_checkpoint"]["peak_rss_mb"])
    row("Kafka read ceiling, events/s", lambda e: e["kafka_read"]["events_per_s"])
    row(
        "signature ceiling (N processes, each record's Ed25519 check only), events/s",
        lambda e: e["signatures"]["events_per_s"],
    )
    row("signature ceiling: CPU per event, µs", lambda e: e["signatures"]["cpu_us_per_event"])
    row("COPY ceiling (N connections, only the COPYs timed), rows/s", lambda e: e["copy"]["rows_per_s"])
    row("COPY ceiling: the replay's rows, as events/s of the log", lambda e: e["copy"]["events_per_s"])
    row("COPY ceiling, each run (the median counts), rows/s", lambda e: " / ".join(fmt(r) for r in e["copy"]["runs"]))
    row("peer (eventsourcing), events/s", lambda e: e["peer"]["events_per_s"])
    row("peer events folded (of log)", lambda e: f"{e['peer']['events']:,} of {e['peer']['of']:,}")
    row("peer peak RSS, MB", lambda e: e["peer"]["peak_rss_mb"])
    row("replay ÷ Kafka read", lambda e: e["ratios"]["replay_vs_kafka_read"], 3)
    row("replay ÷ COPY", lambda e: e["ratios"]["replay_vs_copy"], 3)
    row("replay ÷ slower ceiling", lambda e: e["ratios"]["replay_vs_slower_ceiling"], 3)
    row("replay ÷ peer", lambda e: e["ratios"]["replay_vs_peer"], 2)
    row(
        "replay checking every signature ÷ signature ceiling",
        lambda e: e["ratios"]["verified_replay_vs_signature_ceiling"],
        3,
    )
    row("ledger rows written", lambda e: sum(e["replay"]["rows"].values()))
    row("waited before the timed runs for quiet cores and disks, s (longest)", lambda e: max(quiet_waits(e)), 1)
    out = "\n".join(lines)
    live = result.get("live")
    if live and "error" not in live:
        s, q = live["submissions"], live.get("lookups") or {}
        out += "\n\n| live figure | value |\n| --- | ---: |\n"
        out += f"| offered / achieved submissions/s | {s['offered_per_s']:.0f} / {s['achieved_per_s']:.0f} |\n"
        for name, key in (
            ("submission → ledger row", "to_ledger_row"),
            ("submission → decision in ledger", "to_decision_in_ledger"),
        ):
            d = live[key]
            out += f"| {name} p50 / p95 / p99, ms | {fmt(d['p50_ms'])} / {fmt(d['p95_ms'])} / {fmt(d['p99_ms'])} |\n"
        out += f"| POST /applications p50 / p99, ms | {fmt(s['post']['p50_ms'], 1)} / {fmt(s['post']['p99_ms'], 1)} |\n"
        x, xr = live.get("exports") or {}, live.get("export_to_ledger_row") or {}
        if x:
            rates = f"{x['offered_per_s']:.0f} / {x['achieved_per_s']:.0f}"
            out += f"| offered / achieved exports/s (Kafka intake) | {rates} |\n"
            out += f"| export → ledger row p50 / p95 / p99, ms | {fmt(xr.get('p50_ms'))} / {fmt(xr.get('p95_ms'))} / "
            out += f"{fmt(xr.get('p99_ms'))} |\n"
            outcomes = ", ".join(f"{n} {k}" for k, n in sorted(live.get("export_outcomes", {}).items())) or "none"
            out += f"| exports judged by the ledger (not seen: {live.get('exports_missing', 0)}) | {outcomes} |\n"
        if q:
            out += (
                f"| GET /licenses/{{n}} at {q['offered_per_s']:.0f} rps (achieved {q['achieved_per_s']:.0f}) "
                f"p50 / p99, ms | {fmt(q['latency']['p50_ms'], 1)} / {fmt(q['latency']['p99_ms'], 1)} |\n"
            )
        cpu = live.get("cpu_ms_per_submission") or {}
        if cpu:
            out += (
                "| CPU per submission applications / review / registry, ms | "
                + " / ".join(f"{cpu.get(n, float('nan')):.2f}" for n in ("applications", "review", "registry"))
                + " |\n"
            )
        if live.get("machine_cpu_busy") is not None:
            out += f"| machine CPU busy while the load ran (all cores) | {live['machine_cpu_busy']:.0%} |\n"
        if quiet := live.get("quiet_before_load"):
            out += (
                f"| waited before the load for cores under {quiet['busy_below']:.0%} busy and disk writes under "
                f"{quiet['writes_below_mb_s']:g} MB/s, s | {quiet['waited_s']:.1f} (then {quiet['busy']:.0%}, "
                f"{quiet['writes_mb_s']:.1f} MB/s) |\n"
            )
        if q.get("registry_cpu_ms_per_lookup") is not None:
            out += f"| registry CPU per lookup, ms | {q['registry_cpu_ms_per_lookup']:.2f} |\n"
        rss = live["peak_rss_mb"]
        out += (
            "| peak RSS applications / review / registry, MB | "
            + " / ".join(f"{rss.get(n, float('nan')):.0f}" for n in ("applications", "review", "registry"))
            + " |\n"
        )
        exports_errors = (live.get("exports") or {}).get("errors") or 0
        errors = f"{s['errors'] or 0} / {exports_errors} / {q.get('errors') or 0}"
        out += f"| errors (submissions / exports / lookups) | {errors} |"
    shared = result.get("live_shared")
    if live and "error" not in live and shared and "error" not in shared:
        n = shared["registries"]
        out += f"\n\n| live, 1 registry against {n} sharing the partitions | 1 | {n} |"
        out += "\n| --- | ---: | ---: |"
        figures: list[tuple[str, Callable[[dict[str, Any]], float]]] = [
            ("submission → ledger row p99, ms", lambda r: r["to_ledger_row"]["p99_ms"]),
            ("submission → decision p99, ms", lambda r: r["to_decision_in_ledger"]["p99_ms"]),
            ("export → ledger row p99, ms", lambda r: r["export_to_ledger_row"]["p99_ms"]),
            ("lookup p99, ms", lambda r: r["lookups"]["latency"]["p99_ms"]),
            ("registry CPU per lookup (all instances), ms", lambda r: r["lookups"]["registry_cpu_ms_per_lookup"]),
            (
                "registry CPU per submission (all instances), ms",
                lambda r: sum(v for k, v in r["cpu_ms_per_submission"].items() if k.startswith("registry")),
            ),
        ]
        for name, get in figures:
            try:
                out += f"\n| {name} | {get(live):.1f} | {get(shared):.1f} |"
            except (KeyError, TypeError):
                out += f"\n| {name} | - | - |"
    runs = result.get("live_runs") or []
    if len(runs) > 1:
        out += "\n\n| live run | row p99, ms | decision p99, ms | lookup p99, ms | load generator late, max ms |"
        out += "\n| --- | ---: | ---: | ---: | ---: |"
        for n, r in enumerate(runs, 1):
            late = fmt(r.get("late_ms"), 1)
            out += f"\n| {n} | {fmt(r['row_ms'])} | {fmt(r['decision_ms'])} | {fmt(r['lookup_ms'], 1)} | {late} |"
    # Where a target has a ceiling measured in the same run (the slower of the Kafka read and the COPY, or the
    # signature checks alone), it is printed beside it: a target above its ceiling no code can meet on this machine.
    out += "\n\n| target | value | met | ceiling on this machine |\n| --- | ---: | --- | ---: |\n"
    for name, v in result["targets"].items():
        met = {True: "yes", False: "**no**", None: "not measured"}[v["met"]]
        value = fmt(v["value"], 2 if isinstance(v["value"], float) and v["value"] < 100 else 0)
        target = fmt(v["target"], 1 if isinstance(v["target"], float) and v["target"] < 10 else 0)
        out += f"| {name} (target {target}) | {value} | {met} | {fmt(v.get('ceiling'))} |\n"
    return out


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", DEFAULT_BOOTSTRAP)
    url = os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    run_id = time.strftime("%m%d%H%M%S")
    result: dict[str, Any] = {
        "run_id": run_id,
        "machine": machine(),
        "seed": args.seed,
        "command": " ".join(["python -m bench", *sys.argv[1:]]),
        "sizes": [],
    }
    started = time.perf_counter()
    # The run pins its own root key: every fold, in this process, in a worker or in a service, trusts only the
    # statements the run publishes on its own trust topics.
    os.environ["LEDGER_TRUST_ROOT_KEYS"] = signatures.public_b64(BENCH_ROOT.public_key())
    await migrate_async("access", url)
    for size in args.sizes:
        result["sizes"].append(await measure_size(size, args, bootstrap, url, run_id))
    # One registry, then (unless --registries 1) several sharing the partitions, under the same load.
    # The one-registry phase ``--live-runs`` times: its first run is ``live``, and every run's p99s ``live_runs``.
    phases = [("live", 1, "")] + [(f"live_{n}", 1, f"run{n}") for n in range(2, args.live_runs + 1)]
    phases += [("live_shared", args.registries, str(args.registries))] if args.registries > 1 else []
    for key, registries, suffix in phases if args.live else []:
        print(f"[{key}] {registries} registry instance(s), {args.rate:.0f} submissions/s, then lookups ...", flush=True)
        namespace = f"bench-{run_id}-live{suffix}"
        try:
            result[key] = await run_live(
                bootstrap=bootstrap,
                database_url=url,
                namespace=namespace,
                logs=args.results / f"logs-{run_id}{'-' + suffix if suffix else ''}",
                rate=args.rate,
                seconds=args.seconds,
                query_rate=args.query_rate,
                query_seconds=args.query_seconds,
                export_rate=args.export_rate,
                registries=registries,
                quiet_seconds=args.quiet_seconds,
            )
        except Exception as exc:
            result[key] = {"error": repr(exc)}
        finally:
            await drop(bootstrap, url, [s.name for s in Topics(namespace).specs()], [])
    if args.live:
        result["live_runs"] = [live_p99s(result[key]) for key, _, _ in phases if key != "live_shared"]
    result["wall_seconds"] = time.perf_counter() - started
    ratios(result)
    result["targets"] = verdicts(result)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--sizes",
        type=lambda s: [parse_size(x) for x in s.split(",") if x],
        default=[100_000, 1_000_000],
        help="comma-separated log sizes, e.g. 100k,1M,5M (default 100k,1M); empty: the live phase only",
    )
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--no-live", dest="live", action="store_false", help="skip the running-services phase")
    parser.add_argument("--rate", type=float, default=200.0, help="offered submissions/s in the live phase")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--query-rate", type=float, default=500.0)
    parser.add_argument(
        "--export-rate",
        type=float,
        default=100.0,
        help="offered export declarations/s in the live phase, through the Kafka intake, alongside the submissions",
    )
    parser.add_argument("--query-seconds", type=float, default=10.0)
    parser.add_argument(
        "--quiet-seconds",
        type=float,
        default=120.0,
        help="wait up to this long for quiet cores and disks (under 20%% busy, 2 MB/s written) before the live load, "
        "and up to 30 s of it before each timed replay, ceiling and peer run",
    )
    parser.add_argument(
        "--peer-max-size",
        type=lambda s: parse_size(s),
        default=100_000,
        help="run the eventsourcing peer on sizes up to this (default 100k)",
    )
    parser.add_argument("--peer-seconds", type=float, default=180.0, help="stop the peer after this long (subset)")
    parser.add_argument("--profile", action="store_true", help="replay the smallest size again under pyinstrument")
    parser.add_argument("--keep", action="store_true", help="keep the topics and schemas")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the run's files go (default results/)")
    parser.add_argument(
        "--live-runs",
        type=int,
        default=1,
        help="run the one-registry live phase this many times (10: the issue's 9-of-10 row p99 target is judged)",
    )
    parser.add_argument(
        "--registries",
        type=int,
        default=2,
        help="also replay, and run the live phase again, with this many registry instances (1: only one)",
    )
    args = parser.parse_args()
    result = asyncio.run(main_async(args))
    args.results.mkdir(parents=True, exist_ok=True)
    path = args.results / f"bench-{result['run_id']}.json"
    path.write_text(json.dumps(result, indent=2, default=str))
    m = result["machine"]
    print(
        f"\nmachine: {m['nproc']} cores, {m['memory_gb']} GB, {m['cpu']}; seed {result['seed']}; "
        f"wall {result['wall_seconds']:.0f} s\n"
    )
    print(table(result))
    print(f"\nwritten: {shown(path)}")


if __name__ == "__main__":
    main()
