"""A case's events read back from the log with who signed each (GET /cases/{case_id}/events): the evidence the
console shows an auditor, never the database's word for it."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from services.registry.app import Settings, create_app
from shared.contract import signatures
from shared.contract.topics import Topics
from tests.histories import case, publish
from tests.infra import Infrastructure
from tests.support import SIGNING_KEY, eventually, serving, settings_for


async def test_a_cases_events_are_read_back_from_the_log_with_their_signer_in_stream_order(
    infrastructure: Infrastructure, database_url: str, topics: Topics
) -> None:
    events = case("26-44-000901", (901, 4), (902, 9))  # the second past the balance: refused by the fold
    case_id = events[0].case_id
    settings = settings_for(Settings, infrastructure, database_url, topics)
    async with serving(create_app(settings)) as client:
        await publish(infrastructure.kafka, topics.cases, events)

        async def shown() -> list[Any] | None:
            answer = await client.get(f"/cases/{case_id}/events")
            return answer.json() if answer.status_code == 200 and len(answer.json()) == len(events) else None

        read = await eventually(shown, what="the case's four events applied")
        async with serving(create_app(settings), as_="submitter32") as other_agency:
            refused = await other_agency.get(f"/cases/{case_id}/events")
        unknown = await client.get(f"/cases/{uuid.uuid4()}/events")

    assert [e["event_id"] for e in read] == [str(e.event_id) for e in events]
    assert [e["type"] for e in read] == ["ApplicationSubmitted", "LicenseGranted", "ExportRecorded", "ExportRecorded"]
    assert {e["signature"] for e in read} == {"verified"}
    assert {e["key_id"] for e in read} == {signatures.key_id(SIGNING_KEY.public_key())}
    assert [e["offset"] for e in read] == sorted(e["offset"] for e in read)
    assert read[3]["payload"]["quantity"] == 9  # the record as sent, whatever the fold made of it
    assert refused.status_code == 403
    assert unknown.status_code == 404 and unknown.json()["code"] == "unknown_case"


async def test_concurrent_requests_for_several_cases_each_get_their_own_cases_events(
    infrastructure: Infrastructure, database_url: str, topics: Topics
) -> None:
    """One consumer serves every request, in turns: interleaved requests must never get another case's records."""
    cases = [case(f"26-44-0009{n}0", (900 + n, 1), (910 + n, 2)) for n in range(1, 5)]
    settings = settings_for(Settings, infrastructure, database_url, topics)
    async with serving(create_app(settings)) as client:
        await publish(infrastructure.kafka, topics.cases, [event for events in cases for event in events])

        async def all_applied() -> bool | None:
            answers = [await client.get(f"/cases/{events[0].case_id}/events") for events in cases]
            return True if all(a.status_code == 200 and len(a.json()) == 4 for a in answers) else None

        await eventually(all_applied, what="every case's events applied")
        asked = [events for _ in range(3) for events in cases]
        answers = await asyncio.gather(*(client.get(f"/cases/{events[0].case_id}/events") for events in asked))

    for events, answer in zip(asked, answers, strict=True):
        assert answer.status_code == 200, answer.text
        assert [e["event_id"] for e in answer.json()] == [str(e.event_id) for e in events]
