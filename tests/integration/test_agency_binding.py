"""Over Kafka as over HTTP, a sender acts for its own agency (or ports) only: a command is taken only within the
scope its signing key is trusted for. Over HTTP a submitter of agency 44 cannot file for agency 31 (403
other_agency); on the intake topic, the same sender's signed command for agency 31 is dead-lettered
``other_agency``, and customs' key scoped to its ports records no export at another port."""

from __future__ import annotations

import json
import uuid
from contextlib import AsyncExitStack
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import samples
from services.applications import app as applications
from services.registry import app as registry
from services.review import app as review
from shared.contract.topics import Topics
from shared.contract.trust import KeyScope
from shared.platform import trust
from tests.histories import case, publish
from tests.infra import Infrastructure
from tests.support import ROOT_KEY, auth, eventually, producer, read_topic, serving, signed

PORT_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(40, 72)))  # customs at Shenzhen only


def _command(kind: str, sender: str, payload: dict[str, object]) -> bytes:
    body = {"command_id": str(uuid.uuid4()), "type": kind, "schema_version": 1, "sender": sender, "payload": payload}
    return json.dumps(body).encode()


async def test_a_sender_acts_for_its_own_agency_and_ports_only(
    infrastructure: Infrastructure, database_url: str, topics: Topics
) -> None:
    scoped = trust.trusting("gac-shenzhen-port", PORT_KEY.public_key(), KeyScope(use="commands", ports=("CNSZX",)))
    await trust.publish(infrastructure.kafka, topics.trust, [scoped], ROOT_KEY)
    await publish(infrastructure.kafka, topics.cases, case("26-44-000777"))
    own, other = uuid.uuid4(), uuid.uuid4()
    submissions = {
        own: _command(
            "SubmitApplication", "gd-commerce", {"application_id": str(own), "application": samples.application_data()}
        ),
        other: _command(
            "SubmitApplication",
            "gd-commerce",  # agency 44's sender, trusted for agency 44
            {"application_id": str(other), "application": samples.application_data(agency_code="31")},
        ),
    }

    def export(port: str, number: str) -> bytes:
        declaration = samples.declaration_data("26-44-000777", number, quantity=1, port_of_exit=port)
        return _command("RecordExport", "gac-shenzhen-port", {"declaration": declaration})

    at_home, abroad = export("CNSZX", "531620260000077701"), export("CNSHA", "531620260000077702")
    common = {"database_url": database_url, "topic_namespace": topics.namespace, **infrastructure.service_kafka()}
    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(serving(applications.create_app(applications.Settings(**common))))
        await stack.enter_async_context(serving(review.create_app(review.Settings(**common))))
        client = await stack.enter_async_context(serving(registry.create_app(registry.Settings(**common))))
        await eventually(
            lambda: _found(client, "/licenses/26-44-000777"), what="the license the exports are declared against"
        )
        over_http = await http.post(
            "/applications", json=samples.application_data(agency_code="31"), headers=auth("submitter44")
        )
        async with producer(infrastructure.kafka) as send:
            for value in submissions.values():
                await send.send_and_wait(topics.intake_applications, value, key=b"gd-commerce", headers=signed(value))
            for value in (at_home, abroad):
                await send.send_and_wait(topics.intake_exports, value, key=b"customs", headers=signed(value, PORT_KEY))

        async def decided() -> bool | None:
            answer = await client.get(f"/applications/{own}")
            return True if answer.status_code == 200 and answer.json()["status"] == "approved" else None

        await eventually(decided, what="agency 44's own application decided")
        await eventually(lambda: _judged(client, "531620260000077701"), what="the export at the key's own port judged")
        dead = await read_topic(infrastructure.kafka, topics.dead_letter, until=lambda r: len(r) >= 2)
        refused = await eventually(lambda: _refused_at_intake(client, other), what="the refusal kept for its sender")
        assert refused["errors"][0]["code"] == "other_agency"
        assert (await client.get("/exports/531620260000077702")).status_code == 404
    assert (over_http.status_code, over_http.json()["code"]) == (403, "other_agency")
    reasons = {r.value: dict(r.headers)["dlq.reason-code"] for r in dead}
    assert reasons == {submissions[other]: b"other_agency", abroad: b"other_customs_office"}


async def _judged(client, number: str) -> bool | None:  # type: ignore[no-untyped-def]
    return await _found(client, f"/exports/{number}")


async def _refused_at_intake(client: Any, application_id: uuid.UUID) -> dict[str, Any] | None:
    """Not in the ledger, and answered with why it was refused at intake."""
    answer = await client.get(f"/applications/{application_id}")
    body: dict[str, Any] = answer.json()
    return body if answer.status_code == 422 and body["code"] == "refused_at_intake" else None


async def _found(client, path: str) -> bool | None:  # type: ignore[no-untyped-def]
    return True if (await client.get(path)).status_code == 200 else None
