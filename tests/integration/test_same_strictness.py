"""HTTP takes exactly what the Kafka intake takes: the same input is refused with the same code on both paths.

Each example mutates a valid application or export declaration the way careless or hostile senders do: a
control, bidirectional or zero-width character in any text (a value or a key), a count written as ``true``,
``10.0`` or ``"10"``, a day written as a number, a key named twice, fewer VINs than vehicles. It is posted
to the real service over HTTP, and read as a command the way the service's Kafka consumer reads it
(``decode_command``; the consumers themselves are driven in ``test_bad_input.py``). Both must refuse it,
with one code. Also here: the credential is checked before the body, and an empty Idempotency-Key is refused.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

import samples
from services.applications import app as applications
from services.registry import app as registry
from shared.contract.commands import RecordExport, SubmitApplication, decode_command
from shared.contract.refusal import Refusal
from shared.contract.topics import Topics
from shared.platform.clock import china_today
from tests.infra import Infrastructure
from tests.support import key, serving, settings_for

TEXT_FIELDS = (
    ("brand",),
    ("trade_mode",),
    ("contract_number",),
    ("payment_mode",),
    ("transport_mode",),
    ("applicant", "name"),
    ("manufacturer", "name"),
)
COUNT_FIELDS = (("quantity",), ("license_year",))
# Characters no text may hold: C0 and C1 controls, bidirectional controls, zero-width ones, separators.
UNCLEAN = st.one_of(
    st.characters(min_codepoint=0, max_codepoint=0x1F),
    st.characters(min_codepoint=0x7F, max_codepoint=0x9F),
    st.sampled_from(["\u200b", "\u200c", "\u200d", "\u200e", "\u200f", "\u2060", "\ufeff", "\u061c", "\u2028"]),
    st.characters(min_codepoint=0x202A, max_codepoint=0x202E),
    st.characters(min_codepoint=0x2066, max_codepoint=0x2069),
)
NOT_A_COUNT = st.sampled_from([True, False, 10.0, 2026.0, "10", "2026", [10], {"n": 10}])


@dataclass(frozen=True)
class Sample:
    """One mutated input: what it is, as a JSON text."""

    label: str
    raw: bytes


def _set(data: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    data = json.loads(json.dumps(data))
    target = data
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return data


@st.composite
def unclean_text(draw: st.DrawFn, base: dict[str, Any]) -> Sample:
    path = draw(st.sampled_from(TEXT_FIELDS))
    target: Any = base
    for part in path:
        target = target[part]
    at = draw(st.integers(0, len(target)))
    character = draw(UNCLEAN)
    if draw(st.booleans()):
        text = target[:at] + character + target[at:]
        return Sample(f"{'.'.join(path)} holds U+{ord(character):04X}", json.dumps(_set(base, path, text)).encode())
    key = path[-1][:at] + character + path[-1][at:]  # in a key: refused as text before it is an unknown field
    return Sample(f"key {key!r}", json.dumps(_set(base, (*path[:-1], key), "x")).encode())


@st.composite
def not_a_count(draw: st.DrawFn, base: dict[str, Any], fields: tuple[tuple[str, ...], ...]) -> Sample:
    path, value = draw(st.sampled_from(fields)), draw(NOT_A_COUNT)
    return Sample(f"{'.'.join(path)} = {value!r}", json.dumps(_set(base, path, value)).encode())


@st.composite
def key_twice(draw: st.DrawFn, base: dict[str, Any]) -> Sample:
    key = draw(st.sampled_from(sorted(base)))
    text = json.dumps(base)
    twice = text[:-1] + f", {json.dumps(key)}: {json.dumps(base[key])}" + "}"
    return Sample(f"{key} named twice", twice.encode())


def application_samples() -> st.SearchStrategy[Sample]:
    base = samples.application_data(license_year=china_today().year)
    return st.one_of(unclean_text(base), not_a_count(base, COUNT_FIELDS), key_twice(base))


def declaration_samples(license_number: str) -> st.SearchStrategy[Sample]:
    base = samples.declaration_data(license_number, "531620260000009999")
    day = st.sampled_from([20260101, 0, True, 1.5])
    return st.one_of(
        not_a_count(base, (("quantity",),)),
        key_twice(base),
        day.map(lambda d: Sample(f"export_date = {d!r}", json.dumps({**base, "export_date": d}).encode())),
        st.integers(1, 5).map(
            lambda n: Sample(
                f"{n + 1} vehicles, {n} VINs",
                json.dumps({**base, "quantity": n + 1, "vins": [f"LKMA7C1B9TS0009{i:02d}" for i in range(n)]}).encode(),
            )
        ),
    )


def _kafka_code(sample: Sample, kind: str, field: str) -> str | None:
    """The code the Kafka intake refuses the sample with, sent as the ``field`` of a command's payload (None: it
    takes it). Put together as text, so that a key named twice stays named twice."""
    head = {"command_id": str(uuid.uuid4()), "type": kind, "schema_version": 1, "sender": "test"}
    payload = {"application_id": str(uuid.uuid4())} if kind == SubmitApplication.TYPE else {}
    payload_text = json.dumps(payload)[:-1] + (", " if payload else "") + f'"{field}": ' + sample.raw.decode() + "}"
    raw = (json.dumps(head)[:-1] + ', "payload": ' + payload_text + "}").encode()
    try:
        decode_command(raw, expected=kind, max_bytes=1 << 20)
    except Refusal as refused:
        return refused.code
    return None


def _check_both_paths(
    loop: asyncio.AbstractEventLoop,
    post: Callable[[bytes], Any],
    strategy: st.SearchStrategy[Sample],
    kafka_code: Callable[[Sample], str | None],
) -> None:
    @given(sample=strategy)
    @settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def refused_alike(sample: Sample) -> None:
        note(sample.label)
        answer: httpx.Response = asyncio.run_coroutine_threadsafe(post(sample.raw), loop).result(timeout=30)
        over_kafka = kafka_code(sample)
        assert answer.status_code == 422, (sample.label, answer.status_code, answer.text)
        assert over_kafka is not None, f"{sample.label}: taken over Kafka, refused over HTTP"
        assert answer.json()["code"] == over_kafka, (sample.label, answer.json(), over_kafka)

    refused_alike()


async def test_an_application_is_refused_alike_over_http_and_kafka(
    infrastructure: Infrastructure, database_url: str, topics: Topics
) -> None:
    settings = settings_for(applications.Settings, infrastructure, database_url, topics, rate_limit_per_second=0)
    async with serving(applications.create_app(settings)) as client:

        async def post(raw: bytes) -> httpx.Response:
            return await client.post("/applications", content=raw, headers={"content-type": "application/json"})

        def over_kafka(sample: Sample) -> str | None:
            return _kafka_code(sample, SubmitApplication.TYPE, "application")

        loop = asyncio.get_running_loop()
        await asyncio.to_thread(_check_both_paths, loop, post, application_samples(), over_kafka)


async def test_an_export_declaration_is_refused_alike_over_http_and_kafka(
    infrastructure: Infrastructure, database_url: str, topics: Topics
) -> None:
    settings = settings_for(registry.Settings, infrastructure, database_url, topics, rate_limit_per_second=0)
    async with serving(registry.create_app(settings)) as client:

        async def post(raw: bytes) -> httpx.Response:
            return await client.post("/exports", content=raw, headers={"content-type": "application/json"})

        def over_kafka(sample: Sample) -> str | None:
            return _kafka_code(sample, RecordExport.TYPE, "declaration")

        loop = asyncio.get_running_loop()
        await asyncio.to_thread(_check_both_paths, loop, post, declaration_samples("26-44-000001"), over_kafka)


async def test_the_credential_is_checked_before_the_body(
    infrastructure: Infrastructure, database_url: str, topics: Topics
) -> None:
    """An unauthenticated or unauthorised request learns that, not what is wrong with its body."""
    settings = settings_for(applications.Settings, infrastructure, database_url, topics)
    async with serving(applications.create_app(settings), as_=None) as client:
        headers = {"content-type": "application/json"}
        anonymous = await client.post("/applications", content=b'{"agency_code": ', headers=headers)
        customs = await client.post(
            "/applications",
            content=b'{"a": 1, "a": 2}',
            headers={**headers, "Authorization": f"Bearer {key('customs44')}"},
        )
        submitter = await client.post(
            "/applications",
            content=b'{"agency_code": ',
            headers={**headers, "Authorization": f"Bearer {key('submitter44')}"},
        )
    assert (anonymous.status_code, anonymous.json()["code"]) == (401, "missing_credential")
    assert (customs.status_code, customs.json()["code"]) == (403, "role_required")
    assert (submitter.status_code, submitter.json()["code"]) == (422, "malformed_json")
    assert submitter.json()["errors"] == [{"code": "malformed_json", "message": submitter.json()["message"]}], (
        "a body that is not JSON names no field (not a character offset)"
    )


async def test_an_empty_or_blank_idempotency_key_is_refused(
    infrastructure: Infrastructure, database_url: str, topics: Topics
) -> None:
    settings = settings_for(applications.Settings, infrastructure, database_url, topics)
    async with serving(applications.create_app(settings)) as client:
        answers = [
            await client.post("/applications", json=samples.application_data(), headers={"Idempotency-Key": key})
            for key in ("", " ", "\t")
        ]
    for answer in answers:
        assert answer.status_code == 422, answer.text
        assert answer.json()["code"] == "invalid_fields"
        assert [e["field"] for e in answer.json()["errors"]] == ["header.idempotency-key"]
