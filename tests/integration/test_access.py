"""Who may call what, through the three services in-process on the real broker and database: every route
but /health wants a key; roles and agencies bound what each key may do (docs/access.md)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

import samples
from services.applications import app as applications
from services.registry import app as registry
from services.review import app as review
from shared.contract.topics import Topics
from shared.platform import access
from tests.infra import Infrastructure
from tests.support import JWT_ISSUER, JWT_PUBLIC_KEY, auth, eventually, licensectl, serving, settings_for, token

WHY = {"code": "investigation", "message": "customs opened an investigation of the contract"}
OTHER_AGENCY_LICENSE = "26-32-000001"


@dataclass(frozen=True)
class System:
    applications: httpx.AsyncClient
    review: httpx.AsyncClient
    registry: httpx.AsyncClient
    database_url: str


@pytest.fixture
async def system(infrastructure: Infrastructure, database_url: str, topics: Topics) -> AsyncIterator[System]:
    common: dict[str, Any] = {
        **infrastructure.service_kafka(),
        "database_url": database_url,
        "topic_namespace": topics.namespace,
        "access_cache_seconds": 0,  # a revocation or an expiry shows at once
        "jwt_issuer": JWT_ISSUER,
        "jwt_public_key": JWT_PUBLIC_KEY,
    }
    async with AsyncExitStack() as stack:
        apps = await stack.enter_async_context(
            serving(applications.create_app(applications.Settings(**common)), as_=None)
        )
        rev = await stack.enter_async_context(serving(review.create_app(review.Settings(**common)), as_=None))
        reg = await stack.enter_async_context(serving(registry.create_app(registry.Settings(**common)), as_=None))
        yield System(apps, rev, reg, database_url)


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _refusal(answer: httpx.Response, status: int) -> str:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["message"] and len(body["errors"]) == 1
    code: str = body["errors"][0]["code"]
    return code


async def _database(system: System) -> asyncpg.Connection:
    return await asyncpg.connect(system.database_url)


async def test_without_a_key_every_route_but_health_answers_401_saying_so(system: System) -> None:
    assert (await system.registry.get("/health")).status_code == 200
    for client, path in [
        (system.registry, "/licenses"),
        (system.registry, "/metrics"),
        (system.review, "/officer/queue"),
        (system.review, "/reference"),
    ]:
        answer = await client.get(path)
        assert _refusal(answer, 401) == "missing_credential", path
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    answer = await system.applications.post("/applications", json=samples.application_data())
    assert _refusal(answer, 401) == "missing_credential"


async def test_a_wrong_unknown_revoked_or_expired_key_answers_401_with_its_reason(system: System) -> None:
    connection = await _database(system)
    try:
        revoked_id, revoked = await access.create(connection, agency_code="44", roles=["auditor"])
        await access.revoke(connection, revoked_id)
        past = datetime.now(UTC) - timedelta(seconds=1)
        _, expired = await access.create(connection, agency_code="44", roles=["auditor"], expires_at=past)
    finally:
        await connection.close()
    _, unknown = access.new_key()
    for key, code in [
        ("not-a-key", "invalid_credential"),
        (unknown, "invalid_credential"),
        (revoked[:-1] + "x", "invalid_credential"),  # a known key id with the wrong secret
        (revoked, "invalid_credential"),
        (expired, "expired_credential"),
    ]:
        answer = await system.registry.get("/licenses", headers=_bearer(key))
        assert _refusal(answer, 401) == code, key


async def test_a_submitter_acts_and_reads_for_its_own_agency_only(system: System) -> None:
    other = samples.application_data(agency_code="32")
    answer = await system.applications.post("/applications", json=other, headers=auth("submitter44"))
    assert _refusal(answer, 403) == "other_agency"

    answer = await system.applications.post(
        "/applications", json=samples.application_data(), headers=auth("submitter44")
    )
    assert answer.status_code == 202, answer.text
    path = f"/applications/{answer.json()['application_id']}"

    async def folded() -> httpx.Response | None:
        found = await system.registry.get(path, headers=auth("submitter44"))
        return found if found.status_code == 200 else None

    await eventually(folded, what=path)
    assert _refusal(await system.registry.get(path, headers=auth("submitter32")), 403) == "other_agency"
    for name in ("officer32", "auditor44"):  # officers and auditors read every agency's applications
        assert (await system.registry.get(path, headers=auth(name))).status_code == 200, name
    withdraw = await system.applications.post(f"{path}/withdraw", headers=auth("submitter32"))
    assert _refusal(withdraw, 403) == "other_agency"


async def test_an_officer_acts_only_on_licenses_of_its_agency(system: System) -> None:
    body = {"officer": "officer.wang", "reason": WHY}
    answer = await system.review.post(
        f"/officer/licenses/{OTHER_AGENCY_LICENSE}/suspend", json=body, headers=auth("officer44")
    )
    assert _refusal(answer, 403) == "other_agency"
    answer = await system.review.post(
        f"/officer/licenses/{OTHER_AGENCY_LICENSE}/suspend", json={"reason": WHY}, headers=auth("officer32")
    )
    assert answer.status_code == 404, answer.text  # its own agency's: allowed, but there is no such license


async def test_an_auditor_reads_everything_and_writes_nothing(system: System) -> None:
    reads = [
        (system.registry, "/licenses"),
        (system.registry, "/metrics"),
        (system.registry, "/vins/LVSHCAMB1CE012345/exports"),
        (system.review, "/officer/queue"),
        (system.review, "/reference"),
        (system.review, "/admin/reference/changes"),
        (system.applications, "/metrics"),
    ]
    for client, path in reads:
        assert (await client.get(path, headers=auth("auditor44"))).status_code == 200, path
    writes = [
        (system.applications, "/applications", samples.application_data()),
        (system.registry, "/exports", samples.declaration_data("26-44-000001", "531620260000000001")),
        (system.review, f"/officer/licenses/{OTHER_AGENCY_LICENSE}/revoke", {"officer": "a.b", "reason": WHY}),
    ]
    for client, path, body in writes:
        answer = await client.post(path, json=body, headers=auth("auditor44"))
        assert _refusal(answer, 403) == "role_required", path


async def test_customs_cannot_use_the_officers_routes_nor_submit(system: System) -> None:
    answer = await system.review.get("/officer/queue", headers=auth("customs44"))
    assert _refusal(answer, 403) == "role_required"
    assert "officer" in answer.json()["message"]
    body = {"officer": "officer.wang", "reason": WHY}
    answer = await system.review.post("/officer/licenses/26-44-000001/suspend", json=body, headers=auth("customs44"))
    assert _refusal(answer, 403) == "role_required"
    answer = await system.applications.post("/applications", json=samples.application_data(), headers=auth("customs44"))
    assert _refusal(answer, 403) == "role_required"
    assert (await system.registry.get("/licenses", headers=auth("customs44"))).status_code == 200


async def test_a_rotated_key_works_beside_its_successor_until_its_grace_ends(system: System) -> None:
    connection = await _database(system)
    try:
        old_id, old = await access.create(connection, agency_code="44", roles=["customs"], label="customs 44")
        _, new = await access.rotate(connection, old_id, grace=timedelta(seconds=2))
    finally:
        await connection.close()
    for key in (old, new):
        assert (await system.registry.get("/licenses", headers=_bearer(key))).status_code == 200
    await asyncio.sleep(2.5)
    assert _refusal(await system.registry.get("/licenses", headers=_bearer(old)), 401) == "expired_credential"
    assert (await system.registry.get("/licenses", headers=_bearer(new))).status_code == 200


async def test_a_jwt_of_the_configured_issuer_grants_its_agency_and_roles(system: System) -> None:
    customs = _bearer(token("00", ["customs"]))
    assert (await system.registry.get("/licenses", headers=customs)).status_code == 200
    answer = await system.review.get("/officer/queue", headers=customs)
    assert _refusal(answer, 403) == "role_required"
    submitter_32 = _bearer(token("32", ["submitter"]))
    answer = await system.applications.post("/applications", json=samples.application_data(), headers=submitter_32)
    assert _refusal(answer, 403) == "other_agency"
    expired = _bearer(token("00", ["customs"], lifetime=-60))
    assert _refusal(await system.registry.get("/licenses", headers=expired), 401) == "expired_credential"


async def test_each_credential_has_a_rate_of_its_own_whatever_address_it_comes_from(
    infrastructure: Infrastructure, database_url: str, topics: Topics
) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        _, busy = await access.create(connection, agency_code="44", roles=["auditor"])
        _, quiet = await access.create(connection, agency_code="44", roles=["auditor"])
    finally:
        await connection.close()
    settings = settings_for(
        registry.Settings,
        infrastructure,
        database_url,
        topics,
        rate_limit_per_second=0,  # no limit per address: what is left is the credential's own
        rate_limit_per_credential_per_second=0.5,
        rate_limit_per_credential_burst=2,
    )
    async with serving(registry.create_app(settings), as_=None) as client:
        answers = [await client.get("/licenses", headers=_bearer(busy)) for _ in range(3)]
        others = [await client.get("/licenses", headers=_bearer(quiet)) for _ in range(2)]
        unauthenticated = await client.get("/licenses")
    assert [a.status_code for a in answers[:2]] == [200, 200]
    assert _refusal(answers[2], 429) == "rate_limited"
    assert answers[2].headers["Retry-After"] == "2"
    assert "this credential" in answers[2].json()["message"]
    assert [a.status_code for a in others] == [200, 200]
    assert _refusal(unauthenticated, 401) == "missing_credential"


async def test_an_officer_key_names_its_officer_and_a_rotation_keeps_it(
    infrastructure: Infrastructure, database_url: str, topics: Topics
) -> None:
    def run(*args: str) -> str:
        done = licensectl("keys", *args, infrastructure=infrastructure, database_url=database_url, topics=topics)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout.strip().splitlines()[-1]  # the key, printed last

    first = access.key_id_of(run("create", "--agency", "44", "--role", "officer", "--officer", "officer.zhao"))
    second = access.key_id_of(run("rotate", str(first)))
    connection = await asyncpg.connect(database_url)
    try:
        query = "SELECT key_id, officer FROM access.credentials WHERE key_id = ANY($1)"
        rows = await connection.fetch(query, [first, second])
    finally:
        await connection.close()
    assert {r["key_id"]: r["officer"] for r in rows} == {first: "officer.zhao", second: "officer.zhao"}
    customs = licensectl(
        *("keys", "create", "--agency", "00", "--role", "customs", "--officer", "officer.zhao"),
        infrastructure=infrastructure,
        database_url=database_url,
        topics=topics,
    )
    assert customs.returncode == 2 and "officer role" in customs.stdout, customs.stdout
