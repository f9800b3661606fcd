"""Signed events and commands: the registry folds only events signed by a key trusted for their producer,
the intake services accept only commands signed by their sender's key; the rest is dead-lettered."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
from aiokafka import ConsumerRecord
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from licensectl import samples
from services.applications.app import Settings as ApplicationsSettings
from services.applications.app import create_app as create_applications
from services.registry.app import Settings, create_app
from services.registry.replay import replay
from shared import db, signing
from shared.events import Envelope
from shared.topics import Topics
from tests.histories import applied_offsets, case, granted, publish
from tests.infra import Infrastructure
from tests.support import eventually, producer, read_topic, send_signed, serving, settings_for, signed

OTHER_AGENCY_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))  # trusted for "agency-99" only
STRANGER_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(2, 34)))  # trusted for no one
RETIRED_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(3, 35)))  # trusted for "test", revoked
REVOKED_AT = datetime(2026, 1, 1, tzinfo=UTC)


async def _trust_more_keys(database_url: str) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        await signing.trust(
            connection, producer="agency-99", public_key=OTHER_AGENCY_KEY.public_key(), since=signing.ALWAYS
        )
        await signing.trust(connection, producer="test", public_key=RETIRED_KEY.public_key(), since=signing.ALWAYS)
        retired = signing.key_id(RETIRED_KEY.public_key())
        assert await signing.untrust(connection, producer="test", key_id=retired, at=REVOKED_AT)
    finally:
        await connection.close()


def _grant(number: str, *, before_revocation: bool = False) -> Envelope:
    occurred = REVOKED_AT - timedelta(days=1) if before_revocation else None
    return Envelope.wrap(granted(number), case_id=uuid.uuid4(), producer="test", occurred_at=occurred)


def _tampered(value: bytes) -> bytes:
    event = json.loads(value)
    event["payload"]["quantity"] += 90
    return json.dumps(event).encode()


def _number_of(record: ConsumerRecord[bytes, bytes]) -> str:
    return str(json.loads(record.value or b"")["payload"]["license_number"])


async def test_unsigned_untrusted_tampered_and_misattributed_events_are_dead_lettered_and_good_ones_still_land(
    infrastructure: Infrastructure, database_url: str, topics: Topics
) -> None:
    await _trust_more_keys(database_url)
    unsigned, stranger, tampered, misattributed, retired, old = (
        _grant("26-44-000801"),
        _grant("26-44-000802"),
        _grant("26-44-000803"),
        _grant("26-44-000804"),
        _grant("26-44-000805"),
        _grant("26-44-000806", before_revocation=True),
    )
    async with producer(infrastructure.kafka) as send:
        await send.send_and_wait(topics.cases, unsigned.to_bytes())
        value = stranger.to_bytes()
        await send.send_and_wait(topics.cases, value, headers=signed(value, STRANGER_KEY))
        value = tampered.to_bytes()
        await send.send_and_wait(topics.cases, _tampered(value), headers=signed(value))
        value = misattributed.to_bytes()  # says producer "test", signed by agency-99's key
        await send.send_and_wait(topics.cases, value, headers=signed(value, OTHER_AGENCY_KEY))
        value = retired.to_bytes()  # occurred now, after its key was revoked
        await send.send_and_wait(topics.cases, value, headers=signed(value, RETIRED_KEY))
        value = old.to_bytes()  # occurred before its key was revoked: still valid
        await send.send_and_wait(topics.cases, value, headers=signed(value, RETIRED_KEY))
    good = case("26-44-000807", (1, 2))
    await publish(infrastructure.kafka, topics.cases, good)
    settings = settings_for(Settings, infrastructure, database_url, topics)
    async with serving(create_app(settings)) as client:
        await eventually(lambda: _license(client, "26-44-000807", balance=8), what="the good case applied")
        await eventually(lambda: _license(client, "26-44-000806", balance=10), what="the pre-revocation grant")
        dead = await read_topic(infrastructure.kafka, topics.dead_letter, until=lambda r: len(r) >= 5)
        for number in ("26-44-000801", "26-44-000802", "26-44-000803", "26-44-000804", "26-44-000805"):
            assert (await client.get(f"/licenses/{number}")).status_code == 404, number
    reasons = {_number_of(r): dict(r.headers)["dlq.reason-code"].decode() for r in dead}
    assert reasons == {
        "26-44-000801": "unsigned_event",
        "26-44-000802": "untrusted_key",
        "26-44-000803": "bad_signature",
        "26-44-000804": "untrusted_key",
        "26-44-000805": "untrusted_key",
    }
    assert len(dead) == 5

    # The refused events stay in the log; a replay refuses them again and rebuilds the same ledger.
    assert await applied_offsets(database_url, topics.cases) == 6 + len(good)
    result = await replay(database_url=database_url, kafka=infrastructure.kafka, topic=topics.cases)
    assert result.matches, result.differences
    assert result.events == 6 + len(good)


async def _license(client, number: str, **expected: object) -> dict | None:  # type: ignore[no-untyped-def,type-arg]
    answer = await client.get(f"/licenses/{number}")
    body = answer.json() if answer.status_code == 200 else {}
    return body if all(body.get(k) == v for k, v in expected.items()) else None


def _submission(sender: str = "gd-commerce") -> tuple[uuid.UUID, bytes]:
    application_id = uuid.uuid4()
    command = {
        "command_id": str(uuid.uuid4()),
        "type": "SubmitApplication",
        "schema_version": 1,
        "sender": sender,
        "payload": {"application_id": str(application_id), "application": samples.application_data()},
    }
    return application_id, json.dumps(command).encode()


async def test_an_unsigned_or_badly_signed_intake_command_is_dead_lettered_with_its_reason(
    infrastructure: Infrastructure, database_url: str, topics: Topics
) -> None:
    settings = settings_for(ApplicationsSettings, infrastructure, database_url, topics)
    _, unsigned = _submission()
    _, stranger = _submission()
    _, impostor = _submission(sender="gd-commerce")
    _, signed_original = _submission()
    forged = json.dumps({**json.loads(signed_original), "command_id": str(uuid.uuid4())}).encode()
    good_id, good = _submission()
    await _trust_more_keys(database_url)
    async with serving(create_applications(settings)):
        async with producer(infrastructure.kafka) as send:
            await send.send_and_wait(topics.intake_applications, unsigned)
            await send.send_and_wait(topics.intake_applications, stranger, headers=signed(stranger, STRANGER_KEY))
            await send.send_and_wait(topics.intake_applications, impostor, headers=signed(impostor, OTHER_AGENCY_KEY))
            await send.send_and_wait(topics.intake_applications, forged, headers=signed(signed_original))
            await send_signed(send, topics.intake_applications, good)
        dead = await read_topic(infrastructure.kafka, topics.dead_letter, until=lambda r: len(r) >= 4)
        cases = await read_topic(infrastructure.kafka, topics.cases, until=lambda r: len(r) >= 1)
    codes = {r.value: dict(r.headers)["dlq.reason-code"].decode() for r in dead}
    assert codes[unsigned] == "unsigned_event"
    assert codes[stranger] == "untrusted_key"
    assert codes[impostor] == "untrusted_key"
    assert codes[forged] == "bad_signature"
    assert [Envelope.from_bytes(r.value or b"").case_id for r in cases] == [good_id]


async def test_a_log_written_before_signatures_is_folded_unverified_below_its_cut_off_only(
    infrastructure: Infrastructure, database_url: str, topics: Topics
) -> None:
    # As if the ledger had applied one record of partition 0 when it learnt to verify signatures.
    connection = await asyncpg.connect(database_url)
    await connection.execute("INSERT INTO access.signatures_from VALUES ($1, 0, 1)", topics.cases)
    await connection.close()
    old, new, good = _grant("26-44-000901"), _grant("26-44-000902"), _grant("26-44-000903")
    async with producer(infrastructure.kafka) as send:
        await send.send_and_wait(topics.cases, old.to_bytes(), partition=0)  # offset 0: before the cut-off
        await send.send_and_wait(topics.cases, new.to_bytes(), partition=0)  # offset 1: must be signed
        await send_signed(send, topics.cases, good.to_bytes(), partition=0)
    settings = settings_for(Settings, infrastructure, database_url, topics)
    async with serving(create_app(settings)) as client:
        await eventually(lambda: _license(client, "26-44-000903", balance=10), what="the signed grant")
        assert await _license(client, "26-44-000901", balance=10) is not None
        assert (await client.get("/licenses/26-44-000902")).status_code == 404
        dead = await read_topic(infrastructure.kafka, topics.dead_letter, until=lambda r: len(r) >= 1)
    assert [(_number_of(r), dict(r.headers)["dlq.reason-code"]) for r in dead] == [("26-44-000902", b"unsigned_event")]
    result = await replay(database_url=database_url, kafka=infrastructure.kafka, topic=topics.cases)
    assert result.matches, result.differences


async def test_migrating_a_ledger_records_where_its_signed_records_begin(database_url: str) -> None:
    await asyncio.to_thread(db.migrate, "registry", database_url, schema="ledger_before_signing", revision="0004")
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(
            "INSERT INTO ledger_before_signing.partition_offsets (topic, partition, next_offset) VALUES "
            "('old.licensing.cases', 0, 40), ('old.licensing.cases', 1, 0)"
        )
        await db.migrate_async("registry", database_url, schema="ledger_before_signing")
        rows = await connection.fetch("SELECT topic, partition, first_offset FROM access.signatures_from")
    finally:
        await connection.close()
    assert [tuple(r) for r in rows] == [("old.licensing.cases", 0, 40)]
