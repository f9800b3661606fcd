"""Signed events and commands: the registry folds only events signed by a key trusted for their producer,
the intake services accept only commands signed by their sender's key; the rest is dead-lettered."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer, ConsumerRecord
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import samples
from services.applications.app import Settings as ApplicationsSettings
from services.applications.app import create_app as create_applications
from services.registry.app import Settings, create_app
from services.registry.replay import replay
from shared.contract import signatures
from shared.contract.events import Envelope
from shared.contract.topics import Topics
from shared.contract.trust import KeyScope
from shared.platform import signing, trust
from shared.platform.signing import ANY_EVENT
from tests.histories import applied_offsets, case, case_in, granted, publish
from tests.infra import Infrastructure
from tests.support import ROOT_KEY, eventually, producer, read_topic, send_signed, serving, settings_for, signed

OTHER_AGENCY_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))  # trusted for "agency-99" only
STRANGER_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(2, 34)))  # trusted for no one
RETIRED_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(3, 35)))  # trusted for "test", revoked
REVOKED_AT = datetime(2026, 1, 1, tzinfo=UTC)


async def _trust_more_keys(infrastructure: Infrastructure, topics: Topics) -> None:
    """Root-signed statements on the test's trust topic: agency-99's key for its commands, a retired key of
    "test" (revoked at REVOKED_AT)."""
    retired = signatures.key_id(RETIRED_KEY.public_key())
    statements = [
        trust.trusting("agency-99", OTHER_AGENCY_KEY.public_key(), KeyScope(use="commands", agency_code="99")),
        trust.trusting("test", RETIRED_KEY.public_key(), ANY_EVENT, at=signing.ALWAYS),
        trust.statement("revoke", producer="test", key_id=retired, at=REVOKED_AT),
    ]
    await trust.publish(infrastructure.kafka, topics.trust, statements, ROOT_KEY)


async def _send(send: AIOKafkaProducer, topic: str, envelope: Envelope, value: bytes, headers: Any = None) -> None:
    """``value`` (the envelope's bytes, or altered) to the partition of the envelope's case, as producers key it."""
    await send.send_and_wait(topic, value, key=str(envelope.case_id).encode(), headers=headers)


def _grant(number: str, *, before_revocation: bool = False, partition: int | None = None) -> Envelope:
    occurred = REVOKED_AT - timedelta(days=1) if before_revocation else None
    case_id = uuid.uuid4() if partition is None else case_in(partition)
    return Envelope.wrap(granted(number), case_id=case_id, producer="test", occurred_at=occurred)


def _tampered(value: bytes) -> bytes:
    event = json.loads(value)
    event["payload"]["quantity"] += 90
    return json.dumps(event).encode()


def _number_of(record: ConsumerRecord[bytes, bytes]) -> str:
    return str(json.loads(record.value or b"")["payload"]["license_number"])


async def test_unsigned_untrusted_tampered_and_misattributed_events_are_dead_lettered_and_good_ones_still_land(
    infrastructure: Infrastructure, database_url: str, topics: Topics
) -> None:
    await _trust_more_keys(infrastructure, topics)
    unsigned, stranger, tampered, misattributed, retired, old = (
        _grant("26-44-000801"),
        _grant("26-44-000802"),
        _grant("26-44-000803"),
        _grant("26-44-000804"),
        _grant("26-44-000805"),
        _grant("26-44-000806", before_revocation=True),
    )
    async with producer(infrastructure.kafka) as send:
        await _send(send, topics.cases, unsigned, unsigned.to_bytes())
        value = stranger.to_bytes()
        await _send(send, topics.cases, stranger, value, signed(value, STRANGER_KEY))
        value = tampered.to_bytes()
        await _send(send, topics.cases, tampered, _tampered(value), signed(value))
        value = misattributed.to_bytes()  # says producer "test", signed by agency-99's key
        await _send(send, topics.cases, misattributed, value, signed(value, OTHER_AGENCY_KEY))
        value = retired.to_bytes()  # occurred now, after its key was revoked
        await _send(send, topics.cases, retired, value, signed(value, RETIRED_KEY))
        value = old.to_bytes()  # occurred before its key was revoked: still valid
        await _send(send, topics.cases, old, value, signed(value, RETIRED_KEY))
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
    await _trust_more_keys(infrastructure, topics)
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
    # As if the ledger had applied one record of partition 0 when it learnt to verify signatures: a root-signed
    # statement says so. One that no pinned root signed (an insider's, say) moves no cut-off.
    forged = trust.statement("signed_from", topic=topics.cases, partition=0, first_offset=3)
    await trust.publish(infrastructure.kafka, topics.trust, [forged], STRANGER_KEY)
    cut_off = trust.statement("signed_from", topic=topics.cases, partition=0, first_offset=1)
    await trust.publish(infrastructure.kafka, topics.trust, [cut_off], ROOT_KEY)
    old, new, good = (_grant(n, partition=0) for n in ("26-44-000901", "26-44-000902", "26-44-000903"))
    async with producer(infrastructure.kafka) as send:
        await _send(send, topics.cases, old, old.to_bytes())  # offset 0: before the cut-off
        await _send(send, topics.cases, new, new.to_bytes())  # offset 1: must be signed
        await _send(send, topics.cases, good, good.to_bytes(), signed(good.to_bytes()))
    settings = settings_for(Settings, infrastructure, database_url, topics)
    async with serving(create_app(settings)) as client:
        await eventually(lambda: _license(client, "26-44-000903", balance=10), what="the signed grant")
        assert await _license(client, "26-44-000901", balance=10) is not None
        assert (await client.get("/licenses/26-44-000902")).status_code == 404
        dead = await read_topic(infrastructure.kafka, topics.dead_letter, until=lambda r: len(r) >= 1)
    assert [(_number_of(r), dict(r.headers)["dlq.reason-code"]) for r in dead] == [("26-44-000902", b"unsigned_event")]
    result = await replay(database_url=database_url, kafka=infrastructure.kafka, topic=topics.cases)
    assert result.matches, result.differences
    assert any("no pinned root key" in note for note in result.notes), result.notes


async def test_a_key_inserted_into_the_database_trusts_nothing(
    infrastructure: Infrastructure, database_url: str, topics: Topics
) -> None:
    """The trust list is the trust topic's root-signed statements: no table of the database holds it (an
    insider's row made a forged grant legitimate), and a statement signed by any other key is ignored."""
    connection = await asyncpg.connect(database_url)
    try:
        tables = await connection.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'access' ORDER BY 1"
        )
    finally:
        await connection.close()
    assert [r["table_name"] for r in tables if r["table_name"] != "alembic_version"] == ["credentials"]
    insider = trust.trusting("test", STRANGER_KEY.public_key(), ANY_EVENT, at=signing.ALWAYS)
    await trust.publish(infrastructure.kafka, topics.trust, [insider], STRANGER_KEY)  # not the root's signature
    forged = _grant("26-44-000911")
    value = forged.to_bytes()
    async with producer(infrastructure.kafka) as send:
        await _send(send, topics.cases, forged, value, signed(value, STRANGER_KEY))
    await publish(infrastructure.kafka, topics.cases, case("26-44-000912"))
    settings = settings_for(Settings, infrastructure, database_url, topics)
    async with serving(create_app(settings)) as client:
        await eventually(lambda: _license(client, "26-44-000912", balance=10), what="a good grant behind it")
        assert (await client.get("/licenses/26-44-000911")).status_code == 404
        dead = await read_topic(infrastructure.kafka, topics.dead_letter, until=lambda r: len(r) >= 1)
    assert [(_number_of(r), dict(r.headers)["dlq.reason-code"]) for r in dead] == [("26-44-000911", b"untrusted_key")]
