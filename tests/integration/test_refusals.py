"""Feedback for senders: each sender reads the refusals of its own intake commands, and no one else's; an
application refused at intake is answered with its refusal, not a 404 for ever."""

from __future__ import annotations

import json
import uuid
from contextlib import AsyncExitStack
from typing import Any

import httpx

import samples
from services.applications import app as applications
from services.registry import app as registry
from shared.contract.topics import Topics
from tests.infra import Infrastructure
from tests.support import auth, eventually, producer, serving, signed


def _command(kind: str, sender: str, payload: dict[str, Any]) -> bytes:
    body = {"command_id": str(uuid.uuid4()), "type": kind, "schema_version": 1, "sender": sender, "payload": payload}
    return json.dumps(body).encode()


async def _refusals(client: httpx.AsyncClient, who: str) -> list[dict[str, Any]]:
    answer = await client.get("/refusals", headers=auth(who))
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


async def test_each_sender_reads_its_own_refusals_and_a_refused_application_says_why(
    infrastructure: Infrastructure, database_url: str, topics: Topics
) -> None:
    bad_port, other_agency, forged, theirs = (uuid.uuid4() for _ in range(4))
    submissions = [
        # gd-commerce (agency 44's sender): an application with a port that does not exist.
        _command(
            "SubmitApplication",
            "gd-commerce",
            {"application_id": str(bad_port), "application": samples.application_data(port_of_exit="CNZZZ9")},
        ),
        # gd-commerce again, for agency 31: its key is agency 44's (other_agency). Still agency 44's refusal.
        _command(
            "SubmitApplication",
            "gd-commerce",
            {"application_id": str(other_agency), "application": samples.application_data(agency_code="31")},
        ),
    ]
    unsigned = [
        # A record claiming to be gd-commerce's, signed by no trusted key: refused, and shown as unverified.
        _command(
            "SubmitApplication",
            "gd-commerce",
            {"application_id": str(forged), "application": samples.application_data()},
        ),
        # Another agency's sender: none of agency 44's business.
        _command(
            "SubmitApplication",
            "js-commerce",
            {"application_id": str(theirs), "application": samples.application_data(agency_code="32")},
        ),
    ]
    declaration = samples.declaration_data("26-44-999999", "531620269999999901", quantity=1)
    export = _command("RecordExport", "gac-shenzhen", {"declaration": declaration})  # no such license
    common = {"database_url": database_url, "topic_namespace": topics.namespace, **infrastructure.service_kafka()}
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(serving(applications.create_app(applications.Settings(**common))))
        client = await stack.enter_async_context(serving(registry.create_app(registry.Settings(**common))))
        async with producer(infrastructure.kafka) as send:
            for value in submissions:
                await send.send_and_wait(topics.intake_applications, value, headers=signed(value))
            for value in unsigned:
                await send.send_and_wait(topics.intake_applications, value)
            await send.send_and_wait(topics.intake_exports, export, headers=signed(export))

        async def all_kept() -> list[dict[str, Any]] | None:
            found = await _refusals(client, "all")  # an auditor and admin reads every refusal
            return found if len(found) == 5 else None

        everything = await eventually(all_kept, timeout=60, what="the five refusals kept from the dead letters")
        by_application = {r["application_id"]: r for r in everything if r["application_id"]}
        assert by_application[str(bad_port)]["verified"] is True
        assert by_application[str(other_agency)]["reason"]["code"] == "other_agency"
        assert (by_application[str(forged)]["verified"], by_application[str(forged)]["sender"]) == (
            False,
            "gd-commerce",
        )

        agency_44 = {r["application_id"] for r in await _refusals(client, "submitter44")}
        assert agency_44 == {str(bad_port), str(other_agency), str(forged)}
        assert {r["application_id"] for r in await _refusals(client, "submitter32")} == {str(theirs)}
        assert {r["application_id"] for r in await _refusals(client, "backend44")} == agency_44  # gd-commerce's own
        [customs] = await _refusals(client, "customs-shenzhen")
        assert (customs["command_type"], customs["declaration_number"]) == ("RecordExport", "531620269999999901")
        assert customs["reason"]["code"] == "unknown_license"
        unbound = await client.get("/refusals", headers=auth("customs44"))
        assert (unbound.status_code, unbound.json()["code"]) == (403, "sender_required")

        refused = await client.get(f"/applications/{bad_port}", headers=auth("submitter44"))
        assert refused.status_code == 422 and refused.json()["code"] == "refused_at_intake", refused.text
        assert refused.json()["errors"][0]["code"] == by_application[str(bad_port)]["reason"]["code"]
        assert str(bad_port) in refused.json()["message"]
        not_theirs = await client.get(f"/applications/{bad_port}", headers=auth("submitter32"))
        assert (not_theirs.status_code, not_theirs.json()["code"]) == (404, "unknown_application")
