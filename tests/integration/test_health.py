"""Liveness and readiness: /health/live answers while the process does; /health/ready says whether the service
can take traffic (broker, database, readers, caught up) and flips to 503, naming why, when it cannot."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import httpx

from services.registry.app import Settings, create_app
from shared.contract.topics import Topics
from tests.histories import many_cases, publish
from tests.infra import Infrastructure
from tests.support import eventually, serving, settings_for
from tests.tcp_proxy import Proxy


def _through(url: str, port: int) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))


async def _ready(client: httpx.AsyncClient, status: int) -> dict[str, str] | None:
    answer = await client.get("/health/ready")
    body: dict[str, str] = answer.json()
    return body if answer.status_code == status else None


async def test_readiness_flips_when_the_database_goes_and_comes_back_and_liveness_holds(
    infrastructure: Infrastructure, database_url: str, topics: Topics
) -> None:
    parts = urlsplit(database_url)
    proxy = await Proxy(parts.hostname or "127.0.0.1", parts.port or 5432).start()
    try:
        settings = settings_for(Settings, infrastructure, _through(database_url, proxy.port), topics)
        async with serving(create_app(settings)) as client:
            assert (await eventually(lambda: _ready(client, 200), what="ready"))["database"] == "ok"
            proxy.cut()
            down = await eventually(lambda: _ready(client, 503), what="not ready without its database")
            assert down["database"].startswith("error") and down["status"] == "degraded"
            live = await client.get("/health/live")
            assert live.status_code == 200 and live.json()["status"] == "alive"
            proxy.mend()
            await eventually(lambda: _ready(client, 200), timeout=60, what="ready again")
    finally:
        await proxy.stop()


async def test_a_service_far_behind_its_topics_is_not_ready(
    infrastructure: Infrastructure, database_url: str, topics: Topics
) -> None:
    await publish(infrastructure.kafka, topics.cases, many_cases(30))  # 150 events before the registry starts
    settings = settings_for(Settings, infrastructure, database_url, topics, ready_max_lag=0, batch_size=1)
    async with serving(create_app(settings)) as client:
        behind = await eventually(lambda: _ready(client, 503), what="not ready while behind")
        assert "records behind (ready within 0)" in behind["caught_up"], behind
        caught_up = await eventually(lambda: _ready(client, 200), timeout=90, what="ready once caught up")
        assert caught_up["caught_up"] == "ok"
