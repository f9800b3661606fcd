"""A license's state, and the list of licenses, as of an instant or a stream offset."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import samples
from services.applications.submission import submitted
from services.registry.app import Settings, create_app
from shared.contract.events import Envelope
from shared.contract.topics import Topics
from tests.histories import export, granted, publish
from tests.infra import Infrastructure
from tests.support import eventually, serving, settings_for

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def _timed_case(number: str, start: datetime, *exports: tuple[int, int]) -> list[Envelope]:
    """A case whose events occur an hour apart from ``start``: submission, grant, then each export."""
    case_id = uuid.uuid4()
    submission = submitted(samples.application(), application_id=case_id, channel="http")
    events = [granted(number), *(export(number, s, q) for s, q in exports)]
    return [submission] + [
        Envelope.wrap(e, case_id=case_id, producer="test", occurred_at=start + timedelta(hours=i + 1))
        for i, e in enumerate(events)
    ]


async def test_licenses_are_answered_as_of_an_instant_or_an_offset(
    infrastructure: Infrastructure, database_url: str, topics: Topics
) -> None:
    first = _timed_case("26-44-000701", T0, (701, 4), (702, 6))  # granted 10:00, 4 out 11:00, 6 out 12:00
    second = _timed_case("26-44-000702", T0 + timedelta(days=1), (703, 1))
    settings = settings_for(Settings, infrastructure, database_url, topics)
    async with serving(create_app(settings)) as client:
        await publish(infrastructure.kafka, topics.cases, first + second)

        async def settled() -> dict | None:  # type: ignore[type-arg]
            answer = await client.get("/licenses/26-44-000702")
            return answer.json() if answer.status_code == 200 and answer.json()["balance"] == 9 else None

        await eventually(settled, what="both cases folded")

        async def at(number: str, **query: str) -> dict:  # type: ignore[type-arg]
            answer = await client.get(f"/licenses/{number}", params=query)
            return {"code": answer.status_code, **(answer.json() if answer.status_code == 200 else {})}

        before_grant = await at("26-44-000701", as_of=(T0 + timedelta(minutes=30)).isoformat())
        after_first = await at("26-44-000701", as_of=(T0 + timedelta(hours=2, minutes=30)).isoformat())
        now = await at("26-44-000701")
        history = (await client.get("/licenses/26-44-000701/history")).json()
        by_offset = await at("26-44-000701", as_of_offset=str(history[1]["offset"]))
        listed_then = (await client.get("/licenses", params={"as_of": (T0 + timedelta(hours=5)).isoformat()})).json()
        exhausted = (await client.get("/licenses", params={"status": "exhausted"})).json()
        page = (await client.get("/licenses", params={"destination": "MX", "limit": "1"})).json()
        rest = (await client.get("/licenses", params={"destination": "MX", "after": page["next_after"]})).json()
    assert before_grant["code"] == 404
    assert (after_first["balance"], after_first["declarations_used"], after_first["status"]) == (6, 1, "active")
    assert (now["balance"], now["status"]) == (0, "exhausted")
    assert [v["state"]["balance"] for v in history] == [10, 6, 0]
    assert by_offset["balance"] == 10  # before the offset of the first export: as granted
    assert [s["license_number"] for s in listed_then["items"]] == ["26-44-000701"]
    assert [s["license_number"] for s in exhausted["items"]] == ["26-44-000701"]
    assert [s["license_number"] for s in page["items"] + rest["items"]] == ["26-44-000701", "26-44-000702"]
