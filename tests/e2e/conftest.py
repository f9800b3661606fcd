"""The three services as processes, on the real broker and database, as the run command starts them.

On a broker that takes logins each service runs as its own principal with only the ACLs of its role
(shared/platform/kafka_access.py), as ``scripts/up`` runs them: these tests prove the grants are enough.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from licensectl.kafka import grant_services, service_principal
from shared.contract.topics import Topics
from shared.platform.kafka_access import SERVICES as SERVICE_ROLES
from shared.platform.kafka_admin import revoke
from tests.contract import traffic_problems
from tests.infra import Infrastructure
from tests.processes import ServiceProcess

SERVICES = tuple(role.value for role in SERVICE_ROLES)


@pytest.fixture
def services(
    infrastructure: Infrastructure, database_url: str, topics: Topics, tmp_path: Path
) -> Iterator[dict[str, str]]:
    """Each service started with ``python -m services.<name>``, as the run command starts them."""
    env = {
        **infrastructure.kafka.environment(),
        "DATABASE_URL": database_url,
        "LEDGER_TOPIC_NAMESPACE": topics.namespace,
    }
    if infrastructure.kafka.authenticated:
        env |= grant_services(infrastructure.kafka, topics)
    processes = [ServiceProcess(name, env, tmp_path) for name in SERVICES]
    try:
        for process in processes:
            process.start()
        for process in processes:
            process.wait_healthy()
        yield {p.name: p.url for p in processes}
        # What the test made the services write is held to the published contract, record by record.
        checked, wrong = traffic_problems(infrastructure.kafka, topics)
        assert checked > 0 and not wrong, "\n".join(wrong[:20])
    finally:
        for process in processes:
            process.stop()
        if infrastructure.kafka.authenticated:
            for role in SERVICE_ROLES:
                revoke(infrastructure.kafka, service_principal(role, topics))
