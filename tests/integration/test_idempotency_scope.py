"""Whose an idempotency key is: an HTTP ``Idempotency-Key`` is its agency's own, a command's id its sender's.
No party's key meets another's: the same key used by two agencies gives two submissions, and an HTTP key spelled
like a command's key does not take that command's id."""

import asyncio
import json
import uuid
from typing import Any, Literal

import asyncpg

import samples
from services.applications.app import Settings, create_app
from services.applications.idempotency import application_id_of, http_key
from shared.contract.events import ApplicationSubmitted, Envelope
from shared.contract.topics import Topics
from shared.platform import db
from tests.infra import Infrastructure
from tests.support import auth, envelopes, everything_on, producer, read_topic, send_signed, serving, settings_for


async def test_two_agencies_using_one_key_each_get_their_own_submission(
    infrastructure: Infrastructure, database_url: str, topics: Topics
) -> None:
    key = {"Idempotency-Key": "portal-0001"}  # the first key of each agency's portal: the same spelling
    ours, theirs = samples.application_data(), samples.application_data(agency_code="32", quantity=4)
    async with serving(create_app(settings_for(Settings, infrastructure, database_url, topics))) as client:
        first = await client.post("/applications", json=ours, headers=key)
        other = await client.post("/applications", json=theirs, headers=key | auth("submitter32"))
        again = await client.post("/applications", json=ours, headers=key)
        other_again = await client.post("/applications", json=theirs, headers=key | auth("submitter32"))
    answers = (first, other, again, other_again)
    assert all(a.status_code == 202 for a in answers), [a.text for a in answers]
    assert first.json() == again.json() and other.json() == other_again.json()
    assert first.json()["application_id"] != other.json()["application_id"]
    assert first.json()["application_id"] == str(application_id_of(http_key("44", "portal-0001")))
    await read_topic(infrastructure.kafka, topics.cases, until=lambda r: len(r) >= 2)
    events = envelopes(await everything_on(infrastructure.kafka, topics.cases))
    agencies = {
        str(e.case_id): e.payload.application.agency_code for e in events if isinstance(e.payload, ApplicationSubmitted)
    }
    assert len(events) == 2
    assert agencies == {first.json()["application_id"]: "44", other.json()["application_id"]: "32"}


async def test_an_http_key_spelled_as_a_command_key_does_not_take_the_command_id(
    infrastructure: Infrastructure, database_url: str, topics: Topics
) -> None:
    command_id, application_id = uuid.uuid4(), uuid.uuid4()
    squatting = {"Idempotency-Key": f"intake:gd-commerce:{command_id}"}
    command = {
        "command_id": str(command_id),
        "type": "SubmitApplication",
        "schema_version": 1,
        "sender": "gd-commerce",
        "payload": {"application_id": str(application_id), "application": samples.application_data(quantity=6)},
    }
    async with serving(create_app(settings_for(Settings, infrastructure, database_url, topics))) as client:
        squatted = await client.post("/applications", json=samples.application_data(), headers=squatting)
        async with producer(infrastructure.kafka) as send:
            await send_signed(send, topics.intake_applications, json.dumps(command).encode())
        records = await read_topic(infrastructure.kafka, topics.cases, until=lambda r: len(r) >= 2)
    assert squatted.status_code == 202, squatted.text
    assert {e.case_id for e in envelopes(records)} == {uuid.UUID(squatted.json()["application_id"]), application_id}


def _submitted(agency: str, channel: Literal["http", "intake"]) -> bytes:
    application = samples.application(agency_code=agency)
    event = ApplicationSubmitted(application=application, channel=channel)
    return Envelope.wrap(event, case_id=uuid.uuid4(), producer="applications").to_bytes()


async def test_keys_kept_before_they_were_the_agencys_move_under_their_agency(database_url: str) -> None:
    """A retry after the upgrade of a request taken before it finds its key, and so its event."""
    schema = "applications_before_agency_keys"
    await asyncio.to_thread(db.migrate, "applications", database_url, schema=schema, revision="0004")
    kept_without_event = uuid.uuid4()
    rows: list[tuple[str, uuid.UUID, bytes | None]] = [
        ("portal-1", uuid.uuid4(), _submitted("32", "http")),
        ("intake:gd-commerce:7", uuid.uuid4(), _submitted("44", "intake")),
        ("intake:looks-like-a-command", uuid.uuid4(), _submitted("44", "http")),
        ("portal-2", kept_without_event, None),
        ("portal-3", uuid.uuid4(), None),  # nothing says whose: left as it was
    ]
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(f"SET search_path TO {schema}")
        await connection.executemany(
            "INSERT INTO idempotency_keys (key, application_id, fingerprint, event) VALUES ($1, $2, 'f', $3)", rows
        )
        application: dict[str, Any] = samples.application_data(agency_code="31")
        await connection.execute(
            "INSERT INTO case_states (case_id, state, application) VALUES ($1, '{}', $2::jsonb)",
            kept_without_event,
            json.dumps(application),
        )
        await db.migrate_async("applications", database_url, schema=schema)
        keys = {r["application_id"]: r["key"] for r in await connection.fetch("SELECT * FROM idempotency_keys")}
    finally:
        await connection.close()
    assert [keys[application_id] for _, application_id, _ in rows] == [
        "http:32:portal-1",
        "intake:gd-commerce:7",
        "http:44:intake:looks-like-a-command",
        "http:31:portal-2",
        "portal-3",
    ]
