"""Helpers for tests over the real broker: run an app in-process, read a topic, wait for a state."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import httpx
import jwt
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI

from licensectl.keys import own_statement
from shared.contract import signatures
from shared.contract.events import Envelope
from shared.contract.topics import Topics
from shared.contract.trust import KeyScope
from shared.platform.kafka_access import KafkaConnection
from shared.platform.settings import ServiceSettings
from shared.platform.signing import ALWAYS, ANY_EVENT
from shared.platform.trust import EVENTS_OF, TrustLog, TrustStatement, root_keys, trusting
from tests.infra import ROOT, Infrastructure

T = TypeVar("T")
S = TypeVar("S", bound=ServiceSettings)


def licensectl(
    *args: str, infrastructure: Infrastructure, database_url: str, topics: Topics, **env: str
) -> subprocess.CompletedProcess[str]:
    """``python -m licensectl ARGS`` as an operator runs it against the test's broker (as its admin), database
    and topic namespace, ``env`` added; wide enough that rich does not wrap its lines."""
    environment = {**os.environ, **infrastructure.kafka.environment(), "COLUMNS": "250"}
    environment |= {"DATABASE_URL": database_url, "LEDGER_TOPIC_NAMESPACE": topics.namespace, **env}
    command = [sys.executable, "-m", "licensectl", *args]
    return subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120)


def settings_for(kind: type[S], infrastructure: Infrastructure, database_url: str, topics: Topics, **extra: Any) -> S:
    """A service's settings pointed at the test's broker, database and topic namespace."""
    return kind(
        **infrastructure.service_kafka(),
        database_url=database_url,
        topic_namespace=topics.namespace,
        **extra,
    )


CREDENTIALS: dict[str, tuple[str, tuple[str, ...]]] = {
    "all": ("44", ("submitter", "officer", "customs", "auditor", "admin")),
    **{f"{role}44": ("44", (role,)) for role in ("submitter", "officer", "customs", "auditor", "admin")},
    "submitter32": ("32", ("submitter",)),
    "officer32": ("32", ("officer",)),
    "customs-shenzhen": ("00", ("customs",)),
    "backend44": ("44", ("submitter",)),
}
"""The credentials every test database holds (tests/conftest.py): name -> agency and roles."""
OFFICERS = {"all": "officer.wang", "officer44": "officer.wang", "officer32": "officer.li"}
"""The officer each test credential with the officer role is issued to."""
SENDERS = {"customs-shenzhen": "gac-shenzhen", "backend44": "gd-commerce"}
"""The intake sender each test credential bound to one speaks for (it reads that sender's refusals)."""


def key(name: str) -> str:
    """The API key of test credential ``name``: fixed, so that processes and clients agree on it."""
    return f"lk_test{name}_{'s' * 43}"


def auth(name: str = "all") -> dict[str, str]:
    """The header that authenticates as test credential ``name`` (by default: agency 44, every role)."""
    return {"Authorization": f"Bearer {key(name)}"}


@contextlib.asynccontextmanager
async def serving(app: FastAPI, *, as_: str | None = "all") -> AsyncIterator[httpx.AsyncClient]:
    """The app started as in production (its lifespan: pool, broker, consumers), with a client sending
    the key of test credential ``as_`` (None: no key)."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        headers = auth(as_) if as_ else None
        async with httpx.AsyncClient(transport=transport, base_url="http://test", headers=headers) as client:
            yield client


async def read_topic(
    kafka: KafkaConnection,
    topic: str,
    *,
    until: Callable[[list[ConsumerRecord[bytes, bytes]]], bool],
    timeout: float = 20,
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of ``topic`` from the start, once ``until`` holds of them (or fail at timeout)."""
    consumer = AIOKafkaConsumer(topic, **kafka.options(), auto_offset_reset="earliest")
    await consumer.start()
    try:
        records: list[ConsumerRecord[bytes, bytes]] = []
        deadline = time.monotonic() + timeout
        while not until(records):
            if time.monotonic() > deadline:
                raise AssertionError(f"{topic}: condition not met in {timeout}s; {len(records)} records read")
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(batch)
        return records
    finally:
        await consumer.stop()


async def everything_on(kafka: KafkaConnection, topic: str) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of ``topic`` up to its end as of now: none left unread, none waited for."""
    consumer = AIOKafkaConsumer(topic, **kafka.options(), auto_offset_reset="earliest")
    await consumer.start()
    try:
        ends = await consumer.end_offsets(list(consumer.assignment()))
        records: list[ConsumerRecord[bytes, bytes]] = []
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(batch)
        return records
    finally:
        await consumer.stop()


def envelopes(records: list[ConsumerRecord[bytes, bytes]]) -> list[Envelope]:
    return [Envelope.from_bytes(r.value or b"") for r in records]


async def eventually(probe: Callable[[], Awaitable[T | None]], *, timeout: float = 20, what: str = "") -> T:
    """The first non-None answer of ``probe``, polled until ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        answer = await probe()
        if answer is not None:
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or probe}")
        await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def producer(kafka: KafkaConnection) -> AsyncIterator[AIOKafkaProducer]:
    client = AIOKafkaProducer(**kafka.options(), acks="all")
    await client.start()
    try:
        yield client
    finally:
        await client.stop()


SIGNING_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
"""The test producers' signing key: trusted on every test's trust topic for each of SIGNING_PRODUCERS."""
SIGNING_PRODUCERS = ("test", "fixture", "applications", "review", "registry")
"""Producers of events (any type): tests write events under these names."""
COMMAND_SENDERS = {"gd-commerce": KeyScope(use="commands", agency_code="44"), "gac-shenzhen": KeyScope(use="commands")}
"""Senders of intake commands: an agency's (of agency 44) and customs' (unscoped: any port)."""
ROOT_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(100, 132)))
"""The tests' operator root key: LEDGER_TRUST_ROOT_KEYS pins its public half (tests/conftest.py)."""


def trust_for_tests() -> list[TrustStatement]:
    """What every test's trust topic says from the start (valid for all time): the test key for each test
    producer and sender, and each service's own key (from its key directory, as the services load it)."""
    public = SIGNING_KEY.public_key()
    statements = [trusting(p, public, ANY_EVENT, at=ALWAYS) for p in SIGNING_PRODUCERS]
    statements += [trusting(sender, public, scope, at=ALWAYS) for sender, scope in COMMAND_SENDERS.items()]
    return statements + [own_statement(service) for service in EVENTS_OF]


def signed(value: bytes, key: Ed25519PrivateKey = SIGNING_KEY) -> list[tuple[str, bytes]]:
    """The headers that sign ``value`` with ``key`` (the trusted test key unless told otherwise)."""
    return signatures.signature_headers(value, key)


async def send_signed(
    send: AIOKafkaProducer, topic: str, value: bytes, *, key: bytes | None = None, partition: int | None = None
) -> Any:
    """Send ``value`` to ``topic`` signed with the trusted test key, and wait for the broker's answer."""
    return await send.send_and_wait(topic, value, key=key, partition=partition, headers=signed(value))


JWT_ISSUER = "https://id.licensing.test"
_JWT_KEY = Ed25519PrivateKey.generate()
JWT_PUBLIC_KEY = (
    _JWT_KEY.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
).decode()
"""The test issuer's public key (PEM), as a service is configured with LEDGER_JWT_PUBLIC_KEY."""


def token(agency: str, roles: list[str], *, lifetime: float = 300, claims: dict[str, Any] | None = None) -> str:
    """A JWT of the test issuer for ``agency`` and ``roles``; ``claims`` add to or replace the usual ones."""
    now = int(time.time())
    body = {
        "iss": JWT_ISSUER,
        "aud": "export-license-ledger",
        "sub": "portal-user",
        "iat": now,
        "exp": now + int(lifetime),
        "agency": agency,
        "roles": roles,
    }
    return jwt.encode({**body, **(claims or {})}, _JWT_KEY, algorithm="EdDSA")


@contextlib.asynccontextmanager
async def trust_log(kafka: KafkaConnection, topics: Topics) -> AsyncIterator[TrustLog]:
    """The test's trust topic, read as a service reads it (under the tests' pinned root key)."""
    log = TrustLog(kafka, topics.trust, root_keys(signatures.public_b64(ROOT_KEY.public_key())))
    await log.start()
    try:
        yield log
    finally:
        await log.stop()
