"""The three services as processes, on the real broker and database, as the run command starts them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.topics import Topics
from tests.infra import Infrastructure
from tests.processes import ServiceProcess

SERVICES = ("applications", "review", "registry")


@pytest.fixture
def services(
    infrastructure: Infrastructure, database_url: str, topics: Topics, tmp_path: Path
) -> Iterator[dict[str, str]]:
    """Each service started with ``python -m services.<name>``, as the run command starts them."""
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": infrastructure.bootstrap_servers,
        "DATABASE_URL": database_url,
        "LEDGER_TOPIC_NAMESPACE": topics.namespace,
    }
    processes = [ServiceProcess(name, env, tmp_path) for name in SERVICES]
    try:
        for process in processes:
            process.start()
        for process in processes:
            process.wait_healthy()
        yield {p.name: p.url for p in processes}
    finally:
        for process in processes:
            process.stop()
