"""The review service against the real broker and database."""

import re
import uuid
from typing import Any

import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import samples
from services.applications.submission import submitted
from services.review.app import Settings, create_app
from shared.contract.events import ApplicationEscalated, ApplicationRejected, Envelope, LicenseGranted
from shared.contract.topics import Topics
from tests.infra import Infrastructure
from tests.support import (
    envelopes,
    eventually,
    everything_on,
    producer,
    read_topic,
    send_signed,
    serving,
    settings_for,
    signed,
)


def _decisions(records: list) -> list:  # type: ignore[type-arg]
    return [e for e in envelopes(records) if e.producer == "review"]


async def _decided(
    infrastructure: Infrastructure, database_url: str, topics: Topics, submission: Envelope, *, deliveries: int = 1
) -> list[Envelope]:
    """Review's decisions after ``submission`` is delivered ``deliveries`` times to a running review service."""
    settings = settings_for(Settings, infrastructure, database_url, topics)
    async with serving(create_app(settings)), producer(infrastructure.kafka) as send:
        for _ in range(deliveries):
            await send_signed(send, topics.cases, submission.to_bytes(), key=str(submission.case_id).encode())
        records = await read_topic(infrastructure.kafka, topics.cases, until=lambda r: len(_decisions(r)) >= deliveries)
    return _decisions(records)


async def test_a_submission_is_granted_a_numbered_license_and_a_redelivery_appends_nothing_more(
    infrastructure: Infrastructure, database_url: str, topics: Topics
) -> None:
    application_id = uuid.uuid4()
    submission = submitted(samples.application(), application_id=application_id, channel="http")
    settings = settings_for(Settings, infrastructure, database_url, topics)
    connection = await asyncpg.connect(database_url)
    try:
        async with serving(create_app(settings)), producer(infrastructure.kafka) as send:
            key = str(submission.case_id).encode()
            await send_signed(send, topics.cases, submission.to_bytes(), key=key)
            await read_topic(infrastructure.kafka, topics.cases, until=lambda r: len(_decisions(r)) >= 1)
            again = await send_signed(send, topics.cases, submission.to_bytes(), key=key)

            async def followed_past_the_redelivery() -> bool | None:
                position = await connection.fetchval(
                    "SELECT next_offset FROM review.followed_positions WHERE partition = $1", again.partition
                )
                return True if position is not None and position > again.offset else None

            await eventually(followed_past_the_redelivery, what="review read the submission again")
        [first] = _decisions(await everything_on(infrastructure.kafka, topics.cases))
        assert await connection.fetchval("SELECT count(*) FROM review.decisions") == 1
    finally:
        await connection.close()
    assert isinstance(first.payload, LicenseGranted)
    assert re.fullmatch(r"\d{2}-44-\d{6}", first.payload.license_number)
    assert first.case_id == application_id and first.causation_id == submission.event_id
    assert first.payload.officer is None  # the rules granted it, no officer


async def test_an_ineligible_submission_is_rejected_with_reason_codes(
    infrastructure: Infrastructure, database_url: str, topics: Topics
) -> None:
    application_id = uuid.uuid4()
    app = samples.application(model_code="ZZ9999BEV", port_of_exit="CNZZZ")
    submission = submitted(app, application_id=application_id, channel="http")
    [decision] = await _decided(infrastructure, database_url, topics, submission)
    assert isinstance(decision.payload, ApplicationRejected)
    assert [r.code for r in decision.payload.reasons] == ["model_not_listed", "unknown_port"]
    assert decision.payload.officer is None


async def test_a_price_far_below_the_reference_is_escalated_to_an_officer_with_a_due_date(
    infrastructure: Infrastructure, database_url: str, topics: Topics
) -> None:
    application_id = uuid.uuid4()
    submission = submitted(samples.application(unit_price="20000.00"), application_id=application_id, channel="http")
    [decision] = await _decided(infrastructure, database_url, topics, submission)
    assert isinstance(decision.payload, ApplicationEscalated)
    assert [r.code for r in decision.payload.reasons] == ["price_below_reference"]
    assert decision.payload.due > submission.occurred_at.date()


async def test_an_unreadable_event_and_one_with_binary_headers_in_a_batch_leave_no_submission_undecided(
    infrastructure: Infrastructure, database_url: str, topics: Topics
) -> None:
    first, second = (submitted(samples.application(), application_id=uuid.uuid4(), channel="http") for _ in range(2))
    bootstrap = infrastructure.kafka
    odd_headers: Any = [("binary", b"\xff\xfe"), ("null", None)]  # both valid in Kafka; aiokafka types them as bytes
    async with producer(bootstrap) as send:
        # All sent before review starts, so that it reads them in one batch.
        headers = signed(first.to_bytes()) + odd_headers
        await send.send_and_wait(topics.cases, first.to_bytes(), key=str(first.case_id).encode(), headers=headers)
        await send.send_and_wait(topics.cases, UNREADABLE, key=str(first.case_id).encode())
        await send_signed(send, topics.cases, second.to_bytes(), key=str(second.case_id).encode())
    settings = settings_for(Settings, infrastructure, database_url, topics)
    async with serving(create_app(settings)):
        records = await read_topic(bootstrap, topics.cases, until=lambda r: len(_readable_decisions(r)) >= 2)
        dead = await read_topic(bootstrap, topics.dead_letter, until=lambda r: len(r) >= 1)
    decided = {d.causation_id for d in _readable_decisions(records)}
    assert decided == {first.event_id, second.event_id}
    assert [(dict(r.headers)["dlq.service"], dict(r.headers)["dlq.reason-code"]) for r in dead] == [
        (b"review", b"unreadable_event")
    ]


UNREADABLE = b'{"not": "an event"}'


def _readable_decisions(records: list) -> list[Envelope]:  # type: ignore[type-arg]
    return _decisions([r for r in records if r.value != UNREADABLE])


async def test_a_submission_on_the_case_stream_without_a_trusted_signature_is_not_decided_but_dead_lettered(
    infrastructure: Infrastructure, database_url: str, topics: Topics
) -> None:
    """Only the applications service may put a submission on the case stream: a forged one, unsigned or signed
    by a key not trusted for it, gets no license, however eligible it looks."""
    forged, forged_key, genuine = (
        submitted(samples.application(), application_id=uuid.uuid4(), channel="http") for _ in range(3)
    )
    stranger = Ed25519PrivateKey.generate()
    settings = settings_for(Settings, infrastructure, database_url, topics)
    async with serving(create_app(settings)), producer(infrastructure.kafka) as send:
        await send.send_and_wait(topics.cases, forged.to_bytes(), key=str(forged.case_id).encode())
        value = forged_key.to_bytes()
        await send.send_and_wait(
            topics.cases, value, key=str(forged_key.case_id).encode(), headers=signed(value, stranger)
        )
        await send_signed(send, topics.cases, genuine.to_bytes(), key=str(genuine.case_id).encode())
        records = await read_topic(infrastructure.kafka, topics.cases, until=lambda r: len(_decisions(r)) >= 1)
        dead = await read_topic(infrastructure.kafka, topics.dead_letter, until=lambda r: len(r) >= 2)
    assert {d.causation_id for d in _decisions(records)} == {genuine.event_id}
    assert sorted((dict(r.headers)["dlq.service"], dict(r.headers)["dlq.reason-code"]) for r in dead) == [
        (b"review", b"unsigned_event"),
        (b"review", b"untrusted_key"),
    ]
