"""docker-compose.yml works end to end, checked without a Docker engine: the file follows the Compose
specification (its JSON Schema, as check-jsonschema vendors it), and the set-up's and the services' exact commands
and environment, read from the file, run as local processes against the local broker and database (the names
``kafka``, ``postgres`` and the volumes' paths mapped to local ones), so that a broken command line fails the build.
Then the demo keys the set-up wrote drive the flow through the services, as the README's examples do."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import yaml

import samples
from licensectl.kafka import service_principal
from shared.contract.topics import Topics
from shared.platform.db import drop_database
from shared.platform.kafka_access import SERVICES as SERVICE_ROLES
from shared.platform.kafka_admin import delete_topics, revoke
from tests.infra import ROOT, Infrastructure
from tests.processes import free_port
from tests.support import eventually

COMPOSE = ROOT / "docker-compose.yml"
SERVICES = tuple(role.value for role in SERVICE_ROLES)
PORTS = {"applications": 8001, "review": 8002, "registry": 8003}  # as docker-compose.yml publishes them
VARIABLE = re.compile(r"\$\$|\$\{(\w+)(?:(:?-)([^}]*))?\}|\$(\w+)")


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())  # anchors and merge keys resolved
    return loaded


def interpolate(value: str, variables: dict[str, str]) -> str:
    """Compose's interpolation: ``$$`` is a ``$``; ``${VAR}``, ``$VAR``, ``${VAR:-default}``, ``${VAR-default}``."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(4)
        given = variables.get(name)
        if match.group(2) == ":-" and not given:
            return match.group(3)
        if match.group(2) == "-" and given is None:
            return match.group(3)
        return given or ""

    return VARIABLE.sub(one, value)


def test_the_compose_file_follows_the_compose_specification() -> None:
    tool = Path(sys.executable).with_name("check-jsonschema")
    checked = subprocess.run(
        [str(tool), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_compose_services_are_healthy_when_ready_restart_and_keep_their_keys_on_volumes() -> None:
    services = compose()["services"]
    for name in SERVICES:
        service = services[name]
        assert service["restart"] == "unless-stopped" and service["build"] == "."
        assert "/health/ready" in service["environment"]["LEDGER_HEALTH_URL"]
        assert "LEDGER_HEALTH_URL" in " ".join(service["healthcheck"]["test"])
        assert f"{PORTS[name]}:{PORTS[name]}" in service["ports"]
        assert "keys:/run/ledger/keys" in service["volumes"]
        assert service["environment"][f"{name.upper()}_KEY_DIR"] == "/run/ledger/keys"
    kafka = services["kafka"]
    assert any(port.endswith(":${LEDGER_KAFKA_EXTERNAL_PORT:-9094}") for port in kafka["ports"])
    assert {"keys", "kafka-logins", "demo-keys", "kafka-data", "postgres-data"} <= set(compose()["volumes"])
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^USER (?!root|0\b)\w+", dockerfile, re.MULTILINE) and "HEALTHCHECK" in dockerfile


@dataclass
class Local:
    """What the Compose network's names and the volumes' paths are on this machine."""

    infrastructure: Infrastructure
    database_url: str
    volumes: Path
    ports: dict[str, int]
    namespace: str

    def map(self, text: str) -> str:
        kafka = self.infrastructure.kafka
        text = text.replace("postgresql://ledger:ledger@postgres:5432/ledger", self.database_url)
        text = text.replace("kafka:9092", kafka.bootstrap_servers).replace("/run/ledger", str(self.volumes))
        for name, port in PORTS.items():
            text = text.replace(f"127.0.0.1:{port}/", f"127.0.0.1:{self.ports[name]}/")
        return text

    def variables(self) -> dict[str, str]:
        """What the shell that runs ``docker compose up`` would set: the broker admin's password."""
        password = self.infrastructure.kafka.password
        return {"LEDGER_KAFKA_ADMIN_PASSWORD": password.get_secret_value() if password else ""}

    def environment(self, service: dict[str, Any]) -> dict[str, str]:
        """The container's environment, mapped; plus the topic namespace (the broker is shared) and each service's
        port (the published ones may be taken on this machine)."""
        env = {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "HOME": str(self.volumes)}
        for key, value in service.get("environment", {}).items():
            env[key] = self.map(interpolate(str(value), self.variables()))
        if env.get("KAFKA_USERNAME") == "admin" and self.infrastructure.kafka.username:
            env["KAFKA_USERNAME"] = self.infrastructure.kafka.username
        env["LEDGER_TOPIC_NAMESPACE"] = self.namespace
        return env | {f"{name.upper()}_PORT": str(port) for name, port in self.ports.items()}

    def command(self, words: list[str]) -> list[str]:
        return [self.map(interpolate(word, self.variables())) for word in words]


@pytest.fixture
async def local(infrastructure: Infrastructure, tmp_path: Path) -> AsyncIterator[Local]:
    """An empty database (the set-up migrates it), a topic namespace (the set-up creates the topics), the volumes'
    directories; removed after, with the principals the set-up made."""
    if not infrastructure.kafka.authenticated:
        pytest.fail("docker-compose.yml's Kafka takes SASL logins only: the tests' broker must too")
    name = f"ledger_compose_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(infrastructure.database_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    volumes = tmp_path / "run-ledger"
    for volume in ("keys", "logins", "demo"):
        (volumes / volume).mkdir(parents=True)
    topics = Topics(namespace=f"t{uuid.uuid4().hex[:10]}")
    ports = {service: free_port() for service in SERVICES}
    try:
        yield Local(
            infrastructure, f"{infrastructure.database_url.rpartition('/')[0]}/{name}", volumes, ports, topics.namespace
        )
    finally:
        for role in SERVICE_ROLES:
            revoke(infrastructure.kafka, service_principal(role, topics))
        await delete_topics(infrastructure.kafka, topics)
        await drop_database(admin, name)
        await admin.close()


@pytest.fixture
def started(local: Local, tmp_path: Path) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    processes: dict[str, subprocess.Popen[bytes]] = {}
    yield processes
    for process in processes.values():
        process.terminate()
    for process in processes.values():
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _setup(local: Local, setup: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        local.command(setup["command"]),
        env=local.environment(setup),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _healthy(
    local: Local, service: dict[str, Any], test: list[str], log: Path, process: subprocess.Popen[bytes]
) -> None:
    """Run the healthcheck's command (``CMD`` form) until it succeeds, as Docker would."""
    assert test[0] == "CMD", test
    deadline = time.monotonic() + 120
    while True:
        probe = subprocess.run(local.command(test[1:]), env=local.environment(service), capture_output=True, timeout=30)
        if probe.returncode == 0:
            return
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"not healthy: {probe.stderr.decode()[-500:]}\n{log.read_text()[-4000:]}")
        time.sleep(1)


def _image_healthcheck() -> list[str]:
    """The Dockerfile's HEALTHCHECK command (its exec form)."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    found = re.search(r"^HEALTHCHECK .*?CMD (\[.*\])\s*$", text, re.MULTILINE)
    assert found, "the Dockerfile has no HEALTHCHECK in exec form"
    return ["CMD", *json.loads(found.group(1))]


async def test_the_compose_setup_and_services_run_as_written_and_the_demo_keys_drive_the_flow(
    local: Local, started: dict[str, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    services = compose()["services"]
    first = _setup(local, services["setup"])
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    keys_file = local.volumes / "demo" / "demo-keys.json"
    keys = json.loads(keys_file.read_text())
    assert set(keys) == {"submitter", "officer", "customs", "auditor", "admin"}
    again = _setup(local, services["setup"])  # `docker compose up` again: the set-up runs again, and changes nothing
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "demo keys: reusing" in again.stdout and json.loads(keys_file.read_text()) == keys
    assert (local.volumes / "keys" / "root.key.pub").exists()

    for name in SERVICES:
        service = services[name]
        with (tmp_path / f"{name}.log").open("wb") as out:
            command, env = local.command(service["command"]), local.environment(service)
            started[name] = subprocess.Popen(command, env=env, cwd=ROOT, stdout=out, stderr=out)
    for name in SERVICES:
        log = tmp_path / f"{name}.log"
        _healthy(local, services[name], services[name]["healthcheck"]["test"], log, started[name])
        _healthy(local, services[name], _image_healthcheck(), log, started[name])

    urls = {name: f"http://127.0.0.1:{port}" for name, port in local.ports.items()}
    submitter = {"Authorization": f"Bearer {keys['submitter']}"}
    async with httpx.AsyncClient(timeout=10) as client:
        answer = await client.post(
            f"{urls['applications']}/applications", json=samples.application_data(), headers=submitter
        )
        assert answer.status_code == 202, answer.text
        application = answer.json()["application_id"]

        async def approved() -> bool | None:
            found = await client.get(f"{urls['registry']}/applications/{application}", headers=submitter)
            return True if found.status_code == 200 and found.json()["status"] == "approved" else None

        await eventually(approved, timeout=60, what="the application approved through the three services")
        auditor = {"Authorization": f"Bearer {keys['auditor']}"}
        for url in urls.values():
            assert (await client.get(f"{url}/metrics", headers=auditor)).status_code == 200
