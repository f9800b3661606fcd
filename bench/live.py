"""The running system: submission- and export-to-ledger latency at a fixed offered load, lookups, each service's RSS.

The three services run as processes (``python -m services.<name>``) against a database of their own
(created, migrated with ``python -m licensectl migrate``, dropped at the end) and a fresh topic namespace.
Applications come through the HTTP API, as agency portals send them; exports through Kafka, as customs'
backends send them (signed ``RecordExport`` commands on the exports intake topic), against the licenses
the ledger has granted. Load is open-loop: request ``i`` is sent at ``start + i / rate`` whether or not
earlier ones have answered, so a slow system shows up as latency, not as a lower offered rate.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlparse, urlunparse

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import samples
from bench import machine_cpu
from bench.generate import BENCH_ROOT
from licensectl.keys import own_statement
from shared.contract import signatures
from shared.contract.topics import Topics
from shared.contract.trust import KeyScope
from shared.platform import access, trust
from shared.platform.clock import china_today
from shared.platform.db import create_pool, drop_database
from shared.platform.kafka_access import KafkaConnection
from shared.platform.kafka_admin import ensure_topics

ROOT = Path(__file__).resolve().parent.parent
SERVICES = {"applications": 18101, "review": 18102, "registry": 18103}
POLL_SECONDS = 0.005
VEHICLES_PER_LICENSE = 12
"""Each submission applies for 12 vehicles, and customs exports them one per declaration: the most
declarations a license allows (rule 8), so every declaration the load sends should be accepted."""
CUSTOMS_SENDER = "customs-bench"


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None  # nothing measured: the table prints "-", the JSON null
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def summary_ms(values: list[float]) -> dict[str, float | None]:
    ms = [v * 1000 for v in values]
    return {
        "n": len(ms),
        "p50_ms": percentile(ms, 50),
        "p95_ms": percentile(ms, 95),
        "p99_ms": percentile(ms, 99),
        "max_ms": max(ms) if ms else None,
    }


def disk_written_mb() -> float:
    """MB the machine has written to its disks so far (``/proc/vmstat`` ``pgpgout``, in KiB)."""
    for line in Path("/proc/vmstat").read_text().splitlines():
        name, _, value = line.partition(" ")
        if name == "pgpgout":
            return int(value) / 1024
    return 0.0


async def quiet_machine(
    *, busy_below: float = 0.2, writes_below_mb_s: float = 2.0, window: float = 2.0, limit: float = 120.0
) -> dict[str, float]:
    """Wait until the machine's cores and disks are quiet, at most ``limit`` seconds, before a load is measured.

    What an earlier phase leaves behind (PostgreSQL's checkpoint writing out a replay's millions of rows, the
    broker deleting its topics) would otherwise be timed as the services' latency."""
    started = time.monotonic()
    while True:
        before, written = machine_cpu(), disk_written_mb()
        await asyncio.sleep(window)
        after, writes = machine_cpu(), (disk_written_mb() - written) / window
        busy = (after[0] - before[0]) / max(after[1] - before[1], 1e-9)
        waited = time.monotonic() - started
        if (busy < busy_below and writes < writes_below_mb_s) or waited >= limit:
            return {
                "waited_s": round(waited, 1),
                "busy": round(busy, 3),
                "busy_below": busy_below,
                "writes_mb_s": round(writes, 2),
                "writes_below_mb_s": writes_below_mb_s,
            }


def with_database(url: str, name: str) -> str:
    parts = urlparse(url)
    return urlunparse(parts._replace(path=f"/{name}"))


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_seconds(pid: int) -> float:
    """User and system CPU time of process ``pid`` so far (``/proc/<pid>/stat`` fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Services:
    processes: dict[str, subprocess.Popen[bytes]]
    ports: dict[str, int]

    def registry_ports(self) -> list[int]:
        return [port for name, port in self.ports.items() if name.startswith("registry")]

    def peak_rss_mb(self) -> dict[str, float]:
        return {name: _peak_rss_mb(p.pid) for name, p in self.processes.items() if p.poll() is None}

    def cpu_seconds(self) -> dict[str, float]:
        return {name: _cpu_seconds(p.pid) for name, p in self.processes.items() if p.poll() is None}

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def start_services(env: dict[str, str], logs: Path, registries: int = 1) -> Services:
    """One process per service; ``registries`` registry instances in one consumer group, sharing the partitions."""
    logs.mkdir(parents=True, exist_ok=True)
    instances: list[tuple[str, str, int, dict[str, str]]] = [
        (name, name, port, {}) for name, port in SERVICES.items() if name != "registry"
    ]
    instances += [
        (
            f"registry-{i + 1}" if i else "registry",
            "registry",
            SERVICES["registry"] + 10 * i,
            {"REGISTRY_INSTANCE_ID": f"registry-{i + 1}"},
        )
        for i in range(registries)
    ]
    processes, ports = {}, {}
    for name, service, port, extra in instances:
        service_env = {**env, **extra, f"{service.upper()}_PORT": str(port)}
        out = open(logs / f"{name}.log", "wb")  # noqa: SIM115 - kept open for the process's life
        processes[name] = subprocess.Popen(
            [sys.executable, "-m", f"services.{service}"],
            cwd=ROOT,
            env=service_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        ports[name] = port
    return Services(processes, ports)


async def wait_healthy(client: httpx.AsyncClient, ports: list[int], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    for port in ports:
        while True:
            try:
                if (await client.get(f"http://127.0.0.1:{port}/health", timeout=2)).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"service on port {port} not healthy after {timeout}s")
            await asyncio.sleep(0.3)


IDLE_SECONDS = 3.0  # below uvicorn's keep-alive timeout (5 s)


class RawHttp:
    """A minimal keep-alive HTTP/1.1 client over asyncio streams: an order of magnitude less CPU per request
    than httpx, so that on a 2-core box the load generator does not starve the services it measures."""

    def __init__(self, port: int, connections: int, *, key: str) -> None:
        self.port = port
        self.authorization = f"authorization: Bearer {key}\r\n"  # every route but /health wants a key
        self.size = connections
        # Each idle connection with when it was last used: uvicorn closes one idle for 5 s, and a request
        # written as it does so reads an empty answer.
        self.idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = asyncio.Queue()
        self.opened = 0

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        while True:
            if self.idle.empty() and self.opened < self.size:
                self.opened += 1
                return await asyncio.open_connection("127.0.0.1", self.port)
            reader, writer, used = await self.idle.get()
            if time.monotonic() - used < IDLE_SECONDS:
                return reader, writer
            writer.close()  # the server may be closing it right now: open another instead
            self.opened -= 1

    async def request(self, method: str, path: str, body: bytes = b"", headers: str = "") -> tuple[int, bytes]:
        reader, writer = await self._connection()
        try:
            head = (
                f"{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: {len(body)}\r\n"
                f"content-type: application/json\r\n{self.authorization}{headers}\r\n"
            )
            writer.write(head.encode() + body)
            raw = await reader.readuntil(b"\r\n\r\n")
            lines = raw.decode("latin-1").split("\r\n")
            status = int(lines[0].split()[1])
            length = next(
                (
                    int(v)
                    for k, _, v in (line.partition(":") for line in lines[1:])
                    if k.strip().lower() == "content-length"
                ),
                0,
            )
            payload = await reader.readexactly(length) if length else b""
        except BaseException:
            writer.close()
            self.opened -= 1
            raise
        self.idle.put_nowait((reader, writer, time.monotonic()))
        return status, payload

    async def close(self) -> None:
        while not self.idle.empty():
            _, writer, _ = self.idle.get_nowait()
            writer.close()


class LedgerPoll(ABC):
    """Polls the registry's ledger for what was sent and is still pending: ``QUERY`` takes the pending keys,
    and ``saw`` is told of each row found, with when; it says whether that key is done with.

    The pending keys are kept as they go, not found again in ``sent`` at every poll: the harness shares the
    cores it measures."""

    QUERY: ClassVar[str]

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.sent: dict[Any, float] = {}
        self.pending: set[Any] = set()

    def expect(self, key: Any, sent: float) -> None:
        self.sent[key] = sent
        self.pending.add(key)

    def forget(self, key: Any) -> None:
        """Something that was never sent: not waited for in the ledger."""
        del self.sent[key]
        self.pending.discard(key)

    @abstractmethod
    def saw(self, row: asyncpg.Record, now: float) -> bool:
        """Note ``row``, found at ``now``; whether its key is done with (no longer polled for)."""

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set() or self.pending:
            if self.pending:
                rows = await self.pool.fetch(self.QUERY, list(self.pending))
                now = time.perf_counter()
                for row in rows:
                    if self.saw(row, now):
                        self.pending.discard(row[0])
            await asyncio.sleep(POLL_SECONDS)


class Watcher(LedgerPoll):
    """The applications sent: when each one's row appears, and when it is decided."""

    QUERY = (
        "SELECT application_id, status, license_number FROM registry.applications "
        "WHERE application_id = ANY($1::uuid[])"
    )

    def __init__(self, pool: asyncpg.Pool, licenses: list[str] | None = None) -> None:
        super().__init__(pool)
        self.seen: dict[uuid.UUID, float] = {}
        self.decided: dict[uuid.UUID, float] = {}
        self.statuses: Counter[str] = Counter()
        self.licenses = licenses if licenses is not None else []  # granted, in the order they appeared

    def saw(self, row: asyncpg.Record, now: float) -> bool:
        app_id = row["application_id"]
        self.seen.setdefault(app_id, now)
        if row["status"] == "submitted":
            return False
        self.decided[app_id] = now
        self.statuses[row["status"]] += 1
        if row["license_number"] is not None:
            self.licenses.append(row["license_number"])
        return True


class ExportWatcher(LedgerPoll):
    """The declarations sent: when each one's row appears, and how the ledger judged it."""

    QUERY = (
        "SELECT declaration_number, outcome, reason_code FROM registry.exports "
        "WHERE declaration_number = ANY($1::text[])"
    )

    def __init__(self, pool: asyncpg.Pool) -> None:
        super().__init__(pool)
        self.seen: dict[str, float] = {}
        self.outcomes: Counter[str] = Counter()

    def saw(self, row: asyncpg.Record, now: float) -> bool:
        if row["declaration_number"] in self.seen:
            return True
        self.seen[row["declaration_number"]] = now
        self.outcomes[row["outcome"] + (f" ({row['reason_code']})" if row["reason_code"] else "")] += 1
        return True


Request = Callable[[int], Coroutine[Any, Any, str | None]]  # request number i: what went wrong, or None


@contextmanager
def steady_generator() -> Iterator[None]:
    """The load generator's own garbage collector held off while it measures.

    This process keeps every run's latencies and watchers, and a full collection over them stopped it for
    55-130 ms, about once a run (``gc.callbacks``, ``make bench-live-10`` on the dev box): the requests due
    meanwhile then left together, the registry answered the burst in turn, and the lookup p99 read 12-18 ms in
    one run of ten for a pause of the client's; a watcher stopped as long sees rows late. What exists before
    the load is frozen out of collection, and nothing is collected until it ends (what it allocates is
    nearly all freed by reference counting)."""
    enabled, frozen = gc.isenabled(), gc.get_freeze_count() > 0
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
        if not frozen:  # this process's heap as it was: collected in full again
            gc.unfreeze()


async def open_loop(rate: float, seconds: float, one: Request) -> dict[str, Any]:
    """Start request *i* at *t0 + i/rate* whatever the earlier ones are doing (an open loop: a slow answer
    does not slow the offered load). Return what was offered and sent, the errors by kind (what ``one``
    answered, or the exception it raised: counted, and the load goes on), and how late the requests left."""
    errors: Counter[str] = Counter()
    late: list[float] = []

    async def timed(i: int, due: float) -> None:
        late.append(time.perf_counter() - due)
        try:
            error = await one(i)
        except Exception as exc:
            error = type(exc).__name__
        if error is not None:
            errors[error] += 1

    tasks = []
    start = time.perf_counter()
    for i in range(int(rate * seconds)):
        due = start + i / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        tasks.append(asyncio.create_task(timed(i, due)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    return {
        "offered_per_s": rate,
        "sent": len(tasks),
        "achieved_per_s": len(tasks) / elapsed,
        "errors": dict(errors),
        "client_lateness": summary_ms(late),
    }


async def submit_load(
    client: RawHttp, watcher: Watcher, rate: float, seconds: float, *, quantity: int
) -> dict[str, Any]:
    body = json.dumps(samples.application_data(quantity=quantity)).encode()
    post_latency: list[float] = []

    async def one(i: int) -> str | None:
        started = time.perf_counter()
        idempotency = f"idempotency-key: bench-{uuid.uuid4()}\r\n"
        status, answer = await client.request("POST", "/applications", body, idempotency)
        post_latency.append(time.perf_counter() - started)
        if status != 202:
            return str(status)
        watcher.expect(uuid.UUID(json.loads(answer)["application_id"]), started)
        return None

    return await open_loop(rate, seconds, one) | {"post": summary_ms(post_latency)}


async def export_load(
    producer: AIOKafkaProducer,
    topic: str,
    key: Ed25519PrivateKey,
    licenses: list[str],
    watcher: ExportWatcher,
    rate: float,
    seconds: float,
) -> dict[str, Any]:
    """Customs' declarations at ``rate``/s: signed ``RecordExport`` commands on the intake topic, one vehicle
    each, the licenses granted so far used in turn for 12 declarations each (keyed by license, so one
    license's declarations keep their order)."""
    today = china_today().isoformat()  # a license is valid from the day of its grant in China

    async def one(i: int) -> str | None:
        if i // VEHICLES_PER_LICENSE >= len(licenses):
            return "no_license_granted_yet"
        number = licenses[i // VEHICLES_PER_LICENSE]
        declaration = f"531626{i:012d}"
        command = {
            "command_id": str(uuid.uuid4()),
            "type": "RecordExport",
            "schema_version": 1,
            "sender": CUSTOMS_SENDER,
            "payload": {
                "declaration": samples.declaration_data(
                    number, declaration, quantity=1, value="147000.00", export_date=today
                )
            },
        }
        value = json.dumps(command).encode()
        headers = signatures.signature_headers(value, key)
        watcher.expect(declaration, time.perf_counter())
        try:
            await producer.send(topic, value, key=number.encode(), headers=headers)
        except Exception:
            watcher.forget(declaration)
            raise
        return None

    load = await open_loop(rate, seconds, one)
    await producer.flush()
    return load


async def query_load(clients: list[RawHttp], numbers: list[str], rate: float, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []

    async def one(i: int) -> str | None:
        client, number = clients[i % len(clients)], numbers[i % len(numbers)]
        started = time.perf_counter()
        status, _ = await client.request("GET", f"/licenses/{number}")
        latencies.append(time.perf_counter() - started)
        return None if status == 200 else str(status)

    return await open_loop(rate, seconds, one) | {"latency": summary_ms(latencies)}


async def _bench_keys(url: str, kafka: KafkaConnection, topics: Topics) -> tuple[str, Ed25519PrivateKey]:
    """A key of agency 44 (the sample's) that submits and reads licenses, as a portal and customs would; and
    the signing key of customs' backend. The run's trust topic trusts it for customs' commands, and each service's
    own key for its events, as an operator's statements would (docs/signing.md)."""
    customs = Ed25519PrivateKey.generate()
    connection = await asyncpg.connect(url)
    try:
        _, key = await access.create(connection, agency_code="44", roles=["submitter", "customs"], label="bench")
    finally:
        await connection.close()
    statements = [trust.trusting(CUSTOMS_SENDER, customs.public_key(), KeyScope(use="commands"))]
    statements += [own_statement(service) for service in SERVICES]
    await trust.publish(kafka, topics.trust, statements, BENCH_ROOT)
    return key, customs


async def run_live(
    *,
    bootstrap: str,
    database_url: str,
    namespace: str,
    logs: Path,
    rate: float = 200,
    seconds: float = 20,
    query_rate: float = 500,
    query_seconds: float = 10,
    export_rate: float = 100,
    registries: int = 1,
    quiet_seconds: float = 120,
) -> dict[str, Any]:
    database = namespace.replace("-", "_")
    admin = await asyncpg.connect(database_url)
    await admin.execute(f'CREATE DATABASE "{database}"')
    url = with_database(database_url, database)
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "DATABASE_URL": url, "LEDGER_TOPIC_NAMESPACE": namespace}
    # The load comes from one client address with one key, which the rate limits per client and per
    # credential (200/s each) would mostly refuse at 500 lookups/s: the figure would then time 429 answers.
    for service in SERVICES:
        env.setdefault(f"{service.upper()}_RATE_LIMIT_PER_SECOND", "0")
        env.setdefault(f"{service.upper()}_RATE_LIMIT_PER_CREDENTIAL_PER_SECOND", "0")
    services: Services | None = None
    try:
        subprocess.run(
            [sys.executable, "-m", "licensectl", "migrate"], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL
        )
        topics = Topics(namespace)
        await ensure_topics(KafkaConnection(bootstrap_servers=bootstrap), topics)
        key, customs = await _bench_keys(url, KafkaConnection(bootstrap_servers=bootstrap), topics)
        services = start_services(env, logs, registries)
        async with httpx.AsyncClient(timeout=5) as health:
            await wait_healthy(health, list(services.ports.values()))
        submit = RawHttp(SERVICES["applications"], 64, key=key)
        # The lookups are spread over the registry instances, as a load balancer in front of them would.
        lookups = [RawHttp(port, 64 // registries, key=key) for port in services.registry_ports()]
        producer = AIOKafkaProducer(**KafkaConnection(bootstrap_servers=bootstrap).options(), linger_ms=0)
        await producer.start()
        try:
            with steady_generator():
                # The services' own pool: no reset query after each poll (half of a poll's cost to PostgreSQL).
                pool = await create_pool(url, schema="registry", max_size=3)
                try:
                    # Warm-up: until one submission is decided, the consumer groups are still joining.
                    licenses: list[str] = []
                    warm = Watcher(pool, licenses)
                    stop = asyncio.Event()
                    poll = asyncio.create_task(warm.run(stop))
                    await submit_load(submit, warm, rate=5, seconds=2, quantity=VEHICLES_PER_LICENSE)
                    stop.set()
                    await asyncio.wait_for(poll, timeout=90)
                    quiet = await quiet_machine(limit=quiet_seconds)
                    watcher, exported = Watcher(pool, licenses), ExportWatcher(pool)
                    stop = asyncio.Event()
                    polls = [asyncio.create_task(watcher.run(stop)), asyncio.create_task(exported.run(stop))]
                    cpu_before, machine_before = services.cpu_seconds(), machine_cpu()
                    submitted, declared = await asyncio.gather(
                        submit_load(submit, watcher, rate=rate, seconds=seconds, quantity=VEHICLES_PER_LICENSE),
                        export_load(producer, topics.intake_exports, customs, licenses, exported, export_rate, seconds),
                    )
                    stop.set()
                    try:
                        await asyncio.wait_for(asyncio.gather(*polls), timeout=60)
                    except TimeoutError:
                        for task in polls:
                            task.cancel()
                    cpu_after, machine_after = services.cpu_seconds(), machine_cpu()
                    seen = [watcher.seen[a] - watcher.sent[a] for a in watcher.sent if a in watcher.seen]
                    decided = [watcher.decided[a] - watcher.sent[a] for a in watcher.sent if a in watcher.decided]
                    recorded = [exported.seen[d] - exported.sent[d] for d in exported.sent if d in exported.seen]
                    numbers = [r[0] for r in await pool.fetch("SELECT license_number FROM registry.licenses")]
                finally:
                    await pool.close()
                queries: dict[str, Any] = {}
                if numbers:
                    queries = await query_load(lookups, numbers, query_rate, query_seconds)
                    cpu_now = services.cpu_seconds()
                    registry_cpu = sum(cpu_now[n] - cpu_after[n] for n in cpu_now if n.startswith("registry"))
                    queries["registry_cpu_ms_per_lookup"] = registry_cpu * 1000 / queries["sent"]
        finally:
            await producer.stop()
            await submit.close()
            for lookup in lookups:
                await lookup.close()
        rss = services.peak_rss_mb()
        return {
            "registries": registries,
            "submissions": submitted,
            "to_ledger_row": summary_ms(seen),
            "to_decision_in_ledger": summary_ms(decided),
            "decisions": dict(watcher.statuses),
            "exports": declared,
            "export_to_ledger_row": summary_ms(recorded),
            "export_outcomes": dict(exported.outcomes),
            "exports_missing": len(exported.sent) - len(exported.seen),
            # From the first submission until every one is decided (or given up on), per submission sent: the
            # exports' work (intake in the registry, the fold) is in it too, as it runs alongside.
            "cpu_ms_per_submission": {
                name: (cpu_after[name] - cpu_before[name]) * 1000 / max(1, len(watcher.sent)) for name in cpu_after
            },
            "missing": len(watcher.sent) - len(watcher.decided),
            # How busy the machine's cores were while the load ran (services, broker, database, load generator).
            "machine_cpu_busy": (machine_after[0] - machine_before[0]) / (machine_after[1] - machine_before[1]),
            # How long the load waited for quiet cores and disks, and how busy they were when it started.
            "quiet_before_load": quiet,
            "lookups": queries,
            "licenses_in_ledger": len(numbers),
            "peak_rss_mb": rss,
        }
    finally:
        if services is not None:
            services.stop()
        await drop_database(admin, database)
        await admin.close()
