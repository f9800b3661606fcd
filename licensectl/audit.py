"""``licensectl audit verify``: check the log and the registry's signed checkpoints, offline from the services.

The audit reads only Kafka (the case stream from offset 0, and the checkpoint topic) and, for the
ledger checksums, folds the log into a scratch schema of its own. For each checkpoint it checks the
signature, that its chain heads equal the chain recomputed from the log at its offsets, and that its
ledger checksum equals a replay folded up to exactly those offsets. ``live`` also replays against the
live ledger (its stored chain heads and its rows).
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
from aiokafka import ConsumerRecord
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from rich.console import Console

from services.registry import chain, vins
from services.registry.checkpoints import RAISE_ALARM, Unreadable, read, read_all, signature_problem
from services.registry.checksum import checksum
from services.registry.replay import CaseLog, LogIncomplete, ReplayResult, fold_log, open_log, replay
from shared.contract.checkpoints import Checkpoint
from shared.contract.signatures import key_id, public_bytes, public_key_from
from shared.platform.db import create_pool, migrate_async
from shared.platform.kafka_access import KafkaConnection
from shared.platform.signing import load_signing_key

NO_KEY_WARNING = (
    "no trusted public key given: each signature is checked against the key its checkpoint carries, "
    "which proves the checkpoint is intact, not who signed it"
)
LEDGER_DIFFERS = "ledger checksum differs from the replay at these offsets"


@dataclass
class Verdict:
    """One record of the checkpoint topic and what the audit found wrong with it (nothing, if it holds)."""

    position: int  # its offset in the checkpoint topic
    checkpoint: Checkpoint | None
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    signed: bool = False
    ledger_checked: bool = False

    @property
    def label(self) -> str:
        return self.checkpoint.label if self.checkpoint else f"checkpoint record {self.position}"

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class AuditReport:
    verdicts: list[Verdict]
    log_ends: dict[int, int]
    records: int
    warnings: list[str] = field(default_factory=list)
    live: ReplayResult | None = None
    trust: list[str] = field(default_factory=list)  # records of the trust topic no pinned root signed
    rules: list[str] = field(default_factory=list)  # what the whole log breaks of rules no single case holds (9)
    alarm_raised: bool = False  # the live ledger differs, and the registry was told (ledger_alarms)
    incomplete: list[str] = field(default_factory=list)  # why the live ledger could not be replayed from the log

    @property
    def live_problems(self) -> list[str]:
        if self.live is None:
            return []
        found = [f"live ledger: {b.describe()}" for b in self.live.chain_breaks]
        if self.live.live.digest != self.live.rebuilt.digest:
            found.append("live ledger: its checksum differs from the replay at its offsets")
            found += [f"live ledger: {d.describe()}" for d in self.live.differences]
        return found

    @property
    def ok(self) -> bool:
        return (
            bool(self.verdicts)
            and all(v.ok for v in self.verdicts)
            and not self.live_problems
            and not self.trust
            and not self.rules
            and not self.incomplete
        )


async def verify(
    *,
    kafka: KafkaConnection,
    cases_topic: str,
    checkpoints_topic: str,
    trusted: Mapping[str, Ed25519PublicKey],
    database_url: str | None = None,
    ledgers: bool = True,
    live_schema: str | None = None,
    roots: Mapping[str, Ed25519PublicKey] | None = None,
    trust_topic: str | None = None,
    raise_alarm: bool = False,
) -> AuditReport:
    """Audit the checkpoints of ``checkpoints_topic`` against the log in ``cases_topic`` (which may be a copy).

    Who was trusted to sign what comes from the trust topic alone, as the pinned ``roots`` signed it (by default
    ``LEDGER_TRUST_ROOT_KEYS``); a record there that no pinned root signed is named. Without ``database_url``
    (or ``ledgers``) only signatures and chains are checked, in memory; with it, each checkpoint's ledger
    checksum too, and rule 9 over the whole log (a VIN accepted on two exports), in a scratch schema dropped
    after; with ``live_schema``, the live ledger in that schema is replayed and compared as well, and, with
    ``raise_alarm``, a difference stops the live registry (``ledger_alarms``) until the ledger is repaired.
    """
    log = await open_log(kafka, cases_topic, trust_topic=trust_topic, roots=roots)
    verdicts = await _read_checkpoints(kafka, checkpoints_topic, trusted)
    readable = [v for v in verdicts if v.checkpoint is not None]
    heads, ends, records = await _recompute_chains(kafka, cases_topic, readable)
    _check_chains(readable, heads, ends)
    report = AuditReport(verdicts, ends, records, warnings=[] if trusted else [NO_KEY_WARNING])
    report.warnings += sorted(
        {
            f"checkpoints are of {v.checkpoint.topic}, checked against {cases_topic}"
            for v in readable
            if v.checkpoint and v.checkpoint.topic != cases_topic
        }
    )
    report.trust = [f"trust topic record {offset}: {why}" for offset, why in log.skipped]
    if database_url is not None and ledgers:
        report.rules = await _check_ledgers(readable, ends, log, database_url)
    if database_url is not None and live_schema is not None:
        try:
            report.live = await replay(
                database_url=database_url,
                kafka=kafka,
                topic=cases_topic,
                live_schema=live_schema,
                trust_topic=log.trust_topic,
                roots=roots,
            )
        except LogIncomplete as incomplete:
            report.incomplete.append(f"live ledger: {incomplete}")
        if raise_alarm and (report.live_problems or report.incomplete):
            await _raise_alarm(database_url, live_schema, report.live_problems + report.incomplete)
            report.alarm_raised = True
    return report


async def _raise_alarm(database_url: str, schema: str, problems: list[str]) -> None:
    """Tell the live registry its ledger differs from the log: it stops folding and admitting until repaired."""
    connection = await asyncpg.connect(database_url, server_settings={"search_path": schema})
    try:
        reason = f"audit verify --live: {len(problems)} problem(s), the first: {problems[0]}"
        await connection.execute(RAISE_ALARM, reason[:2000])
    finally:
        await connection.close()


async def _read_checkpoints(
    kafka: KafkaConnection, topic: str, trusted: Mapping[str, Ed25519PublicKey]
) -> list[Verdict]:
    verdicts: list[Verdict] = []

    def each(record: ConsumerRecord[bytes, bytes]) -> None:
        try:
            checkpoint, content, signature = read(record.value)
        except Unreadable as exc:
            verdicts.append(Verdict(record.offset, None, [f"checkpoint record {record.offset}: unreadable ({exc})"]))
            return
        verdict = Verdict(record.offset, checkpoint)
        problem = signature_problem(checkpoint, content, signature, trusted)
        verdict.signed = problem is None
        if problem:
            verdict.problems.append(f"{checkpoint.label}: {problem}")
        verdicts.append(verdict)

    await read_all(kafka, topic, each)
    return sorted(verdicts, key=lambda v: v.position)


async def _recompute_chains(
    kafka: KafkaConnection, topic: str, verdicts: list[Verdict]
) -> tuple[dict[tuple[int, int, int], bytes], dict[int, int], int]:
    """The chain heads the log gives at each checkpoint's offsets, by (partition, start, offset); the log's ends."""
    wanted: dict[int, dict[int, set[int]]] = {}
    for verdict in verdicts:
        assert verdict.checkpoint is not None
        for head in verdict.checkpoint.partitions:
            wanted.setdefault(head.partition, {}).setdefault(head.chain_start, set()).add(head.next_offset)
    walkers = {p: chain.Walker(p, w) for p, w in wanted.items()}
    count = 0

    def each(record: ConsumerRecord[bytes, bytes]) -> None:
        nonlocal count
        count += 1
        walker = walkers.get(record.partition)
        if walker is not None:
            walker.feed(chain.Raw(record.offset, record.value))

    ends = await read_all(kafka, topic, each)
    heads = {
        (p, start, offset): head
        for p, walker in walkers.items()
        for (start, offset), head in walker.finish(ends.get(p, 0)).items()
    }
    return heads, ends, count


def _check_chains(verdicts: list[Verdict], heads: dict[tuple[int, int, int], bytes], ends: dict[int, int]) -> None:
    """Compare each checkpoint's heads with the recomputed ones; name where a break lies, as closely as known."""
    agreed: dict[int, list[int]] = {}  # per partition, the offsets where a validly signed checkpoint agreed
    for verdict in verdicts:
        assert verdict.checkpoint is not None
        for head in verdict.checkpoint.partitions:
            if verdict.signed and heads.get((head.partition, head.chain_start, head.next_offset)) == bytes.fromhex(
                head.head
            ):
                agreed.setdefault(head.partition, []).append(head.next_offset)
    for verdict in verdicts:
        assert verdict.checkpoint is not None
        for head in verdict.checkpoint.partitions:
            since = max((o for o in agreed.get(head.partition, []) if o < head.next_offset), default=head.chain_start)
            recomputed = heads.get((head.partition, head.chain_start, head.next_offset))
            if recomputed is None:
                end = ends.get(head.partition, 0)
                verdict.problems.append(
                    f"partition {head.partition} offset {head.next_offset}: the log ends at offset {end} "
                    f"(an event was deleted before offset {head.next_offset}, at or after offset {since})"
                )
            elif recomputed != bytes.fromhex(head.head):
                verdict.problems.append(
                    chain.ChainBreak(head.partition, head.next_offset, head.head, recomputed.hex(), since).describe()
                )


async def _check_ledgers(verdicts: list[Verdict], ends: dict[int, int], log: CaseLog, database_url: str) -> list[str]:
    """Fold the log into a scratch schema up to each checkpoint's offsets in turn, and compare the checksums;
    then to its end, and name every VIN the whole log accepts on more than one export (rule 9)."""
    foldable = [
        v for v in verdicts if v.checkpoint and all(o <= ends.get(p, 0) for p, o in v.checkpoint.offsets.items())
    ]
    ordered = sorted(foldable, key=_when)
    scratch = _Scratch(database_url)
    try:
        for verdict in ordered:
            assert verdict.checkpoint is not None
            digest = await scratch.checksum_at(verdict.checkpoint.offsets, log)
            verdict.ledger_checked = True
            if digest != verdict.checkpoint.ledger_checksum:
                verdict.problems.append(f"{verdict.label}: {LEDGER_DIFFERS}")
        await scratch.checksum_at(ends, log)
        return [f"rule 9: {found}" for found in await scratch.doubly_exported()]
    finally:
        await scratch.drop()


def _when(verdict: Verdict) -> tuple[datetime, int]:
    assert verdict.checkpoint is not None
    return verdict.checkpoint.created_at, verdict.position


class _Scratch:
    """An empty ledger schema the audit folds the log into, forward from checkpoint to checkpoint."""

    def __init__(self, database_url: str) -> None:
        self._url = database_url
        self._schema: str | None = None
        self._pool: asyncpg.Pool | None = None
        self._folded: dict[int, int] = {}

    async def checksum_at(self, offsets: dict[int, int], log: CaseLog) -> str:
        if self._pool is None or any(self._folded.get(p, 0) > offsets.get(p, 0) for p in self._folded):
            await self._fresh()  # a checkpoint behind the last one (a rebuilt ledger): fold it from 0
        assert self._pool is not None and self._schema is not None
        await fold_log(self._pool, log, start=self._folded, end=offsets)
        self._folded = dict(offsets)
        async with self._pool.acquire() as connection, connection.transaction(readonly=True):
            return (await checksum(connection, self._schema)).digest

    async def doubly_exported(self) -> list[str]:
        if self._pool is None:
            await self._fresh()
        assert self._pool is not None
        return await vins.doubly_exported(self._pool)

    async def _fresh(self) -> None:
        await self.drop()
        self._schema = f"audit_{uuid.uuid4().hex[:12]}"
        self._folded = {}
        await migrate_async("registry", self._url, schema=self._schema)
        self._pool = await create_pool(self._url, schema=self._schema, max_size=2)

    async def drop(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        if self._schema is not None:
            connection = await asyncpg.connect(self._url)
            try:
                await connection.execute(f'DROP SCHEMA IF EXISTS "{self._schema}" CASCADE')
            finally:
                await connection.close()
            self._schema = None


# For the command line.


def trusted_keys(given: list[str]) -> dict[str, Ed25519PublicKey]:
    """The trusted keys by key id, each given as base64 of the raw public key or as a file holding that."""
    keys = [public_key_from(text) for text in given]
    return {key_id(k): k for k in keys}


def registry_signing_key(settings: Any) -> Ed25519PrivateKey:
    """The registry's signing key, from its settings; never makes a key (FileNotFoundError if none)."""
    secret = settings.signing_key.get_secret_value() if settings.signing_key else None
    return load_signing_key(key=secret, key_file=settings.signing_key_file, key_dir=settings.key_dir, generate=False)


def registry_key(settings: Any) -> Ed25519PublicKey:
    """The registry's checkpoint public key, from its settings; never makes a key (FileNotFoundError if none)."""
    return registry_signing_key(settings).public_key()


def registry_public_key(settings: Any) -> str:
    """The registry's public key (base64) and key id, from its settings."""
    public = registry_key(settings)
    return f"{base64.b64encode(public_bytes(public)).decode()}  (key id {key_id(public)})"


def document(report: AuditReport) -> dict[str, Any]:
    """The report as ``audit verify --json`` prints it: each checkpoint's verdict, the live ledger's, the overall."""
    live = None
    if report.live is not None:
        live = {"follows_from_the_log": not report.live_problems, "problems": report.live_problems}
    return {
        "ok": report.ok,
        "records": report.records,
        "log_ends": {str(p): end for p, end in sorted(report.log_ends.items())},
        "warnings": report.warnings,
        "checkpoints": [
            {
                "position": v.position,
                "label": v.label,
                "ok": v.ok,
                "signed": v.signed,
                "ledger_checked": v.ledger_checked,
                "problems": v.problems,
            }
            for v in report.verdicts
        ],
        "trust": report.trust,
        "rules": report.rules,
        "incomplete": report.incomplete,
        "live": live,
        "alarm_raised": report.alarm_raised,
    }


def render(report: AuditReport, console: Console) -> None:
    """A verdict per checkpoint, then the live ledger's, then the overall verdict."""
    for warning in report.warnings:
        console.print(f"warning: {warning}", style="yellow", markup=False, soft_wrap=True)
    console.print(
        f"log: {report.records} records in {len(report.log_ends)} partitions; {len(report.verdicts)} checkpoints"
    )
    for verdict in report.verdicts:
        if verdict.ok:
            checked = "signature, chains" + (", ledger checksum" if verdict.ledger_checked else "")
            console.print(f"[green]{verdict.label}: ok[/green] ({checked})")
            continue
        console.print(f"[red bold]{verdict.label}: FAILED")
        for problem in verdict.problems:
            console.print(f"  {problem}", markup=False, soft_wrap=True)  # one line each, to grep
    for problem in report.trust:
        console.print(f"trust: {problem}", style="red", markup=False, soft_wrap=True)
    for problem in report.rules + report.incomplete:
        console.print(problem, style="red", markup=False, soft_wrap=True)
    if report.live is not None:
        problems = report.live_problems
        console.print("[green]live ledger: follows from the log" if not problems else "[red bold]live ledger: FAILED")
        for problem in problems:
            console.print(f"  {problem}", markup=False, soft_wrap=True)  # one line each, to grep
        if report.alarm_raised:
            console.print("the live registry is told: it folds and admits nothing until `replay --repair`")
    if not report.verdicts:
        console.print("[red bold]no checkpoints to verify")
    elif report.ok:
        console.print("[green bold]verified: every checkpoint holds")
    else:
        console.print("[red bold]NOT VERIFIED")
