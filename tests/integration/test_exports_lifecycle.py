"""License expiry, VIN uniqueness across licenses, and customs' pre-check, on the real broker and database."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
from aiokafka import ConsumerRecord

import samples
from services.registry.app import Settings as RegistrySettings
from services.registry.app import create_app as create_registry
from services.registry.checksum import checksum
from services.registry.replay import replay
from services.review.app import Settings as ReviewSettings
from services.review.app import create_app as create_review
from shared.contract.events import Envelope, ExportRefused, LicenseExpired
from shared.contract.topics import Topics
from tests.histories import TODAY, granted, publish
from tests.infra import Infrastructure
from tests.support import envelopes, eventually, everything_on, producer, read_topic, serving, settings_for, signed

VIN_X, VIN_Y = "LKMA7C1B9TS000101", "LKMA7C1B9TS000102"


def _grants(*numbers: str) -> list[Envelope]:
    """A license granted on a case of its own for each number (valid today only, 10 vehicles)."""
    return [Envelope.wrap(granted(n), case_id=uuid.uuid4(), producer="test") for n in numbers]


def _registry(infrastructure: Infrastructure, database_url: str, topics: Topics) -> RegistrySettings:
    return settings_for(RegistrySettings, infrastructure, database_url, topics)


def _expiries(records: list[ConsumerRecord[bytes, bytes]]) -> list[Envelope]:
    return [e for e in envelopes(records) if isinstance(e.payload, LicenseExpired)]


async def _get_when(client: httpx.AsyncClient, path: str, **expected: object) -> Any:
    """The JSON at ``path`` once it answers 200 and, for a dict, has the ``expected`` fields."""

    async def probe() -> Any:
        answer = await client.get(path)
        if answer.status_code != 200:
            return None
        body = answer.json()
        return body if not isinstance(body, dict) or all(body.get(k) == v for k, v in expected.items()) else None

    return await eventually(probe, what=f"{path} with {expected}")


async def _export(client: httpx.AsyncClient, number: str, declaration: str, **fields: object) -> dict[str, Any]:
    """Declare an export over HTTP and wait for the ledger's verdict on it."""
    data = samples.declaration_data(number, declaration, **{"quantity": 1, **fields})
    answer = await client.post("/exports", json=data)
    assert answer.status_code == 202, answer.text
    verdict: list[dict[str, Any]] = await _get_when(client, f"/exports/{declaration}")
    return verdict[0]


async def test_expiry_is_appended_once_per_license_by_two_schedulers_and_a_restart_and_ends_the_license(
    infrastructure: Infrastructure, database_url: str, topics: Topics
) -> None:
    numbers = ["26-44-000701", "26-44-000702"]
    history = _grants(*numbers)
    await publish(infrastructure.kafka, topics.cases, history)
    review = ReviewSettings(
        **infrastructure.service_kafka(),
        database_url=database_url,
        topic_namespace=topics.namespace,
        expiry_interval_seconds=0.2,
    )

    def tomorrow() -> Any:
        return TODAY + timedelta(days=1)

    async with serving(create_registry(_registry(infrastructure, database_url, topics))) as registry:
        async with serving(create_review(review, clock=tomorrow)), serving(create_review(review, clock=tomorrow)):
            await read_topic(infrastructure.kafka, topics.cases, until=lambda r: len(_expiries(r)) >= 2)
            await asyncio.sleep(1.5)  # many more rounds of both schedulers
        async with serving(create_review(review, clock=tomorrow)):  # a restart
            await asyncio.sleep(1.5)
        await _get_when(registry, f"/licenses/{numbers[0]}", status="expired")
        verdict = await _export(registry, numbers[0], "531620260000000701")  # dated today: inside its validity
    records = await read_topic(infrastructure.kafka, topics.cases, until=lambda r: len(r) >= len(history) + 3)
    expiries = _expiries(records)
    assert sorted(e.payload.license_number for e in expiries) == numbers  # type: ignore[attr-defined]
    assert {e.payload.expired_on for e in expiries} == {TODAY + timedelta(days=1)}  # type: ignore[attr-defined]
    assert (verdict["outcome"], verdict["reason"]["code"]) == ("refused", "license_expired")


async def test_a_vin_exported_on_one_license_is_refused_on_another_and_the_replay_still_matches(
    infrastructure: Infrastructure, database_url: str, topics: Topics
) -> None:
    first, second = "26-44-000801", "26-44-000802"
    await publish(infrastructure.kafka, topics.cases, _grants(first, second))
    async with serving(create_registry(_registry(infrastructure, database_url, topics))) as client:
        await _get_when(client, f"/licenses/{first}", balance=10)
        await _get_when(client, f"/licenses/{second}", balance=10)
        accepted = await _export(client, first, "531620260000000801", vins=[VIN_X])
        check = (await client.post("/exports/check", json=_declaration(second, "531620260000000802"))).json()
        refused = await _export(client, second, "531620260000000802", vins=[VIN_X])
        # A declaration the fold refuses releases its VINs: another license may then export them.
        eleven = [VIN_Y, *(f"LKMA7C1B9TS0002{i:02d}" for i in range(10))]  # one VIN per vehicle declared
        over_balance = await _export(client, first, "531620260000000803", quantity=11, vins=eleven)
        released = await _export(client, second, "531620260000000804", vins=[VIN_Y])
        history = (await client.get(f"/vins/{VIN_X}/exports")).json()
    assert accepted["outcome"] == "accepted"
    assert check["would_pass"] is False and check["reason"]["code"] == "vin_already_exported"
    assert (refused["outcome"], refused["reason"]["code"]) == ("refused", "vin_already_exported")
    assert (over_balance["reason"]["code"], released["outcome"]) == ("exceeds_balance", "accepted")
    assert [(e["license_number"], e["outcome"]) for e in history] == [(first, "accepted"), (second, "refused")]
    records = await read_topic(infrastructure.kafka, topics.cases, until=lambda r: len(r) >= 6)
    assert [type(e.payload).__name__ for e in envelopes(records) if isinstance(e.payload, ExportRefused)] == [
        "ExportRefused"
    ]
    result = await replay(database_url=database_url, kafka=infrastructure.kafka, topic=topics.cases)
    assert result.matches, result.differences


def _declaration(number: str, declaration: str, **fields: object) -> dict[str, Any]:
    return samples.declaration_data(number, declaration, **{"quantity": 1, "vins": [VIN_X], **fields})


async def _ledger_checksum(database_url: str) -> str:
    connection = await asyncpg.connect(database_url)
    try:
        async with connection.transaction(readonly=True):
            return (await checksum(connection, "registry")).digest
    finally:
        await connection.close()


async def test_the_pre_check_answers_from_the_ledger_and_records_nothing(
    infrastructure: Infrastructure, database_url: str, topics: Topics
) -> None:
    number = "26-44-000901"
    await publish(infrastructure.kafka, topics.cases, _grants(number))
    async with serving(create_registry(_registry(infrastructure, database_url, topics))) as client:
        await _get_when(client, f"/licenses/{number}", balance=10)
        before = await _ledger_checksum(database_url)
        variants: dict[str, dict[str, object]] = {
            "fits": {"quantity": 10},
            "too_many": {"quantity": 11},
            "wrong_port": {"port_of_exit": "CNSHA"},
            "too_late": {"export_date": (TODAY + timedelta(days=1)).isoformat()},
            "unknown": {"license_number": "26-44-999999"},
        }
        declaration = samples.declaration_data(number, "531620260000000901")
        answers = {name: await _check(client, {**declaration, **fields}) for name, fields in variants.items()}
        await asyncio.sleep(1.0)  # anything the checks had appended would be folded by now
        after = await _ledger_checksum(database_url)
        license_ = (await client.get(f"/licenses/{number}")).json()
    assert answers == {
        "fits": (200, True, None),
        "too_many": (200, False, "exceeds_balance"),
        "wrong_port": (200, False, "wrong_port"),
        "too_late": (200, False, "outside_validity"),
        "unknown": (200, False, "unknown_license"),
    }
    assert before == after and (license_["balance"], license_["declarations_used"]) == (10, 0)
    records = await read_topic(infrastructure.kafka, topics.cases, until=lambda r: len(r) >= 1)
    assert len(records) == 1  # the grant alone: a pre-check appends nothing


async def _check(client: httpx.AsyncClient, declaration: dict[str, Any]) -> tuple[int, bool, str | None]:
    answer = await client.post("/exports/check", json=declaration)
    body = answer.json()
    return answer.status_code, body["would_pass"], (body["reason"] or {}).get("code")


async def test_a_declaration_is_recorded_once_and_one_resent_with_other_content_is_refused(
    infrastructure: Infrastructure, database_url: str, topics: Topics
) -> None:
    first, second = "26-44-000811", "26-44-000812"
    await publish(infrastructure.kafka, topics.cases, _grants(first, second))
    number = "531620260000000811"
    async with serving(create_registry(_registry(infrastructure, database_url, topics))) as client:
        await _get_when(client, f"/licenses/{first}", balance=10)
        await _get_when(client, f"/licenses/{second}", balance=10)
        verdict = await _export(client, first, number, quantity=2)
        again = await client.post("/exports", json=samples.declaration_data(first, number, quantity=2))
        changed = await client.post("/exports", json=samples.declaration_data(first, number, quantity=3))
        elsewhere = await client.post("/exports", json=samples.declaration_data(second, number, quantity=2))
        check = await client.post("/exports/check", json=samples.declaration_data(first, number, quantity=5))
        await _get_when(client, f"/licenses/{first}", balance=8)
    assert verdict["outcome"] == "accepted"
    assert again.status_code == 202, again.text
    for refused in (changed, elsewhere):
        assert (refused.status_code, refused.json()["code"]) == (409, "declaration_conflict"), refused.text
    assert "quantity" in changed.json()["message"] and "license_number" in elsewhere.json()["message"]
    assert (check.json()["would_pass"], check.json()["reason"]["code"]) == (False, "declaration_conflict")
    exports = [
        e for e in envelopes(await everything_on(infrastructure.kafka, topics.cases)) if e.producer == "registry"
    ]
    assert len(exports) == 1, "the declaration sent again appended nothing"


async def test_a_vin_claim_deleted_by_sql_does_not_free_the_vin(
    infrastructure: Infrastructure, database_url: str, topics: Topics
) -> None:
    """An insider deletes every row of vin_claims: what holds an exported VIN is the export's row of the
    ledger (in the checksum), so a second license still cannot export it."""
    first, second = "26-44-000821", "26-44-000822"
    await publish(infrastructure.kafka, topics.cases, _grants(first, second))
    async with serving(create_registry(_registry(infrastructure, database_url, topics))) as client:
        await _get_when(client, f"/licenses/{first}", balance=10)
        await _get_when(client, f"/licenses/{second}", balance=10)
        assert (await _export(client, first, "531620260000000821", vins=[VIN_X]))["outcome"] == "accepted"
        connection = await asyncpg.connect(database_url)
        try:
            await connection.execute("DELETE FROM registry.vin_claims")
        finally:
            await connection.close()
        second_export = await _export(client, second, "531620260000000822", vins=[VIN_X])
        history = (await client.get(f"/vins/{VIN_X}/exports")).json()
    assert (second_export["outcome"], second_export["reason"]["code"]) == ("refused", "vin_already_exported")
    assert [e["outcome"] for e in history] == ["accepted", "refused"]


async def test_over_kafka_a_declaration_resent_with_other_content_is_dead_lettered_as_a_conflict(
    infrastructure: Infrastructure, database_url: str, topics: Topics
) -> None:
    number, declaration = "26-44-000831", "531620260000000831"
    await publish(infrastructure.kafka, topics.cases, _grants(number))

    def command(quantity: int) -> bytes:
        body = {
            "command_id": str(uuid.uuid4()),
            "type": "RecordExport",
            "schema_version": 1,
            "sender": "gac-shenzhen",
            "payload": {"declaration": samples.declaration_data(number, declaration, quantity=quantity)},
        }
        return json.dumps(body).encode()

    async with serving(create_registry(_registry(infrastructure, database_url, topics))) as client:
        await _get_when(client, f"/licenses/{number}", balance=10)
        async with producer(infrastructure.kafka) as send:
            for value in (command(2), command(2), command(3)):
                await send.send_and_wait(topics.intake_exports, value, key=b"gac-shenzhen", headers=signed(value))
        dead = await read_topic(infrastructure.kafka, topics.dead_letter, until=lambda r: len(r) >= 1)
        await _get_when(client, f"/licenses/{number}", balance=8)
    assert [dict(r.headers)["dlq.reason-code"] for r in dead] == [b"declaration_conflict"]
    exports = [
        e for e in envelopes(await everything_on(infrastructure.kafka, topics.cases)) if e.producer == "registry"
    ]
    assert len(exports) == 1
