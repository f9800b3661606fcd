"""The HTTP limits of every service: body size (413) and rate per client (429), as create_service wires them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from shared.platform.limits import TokenBuckets
from shared.platform.service import create_service
from shared.platform.settings import ServiceSettings


def _app(**limits: Any) -> FastAPI:
    app, _ = create_service("limited", ServiceSettings(**limits), title="t", description="d")

    @app.post("/echo")
    async def echo(body: dict[str, Any]) -> dict[str, Any]:
        return body

    return app


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_body_under_the_limit_is_served() -> None:
    async with _client(_app(max_request_bytes=100)) as client:
        answer = await client.post("/echo", json={"a": "x" * 50})
    assert answer.status_code == 200


async def test_a_body_declared_over_the_limit_is_refused_with_413_before_it_is_read() -> None:
    async with _client(_app(max_request_bytes=100)) as client:
        answer = await client.post("/echo", json={"a": "x" * 200})
    assert answer.status_code == 413
    assert answer.json()["errors"][0]["code"] == "request_too_large"
    assert "100 bytes" in answer.json()["message"]


async def test_a_streamed_body_is_refused_once_it_passes_the_limit_and_no_further_read() -> None:
    pulled = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal pulled
        for _ in range(100):
            pulled += 1
            yield b" " * 60

    async with _client(_app(max_request_bytes=100)) as client:
        answer = await client.post("/echo", content=chunks(), headers={"content-type": "application/json"})
    assert answer.status_code == 413
    assert answer.json() == {
        "code": "request_too_large",
        "message": "the request body is larger than the limit of 100 bytes",
        "errors": [{"code": "request_too_large", "message": "the request body is larger than the limit of 100 bytes"}],
    }
    assert pulled < 5


async def test_a_client_past_its_burst_gets_429_with_retry_after_and_the_probes_stay_open() -> None:
    async with _client(_app(rate_limit_per_second=0.5, rate_limit_burst=2)) as client:
        answers = [await client.post("/echo", json={}) for _ in range(3)]
        health = await client.get("/health")
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[2].headers["Retry-After"] == "2"
    assert answers[2].json()["errors"][0]["code"] == "rate_limited"
    assert health.status_code != 429


async def test_a_rate_of_zero_turns_the_limit_off() -> None:
    async with _client(_app(rate_limit_per_second=0, rate_limit_burst=1)) as client:
        answers = [await client.post("/echo", json={}) for _ in range(5)]
    assert {a.status_code for a in answers} == {200}


def test_a_bucket_refills_at_its_rate_up_to_its_burst() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate=10, burst=3, clock=clock)
    assert [buckets.take("a") for _ in range(3)] == [0, 0, 0]
    assert buckets.take("a") == pytest.approx(0.1)
    clock.now += 0.1
    assert buckets.take("a") == 0
    clock.now += 60
    assert [buckets.take("a") for _ in range(4)][-1] > 0  # refilled to the burst, not beyond


def test_clients_have_buckets_of_their_own() -> None:
    buckets = TokenBuckets(rate=1, burst=1, clock=Clock())
    assert buckets.take("a") == 0
    assert buckets.take("a") > 0
    assert buckets.take("b") == 0


def test_idle_clients_are_forgotten_so_memory_stays_bounded() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate=1, burst=2, clock=clock, max_clients=10)
    for n in range(10):
        buckets.take(f"client-{n}")
    clock.now += 5
    buckets.take("newcomer")
    assert len(buckets._buckets) == 1


def test_a_limit_without_rate_or_burst_is_refused() -> None:
    with pytest.raises(ValueError):
        TokenBuckets(rate=0, burst=1)
