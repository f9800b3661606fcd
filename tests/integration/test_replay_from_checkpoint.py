"""A replay may rely on a trusted signed checkpoint instead of checking every signature below it, and is
then held to that checkpoint: its chain heads and its ledger checksum, which covers the refused records."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from licensectl import audit
from services.registry import store
from services.registry.app import create_app
from services.registry.checkpoints import load_signing_key
from services.registry.replay import ReplayResult, replay
from shared.contract import signatures
from shared.contract.events import Envelope, LicenseGranted
from shared.contract.signatures import public_b64
from shared.contract.topics import Topics
from shared.platform import db, trust
from shared.platform.kafka_admin import partition_count
from shared.platform.placement import case_partition
from tests.checkpointing import checkpoint_at, checkpointing_settings
from tests.histories import applied_offsets, export, many_cases, publish
from tests.infra import Infrastructure
from tests.support import ROOT_KEY, SIGNING_KEY, SIGNING_PRODUCERS, eventually, licensectl, producer, serving, signed


@dataclass
class History:
    topics: Topics
    key: Ed25519PublicKey  # the registry's checkpoint key
    key_dir: Path
    forged: tuple[int, int]  # (partition, offset) of a record signed by a key no one trusts
    vouched: int  # the records the last checkpoint covers
    total: int
    misplaced: tuple[int, int] | None = None  # (partition, offset) of a genuine record's copy outside its partition


async def _caught_up(database_url: str, topics: Topics, total: int) -> None:
    async def done() -> bool | None:
        return True if await applied_offsets(database_url, topics.cases) == total else None

    await eventually(done, timeout=60, what="the live ledger to apply the history")


async def _history(
    infrastructure: Infrastructure,
    database_url: str,
    topics: Topics,
    key_dir: Path,
    *,
    after: int = 0,
    misplaced: bool = False,
) -> History:
    """Ten cases and a forged export of the first (and with ``misplaced``, a copy of a genuine record, signed,
    in a partition not its case's), a checkpoint over them; then ``after`` cases no checkpoint covers (applied by
    a registry that takes none)."""
    cases = many_cases(10)
    victim = cases[1]  # the first case's grant: a forged export would take from its balance
    assert isinstance(victim.payload, LicenseGranted)
    forgery = Envelope.wrap(export(victim.payload.license_number, 999, 2), case_id=victim.case_id, producer="test")
    value = forgery.to_bytes()
    settings = checkpointing_settings(infrastructure, database_url, topics, key_dir)
    async with serving(create_app(settings)):
        await publish(infrastructure.kafka, topics.cases, cases)
        async with producer(infrastructure.kafka) as send:
            sent = await send.send_and_wait(
                topics.cases,
                value,
                key=str(victim.case_id).encode(),
                headers=signed(value, Ed25519PrivateKey.generate()),
            )
        vouched = len(cases) + 1
        copy: tuple[int, int] | None = None
        if misplaced:
            genuine = cases[0].to_bytes()
            partitions = await partition_count(infrastructure.kafka, topics.cases)
            elsewhere = (case_partition(cases[0].case_id, partitions) + 1) % partitions
            async with producer(infrastructure.kafka) as send:
                sent_copy = await send.send_and_wait(
                    topics.cases, genuine, partition=elsewhere, headers=signed(genuine)
                )
            copy, vouched = (sent_copy.partition, sent_copy.offset), vouched + 1
        await _caught_up(database_url, topics, vouched)
        await checkpoint_at(infrastructure.kafka, topics, vouched)
    total = vouched
    if after:
        quiet = settings.model_copy(update={"checkpoint_interval_seconds": 3600.0, "checkpoint_every_batches": 0})
        async with serving(create_app(quiet)):
            later = many_cases(after, first_number=500)
            await publish(infrastructure.kafka, topics.cases, later)
            total += len(later)
            await _caught_up(database_url, topics, total)
    key = load_signing_key(key=None, key_file=None, key_dir=str(key_dir), generate=False).public_key()
    return History(topics, key, key_dir, (sent.partition, sent.offset), vouched, total, copy)


async def _replay(
    infrastructure: Infrastructure, database_url: str, history: History, **options: object
) -> ReplayResult:
    return await replay(
        database_url=database_url,
        kafka=infrastructure.kafka,
        topic=history.topics.cases,
        checkpoints_topic=history.topics.checkpoints,
        **options,  # type: ignore[arg-type]
    )


def _trusting(history: History) -> dict[str, Ed25519PublicKey]:
    return audit.trusted_keys([public_b64(history.key)])


async def _fetch(database_url: str, sql: str) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(database_url)
    try:
        return list(await connection.fetch(sql))
    finally:
        await connection.close()


async def test_a_replay_from_a_trusted_checkpoint_gives_the_same_ledger_refusing_the_same_records(
    infrastructure: Infrastructure, database_url: str, topics: Topics, tmp_path: Path
) -> None:
    history = await _history(infrastructure, database_url, topics, tmp_path, after=5)
    refused = await _fetch(database_url, 'SELECT partition, "offset", reason_code FROM registry.refused_events')
    assert [tuple(r) for r in refused] == [(*history.forged, "untrusted_key")]

    for processes in (1, 2):
        result = await _replay(
            infrastructure, database_url, history, checkpoint_keys=_trusting(history), processes=processes
        )
        assert result.matches, (result.differences, result.chain_breaks, result.notes)
        assert result.checkpoint is not None and sum(result.checkpoint.offsets.values()) == history.vouched
        assert result.notes == []
        assert result.events == history.total
        assert result.rebuilt.tables == result.live.tables  # refused_events among them

    # The command line: the registry's own key from its settings, as the operator who runs it has them.
    done = licensectl(
        "replay",
        "--trust-checkpoints",
        infrastructure=infrastructure,
        database_url=database_url,
        topics=topics,
        REGISTRY_KEY_DIR=str(tmp_path),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "signatures below it not checked again, its checksum held" in done.stdout
    assert "equal: the live ledger follows from the log" in done.stdout


async def test_the_records_a_checkpoint_vouches_for_are_not_verified_again(
    infrastructure: Infrastructure, database_url: str, topics: Topics, tmp_path: Path
) -> None:
    history = await _history(infrastructure, database_url, topics, tmp_path, after=3)
    # The test producers' key is revoked as if it had never been valid: a replay that checks every
    # signature now refuses every record, one that trusts the checkpoint only those after it.
    identifier = signatures.key_id(SIGNING_KEY.public_key())
    revoked = [
        trust.statement("revoke", producer=name, key_id=identifier, at=datetime(2000, 1, 1, tzinfo=UTC))
        for name in SIGNING_PRODUCERS
    ]
    await trust.publish(infrastructure.kafka, topics.trust, revoked, ROOT_KEY)

    every = await _replay(infrastructure, database_url, history, keep=True)
    assert not every.matches and every.checkpoint is None
    assert await _refused(database_url, every.schema) == history.total

    trusting = await _replay(infrastructure, database_url, history, checkpoint_keys=_trusting(history), keep=True)
    assert trusting.checkpoint is not None and not trusting.matches
    # Below the checkpoint only the forgery, as the live ledger refused it; after it, every record.
    assert await _refused(database_url, trusting.schema) == 1 + history.total - history.vouched


async def _refused(database_url: str, schema: str) -> int:
    rows = await _fetch(database_url, f'SELECT count(*) FROM "{schema}".refused_events')
    return int(rows[0][0])


async def test_a_live_ledger_that_hides_a_refusal_does_not_get_a_forgery_past_the_checkpoint(
    infrastructure: Infrastructure, database_url: str, topics: Topics, tmp_path: Path
) -> None:
    history = await _history(infrastructure, database_url, topics, tmp_path)
    # Someone with the database removes the refusal, hoping a replay takes the forged export as genuine.
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute("DELETE FROM registry.refused_events")
    finally:
        await connection.close()

    result = await _replay(infrastructure, database_url, history, checkpoint_keys=_trusting(history))
    assert result.checkpoint is None
    assert len(result.notes) == 1 and "does not hold" in result.notes[0] and "checksum" in result.notes[0]
    assert not result.matches
    partition, offset = history.forged
    assert [(d.table, d.key, d.kind) for d in result.differences] == [
        ("refused_events", f"{topics.cases}/{partition}/{offset}", "missing")
    ]
    # The forged export is refused in the rebuild, as the live ledger refused it: no export row differs.


async def test_a_misplaced_copy_is_refused_below_a_checkpoint_as_live_and_hiding_its_refusal_gets_it_nowhere(
    infrastructure: Infrastructure, database_url: str, topics: Topics, tmp_path: Path
) -> None:
    """A record a checkpoint vouches for is not placed again; the live fold refused the copy as misplaced, so it is
    not vouched for, and a ledger that hides that refusal does not hold its checkpoint."""
    history = await _history(infrastructure, database_url, topics, tmp_path, misplaced=True)
    assert history.misplaced is not None
    refused = await _fetch(database_url, 'SELECT partition, "offset", reason_code FROM registry.refused_events')
    assert sorted(tuple(r) for r in refused) == sorted(
        [(*history.forged, "untrusted_key"), (*history.misplaced, "misplaced_event")]
    )

    result = await _replay(infrastructure, database_url, history, checkpoint_keys=_trusting(history))
    assert result.checkpoint is not None and result.notes == []
    assert result.matches, (result.differences, result.chain_breaks)

    partition, offset = history.misplaced
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(
            'DELETE FROM registry.refused_events WHERE partition = $1 AND "offset" = $2', partition, offset
        )
    finally:
        await connection.close()
    hidden = await _replay(infrastructure, database_url, history, checkpoint_keys=_trusting(history))
    assert hidden.checkpoint is None
    assert len(hidden.notes) == 1 and "does not hold" in hidden.notes[0]
    assert [(d.table, d.key, d.kind) for d in hidden.differences] == [
        ("refused_events", f"{topics.cases}/{partition}/{offset}", "missing")
    ]


async def test_a_checkpoint_signed_by_another_key_is_not_relied_on(
    infrastructure: Infrastructure, database_url: str, topics: Topics, tmp_path: Path
) -> None:
    history = await _history(infrastructure, database_url, topics, tmp_path)
    other = Ed25519PrivateKey.generate().public_key()
    result = await _replay(
        infrastructure, database_url, history, checkpoint_keys=audit.trusted_keys([public_b64(other)])
    )
    assert result.checkpoint is None and result.notes == []
    assert result.matches, result.differences


async def test_a_ledger_migrated_from_before_refusals_were_kept_keeps_them_from_where_it_was(
    database_url: str,
) -> None:
    schema = "ledger_before_refusals"
    await asyncio.to_thread(db.migrate, "registry", database_url, schema=schema, revision="0005")
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(
            f"INSERT INTO {schema}.partition_offsets (topic, partition, next_offset) VALUES ('c', 0, 40), ('c', 1, 0)"
        )
        await db.migrate_async("registry", database_url, schema=schema)
        await connection.execute(f"SET search_path TO {schema}")
        for partition, offset in ((0, 39), (0, 40), (1, 0)):
            async with connection.transaction():
                refused = [store.Refused(offset, "unsigned_event")]
                batch = store.Batch(partition, events=[], next_offset=offset + 1, records=[], refused=refused)
                await store.apply_batches(connection, topic="c", batches=[batch])
        kept = await connection.fetch(f'SELECT partition, "offset" FROM {schema}.refused_events ORDER BY 1, 2')
    finally:
        await connection.close()
    assert [tuple(r) for r in kept] == [(0, 40), (1, 0)]  # not 39: the ledger had passed it unrecorded
