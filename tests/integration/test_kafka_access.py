"""Least privilege on Kafka: who may log in, and what each principal may read and write.

Run against the provisioned broker (SASL/SCRAM, deny unless an ACL allows), as its admin, which makes
each test's principals with ``shared.platform.kafka_admin.grant`` from the table in shared/platform/kafka_access.py.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, TopicAuthorizationFailedError

from shared.contract.topics import Topics
from shared.platform.kafka_access import KafkaConnection, Role
from shared.platform.kafka_admin import PrincipalError, grant, new_password, revoke
from tests.infra import IN_CI, Infrastructure


@pytest.fixture
async def principals(infrastructure: Infrastructure, topics: Topics) -> AsyncIterator[Callable[..., object]]:
    """Make principals for this test's namespace (as the admin); delete them and their ACLs after."""
    if not infrastructure.kafka.authenticated:
        message = f"the broker at {infrastructure.kafka.bootstrap_servers} takes no login (KAFKA_USERNAME unset)"
        if IN_CI:
            pytest.fail(f"{message}: the provisioned broker must enforce SASL and ACLs")
        pytest.skip(f"{message}: ACLs need the provisioned SASL broker")
    made: list[str] = []

    async def make(base: str, role: Role) -> KafkaConnection:
        name, password = f"{topics.namespace}-{base}", new_password()
        made.append(name)
        await asyncio.to_thread(grant, infrastructure.kafka, name, role, topics, password)
        return infrastructure.kafka.login(name, password)

    yield make
    for name in made:
        await asyncio.to_thread(revoke, infrastructure.kafka, name)


async def _send(login: KafkaConnection, topic: str) -> None:
    producer = AIOKafkaProducer(**login.options(), request_timeout_ms=10000)
    try:
        await producer.start()
        await producer.send_and_wait(topic, b"{}", key=b"k")
    finally:
        await producer.stop()


async def _read(login: KafkaConnection, topic: str, group: str | None = None) -> None:
    consumer = AIOKafkaConsumer(topic, **login.options(), group_id=group, auto_offset_reset="earliest")
    try:
        await consumer.start()
        await consumer.getmany(timeout_ms=2000)
    finally:
        await consumer.stop()


async def test_customs_writes_its_intake_topic_and_nothing_else(principals, topics: Topics) -> None:  # type: ignore[no-untyped-def]
    customs = await principals("customs", Role.CUSTOMS)
    await _send(customs, topics.intake_exports)
    for forbidden in (topics.cases, topics.intake_applications, topics.license_changes, topics.checkpoints):
        with pytest.raises(TopicAuthorizationFailedError):
            await _send(customs, forbidden)
    with pytest.raises(TopicAuthorizationFailedError):
        await _read(customs, topics.cases)


async def test_an_agency_writes_only_the_application_intake(principals, topics: Topics) -> None:  # type: ignore[no-untyped-def]
    agency = await principals("agency-44", Role.AGENCY)
    await _send(agency, topics.intake_applications)
    for forbidden in (topics.cases, topics.intake_exports, topics.dead_letter):
        with pytest.raises(TopicAuthorizationFailedError):
            await _send(agency, forbidden)


async def test_only_our_services_write_the_case_stream(principals, topics: Topics) -> None:  # type: ignore[no-untyped-def]
    for role in (Role.APPLICATIONS, Role.REVIEW, Role.REGISTRY):
        await _send(await principals(role.value, role), topics.cases)
    for role in (Role.AGENCY, Role.CUSTOMS, Role.AUDITOR, Role.SUBSCRIBER):
        with pytest.raises(TopicAuthorizationFailedError):
            await _send(await principals(f"other-{role.value}", role), topics.cases)


async def test_an_auditor_reads_the_log_and_writes_nothing(principals, topics: Topics) -> None:  # type: ignore[no-untyped-def]
    auditor = await principals("auditor", Role.AUDITOR)
    await _read(auditor, topics.cases)
    await _read(auditor, topics.checkpoints)
    with pytest.raises(TopicAuthorizationFailedError):
        await _send(auditor, topics.cases)


async def test_unknown_principals_and_wrong_passwords_cannot_connect(  # type: ignore[no-untyped-def]
    principals, infrastructure: Infrastructure, topics: Topics
) -> None:
    customs = await principals("customs", Role.CUSTOMS)
    stranger = infrastructure.kafka.login(f"nobody-{uuid.uuid4().hex[:8]}", new_password())
    wrong_password = customs.login(customs.username, "not-the-password")
    no_login = infrastructure.kafka.login(None, None)
    assert not no_login.authenticated
    for refused in (stranger, wrong_password, no_login):
        with pytest.raises(KafkaConnectionError):
            await _send(refused, topics.intake_exports)
    await _send(customs, topics.intake_exports)  # the same broker, with the right login


async def test_a_revoked_principal_cannot_connect_any_more(  # type: ignore[no-untyped-def]
    principals, infrastructure: Infrastructure, topics: Topics
) -> None:
    customs = await principals("customs", Role.CUSTOMS)
    await _send(customs, topics.intake_exports)
    assert await asyncio.to_thread(revoke, infrastructure.kafka, customs.username) == 1

    async def refused() -> bool:
        try:
            await _send(customs, topics.intake_exports)
        except KafkaConnectionError:
            return True
        return False

    # The broker drops the credential when the controller's change reaches it: a moment, not at once.
    for _ in range(50):
        if await refused():
            break
        await asyncio.sleep(0.2)
    else:
        raise AssertionError("the revoked principal still logs in")


def test_a_principal_name_the_broker_would_misread_is_refused(infrastructure: Infrastructure) -> None:
    topics = Topics("x")
    for name in ("admin", "Customs", "customs;User:admin", "", "a" * 64):
        with pytest.raises(PrincipalError):
            grant(infrastructure.kafka, name, Role.CUSTOMS, topics, "password")
