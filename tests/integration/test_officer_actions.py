"""Officers' actions and the applicant's withdrawal and resubmission, through the three services in-process
against the real broker and database: each action's event reaches the registry's ledger, and the ledger
then judges exports by it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

import samples
from services.applications import app as applications
from services.registry import app as registry
from services.review import app as review
from shared.contract.events import ApplicationRejected, Envelope, LicenseGranted, LicenseSuspended
from shared.contract.topics import Topics
from shared.platform import access
from shared.platform.kafka_access import KafkaConnection
from tests.infra import Infrastructure
from tests.support import envelopes, eventually, everything_on, read_topic, serving

Body = dict[str, Any]
OFFICER = "officer.wang"
ESCALATED = {"unit_price": "20000.00"}  # far below the reference price: rule 6 sends it to an officer
WHY = {"code": "investigation", "message": "customs opened an investigation of the contract"}


@dataclass(frozen=True)
class System:
    applications: httpx.AsyncClient
    review: httpx.AsyncClient
    registry: httpx.AsyncClient
    kafka: KafkaConnection
    cases: str  # the case stream's topic


@pytest.fixture
async def system(infrastructure: Infrastructure, database_url: str, topics: Topics) -> AsyncIterator[System]:
    common: Body = {
        **infrastructure.service_kafka(),
        "database_url": database_url,
        "topic_namespace": topics.namespace,
    }
    async with AsyncExitStack() as stack:
        apps = await stack.enter_async_context(serving(applications.create_app(applications.Settings(**common))))
        rev = await stack.enter_async_context(serving(review.create_app(review.Settings(**common))))
        reg = await stack.enter_async_context(serving(registry.create_app(registry.Settings(**common))))
        yield System(apps, rev, reg, infrastructure.kafka, topics.cases)


async def _when(client: httpx.AsyncClient, path: str, ready: Callable[[Any], bool]) -> Any:
    async def probe() -> Any:
        answer = await client.get(path)
        return answer.json() if answer.status_code == 200 and ready(answer.json()) else None

    return await eventually(probe, what=path)


async def _submit(system: System, **overrides: Any) -> str:
    answer = await system.applications.post("/applications", json=samples.application_data(**overrides))
    assert answer.status_code == 202, answer.text
    application_id: str = answer.json()["application_id"]
    return application_id


async def _status(system: System, application_id: str, status: str) -> Body:
    body: Body = await _when(system.registry, f"/applications/{application_id}", lambda b: b["status"] == status)
    return body


async def _escalated(system: System) -> str:
    """An application submitted, escalated, and waiting in the officers' queue."""
    application_id = await _submit(system, **ESCALATED)
    await _when(system.review, "/officer/queue", lambda q: application_id in [i["application_id"] for i in q])
    return application_id


async def _granted(system: System) -> str:
    """A license granted by the rules alone for 10 vehicles, in the ledger."""
    application_id = await _submit(system)
    number: str = (await _status(system, application_id, "approved"))["license_number"]
    await _license(system, number, status="active")
    return number


async def _license(system: System, number: str, **expected: Any) -> Body:
    body: Body = await _when(
        system.registry, f"/licenses/{number}", lambda b: all(b.get(k) == v for k, v in expected.items())
    )
    return body


async def _act(system: System, path: str, body: Body, status: int = 202, key: str | None = None) -> Body:
    headers = {"Idempotency-Key": key} if key else {}
    answer = await system.review.post(path, json={"officer": OFFICER, **body}, headers=headers)
    assert answer.status_code == status, answer.text
    result: Body = answer.json()
    return result


async def _export(system: System, number: str, sequence: int, quantity: int = 2) -> Body:
    declaration = f"53162026{sequence:010d}"
    answer = await system.registry.post(
        "/exports", json=samples.declaration_data(number, declaration, quantity=quantity)
    )
    assert answer.status_code == 202, answer.text
    judged: list[Body] = await _when(system.registry, f"/exports/{declaration}", lambda b: bool(b))
    return judged[0]


async def _case_events(system: System, case_id: str) -> list[Envelope]:
    """Every event of the case in the log now (the answers above came after their events were followed)."""
    return [e for e in envelopes(await everything_on(system.kafka, system.cases)) if str(e.case_id) == case_id]


async def _events(system: System, number: str) -> list[Envelope]:
    """Every event of the case that holds license ``number``."""
    everything = envelopes(await everything_on(system.kafka, system.cases))
    case = next(e.case_id for e in everything if getattr(e.payload, "license_number", None) == number)
    return [e for e in everything if e.case_id == case]


def _refused_with(code: str) -> Callable[[Body], bool]:
    return lambda judged: judged["outcome"] == "refused" and judged["reason"]["code"] == code


async def _event(infrastructure: Infrastructure, topics: Topics, event_id: str) -> Envelope:
    records = await read_topic(
        infrastructure.kafka, topics.cases, until=lambda rs: any(str(e.event_id) == event_id for e in envelopes(rs))
    )
    return next(e for e in envelopes(records) if str(e.event_id) == event_id)


async def test_an_escalated_application_is_queued_then_approved_for_fewer_vehicles_and_a_shorter_validity(
    system: System, infrastructure: Infrastructure, topics: Topics
) -> None:
    application_id = await _escalated(system)
    [queued] = (await system.review.get("/officer/queue")).json()
    assert [r["code"] for r in queued["reasons"]] == ["price_below_reference"]
    assert date.fromisoformat(queued["due"]) > date.today() - timedelta(days=1)
    path = f"/officer/applications/{application_id}/approve"
    too_many = await _act(system, path, {"quantity": 11}, status=422)
    assert too_many["errors"][0]["code"] == "quantity_above_application"
    valid_to = (date.fromisoformat(queued["escalated_at"][:10]) + timedelta(days=20)).isoformat()
    approved = await _act(system, path, {"quantity": 6, "valid_to": valid_to})
    assert approved["event_type"] == "LicenseGranted"
    assert (await _act(system, path, {"quantity": 6, "valid_to": valid_to}))["event_id"] == approved["event_id"]
    rejected = await _act(system, f"/officer/applications/{application_id}/reject", {"reasons": [WHY]}, status=409)
    assert rejected["errors"][0]["code"] == "already_decided"
    license_ = await _license(system, approved["license_number"], status="active")
    assert (license_["quantity"], license_["balance"], license_["valid_to"]) == (6, 6, valid_to)
    assert (await _status(system, application_id, "approved"))["license_number"] == approved["license_number"]
    assert (await system.review.get("/officer/queue")).json() == []
    granted = (await _event(infrastructure, topics, approved["event_id"])).payload
    assert isinstance(granted, LicenseGranted) and granted.officer == OFFICER  # who approved is in the log


async def test_an_officer_rejects_an_escalated_application_with_reasons(
    system: System, infrastructure: Infrastructure, topics: Topics
) -> None:
    application_id = await _escalated(system)
    taken = await _act(system, f"/officer/applications/{application_id}/reject", {"reasons": [WHY]})
    refusal = (await _event(infrastructure, topics, taken["event_id"])).payload
    assert isinstance(refusal, ApplicationRejected) and refusal.officer == OFFICER
    rejected = await _status(system, application_id, "rejected")
    assert [r["code"] for r in rejected["reasons"]] == ["investigation"]
    unknown = await _act(system, f"/officer/applications/{uuid.uuid4()}/reject", {"reasons": [WHY]}, status=404)
    assert "no escalated application" in unknown["message"]


async def test_a_returned_application_is_resubmitted_corrected_and_granted(system: System) -> None:
    application_id = await _escalated(system)

    async def too_early() -> Body | None:
        answer = await system.applications.post(
            f"/applications/{application_id}/resubmit", json=samples.application_data()
        )
        return answer.json() if answer.status_code != 404 else None  # 404 until the service follows the case

    assert (await eventually(too_early, what="the early resubmission judged"))["errors"][0]["code"] == (
        "application_not_returned"
    )
    fix = {"code": "price_unexplained", "message": "correct the unit price or attach the contract"}
    await _act(system, f"/officer/applications/{application_id}/return", {"reasons": [fix]})
    returned = await _status(system, application_id, "returned")
    assert [r["code"] for r in returned["reasons"]] == ["price_unexplained"]

    async def resubmitted() -> Body | None:
        answer = await system.applications.post(
            f"/applications/{application_id}/resubmit", json=samples.application_data(quantity=8)
        )
        return answer.json() if answer.status_code == 202 else None  # 409 until the return reaches the service

    await eventually(resubmitted, what="the resubmission accepted")
    granted = await _status(system, application_id, "approved")
    assert granted["quantity"] == 8
    await _license(system, granted["license_number"], quantity=8, status="active")


async def test_an_undecided_application_is_withdrawn_and_no_officer_can_decide_it_after(system: System) -> None:
    application_id = await _escalated(system)
    answer = await system.applications.post(f"/applications/{application_id}/withdraw", json={"reason": "order lost"})
    assert answer.status_code == 202, answer.text
    await _status(system, application_id, "withdrawn")
    await _when(system.review, "/officer/queue", lambda q: q == [])
    late = await _act(system, f"/officer/applications/{application_id}/approve", {}, status=409)
    assert late["errors"][0]["code"] == "application_withdrawn"

    again = await system.applications.post(f"/applications/{application_id}/withdraw")
    assert (again.status_code, again.json()["event_id"]) == (202, answer.json()["event_id"]), "a retry, in effect"


async def test_a_suspended_license_refuses_exports_until_it_is_reinstated(system: System) -> None:
    number = await _granted(system)
    base = f"/officer/licenses/{number}"
    suspended = await _act(system, f"{base}/suspend", {"reason": WHY}, key="susp-1")
    assert (await _act(system, f"{base}/suspend", {"reason": WHY}, key="susp-1"))["event_id"] == suspended["event_id"]
    await _license(system, number, status="suspended")
    assert _refused_with("license_suspended")(await _export(system, number, 1))
    await _act(system, f"{base}/reinstate", {"note": "investigation closed"})
    not_suspended = await _act(system, f"{base}/reinstate", {}, status=409)
    assert not_suspended["errors"][0]["code"] == "license_not_suspended"
    await _license(system, number, status="active")
    assert (await _export(system, number, 2))["outcome"] == "accepted"
    await _license(system, number, balance=8)


async def test_a_revoked_license_refuses_exports_and_every_further_action(system: System) -> None:
    number = await _granted(system)
    await _act(system, f"/officer/licenses/{number}/revoke", {"reason": WHY})
    await _license(system, number, status="revoked")
    assert _refused_with("license_revoked")(await _export(system, number, 1))
    for action, body in (("suspend", {"reason": WHY}), ("reinstate", {}), ("replace", {"reason": WHY})):
        refused = await _act(system, f"/officer/licenses/{number}/{action}", body, status=409)
        assert refused["errors"][0]["code"] == "license_revoked"


async def test_a_replaced_license_ends_and_its_successor_carries_the_remaining_balance(system: System) -> None:
    number = await _granted(system)
    assert (await _export(system, number, 1, quantity=3))["outcome"] == "accepted"
    await _license(system, number, balance=7)
    replaced = await _act(system, f"/officer/licenses/{number}/replace", {"reason": WHY, "destination_country": "PE"})
    successor = replaced["successor_license_number"]
    assert successor != number
    await _license(system, number, status="replaced")
    carried = await _license(system, successor, status="active")
    assert (carried["quantity"], carried["balance"], carried["destination_country"]) == (7, 7, "PE")
    assert _refused_with("license_replaced")(await _export(system, number, 2))
    assert (await _export(system, successor, 3, quantity=7))["outcome"] == "accepted"
    await _license(system, successor, status="exhausted", balance=0)
    again = await _act(system, f"/officer/licenses/{number}/replace", {"reason": WHY}, status=409)
    assert again["errors"][0]["code"] == "license_replaced" and successor in again["message"]


async def test_an_action_is_attributed_to_the_officer_the_credential_was_issued_to(
    system: System, infrastructure: Infrastructure, topics: Topics, database_url: str
) -> None:
    number = await _granted(system)
    path = f"/officer/licenses/{number}/suspend"
    # The test credential is officer.wang's: a body naming another officer is refused, and nothing happens.
    other = await system.review.post(path, json={"officer": "officer.li", "reason": WHY})
    assert other.status_code == 403 and other.json()["errors"][0]["code"] == "officer_mismatch", other.text
    # A key with the officer role that names no officer (one issued before keys named theirs) cannot act.
    connection = await asyncpg.connect(database_url)
    try:
        _, nobodys = await access.create(connection, agency_code="44", roles=["officer"], label="an old key")
    finally:
        await connection.close()
    anonymous = await system.review.post(
        path, json={"officer": OFFICER, "reason": WHY}, headers={"authorization": f"Bearer {nobodys}"}
    )
    assert anonymous.status_code == 403, anonymous.text
    assert anonymous.json()["errors"][0]["code"] == "officer_identity_required"
    await _license(system, number, status="active")
    # Leaving the officer out: the event names the credential's officer.
    taken = await system.review.post(path, json={"reason": WHY})
    assert taken.status_code == 202, taken.text
    suspended = (await _event(infrastructure, topics, taken.json()["event_id"])).payload
    assert isinstance(suspended, LicenseSuspended) and suspended.officer == OFFICER
    await _license(system, number, status="suspended")


@pytest.mark.parametrize(
    ("terms", "code"),
    [
        ({"port_of_exit": "CNZZZ"}, "unknown_port"),  # refused as unknown_port at application
        ({"destination_country": "CL"}, "no_after_sales_coverage"),  # rule 4: no outlet of the applicant there
        ({"valid_to": "2099-01-01"}, "validity_out_of_range"),  # rule 7
    ],
)
async def test_a_replacement_passes_the_rules_of_a_first_grant(system: System, terms: Body, code: str) -> None:
    number = await _granted(system)
    refused = await _act(system, f"/officer/licenses/{number}/replace", {"reason": WHY, **terms}, status=422)
    assert refused["code"] == code and [e["code"] for e in refused["errors"]] == [code]
    await _license(system, number, status="active")  # nothing happened: no successor, no event
    assert not [e for e in await _events(system, number) if e.type == "LicenseReplaced"]


async def test_an_approval_and_a_reinstatement_pass_the_rules_of_a_first_grant_on_the_reference_data_of_now(
    system: System,
) -> None:
    """The applicant's listing suspended after the escalation (or the suspension): an officer can no longer
    approve the application, nor reinstate the license."""
    application_id = await _escalated(system)
    number = await _granted(system)
    await _act(system, f"/officer/licenses/{number}/suspend", {"reason": WHY})
    await _license(system, number, status="suspended")
    year = date.today().year
    listing = {"status": "suspended", "changed_by": "admin.zhao", "why": "CCC audit failed"}
    changed = await system.review.put(
        f"/admin/reference/enterprises/{samples.QILIN_MOTOR}/listing/{year}", json=listing
    )
    assert changed.status_code == 200, changed.text
    approve = await _act(system, f"/officer/applications/{application_id}/approve", {}, status=422)
    reinstate = await _act(system, f"/officer/licenses/{number}/reinstate", {}, status=422)
    assert approve["code"] == reinstate["code"] == "applicant_listing_suspended"


async def test_an_officer_approving_again_on_other_terms_is_told_it_is_decided(system: System) -> None:
    application_id = await _escalated(system)
    path = f"/officer/applications/{application_id}/approve"
    first = await _act(system, path, {"quantity": 5})
    assert (await _act(system, path, {"quantity": 5}))["event_id"] == first["event_id"], "the same request: a retry"
    other = await _act(system, path, {"quantity": 2}, status=409)
    assert other["code"] == "already_decided"
    assert (await _status(system, application_id, "approved"))["license_number"] == first["license_number"]


async def test_an_exhausted_license_cannot_be_suspended_or_replaced_and_nothing_is_appended(system: System) -> None:
    number = await _granted(system)
    assert (await _export(system, number, 1, quantity=10))["outcome"] == "accepted"
    await _license(system, number, status="exhausted", balance=0)
    for action in ("suspend", "replace"):
        refused = await _act(system, f"/officer/licenses/{number}/{action}", {"reason": WHY}, status=409)
        assert refused["code"] == "license_exhausted"
    assert [e.type for e in await _events(system, number) if e.type.startswith("License")] == ["LicenseGranted"]


async def test_a_withdrawal_after_the_decision_is_refused_and_appends_nothing(system: System) -> None:
    application_id = await _submit(system)
    await _status(system, application_id, "approved")
    late = await system.applications.post(f"/applications/{application_id}/withdraw")
    assert (late.status_code, late.json()["code"]) == (409, "application_approved")
    assert "ApplicationWithdrawn" not in [e.type for e in await _case_events(system, application_id)]


async def test_a_resubmission_is_judged_against_the_case_as_it_stands_now(system: System) -> None:
    """Returned, then resubmitted at once: never told 'submitted, not returned' because it looked too early."""
    application_id = await _escalated(system)
    fix = {"code": "price_unexplained", "message": "correct the unit price or attach the contract"}
    await _act(system, f"/officer/applications/{application_id}/return", {"reasons": [fix]})
    again = await system.applications.post(
        f"/applications/{application_id}/resubmit", json=samples.application_data(quantity=8)
    )
    assert again.status_code == 202, again.text
