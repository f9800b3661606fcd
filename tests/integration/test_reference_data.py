"""Reference data in review's own tables, against the real broker and database: a version is loaded once,
an admin's change is in force for the next decision in every review instance, and bad changes are refused."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer
from pydantic import BaseModel

import samples
from services.applications.submission import submitted
from services.review import reference
from services.review.app import Settings, create_app
from services.review.reference import store as reference_store
from shared.contract.events import ApplicationRejected, Envelope, LicenseGranted
from shared.contract.topics import Topics
from shared.platform.clock import china_today
from shared.platform.db import create_pool
from tests.infra import Infrastructure
from tests.support import envelopes, producer, read_topic, send_signed, serving, settings_for

ADMIN = {"changed_by": "admin.li", "why": "MIIT announcement 2026-45"}


@pytest.fixture
def settings(infrastructure: Infrastructure, database_url: str, topics: Topics) -> Settings:
    return settings_for(Settings, infrastructure, database_url, topics)


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    opened = await create_pool(database_url, schema="review")
    yield opened
    await opened.close()


def _listing(status: str) -> dict[str, Any]:
    return {"status": status, **ADMIN}


async def _decide(send: AIOKafkaProducer, settings: Settings) -> Envelope:
    """Submit the sample application on the case stream, as the applications service does; review's decision."""
    application_id = uuid.uuid4()
    submission = submitted(samples.application(), application_id=application_id, channel="http")
    await send_signed(send, settings.topics.cases, submission.to_bytes(), key=str(application_id).encode())

    def decisions(records: list[Any]) -> list[Envelope]:
        return [e for e in envelopes(records) if e.producer == "review" and e.case_id == application_id]

    records = await read_topic(settings.kafka, settings.topics.cases, until=lambda rs: bool(decisions(rs)), timeout=40)
    [decision] = decisions(records)
    return decision


def _sorted(rows: tuple[BaseModel, ...]) -> list[str]:
    return sorted(row.model_dump_json() for row in rows)


async def test_a_version_is_loaded_into_the_tables_once(pool: asyncpg.Pool) -> None:
    assert await reference_store.ensure_loaded(pool, reference.CURRENT_VERSION)
    assert not await reference_store.ensure_loaded(pool, reference.CURRENT_VERSION)
    assert not await reference_store.ensure_loaded(pool, "2026.1"), "an older version never replaces a newer one"
    async with pool.acquire() as connection:
        loaded = await reference_store.read(connection)
    published = reference.load()
    assert (loaded.version, loaded.revision) == (published.version, 1)
    for rows in reference_store.ROWS:  # the same rows, in the tables' order
        assert _sorted(getattr(loaded, rows)) == _sorted(getattr(published, rows)), rows
    assert loaded.model_dump(exclude={"revision", *reference_store.ROWS}) == published.model_dump(
        exclude={"revision", *reference_store.ROWS}
    )
    assert await pool.fetchval("SELECT count(*) FROM reference_changes") == 1


async def test_instances_starting_together_load_the_version_once(database_url: str, pool: asyncpg.Pool) -> None:
    other = await create_pool(database_url, schema="review")
    try:
        loads = await asyncio.gather(
            *(reference_store.ensure_loaded(p, reference.CURRENT_VERSION) for p in (pool, other))
        )
    finally:
        await other.close()
    assert sorted(loads) == [False, True]
    assert await pool.fetchval("SELECT revision FROM reference_state") == 1


async def test_a_restarted_service_loads_nothing_and_reports_what_it_decides_against(settings: Settings) -> None:
    for _ in range(2):
        async with serving(create_app(settings)) as review:
            answer = (await review.get("/reference")).json()
    assert answer["version"] == reference.CURRENT_VERSION and answer["revision"] == 1
    assert answer["enterprises"] == len(reference.load().enterprises)


async def test_a_suspended_listing_rejects_the_next_application_in_every_instance_and_relisting_grants_again(
    settings: Settings,
) -> None:
    listing = f"/admin/reference/enterprises/{samples.QILIN_MOTOR}/listing/{china_today().year}"
    async with serving(create_app(settings)) as first, producer(settings.kafka) as send:
        assert isinstance((await _decide(send, settings)).payload, LicenseGranted)
        async with serving(create_app(settings)) as second:  # another instance, on the same database
            answer = await second.put(listing, json=_listing("suspended"))
            assert answer.status_code == 200, answer.text
            assert answer.json() == {"revision": 2, "changed": True}
        # the second instance has stopped: the first, still holding revision 1 in memory, decides
        rejected = (await _decide(send, settings)).payload
        assert isinstance(rejected, ApplicationRejected)
        assert [r.code for r in rejected.reasons] == ["applicant_listing_suspended"]
        assert (await first.get("/reference")).json()["revision"] == 2

        assert (await first.put(listing, json=_listing("listed"))).json() == {"revision": 3, "changed": True}
        assert (await first.put(listing, json=_listing("listed"))).json() == {"revision": 3, "changed": False}
        assert isinstance((await _decide(send, settings)).payload, LicenseGranted)
        log = (await first.get("/admin/reference/changes", params={"after_revision": 1})).json()
    assert [(c["kind"], c["before"], c["after"], c["changed_by"]) for c in log] == [
        ("listing", {"status": "listed"}, {"status": "suspended"}, "admin.li"),
        ("listing", {"status": "suspended"}, {"status": "listed"}, "admin.li"),
    ]


async def _refused(review: httpx.AsyncClient, path: str, body: dict[str, Any], status: int = 422) -> list[str]:
    answer = await review.put(path, json=body)
    assert answer.status_code == status, answer.text
    return [e.get("code", "") for e in answer.json()["errors"]]


async def test_bad_changes_are_refused_with_reasons_and_change_nothing(settings: Settings) -> None:
    year, qilin = china_today().year, samples.QILIN_MOTOR
    async with serving(create_app(settings)) as review:
        assert await _refused(review, f"/admin/reference/enterprises/{qilin}/listing/{year}", _listing("paused"))
        assert await _refused(review, f"/admin/reference/enterprises/{qilin}/listing/1999", _listing("listed"))
        assert await _refused(review, f"/admin/reference/enterprises/not-a-code/listing/{year}", _listing("listed"))
        assert await _refused(review, f"/admin/reference/enterprises/{qilin}/listing/{year}", {"status": "listed"})
        unknown = f"/admin/reference/enterprises/{'9' * 18}/listing/{year}"
        assert await _refused(review, unknown, _listing("listed"), status=404) == ["unknown_reference"]
        grant = {"distributor": samples.HAITONG_EXPORT, "manufacturer": qilin, "year": year, "status": "active"}
        brands = await _refused(review, "/admin/reference/authorisations", {**grant, "brands": ["Nova"], **ADMIN})
        assert brands == ["reference_inconsistent"]
        model = f"/admin/reference/models/{samples.QILIN_MODEL}"
        assert await _refused(review, model, ADMIN)  # changes nothing
        assert await _refused(review, model, {"reference_price_cny": -5, **ADMIN})
        assert await _refused(
            review, "/admin/reference/models/ZZ9999BEV", {"reference_price_cny": 1, **ADMIN}, 404
        ) == ["unknown_reference"]
        assert (await review.get("/reference")).json()["revision"] == 1


async def test_model_authorisation_and_outlet_changes_reach_the_rules(settings: Settings, pool: asyncpg.Pool) -> None:
    year, qilin = china_today().year, samples.QILIN_MOTOR
    lapsed = china_today() - timedelta(days=1)
    async with serving(create_app(settings)) as review:
        model = {"ccc_valid_until": lapsed.isoformat(), "reference_price_cny": None, **ADMIN}
        assert (await review.put(f"/admin/reference/models/{samples.QILIN_MODEL}", json=model)).status_code == 200
        grant = {"distributor": samples.HAITONG_EXPORT, "manufacturer": qilin, "year": year, "status": "withdrawn"}
        assert (await review.put("/admin/reference/authorisations", json={**grant, **ADMIN})).status_code == 200
        outlet = {"enterprise": qilin, "country": "NZ", "city": "Auckland", "name": "Qilin Auckland", "status": "open"}
        assert (await review.put("/admin/reference/outlets", json={**outlet, **ADMIN})).json()["revision"] == 4
    async with pool.acquire() as connection:
        ref = await reference_store.read(connection)
    changed = ref.model(samples.QILIN_MODEL)
    assert changed is not None and changed.ccc_valid_until == lapsed and changed.reference_price_cny is None
    withdrawn = ref.authorisation(distributor=samples.HAITONG_EXPORT, manufacturer=qilin, year=year)
    assert withdrawn is not None and withdrawn.status == "withdrawn"
    assert [o.city for o in ref.outlets(qilin, "NZ")] == ["Auckland"]


async def test_the_change_log_cannot_be_rewritten(settings: Settings, pool: asyncpg.Pool) -> None:
    await reference_store.ensure_loaded(pool, reference.CURRENT_VERSION)
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await pool.execute("UPDATE reference_changes SET changed_by = 'someone else'")
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await pool.execute("DELETE FROM reference_changes")
