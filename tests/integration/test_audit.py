"""Tamper evidence: the audit verifies a clean history, and names an altered, deleted or reordered event
(by partition and offsets) and a ledger row changed after a checkpoint."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from aiokafka import ConsumerRecord
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

import samples
from licensectl import audit
from services.registry.app import create_app
from services.registry.checkpoints import load_signing_key, read
from shared.contract.checkpoints import Checkpoint
from shared.contract.events import Envelope
from shared.contract.signatures import public_b64
from shared.contract.topics import Topics
from shared.platform.kafka_access import KafkaConnection
from shared.platform.kafka_admin import delete_topics, ensure_topics
from tests.checkpointing import checkpoint_at, checkpointing_settings
from tests.histories import applied_offsets, case, export, many_cases, publish
from tests.infra import Infrastructure
from tests.support import eventually, everything_on, licensectl, producer, read_topic, send_signed, serving

Records = dict[int, list[ConsumerRecord[bytes, bytes]]]


@dataclass
class Audited:
    """A live history applied in two rounds, with a checkpoint after each, and the key that signed them."""

    topics: Topics
    key: Ed25519PublicKey
    key_dir: Path
    first: Checkpoint
    second: Checkpoint


async def _apply_round(
    infrastructure: Infrastructure, database_url: str, topics: Topics, count: int, first: int
) -> int:
    total = await applied_offsets(database_url, topics.cases) + count * 5  # read before the registry moves on
    await publish(infrastructure.kafka, topics.cases, many_cases(count, first_number=first))

    async def caught_up() -> bool | None:
        return True if await applied_offsets(database_url, topics.cases) == total else None

    await eventually(caught_up, timeout=60, what="the live ledger to apply the round")
    return total


async def _audited_history(
    infrastructure: Infrastructure,
    database_url: str,
    topics: Topics,
    key_dir: Path,
    *,
    then: Callable[[], Awaitable[None]] | None = None,
) -> Audited:
    """Two rounds of cases, a checkpoint after each; ``then`` runs while the registry still runs."""
    kafka = infrastructure.kafka
    async with serving(create_app(checkpointing_settings(infrastructure, database_url, topics, key_dir))):
        first = await checkpoint_at(kafka, topics, await _apply_round(infrastructure, database_url, topics, 10, 1))
        second = await checkpoint_at(kafka, topics, await _apply_round(infrastructure, database_url, topics, 10, 100))
        if then is not None:
            await then()
    key = load_signing_key(key=None, key_file=None, key_dir=str(key_dir), generate=False).public_key()
    return Audited(topics, key, key_dir, first, second)


async def _verify(
    infrastructure: Infrastructure, database_url: str, audited: Audited, **options: object
) -> audit.AuditReport:
    return await audit.verify(
        kafka=infrastructure.kafka,
        cases_topic=str(options.pop("cases_topic", audited.topics.cases)),
        checkpoints_topic=audited.topics.checkpoints,
        trusted=audit.trusted_keys([public_b64(audited.key)]),
        database_url=database_url,
        trust_topic=audited.topics.trust,  # a copy of the log is judged by the same trust statements
        **options,  # type: ignore[arg-type]
    )


def _problems(report: audit.AuditReport) -> list[str]:
    return [p for v in report.verdicts for p in v.problems] + report.live_problems


async def test_a_clean_history_verifies_against_its_checkpoints_and_the_live_ledger(
    infrastructure: Infrastructure, database_url: str, topics: Topics, tmp_path: Path
) -> None:
    audited = await _audited_history(infrastructure, database_url, topics, tmp_path)
    report = await _verify(infrastructure, database_url, audited, live_schema="registry")
    assert report.ok, _problems(report)
    assert report.records == 100 and report.live is not None and report.live.matches
    assert all(v.ledger_checked for v in report.verdicts) and len(report.verdicts) >= 2
    # Another key: every checkpoint is named as signed by a key the auditor does not trust.
    stranger = Ed25519PrivateKey.generate().public_key()
    untrusted = await audit.verify(
        kafka=infrastructure.kafka,
        cases_topic=topics.cases,
        checkpoints_topic=topics.checkpoints,
        trusted=audit.trusted_keys([public_b64(stranger)]),
    )
    assert not untrusted.ok
    assert all(any("not a trusted key" in p for p in v.problems) for v in untrusted.verdicts)


async def _records(kafka: KafkaConnection, topic: str, count: int) -> Records:
    by_partition: Records = {}
    for record in await read_topic(kafka, topic, until=lambda rs: len(rs) >= count, timeout=30):
        by_partition.setdefault(record.partition, []).append(record)
    return {p: sorted(rs, key=lambda r: r.offset) for p, rs in by_partition.items()}


async def _tampered_copy(
    kafka: KafkaConnection, records: Records, tamper: Callable[[list[bytes]], list[bytes]], at: int
) -> Topics:
    """A copy of the log in a topic of its own, with partition ``at``'s values passed through ``tamper``."""
    copy = Topics(namespace=f"t{uuid.uuid4().hex[:10]}")
    await ensure_topics(kafka, copy)
    async with producer(kafka) as send:
        for partition, rs in records.items():
            values = [r.value or b"" for r in rs]
            for value in tamper(values) if partition == at else values:
                # Re-signed with the trusted test key: the copy stands for a log altered by someone holding a key.
                await send_signed(send, copy.cases, value, partition=partition)  # one by one: in order
    return copy


def _more_exported(value: bytes) -> bytes:
    event = json.loads(value)
    event["payload"]["quantity"] += 1
    return json.dumps(event).encode()


async def test_an_altered_deleted_or_reordered_event_is_named_by_partition_and_offsets(
    infrastructure: Infrastructure, database_url: str, topics: Topics, tmp_path: Path
) -> None:
    audited = await _audited_history(infrastructure, database_url, topics, tmp_path)
    kafka = infrastructure.kafka
    records = await _records(kafka, topics.cases, 100)
    before, after = audited.first.offsets, audited.second.offsets
    # The partition the second round wrote most to; the tampering lies between the two checkpoints.
    at = max(after, key=lambda p: after[p] - before.get(p, 0))
    start, end = before.get(at, 0), after[at]
    export = next(i for i in range(start, end - 1) if b'"ExportRecorded"' in (records[at][i].value or b""))

    def altered(values: list[bytes]) -> list[bytes]:
        return [_more_exported(v) if i == export else v for i, v in enumerate(values)]

    def deleted(values: list[bytes]) -> list[bytes]:
        return values[:export] + values[export + 1 :]

    def reordered(values: list[bytes]) -> list[bytes]:
        return [*values[:export], values[export + 1], values[export], *values[export + 2 :]]

    breaks = (
        f"partition {at} offset {end}: chain differs (an event was altered, deleted or reordered before offset {end}"
    )
    for tamper, expected in (
        (altered, breaks),
        (deleted, f"partition {at} offset {end}: the log ends at offset {end - 1} (an event was deleted before offset"),
        (reordered, breaks),
    ):
        copy = await _tampered_copy(kafka, records, tamper, at)
        try:
            report = await _verify(infrastructure, database_url, audited, cases_topic=copy.cases)
        finally:
            await delete_topics(kafka, copy)
        assert not report.ok
        first, second = _verdict(report, audited.first), _verdict(report, audited.second)
        assert first.ok, first.problems  # the tampering lies after the first checkpoint
        assert any(p.startswith(expected) for p in second.problems), (tamper.__name__, second.problems)
        # Named as closely as the checkpoints allow: after the last one that agreed, before the first that did not.
        since = [int(m) for p in second.problems for m in re.findall(r"at or after offset (\d+)\)", p)]
        assert all(start <= s <= export for s in since) and (since or not start), second.problems
        assert not any(f"partition {p} " in problem for p in after if p != at for problem in second.problems)


def _verdict(report: audit.AuditReport, checkpoint: Checkpoint) -> audit.Verdict:
    return next(v for v in report.verdicts if v.checkpoint == checkpoint)


async def test_a_ledger_row_changed_by_sql_stops_the_registry_is_named_and_repaired(
    infrastructure: Infrastructure, database_url: str, topics: Topics, tmp_path: Path
) -> None:
    """A balance raised by SQL (2 to 7, say, to let an export of 5 through): the registry's seal no longer holds
    at its next checkpoint, so it signs no checkpoint of it, folds and admits nothing (503), the audit names
    the row, and ``replay --repair`` puts back the ledger that follows from the log, after which all resumes."""
    settings = checkpointing_settings(infrastructure, database_url, topics, tmp_path)
    env = {"REGISTRY_KEY_DIR": str(tmp_path)}
    async with serving(create_app(settings)) as client:
        total = await _apply_round(infrastructure, database_url, topics, 10, 1)
        honest = await checkpoint_at(infrastructure.kafka, topics, total)
        before = (await client.get("/licenses/26-44-000003")).json()
        connection = await asyncpg.connect(database_url)
        try:
            await connection.execute(
                "UPDATE registry.licenses SET balance = balance + 5 WHERE license_number = '26-44-000003'"
            )
        finally:
            await connection.close()

        async def stopped() -> dict[str, str] | None:
            answer = await client.get("/health")
            return answer.json() if answer.status_code == 503 and answer.json()["ledger"] != "ok" else None

        health = await eventually(stopped, timeout=20, what="the registry to notice the altered ledger")
        assert "seal does not hold" in health["ledger"]
        declaration = samples.declaration_data("26-44-000003", "531620260000099001", quantity=1)
        refused = await client.post("/exports", json=declaration)
        checked = await client.post("/exports/check", json=declaration)
        assert [(a.status_code, a.json()["code"]) for a in (refused, checked)] == [(503, "ledger_unavailable")] * 2

        command = ["audit", "verify", "--public-key", public_b64(_key(tmp_path)), "--live"]
        audited = licensectl(*command, infrastructure=infrastructure, database_url=database_url, topics=topics)
        assert audited.returncode == 1, audited.stdout + audited.stderr
        assert "licenses 26-44-000003: differs from what the events give" in audited.stdout
        assert "NOT VERIFIED" in audited.stdout
        checkpoints = [read(r.value)[0] for r in await everything_on(infrastructure.kafka, topics.checkpoints)]
        assert {c.ledger_checksum for c in checkpoints} == {honest.ledger_checksum}, "no checkpoint of the altered"

        repaired = licensectl(
            "replay", "--repair", infrastructure=infrastructure, database_url=database_url, topics=topics, **env
        )
        assert repaired.returncode == 0, repaired.stdout + repaired.stderr
        assert "licenses 26-44-000003: differs from what the events give" in repaired.stdout
        assert "repaired" in repaired.stdout

        async def resumed() -> bool | None:
            return True if (await client.get("/health")).status_code == 200 else None

        await eventually(resumed, timeout=30, what="the registry to resume on the repaired ledger")
        assert (await client.get("/licenses/26-44-000003")).json()["balance"] == before["balance"]
        assert (await client.post("/exports", json=declaration)).status_code == 202
    again = licensectl("replay", infrastructure=infrastructure, database_url=database_url, topics=topics)
    assert again.returncode == 0, again.stdout + again.stderr


def _key(key_dir: Path) -> Ed25519PublicKey:
    return load_signing_key(key=None, key_file=None, key_dir=str(key_dir), generate=False).public_key()


async def test_a_vin_accepted_on_two_licenses_is_named_from_the_log_alone(
    infrastructure: Infrastructure, database_url: str, topics: Topics, tmp_path: Path
) -> None:
    """Two accepted exports of one VIN on two licenses (written past the intake, as a key holder could): each
    case's fold accepts its own, so only the whole log shows rule 9 broken, and the audit reads it there."""
    vin = "LKMA7C1B9TS000777"
    first, second = case("26-44-000771"), case("26-44-000772")
    exports = [
        Envelope.wrap(export(number, sequence, 1, vins=[vin]), case_id=events[0].case_id, producer="test")
        for number, sequence, events in (("26-44-000771", 771, first), ("26-44-000772", 772, second))
    ]
    history = [*first, *second, *exports]
    await publish(infrastructure.kafka, topics.cases, history)
    async with serving(create_app(checkpointing_settings(infrastructure, database_url, topics, tmp_path))):
        await checkpoint_at(infrastructure.kafka, topics, len(history))
    report = await audit.verify(
        kafka=infrastructure.kafka,
        cases_topic=topics.cases,
        checkpoints_topic=topics.checkpoints,
        trusted=audit.trusted_keys([public_b64(_key(tmp_path))]),
        database_url=database_url,
    )
    assert not report.ok
    assert report.rules == [
        f"rule 9: VIN {vin} accepted 2 times: 531620260000000771 on 26-44-000771; 531620260000000772 on 26-44-000772"
    ]
