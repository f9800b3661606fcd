"""The check that holds recorded traffic to the published contract (tests/contract.py, run after every end-to-end
test) catches records that break it: a wrong value, a missing signature header, a key of the wrong shape."""

from __future__ import annotations

import uuid

import samples
from services.applications.submission import submitted
from shared.contract.topics import Topics
from tests.contract import traffic_problems
from tests.infra import Infrastructure
from tests.support import producer, signed


async def test_records_that_break_the_contract_are_named_and_good_ones_pass(
    infrastructure: Infrastructure, topics: Topics
) -> None:
    case = uuid.uuid4()
    good = submitted(samples.application(), application_id=case, channel="http").to_bytes()
    headers = [*signed(good), ("content-type", b"application/json"), ("event-type", b"ApplicationSubmitted")]
    retyped = good.replace(b'"type":"ApplicationSubmitted"', b'"type":"LicenseGranted"')
    sends = {
        "good": (topics.cases, good, str(case).encode(), headers),
        "key": (topics.cases, good, b"not-a-uuid", headers),
        "unsigned": (topics.cases, good, str(case).encode(), [("event-type", b"ApplicationSubmitted")]),
        "retyped": (topics.cases, retyped, str(case).encode(), headers),
        "state": (topics.license_changes, b'{"license_number": 7}', b"26-44-000001", []),
    }
    where = {}
    async with producer(infrastructure.kafka) as send:
        for name, (topic, value, key, record_headers) in sends.items():
            sent = await send.send_and_wait(topic, value, key=key, headers=record_headers)
            where[name] = f"{topic}/{sent.partition}/{sent.offset}"
    checked, wrong = traffic_problems(infrastructure.kafka, topics)

    def said_of(name: str) -> list[str]:
        return [p for p in wrong if p.startswith(where[name] + " ")]

    assert checked >= len(sends)
    assert said_of("good") == []
    assert any("key" in p for p in said_of("key")), wrong
    assert any("headers" in p and "ledger-signature" in p for p in said_of("unsigned")), wrong
    assert any("value" in p for p in said_of("retyped")), wrong
    assert any("value" in p for p in said_of("state")), wrong
