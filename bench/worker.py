"""One measurement in a process of its own, so that its peak RSS is its own: ``python -m bench.worker KIND JSON``.

Prints one JSON object on its last line of stdout: the figures, and ``peak_rss_mb`` (``ru_maxrss``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import resource
import sys
import time
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench import machine_cpu
from services.registry import checkpoints
from services.registry.replay import (
    Vouched,
    build_indexes,
    defer_indexes,
    fold_in_processes,
    fold_log,
    open_log,
    share_out,
    start_fold_processes,
)
from services.registry.replay import replay as replay_ledger
from shared.contract import signatures
from shared.platform.collector import collect_less
from shared.platform.db import create_pool, migrate_async
from shared.platform.kafka_access import KafkaConnection
from shared.platform.signing import header

LEDGER_TABLES = (
    "applications",
    "licenses",
    "exports",
    "license_history",
    "refused_events",
    "outbox",
    "applied_events",
    "vin_claims",
)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def _fresh(url: str, schema: str) -> list[str]:
    """A freshly migrated schema without the indexes only the queries read, as a replay folds into; the statements
    that build them again."""
    await migrate_async("registry", url, schema=schema)
    connection = await asyncpg.connect(url)
    try:
        return await defer_indexes(connection, schema)
    finally:
        await connection.close()


async def replay(args: dict[str, Any]) -> dict[str, Any]:
    """``fold_log`` of the whole topic into a freshly migrated schema, and the indexes left out built after it, as a
    replay does: timed without the migration."""
    url, schema = args["database_url"], args["schema"]
    indexes = await _fresh(url, schema)
    pool = await create_pool(url, schema=schema, max_size=2)
    end = {int(p): o for p, o in args["end"].items()}
    profiler = None
    if args.get("profile"):
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.002, async_mode="enabled")
        profiler.start()
    started, machine_before, own_before = time.perf_counter(), machine_cpu()[0], time.process_time()
    try:
        # ``vouched``: as a replay from a checkpoint at the end of the log folds (no signature checked).
        vouched = Vouched(end) if args.get("vouched") else None
        log = await open_log(KafkaConnection(bootstrap_servers=args["bootstrap"]), args["topic"])
        events = await fold_log(pool, log, start={}, end=end, vouched=vouched)
        await build_indexes(url, indexes)
        seconds = time.perf_counter() - started
        own_cpu, machine_busy = time.process_time() - own_before, machine_cpu()[0] - machine_before
        if profiler is not None:
            profiler.stop()
            with open(args["profile"], "w") as out:
                out.write(profiler.output_text(unicode=False, color=False, show_all=False))
        rows = {t: await pool.fetchval(f"SELECT count(*) FROM {_q(schema)}.{t}") for t in LEDGER_TABLES}
    finally:
        await pool.close()
    return {
        "events": events,
        "seconds": seconds,
        "events_per_s": events / seconds,
        "rows": rows,
        # Where the CPU went, per event: this process (decoding, folding, encoding the writes), and the whole
        # machine (the same, plus PostgreSQL and the broker serving it; nothing else runs during a bench).
        "cpu_us_per_event": {"fold_process": own_cpu / events * 1e6, "machine": machine_busy / events * 1e6},
    }


async def replay_processes(args: dict[str, Any]) -> dict[str, Any]:
    """The fold ``licensectl replay`` does on a long log: ``processes`` processes, each on its share of the
    partitions, into one freshly migrated schema. Peak RSS is the largest of the fold processes'."""
    url, schema = args["database_url"], args["schema"]
    log = await open_log(KafkaConnection(bootstrap_servers=args["bootstrap"]), args["topic"])
    # As licensectl replay does: the processes load the fold while the schema is made; then only the fold is timed.
    waiting = await start_fold_processes(args["processes"], url, log.kafka)
    indexes = await _fresh(url, schema)
    end = {int(p): o for p, o in args["end"].items()}
    started = time.perf_counter()
    events = await fold_in_processes(
        database_url=url, schema=schema, log=log, start={}, end=end, processes=args["processes"], started=waiting
    )
    await build_indexes(url, indexes, connections=args["processes"])
    seconds = time.perf_counter() - started
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"events": events, "seconds": seconds, "events_per_s": events / seconds, "peak_rss_mb": children}


async def replay_checkpoint(args: dict[str, Any]) -> dict[str, Any]:
    """``licensectl replay --trust-checkpoints`` against the ledger a full replay built (``live_schema``): that
    ledger is checkpointed and signed as the registry does, then replayed relying on the checkpoint. Timed:
    the fold (``events_per_s``), and the whole replay with both checksums and the checkpoint's (``seconds``)."""
    url, live_schema = args["database_url"], args["live_schema"]
    kafka = KafkaConnection(bootstrap_servers=args["bootstrap"])
    key = Ed25519PrivateKey.generate()
    pool = await create_pool(url, schema=live_schema, max_size=1)
    try:
        signed = await checkpoints.take(pool, args["topic"], instance="bench", key=key, sealed=False)
    finally:
        await pool.close()
    producer = AIOKafkaProducer(**kafka.options(), acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(args["checkpoints_topic"], checkpoints.to_bytes(signed))
    finally:
        await producer.stop()
    result = await replay_ledger(
        database_url=url,
        kafka=kafka,
        topic=args["topic"],
        live_schema=live_schema,
        processes=args["processes"],
        checkpoints_topic=args["checkpoints_topic"],
        checkpoint_keys={checkpoints.key_id(key.public_key()): key.public_key()},
    )
    if not result.matches or result.checkpoint is None:
        raise RuntimeError(f"the replay from a checkpoint did not hold: {result.notes} {result.differences}")
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {
        "events": result.events,
        "seconds": result.seconds,
        "fold_seconds": result.fold_seconds,
        "events_per_s": result.events / result.fold_seconds,
        "processes": args["processes"],
        "peak_rss_mb": max(children, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


async def kafka_read(args: dict[str, Any]) -> dict[str, Any]:
    """The read ceiling: the same records, fetched with the same consumer settings as ``fold_log``, discarded."""
    end = {int(p): o for p, o in args["end"].items()}
    consumer = _range_consumer(args["bootstrap"])
    await consumer.start()
    counted = {"events": 0, "bytes": 0}

    def count(records: list[Any]) -> None:
        counted["events"] += len(records)
        counted["bytes"] += sum(len(r.value or b"") for r in records)

    started = time.perf_counter()
    try:
        await _read_through(consumer, args["topic"], end, count)
    finally:
        await consumer.stop()
    seconds = time.perf_counter() - started
    return {**counted, "seconds": seconds, "events_per_s": counted["events"] / seconds}


def _range_consumer(bootstrap: str) -> AIOKafkaConsumer:
    """A consumer that reads a range as ``fold_log`` does: no group, large fetches."""
    return AIOKafkaConsumer(
        **KafkaConnection(bootstrap_servers=bootstrap).options(),
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )


async def _read_through(consumer: AIOKafkaConsumer, topic: str, end: dict[int, int], each: Any) -> None:
    """Every record of ``topic``'s partitions in ``end``, from their starts to those offsets, to ``each`` a fetch's
    records at a time."""
    todo = dict(end)
    consumer.assign([TopicPartition(topic, p) for p in todo])
    for p in todo:
        consumer.seek(TopicPartition(topic, p), 0)
    while todo:
        for tp, records in (await consumer.getmany(timeout_ms=1000, max_records=5000)).items():
            each(records)
            if records[-1].offset + 1 >= todo.get(tp.partition, 0):
                todo.pop(tp.partition, None)
                consumer.pause(tp)


async def signature_checks(args: dict[str, Any]) -> dict[str, Any]:
    """The signature ceiling: every record's Ed25519 signature checked and nothing else done, by ``processes``
    processes each on its share of the partitions (as ``licensectl replay`` shares them), the records read as the
    Kafka read ceiling reads them. A replay checking every signature does this and more (decodes, validates,
    places and folds each record, and writes the rows), so it cannot go faster. Timed from when every process
    has loaded and connected, as the replay's fold processes are started ahead."""
    end = {int(p): o for p, o in args["end"].items()}
    children = []
    for share in share_out(sorted(p for p, e in end.items() if e > 0), args["processes"]):
        work = {**args, "end": {str(p): end[p] for p in share}}
        children.append(
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench.worker",
                "signature_share",
                json.dumps(work),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
        )
    try:
        for child in children:
            assert child.stdout is not None and child.stdin is not None
            if (await child.stdout.readline()).strip() != b"ready":
                raise RuntimeError("a signature-checking process did not start")
        started = time.perf_counter()
        for child in children:
            assert child.stdin is not None
            child.stdin.write(b"go\n")
            await child.stdin.drain()
        answers = []
        for child in children:
            out, _ = await child.communicate()
            if child.returncode != 0:
                raise RuntimeError(f"a signature-checking process failed ({child.returncode})")
            answers.append(json.loads(out.decode().strip().splitlines()[-1]))
        seconds = time.perf_counter() - started
    finally:  # none is left checking on its own after a failure
        for child in children:
            if child.returncode is None:
                with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
                    child.kill()
    events = sum(a["events"] for a in answers)
    cpu = sum(a["cpu_seconds"] for a in answers)
    return {
        "events": events,
        "held": sum(a["held"] for a in answers),
        "seconds": seconds,
        "events_per_s": events / seconds,
        "processes": len(children),
        "cpu_us_per_event": cpu / events * 1e6,
    }


async def signature_share(args: dict[str, Any]) -> dict[str, Any]:
    """One process of ``signature_checks``: says ``ready`` once loaded and connected, reads ``go``, then checks the
    signature of every record of its partitions with the key the trust topic names (``signatures.holds``, as
    ``TrustList.signer`` does)."""
    end = {int(p): o for p, o in args["end"].items()}
    log = await open_log(KafkaConnection(bootstrap_servers=args["bootstrap"]), args["topic"])
    keys = {key_id: found[0].public_key for key_id, found in log.trust.keys.items()}
    consumer = _range_consumer(args["bootstrap"])
    await consumer.start()
    counted = {"events": 0, "held": 0}

    def check(records: list[Any]) -> None:
        for record in records:
            headers = list(record.headers or ())
            signature, signer = header(headers, signatures.SIGNATURE_HEADER), header(headers, signatures.KEY_ID_HEADER)
            key = keys.get(signer.decode()) if signer is not None else None
            if signature is not None and key is not None:
                counted["held"] += signatures.holds(key, base64.b64decode(signature), record.value or b"")
        counted["events"] += len(records)

    try:
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        cpu_before = time.process_time()
        await _read_through(consumer, args["topic"], end, check)
        cpu = time.process_time() - cpu_before
    finally:
        await consumer.stop()
    return {**counted, "cpu_seconds": cpu}


SCRATCH = """
CREATE TABLE {table} (
    event_id uuid PRIMARY KEY, declaration_number text NOT NULL, license_number text NOT NULL,
    case_id uuid NOT NULL, outcome text NOT NULL, reason_code text, reason_message text, quantity int NOT NULL,
    port_of_exit text NOT NULL, export_date date NOT NULL, vins text[] NOT NULL, value numeric NOT NULL,
    currency text NOT NULL, recorded_at timestamptz NOT NULL)
"""
COPY_COLUMNS = (
    "event_id",
    "declaration_number",
    "license_number",
    "case_id",
    "outcome",
    "reason_code",
    "reason_message",
    "quantity",
    "port_of_exit",
    "export_date",
    "vins",
    "value",
    "currency",
    "recorded_at",
)


async def copy(args: dict[str, Any]) -> dict[str, Any]:
    """The write ceiling: ``rows`` ledger rows (the bench passes as many as the replay wrote), COPYed in
    batches of 5000 (one transaction each) into a scratch table shaped like ``exports`` (the ledger's most
    frequent row), with its primary key and two of its indexes, over ``connections`` connections at once
    (as many as the replay's processes). Only the COPYs are timed: each round's batches are built first, so
    the figure is what PostgreSQL takes in, not how fast this process makes tuples."""
    url, schema, rows = args["database_url"], args["schema"], int(args["rows"])
    connections = [await asyncpg.connect(url) for _ in range(int(args.get("connections", 1)))]
    try:
        first = connections[0]
        await first.execute(f"CREATE SCHEMA IF NOT EXISTS {_q(schema)}")
        table = f"{_q(schema)}.scratch_exports"
        await first.execute(f"DROP TABLE IF EXISTS {table}")  # the run before's (the bench runs it more than once)
        await first.execute(SCRATCH.format(table=table))
        await first.execute(f"CREATE INDEX ON {table} (declaration_number)")
        await first.execute(f"CREATE INDEX ON {table} (license_number)")
        now = datetime.now(UTC)
        today = date(2026, 3, 1)
        batch = 5000

        def records(start: int) -> list[tuple[Any, ...]]:
            return [
                (
                    uuid.uuid4(),
                    f"53162026{i:010d}",
                    f"26-44-{i % 999_999:06d}",
                    uuid.uuid4(),
                    "accepted",
                    None,
                    None,
                    12,
                    "CNSZX",
                    today,
                    [],
                    Decimal("1764000.00"),
                    "CNY",
                    now,
                )
                for i in range(start, min(rows, start + batch))
            ]

        async def write(connection: asyncpg.Connection, batch_records: list[tuple[Any, ...]]) -> None:
            async with connection.transaction():
                await connection.copy_records_to_table(
                    "scratch_exports", schema_name=schema, records=batch_records, columns=COPY_COLUMNS
                )

        seconds = 0.0
        per_round = batch * len(connections)
        for start in range(0, rows, per_round):
            built = [records(s) for s in range(start, min(rows, start + per_round), batch)]
            started = time.perf_counter()
            await asyncio.gather(*(write(c, r) for c, r in zip(connections, built, strict=False)))
            seconds += time.perf_counter() - started
    finally:
        for connection in connections:
            await connection.close()
    return {"rows": rows, "seconds": seconds, "rows_per_s": rows / seconds, "connections": len(connections)}


async def peer(args: dict[str, Any]) -> dict[str, Any]:
    from bench.peer import run_peer

    end = {int(p): o for p, o in args["end"].items()}
    return await run_peer(
        bootstrap=args["bootstrap"],
        topic=args["topic"],
        end=end,
        database_url=args["database_url"],
        schema=args["schema"],
        seconds=float(args["seconds"]),
    )


KINDS = {
    "replay": replay,
    "replay_processes": replay_processes,
    "replay_checkpoint": replay_checkpoint,
    "kafka_read": kafka_read,
    "signature_checks": signature_checks,
    "signature_share": signature_share,
    "copy": copy,
    "peer": peer,
}


def main() -> None:
    kind, args = sys.argv[1], json.loads(sys.argv[2])
    if kind.startswith("replay"):
        collect_less()  # as licensectl replay and each fold process set the collector
    result = asyncio.run(KINDS[kind](args))
    result.setdefault("peak_rss_mb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
