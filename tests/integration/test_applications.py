"""The applications service against the real broker and database."""

import asyncio
import json
import uuid
from datetime import date
from typing import Any

import asyncpg

import samples
from services.applications.app import Settings, create_app
from services.applications.submission import submitted, withdrawn
from shared.contract.events import ApplicationEscalated, ApplicationReturned, ApplicationSubmitted, Envelope, Reason
from shared.contract.topics import Topics
from tests.infra import Infrastructure
from tests.support import envelopes, eventually, everything_on, producer, read_topic, send_signed, serving, settings_for


async def test_a_valid_application_is_accepted_and_appended_keyed_by_its_case(
    infrastructure: Infrastructure, database_url: str, topics: Topics
) -> None:
    async with serving(create_app(settings_for(Settings, infrastructure, database_url, topics))) as client:
        answer = await client.post("/applications", json=samples.application_data())
    assert answer.status_code == 202, answer.text
    application_id = uuid.UUID(answer.json()["application_id"])
    records = await read_topic(infrastructure.kafka, topics.cases, until=lambda r: len(r) >= 1)
    [record] = records
    [envelope] = envelopes(records)
    assert record.key == str(application_id).encode()
    assert envelope.case_id == application_id
    assert isinstance(envelope.payload, ApplicationSubmitted)
    assert envelope.payload.application == samples.application()


async def test_an_application_can_be_withdrawn_the_moment_it_is_accepted(
    infrastructure: Infrastructure, database_url: str, topics: Topics
) -> None:
    """The service knows the case it appended at once; it does not wait to read its own event back."""
    async with serving(create_app(settings_for(Settings, infrastructure, database_url, topics))) as client:
        answer = await client.post("/applications", json=samples.application_data())
        application_id = answer.json()["application_id"]
        withdrawn = await client.post(f"/applications/{application_id}/withdraw", json={"reason": "order lost"})
        again = await client.post(f"/applications/{application_id}/withdraw", json={"reason": "order lost"})
    assert withdrawn.status_code == 202, withdrawn.text
    assert again.status_code == 202 and again.json()["event_id"] == withdrawn.json()["event_id"]


async def test_an_invalid_application_gets_each_field_and_reason(
    infrastructure: Infrastructure, database_url: str, topics: Topics
) -> None:
    bad = samples.application_data(quantity=0, destination_country="EU", port_of_exit="CNSZX, CNSHA")
    async with serving(create_app(settings_for(Settings, infrastructure, database_url, topics))) as client:
        answer = await client.post("/applications", json=bad)
    assert answer.status_code == 422
    fields = {e["field"]: e for e in answer.json()["errors"]}
    assert set(fields) == {"quantity", "destination_country", "port_of_exit"}
    assert "regions are not allowed" in fields["destination_country"]["message"]


async def test_a_retried_submission_with_its_idempotency_key_returns_the_same_id_and_one_event(
    infrastructure: Infrastructure, database_url: str, topics: Topics
) -> None:
    headers = {"Idempotency-Key": "portal-7f3a-0001"}
    async with serving(create_app(settings_for(Settings, infrastructure, database_url, topics))) as client:
        first = await client.post("/applications", json=samples.application_data(), headers=headers)
        second = await client.post("/applications", json=samples.application_data(), headers=headers)
        reused = await client.post("/applications", json=samples.application_data(quantity=3), headers=headers)
        other = await client.post("/applications", json=samples.application_data())
    assert first.json()["application_id"] == second.json()["application_id"]
    assert reused.status_code == 422 and "Idempotency-Key" in reused.json()["message"]
    await read_topic(infrastructure.kafka, topics.cases, until=lambda r: len(r) >= 2)
    records = await everything_on(infrastructure.kafka, topics.cases)
    # The retry appends nothing: the log holds one event per submission, no copy.
    assert len(records) == 2 and len({e.event_id for e in envelopes(records)}) == 2
    assert {str(e.case_id) for e in envelopes(records)} == {
        first.json()["application_id"],
        other.json()["application_id"],
    }


async def test_concurrent_retries_under_one_key_get_one_answer_and_append_one_event(
    infrastructure: Infrastructure, database_url: str, topics: Topics
) -> None:
    """Retries racing the first request of their key: each key's requests, sent at once, get one id and one event;
    a request reusing a key for other content while its first is in flight is refused and appends nothing."""
    keys = [f"portal-race-{i}" for i in range(5)]
    async with serving(create_app(settings_for(Settings, infrastructure, database_url, topics))) as client:

        async def post(key: str, quantity: int = 2) -> Any:
            data = samples.application_data(quantity=quantity)
            return await client.post("/applications", json=data, headers={"Idempotency-Key": key})

        answers = await asyncio.gather(*(post(key) for _ in range(4) for key in keys))
        reused = await asyncio.gather(*(post(key, quantity=3) for key in keys))
    by_key: dict[str, set[tuple[str, str]]] = {}
    for index, answer in enumerate(answers):
        assert answer.status_code == 202, answer.text
        body = answer.json()
        by_key.setdefault(keys[index % len(keys)], set()).add((body["application_id"], body["event_id"]))
    assert all(len(ids) == 1 for ids in by_key.values()) and len(by_key) == len(keys)
    assert all(r.status_code == 422 and r.json()["code"] == "idempotency_key_reused" for r in reused)
    await read_topic(infrastructure.kafka, topics.cases, until=lambda r: len(r) >= len(keys))
    records = await everything_on(infrastructure.kafka, topics.cases)
    assert sorted(str(e.event_id) for e in envelopes(records)) == sorted(e for [(_, e)] in by_key.values())


async def test_agency_intake_appends_good_submissions_and_dead_letters_bad_ones(
    infrastructure: Infrastructure, database_url: str, topics: Topics
) -> None:
    good_id = uuid.uuid4()
    good = {
        "command_id": str(uuid.uuid4()),
        "type": "SubmitApplication",
        "schema_version": 1,
        "sender": "gd-commerce",
        "payload": {"application_id": str(good_id), "application": samples.application_data()},
    }
    async with serving(create_app(settings_for(Settings, infrastructure, database_url, topics))):
        async with producer(infrastructure.kafka) as send:
            await send.send_and_wait(topics.intake_applications, b"{oops", key=b"a")
            await send.send_and_wait(topics.intake_applications, json.dumps({**good, "schema_version": 9}).encode())
            await send_signed(send, topics.intake_applications, json.dumps(good).encode())
        dead = await read_topic(infrastructure.kafka, topics.dead_letter, until=lambda r: len(r) >= 2)
        cases = await read_topic(infrastructure.kafka, topics.cases, until=lambda r: len(r) >= 1)
    codes = sorted(dict(r.headers)["dlq.reason-code"].decode() for r in dead)
    assert codes == ["malformed_json", "unsupported_schema_version"]
    assert {r.value for r in dead} >= {b"{oops"}
    [submitted] = envelopes(cases)
    assert submitted.case_id == good_id


async def test_a_case_followed_through_several_events_read_together_ends_where_its_last_event_leaves_it(
    infrastructure: Infrastructure, database_url: str, topics: Topics
) -> None:
    returned_id, withdrawn_id = uuid.uuid4(), uuid.uuid4()
    reason = Reason(code="price_below_reference", message="check the price")
    returned = [
        submitted(samples.application(), application_id=returned_id, channel="http"),
        Envelope.wrap(
            ApplicationEscalated(reasons=(reason,), due=date(2030, 1, 1)), case_id=returned_id, producer="review"
        ),
        Envelope.wrap(
            ApplicationReturned(officer="officer-1", reasons=(reason,)), case_id=returned_id, producer="review"
        ),
    ]
    gone = [
        submitted(samples.application(), application_id=withdrawn_id, channel="http"),
        withdrawn(withdrawn_id, None),
    ]
    async with producer(infrastructure.kafka) as send:
        # All sent before the service starts, so that it reads them in one batch.
        for envelope in [*returned, *gone]:
            await send_signed(send, topics.cases, envelope.to_bytes(), key=str(envelope.case_id).encode())
    connection = await asyncpg.connect(database_url)
    try:
        async with serving(create_app(settings_for(Settings, infrastructure, database_url, topics))):

            async def followed() -> list[asyncpg.Record] | None:
                rows = await connection.fetch(
                    "SELECT s.case_id, s.state->'application'->>'status' AS status, "
                    "(SELECT event_id FROM applications.case_events e WHERE e.case_id = s.case_id "
                    "AND e.type = 'ApplicationReturned' AND e.changed) AS returned_event_id "
                    "FROM applications.case_states s ORDER BY 2"
                )
                return rows if len(rows) == 2 and all(r["status"] != "submitted" for r in rows) else None

            rows = await eventually(followed, what="both cases followed")
    finally:
        await connection.close()
    assert [tuple(r) for r in rows] == [
        (returned_id, "returned", returned[2].event_id),
        (withdrawn_id, "withdrawn", None),
    ]
