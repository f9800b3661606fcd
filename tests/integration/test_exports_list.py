"""The registry's list of exports (GET /exports: filters, pages) and its figures for a period (GET /statistics)."""

from __future__ import annotations

from typing import Any

from services.registry.app import Settings, create_app
from shared.contract.topics import Topics
from tests.histories import TODAY, case, publish
from tests.infra import Infrastructure
from tests.support import eventually, serving, settings_for


async def test_exports_are_listed_by_outcome_license_and_period_in_pages_and_counted_for_a_period(
    infrastructure: Infrastructure, database_url: str, topics: Topics
) -> None:
    first = case("26-44-000801", (801, 4), (802, 7))  # 7 past the balance of 6: refused
    second = case("26-44-000802", (803, 2))
    settings = settings_for(Settings, infrastructure, database_url, topics)
    async with serving(create_app(settings)) as client:
        await publish(infrastructure.kafka, topics.cases, first + second)

        async def listed() -> list[Any] | None:
            items: list[Any] = (await client.get("/exports")).json()["items"]
            return items if len(items) == 3 else None

        everything = await eventually(listed, what="three declarations judged")
        refused = (await client.get("/exports", params={"outcome": "refused"})).json()["items"]
        of_second = (await client.get("/exports", params={"license": "26-44-000802"})).json()["items"]
        nothing_then = (await client.get("/exports", params={"to": "2020-12-31"})).json()["items"]
        elsewhere = (await client.get("/exports", params={"destination": "PE", "port": "CNSZX"})).json()["items"]
        pages, after = [], None
        while True:
            page = (await client.get("/exports", params={"limit": 1, **({"after": after} if after else {})})).json()
            pages += page["items"]
            after = page["next_after"]
            if after is None:
                break
        bad_cursor = await client.get("/exports", params={"after": "yesterday"})
        period = {"from": TODAY.replace(month=1, day=1).isoformat(), "to": TODAY.isoformat()}
        figures = (await client.get("/statistics", params=period)).json()
        backwards = await client.get("/statistics", params={"from": "2026-12-31", "to": "2026-01-01"})
    assert {e["destination_country"] for e in everything} == {"MX"}
    assert [(e["license_number"], e["reason"]["code"]) for e in refused] == [("26-44-000801", "exceeds_balance")]
    assert [e["license_number"] for e in of_second] == ["26-44-000802"]
    assert nothing_then == [] and elsewhere == []
    assert sorted(e["declaration_number"] for e in pages) == sorted(e["declaration_number"] for e in everything)
    assert len(pages) == 3
    assert bad_cursor.status_code == 422 and bad_cursor.json()["code"] == "invalid_cursor"
    assert figures["exports_by_destination"] == [{"destination": "MX", "vehicles": 6, "declarations": 2}]
    assert figures["refusals_by_reason"] == [{"kind": "export", "code": "exceeds_balance", "count": 1}]
    assert figures["licenses_by_status"] == [{"status": "active", "count": 2}]
    assert sum(m["vehicles"] for m in figures["exports_by_month"]) == 6
    assert sum(m["refused"] for m in figures["exports_by_month"]) == 1
    assert backwards.status_code == 422
