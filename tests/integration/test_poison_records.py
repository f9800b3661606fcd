"""No record stops a reader, whatever its bytes and headers: a property test against the real broker.

Hypothesis draws records no reader can take: arbitrary header names and values (binary, null, NUL
bytes, the signature headers themselves filled with junk, a name twice), arbitrary bytes or none as the
value, and well-formed commands and events whose headers alone are wrong. Each example sends a batch of
them to a topic, then one good record behind them under the same key (so in the same partition), with
the three services running. Every reader of the topic must dead-letter each poison record (once, with a
reason) and take the good one behind it, and be healthy at the end: no partition blocked, no reader
left failing, nothing spinning. The readers: the two intake topics (applications, registry), and the case
stream (applications' follower, review, and the registry's fold). The checkpoint topic's readers (replay
and audit) are held to the same in ``test_checkpoint_topic_junk_is_named_not_fatal``.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import AsyncExitStack
from dataclasses import dataclass
from functools import partial
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

import samples
from services.applications import app as applications
from services.registry import app as registry
from services.registry import checkpoints
from services.review import app as review
from shared.contract.events import ApplicationSubmitted, Envelope
from shared.contract.signatures import KEY_ID_HEADER, SIGNATURE_HEADER
from shared.contract.topics import Topics
from shared.platform.kafka_admin import partition_count
from tests.infra import Infrastructure
from tests.support import auth, eventually, everything_on, producer, serving, signed

TAG = "poison.id"  # names each poison record, to find its dead letters; a header, so it is poison's own too
Headers = list[tuple[str, bytes | None]]
EXAMPLES = 4
BATCH = 12

junk_bytes = st.one_of(
    st.binary(max_size=64),
    st.sampled_from([b"\x00", b"\x00" * 64, b"\xff\xfe", "é".encode("utf-16"), b"\x1b[31m", b"%s%n", b"\x00abc"]),
)
header_value = st.one_of(st.none(), junk_bytes, st.text(max_size=32).map(str.encode))
header_name = st.one_of(
    st.sampled_from([SIGNATURE_HEADER, KEY_ID_HEADER, "content-type", "event-type", "correlation_id", "reply_to"]),
    st.text(max_size=24),
)
headers = st.lists(st.tuples(header_name, header_value), max_size=6)
value = st.one_of(
    st.none(),
    st.binary(max_size=300),
    st.sampled_from(
        [b"", b"{}", b"[]", b"null", b"{" * 2000, b"[" * 5000 + b"]" * 5000, b'{"type": "\\u0000"}', b'{"a":1,"a":2}']
    ),
)


@dataclass(frozen=True)
class Poison:
    value: bytes | None
    headers: Headers
    well_formed: bool = False  # a readable body, spoilt by its headers only


def poison_for(good_value: Callable[[], bytes]) -> st.SearchStrategy[Poison]:
    """Junk of every kind, and good bodies whose signature headers alone are junk (or missing, or twice)."""

    def spoilt(body: bytes, junk: Headers, how: int) -> Poison:
        signature = signed(body)
        if how == 0:  # the key id holds whatever was drawn (a NUL byte: the examination's case)
            return Poison(body, [signature[0], (KEY_ID_HEADER, junk[0][1] if junk else b"\x00"), *junk], True)
        if how == 1:  # the signature holds junk
            return Poison(body, [(SIGNATURE_HEADER, junk[0][1] if junk else None), signature[1], *junk], True)
        if how == 2:  # both headers twice, the first pair junk (a reader takes the first of a name)
            return Poison(body, [*[(n, b"\x00") for n, _ in signature], *signature, *junk], True)
        return Poison(body, junk, True)  # not signed at all

    good = st.builds(lambda junk, how: spoilt(good_value(), junk, how), headers, st.integers(0, 3))
    return st.one_of(st.builds(Poison, value, headers), good)


def _submit_command() -> bytes:
    command = {
        "command_id": str(uuid.uuid4()),
        "type": "SubmitApplication",
        "schema_version": 1,
        "sender": "gd-commerce",
        "payload": {"application_id": str(uuid.uuid4()), "application": samples.application_data()},
    }
    return json.dumps(command).encode()


def _export_command(license_number: str) -> Callable[[], bytes]:
    def command() -> bytes:
        declaration = samples.declaration_data(license_number, f"5316{uuid.uuid4().int % 10**14:014d}", quantity=1)
        body = {
            "command_id": str(uuid.uuid4()),
            "type": "RecordExport",
            "schema_version": 1,
            "sender": "gac-shenzhen",
            "payload": {"declaration": declaration},
        }
        return json.dumps(body).encode()

    return command


def _submitted_event(case_id: uuid.UUID) -> bytes:
    event = ApplicationSubmitted(application=samples.application(), channel="intake")
    return Envelope.wrap(event, case_id=case_id, producer="applications").to_bytes()


@pytest.fixture
async def system(infrastructure: Infrastructure, database_url: str, topics: Topics) -> AsyncIterator[dict[str, Any]]:
    """The three services in-process; a client of each, by name."""
    common: dict[str, Any] = {
        **infrastructure.service_kafka(),
        "database_url": database_url,
        "topic_namespace": topics.namespace,
        "rate_limit_per_second": 0,
    }
    async with AsyncExitStack() as stack:
        clients = {
            "applications": await stack.enter_async_context(
                serving(applications.create_app(applications.Settings(**common)))
            ),
            "review": await stack.enter_async_context(serving(review.create_app(review.Settings(**common)))),
            "registry": await stack.enter_async_context(serving(registry.create_app(registry.Settings(**common)))),
        }
        yield clients


def _run_examples(
    loop: asyncio.AbstractEventLoop,
    strategy: st.SearchStrategy[list[Poison]],
    example: Callable[[list[Poison]], Coroutine[Any, Any, None]],
) -> None:
    @given(batch=strategy)
    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def no_record_stops_a_reader(batch: list[Poison]) -> None:
        note(repr(batch))
        asyncio.run_coroutine_threadsafe(example(batch), loop).result(timeout=120)

    no_record_stops_a_reader()


async def _send(send: AIOKafkaProducer, topic: str, key: bytes, batch: list[Poison]) -> list[str]:
    tags = []
    for poison in batch:
        tag = uuid.uuid4().hex
        tags.append(tag)
        await send.send_and_wait(topic, poison.value, key=key, headers=[*poison.headers, (TAG, tag.encode())])
    return tags


async def _dead_letters(infrastructure: Infrastructure, topic: str) -> Counter[tuple[str, str]]:
    """(poison tag, service) of every dead letter so far, counted."""
    found: Counter[tuple[str, str]] = Counter()
    for record in await everything_on(infrastructure.kafka, topic):
        names = {name: value for name, value in record.headers}
        tag, service = names.get(TAG), names.get("dlq.service")
        assert names.get("dlq.reason-code") and names.get("dlq.reason"), "every dead letter says why"
        if tag is not None and service is not None:
            found[(tag.decode(), service.decode())] += 1
    return found


async def _all_dead_lettered(
    infrastructure: Infrastructure, topics: Topics, tags: list[str], services: tuple[str, ...]
) -> None:
    async def done() -> bool | None:
        found = await _dead_letters(infrastructure, topics.dead_letter)
        return True if all(found[(t, s)] >= 1 for t in tags for s in services) else None

    await eventually(done, timeout=60, what=f"{len(tags)} poison records dead-lettered by {services}")
    found = await _dead_letters(infrastructure, topics.dead_letter)
    assert [k for k, n in found.items() if k[0] in tags and n != 1] == [], "each reader dead-letters a record once"


LAG = re.compile(
    r'ledger_consumer_lag\{group="(?P<group>[^"]*)",partition="(?P<partition>\d+)",topic="(?P<topic>[^"]*)"\} '
    r"(?P<lag>\S+)"
)


async def _where(
    infrastructure: Infrastructure, database_url: str, topics: Topics, clients: dict[str, httpx.AsyncClient]
) -> str:
    """Where the case stream's records stand: its partitions' ends, how far the ledger applied them, the decisions
    review has not sent, and each service's health and consumer lag."""
    consumer = AIOKafkaConsumer(**infrastructure.kafka.options())
    await consumer.start()
    try:
        partitions = range(await partition_count(infrastructure.kafka, topics.cases))
        ends = await consumer.end_offsets([TopicPartition(topics.cases, p) for p in partitions])
    finally:
        await consumer.stop()
    said = [f"case stream ends {sorted((tp.partition, end) for tp, end in ends.items())}"]
    connection = await asyncpg.connect(database_url)
    try:  # what the ledger applied (its own offsets, not the group's hint), and the decisions review has not sent
        applied = await connection.fetch("SELECT partition, next_offset FROM registry.partition_offsets")
        unsent = await connection.fetch("SELECT case_id, decision_type FROM review.decisions WHERE NOT sent")
    finally:
        await connection.close()
    said.append(f"ledger applied up to {sorted(tuple(r) for r in applied)}")
    said.append(f"decisions not sent {[(str(r['case_id']), r['decision_type']) for r in unsent]}")
    for name, client in clients.items():
        health = await client.get("/health")
        metrics = await client.get("/metrics", headers=auth("all"))
        lag = {
            f"{m['group']}/{m['partition']}": m["lag"]
            for m in re.finditer(LAG, metrics.text)
            if m["topic"] == topics.cases and float(m["lag"]) > 0
        }
        said.append(f"{name}: health {health.text}; lag on the case stream {lag or 'none'}")
    return "; ".join(said)


async def _healthy(clients: dict[str, httpx.AsyncClient]) -> None:
    for name, client in clients.items():
        health = await client.get("/health")
        assert health.status_code == 200 and health.json()["readers"] == "ok", (name, health.json())


async def test_no_record_stops_an_intake_reader(
    infrastructure: Infrastructure, topics: Topics, system: dict[str, httpx.AsyncClient]
) -> None:
    registry_client = system["registry"]
    loop = asyncio.get_running_loop()
    async with producer(infrastructure.kafka) as send:

        async def applications_example(batch: list[Poison]) -> None:
            tags = await _send(send, topics.intake_applications, b"gd-commerce", batch)
            good = _submit_command()
            await send.send_and_wait(topics.intake_applications, good, key=b"gd-commerce", headers=signed(good))
            application_id = json.loads(good)["payload"]["application_id"]
            await eventually(
                lambda: _status(registry_client, application_id, "approved"), timeout=60, what="the good one decided"
            )
            await _all_dead_lettered(infrastructure, topics, tags, ("applications",))

        strategy = st.lists(poison_for(_submit_command), min_size=BATCH, max_size=BATCH)
        await asyncio.to_thread(_run_examples, loop, strategy, applications_example)

        grant = await registry_client.get("/licenses", params={"status": "active", "limit": 1})
        license_number = grant.json()["items"][0]["license_number"]

        async def exports_example(batch: list[Poison]) -> None:
            tags = await _send(send, topics.intake_exports, b"gac-shenzhen", batch)
            good = _export_command(license_number)()
            await send.send_and_wait(topics.intake_exports, good, key=b"gac-shenzhen", headers=signed(good))
            number = json.loads(good)["payload"]["declaration"]["declaration_number"]
            await eventually(lambda: _judged(registry_client, number), timeout=60, what="the good export judged")
            await _all_dead_lettered(infrastructure, topics, tags, ("registry",))

        strategy = st.lists(poison_for(_export_command(license_number)), min_size=BATCH, max_size=BATCH)
        await asyncio.to_thread(_run_examples, loop, strategy, exports_example)
    await _healthy(system)


async def test_no_record_stops_a_reader_of_the_case_stream(
    infrastructure: Infrastructure, database_url: str, topics: Topics, system: dict[str, httpx.AsyncClient]
) -> None:
    registry_client = system["registry"]
    loop = asyncio.get_running_loop()
    case_id = uuid.uuid4()  # every record of the test under one key: one partition, the good ones behind the bad
    async with producer(infrastructure.kafka) as send:

        async def example(batch: list[Poison]) -> None:
            tags = await _send(send, topics.cases, str(case_id).encode(), batch)
            good_case = uuid.uuid4()
            good = _submitted_event(good_case)
            await send.send_and_wait(topics.cases, good, key=str(good_case).encode(), headers=signed(good))
            decided = partial(_status, registry_client, str(good_case), "approved")
            try:
                await eventually(decided, timeout=60, what="the good one decided")
            except AssertionError as timeout:  # seen once in ~30 runs: say where the decision stopped
                where = await _where(infrastructure, database_url, topics, system)
                raise AssertionError(f"{timeout}; {where}") from None
            await _all_dead_lettered(infrastructure, topics, tags, ("applications", "review", "registry"))

        strategy = st.lists(poison_for(lambda: _submitted_event(case_id)), min_size=BATCH, max_size=BATCH)
        await asyncio.to_thread(_run_examples, loop, strategy, example)
    await _healthy(system)


async def test_checkpoint_topic_junk_is_named_not_fatal(infrastructure: Infrastructure, topics: Topics) -> None:
    """Replay and audit read the checkpoint topic: a record there that is not a checkpoint is skipped by the one
    and named by the other, never raised."""
    from licensectl import audit

    loop = asyncio.get_running_loop()
    async with producer(infrastructure.kafka) as send:

        async def example(batch: list[Poison]) -> None:
            for poison in batch:
                await send.send_and_wait(topics.checkpoints, poison.value, key=b"registry", headers=poison.headers)
            found = await checkpoints.latest_trusted(
                infrastructure.kafka,
                topics.checkpoints,
                {"k": object()},  # type: ignore[dict-item]  # a key of no kind: nothing verifies
                topic=topics.cases,
                within={},
            )
            assert found is None
            verdicts = await audit._read_checkpoints(infrastructure.kafka, topics.checkpoints, {})
            assert verdicts and all(not v.ok for v in verdicts), "each record that is no checkpoint is named"

        strategy = st.lists(st.builds(Poison, value, headers), min_size=BATCH, max_size=BATCH)
        await asyncio.to_thread(_run_examples, loop, strategy, example)


async def _status(client: httpx.AsyncClient, application_id: str, status: str) -> bool | None:
    answer = await client.get(f"/applications/{application_id}", headers=auth("all"))
    return True if answer.status_code == 200 and answer.json()["status"] == status else None


async def _judged(client: httpx.AsyncClient, declaration_number: str) -> bool | None:
    answer = await client.get(f"/exports/{declaration_number}", headers=auth("all"))
    return True if answer.status_code == 200 else None
