"""Break the production shape on purpose while clients use it, then hold the ledger against what they were told.

Three Kafka nodes (replication 3, min.insync.replicas 2), two registry instances sharing the case stream's
partitions, and a PostgreSQL of the test's own. While agencies submit and customs declare exports over HTTP
and the Kafka intake, a seeded schedule (printed) kills the leader of the busiest case partition, pauses a
broker past its session timeout, kills the active controller, kills a registry instance and restarts the
database. Afterwards: every acknowledged command is in the ledger exactly once, each license's balance and
each export's verdict are what an independent fold of the acknowledged commands gives, no balance is below
zero, ``licensectl replay`` equals the live ledger and ``licensectl audit verify --live`` passes.

``LEDGER_FAULTS=long`` (``make faults``) runs two rounds of every fault and a few thousand declarations;
the default, in the suite, one round and a few hundred commands. ``LEDGER_FAULTS_SEED`` replays a schedule.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from shared.contract.topics import Topics
from shared.platform.kafka_access import KafkaConnection
from tests.faults.cluster import KafkaCluster, Postgres
from tests.faults.evidence import preserve
from tests.faults.schedule import KINDS, Fault, Injector, plan
from tests.faults.system import ledger_rows, running
from tests.faults.workload import Clients, percentile
from tests.support import eventually

Rows = dict[str, list[asyncpg.Record]]


@dataclass(frozen=True)
class Profile:
    kinds: tuple[str, ...]  # the faults, each once a round
    rounds: int
    cases: int  # at least; the clients go on until the last fault has healed
    declarations: int  # per case
    workers: int  # cases under way at once
    gap: float  # seconds of normal running before each fault, on average
    budget: float  # seconds before a command not acknowledged yet fails the run


PROFILES = {
    "short": Profile(("broker-pause", "registry-kill", "postgres-restart"), 1, 12, 6, 3, 2.0, 240),
    "long": Profile(KINDS, 2, 150, 8, 6, 4.0, 1500),
}
PROFILE = os.environ.get("LEDGER_FAULTS", "short")
REPORT = Path(os.environ.get("LEDGER_FAULTS_REPORT", ".run/faults-report.json"))


@pytest.mark.timeout(2400 if PROFILE == "long" else 420)
async def test_faults_lose_no_acknowledged_command_and_apply_none_twice(
    kafka_cluster: KafkaCluster,
    cluster_kafka: KafkaConnection,
    fault_postgres: Postgres,
    fault_database: str,
    cluster_topics: Topics,
    tmp_path: Path,
) -> None:
    profile_name, profile = PROFILE, PROFILES[PROFILE]
    seed = int(os.environ.get("LEDGER_FAULTS_SEED") or random.SystemRandom().randrange(10**6))
    faults = plan(seed, profile.kinds, rounds=profile.rounds, gap=profile.gap)
    print(f"\n[faults] profile {profile_name}, seed {seed} (LEDGER_FAULTS_SEED={seed} replays it); schedule:")
    for fault in faults:
        print(f"[faults]   {fault}")
    rng = random.Random(seed)
    started = time.monotonic()
    with running(cluster_kafka, fault_database, cluster_topics, tmp_path, registries=2) as system:
        clients = Clients(
            applications=system.applications.url if system.applications else "",
            registries=system.registry_urls,
            kafka=cluster_kafka,
            topics=cluster_topics,
            rng=rng,
            deadline=time.monotonic() + profile.budget,
        )
        injector = Injector(kafka_cluster, fault_postgres, system, random.Random(seed + 1))
        done = asyncio.Event()
        try:
            async with clients, asyncio.TaskGroup() as group:
                group.create_task(injector.run(faults, done))
                group.create_task(
                    clients.run(
                        f"{seed % 1000:03d}",
                        cases=profile.cases,
                        declarations=profile.declarations,
                        workers=profile.workers,
                        until=done,
                    )
                )
        except BaseException:  # where each service waits, while they still run, and the log: what a hang is read from
            for process in system.processes:
                print(f"[faults] {process.name}'s tasks:\n{await asyncio.to_thread(process.tasks)}")
            kept = await preserve(cluster_kafka, cluster_topics, fault_database, tmp_path / "evidence")
            print(f"[faults] evidence kept in {kept}")
            raise
        rows = await _settled(clients, fault_database)
        replayed = system.licensectl("replay")
        key = system.licensectl("audit", "public-key").stdout.split()[0]
        audited = system.licensectl("audit", "verify", "--public-key", key, "--live")
    figures = _figures(clients, rows, faults, seed, profile_name, time.monotonic() - started)
    print("[faults] " + json.dumps(figures, indent=1))
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(figures, indent=1) + "\n")
    failed = replayed.returncode != 0 or audited.returncode != 0 or figures["problems"]
    if failed:  # kept before the fixtures drop the topics and the database: what the failure can be read from
        kept = await preserve(cluster_kafka, cluster_topics, fault_database, tmp_path / "evidence")
        for name, ran in (("replay", replayed), ("audit", audited)):
            (kept / f"{name}.txt").write_text(ran.stdout + ran.stderr)
        print(f"[faults] evidence kept in {kept}: the case stream's records, the database, replay's and audit's output")
    assert figures["lost"] == 0 and figures["duplicated"] == 0 and figures["wrong_verdicts"] == 0, figures
    assert figures["negative_balances"] == 0
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert audited.returncode == 0, audited.stdout + audited.stderr
    assert figures["faults_injected"] == len(profile.kinds) * profile.rounds


async def _settled(clients: Clients, database_url: str) -> Rows:
    """The ledger once every acknowledged declaration has its verdict in it (or after two minutes)."""
    wanted = {d.declaration_number for seen in clients.licenses for d in seen.declarations}

    async def complete() -> Rows | None:
        rows = await ledger_rows(database_url)
        return rows if wanted <= {r["declaration_number"] for r in rows["exports"]} else None

    try:
        return await eventually(complete, timeout=120, what="every acknowledged declaration in the ledger")
    except AssertionError:
        return await ledger_rows(database_url)  # the comparison names what is missing


def _figures(
    clients: Clients,
    rows: Rows,
    faults: list[Fault],
    seed: int,
    profile: str,
    seconds: float,
) -> dict[str, object]:
    applications = {str(r["application_id"]): r for r in rows["applications"]}
    licenses = {r["license_number"]: r for r in rows["licenses"]}
    exports = Counter(r["declaration_number"] for r in rows["exports"])
    verdicts = {r["declaration_number"]: r["outcome"] for r in rows["exports"]}
    lost, duplicated, wrong = [], [], []
    for seen in clients.licenses:
        if seen.application_id not in applications:
            lost.append(f"application {seen.application_id}")
        balance, used, outcomes = seen.folded()
        for number, outcome in outcomes.items():
            if exports[number] == 0:
                lost.append(f"declaration {number}")
            elif exports[number] > 1:
                duplicated.append(f"declaration {number} x{exports[number]}")
            elif verdicts[number] != outcome:
                wrong.append(f"declaration {number}: {verdicts[number]}, the acknowledged commands give {outcome}")
        row = licenses.get(seen.license_number)
        if row is not None and (row["balance"], row["declarations_used"]) != (balance, used):
            counted = "counted twice" if row["balance"] < balance else "differs"
            duplicated.append(
                f"license {seen.license_number}: balance {row['balance']} ({counted}; expected {balance})"
            )
    acknowledged = clients.acknowledged()
    windows = [(f.injected, f.recovered) for f in faults]
    during = [c.latency for c in acknowledged if any(a <= c.started <= b for a, b in windows)]
    return {
        "profile": profile,
        "seed": seed,
        "seconds": round(seconds, 1),
        "faults_injected": len([f for f in faults if f.recovered]),
        "faults": [
            {"kind": f.kind, "target": f.target, "held_s": f.hold, "recovered_after_s": round(f.recovery, 1)}
            for f in faults
        ],
        "commands_acknowledged": len(acknowledged),
        "by_kind": dict(Counter(c.kind for c in acknowledged)),
        "exports_refused_by_the_ledger": sum(1 for v in verdicts.values() if v == "refused"),
        "retries": sum(c.attempts - 1 for c in acknowledged),
        "http_errors_retried": dict(Counter(clients.refused_at_http)),
        "lost": len(lost),
        "duplicated": len(duplicated),
        "wrong_verdicts": len(wrong),
        "negative_balances": sum(1 for r in rows["licenses"] if r["balance"] < 0),
        "problems": (lost + duplicated + wrong)[:20],
        "latency_p50_s": round(percentile([c.latency for c in acknowledged], 0.5), 3),
        "latency_p99_s": round(percentile([c.latency for c in acknowledged], 0.99), 3),
        "latency_p99_during_faults_s": round(percentile(during, 0.99), 3),
    }
