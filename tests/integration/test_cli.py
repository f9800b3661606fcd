"""licensectl never reports what it could not read: each read command, against the real services, broker and
database, prints what it read (as a table that keeps ids whole at 80 columns, or as JSON) and exits 0; when a
service, the broker or the database is out of reach it exits 3, when a credential is refused 4, with the reason."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import uuid
from asyncio.subprocess import PIPE
from collections.abc import AsyncIterator, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest

import samples
from licensectl.kafka import grant_services, service_principal
from shared.contract import signatures
from shared.contract.topics import Topics
from shared.platform import trust
from shared.platform.db import drop_database
from shared.platform.kafka_access import SERVICES as SERVICE_ROLES
from shared.platform.kafka_access import Role
from shared.platform.kafka_admin import delete_topics, ensure_topics, grant, new_password, revoke
from tests.infra import ROOT, Infrastructure
from tests.processes import ServiceProcess, free_port
from tests.support import CREDENTIALS, ROOT_KEY, SIGNING_KEY, auth, eventually, key, trust_for_tests
from tests.tcp_proxy import Proxy

SERVICES = tuple(role.value for role in SERVICE_ROLES)


class System:
    """The three services as processes on a database and topic namespace of their own, shared by this module's
    tests (starting them is the slow part), and licensectl run against them as an operator runs it."""

    def __init__(
        self,
        infrastructure: Infrastructure,
        database_url: str,
        topics: Topics,
        urls: dict[str, str],
        service_env: dict[str, str],
    ):
        self.infrastructure = infrastructure
        self.database_url = database_url
        self.topics = topics
        self.urls = urls
        self.service_env = service_env  # what the services were started with

    def environment(self, columns: int, env: dict[str, str]) -> dict[str, str]:
        environment = {**os.environ, **self.infrastructure.kafka.environment(), "COLUMNS": str(columns)}
        environment |= {"DATABASE_URL": self.database_url, "LEDGER_TOPIC_NAMESPACE": self.topics.namespace}
        environment.pop("LEDGER_API_KEY", None)
        return environment | env

    def licensectl(self, *args: str, columns: int = 250, **env: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "licensectl", *args]
        environment = self.environment(columns, env)
        return subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=180)

    async def licensectl_async(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        """As ``licensectl``, without blocking the test's event loop (a proxy the test runs must keep serving)."""
        command = [sys.executable, "-m", "licensectl", *args]
        process = await asyncio.create_subprocess_exec(
            *command, cwd=ROOT, env=self.environment(250, env), stdout=PIPE, stderr=PIPE
        )
        out, err = await asyncio.wait_for(process.communicate(), timeout=180)
        assert process.returncode is not None
        return subprocess.CompletedProcess(command, process.returncode, out.decode(), err.decode())

    def status(self, *args: str, columns: int = 250, **env: str) -> subprocess.CompletedProcess[str]:
        urls = [f"--{name}={url}" for name, url in self.urls.items()]
        return self.licensectl("status", *urls, *args, columns=columns, **env)


@pytest.fixture(scope="module")
async def system(
    infrastructure: Infrastructure, template_database: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[System]:
    name = f"ledger_cli_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(infrastructure.database_url)
    await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
    database_url = f"{infrastructure.database_url.rpartition('/')[0]}/{name}"
    topics = Topics(namespace=f"t{uuid.uuid4().hex[:10]}")
    await ensure_topics(infrastructure.kafka, topics)
    await trust.publish(infrastructure.kafka, topics.trust, trust_for_tests(), ROOT_KEY)
    env = {
        **infrastructure.kafka.environment(),
        "DATABASE_URL": database_url,
        "LEDGER_TOPIC_NAMESPACE": topics.namespace,
    }
    env |= {"REGISTRY_CHECKPOINT_INTERVAL_SECONDS": "1"}  # a signed checkpoint for audit verify to check
    if infrastructure.kafka.authenticated:
        env |= grant_services(infrastructure.kafka, topics)
    processes = [ServiceProcess(service, env, tmp_path_factory.mktemp("cli")) for service in SERVICES]
    try:
        for process in processes:
            process.start()
        for process in processes:
            process.wait_healthy()
        urls = {p.name: p.url for p in processes}
        await _one_license(urls)
        yield System(infrastructure, database_url, topics, urls, env)
    finally:
        for process in processes:
            process.stop()
        if infrastructure.kafka.authenticated:
            for role in SERVICE_ROLES:
                revoke(infrastructure.kafka, service_principal(role, topics))
        await delete_topics(infrastructure.kafka, topics)
        await drop_database(admin, name)
        await admin.close()


async def _one_license(urls: dict[str, str]) -> None:
    """An application granted, so that the counts, the ledger and its checkpoint hold something."""
    async with httpx.AsyncClient(timeout=10, headers=auth()) as client:
        answer = await client.post(f"{urls['applications']}/applications", json=samples.application_data())
        assert answer.status_code == 202, answer.text
        application = answer.json()["application_id"]

        async def granted() -> bool | None:
            found = await client.get(f"{urls['registry']}/applications/{application}")
            return True if found.status_code == 200 and found.json().get("license_number") else None

        await eventually(granted, timeout=30, what="the application granted and in the ledger")


def _json(done: subprocess.CompletedProcess[str]) -> Any:
    try:
        return json.loads(done.stdout)
    except ValueError:
        raise AssertionError(f"not JSON (exit {done.returncode}):\n{done.stdout}\n{done.stderr}") from None


def _fits(done: subprocess.CompletedProcess[str], width: int = 80) -> None:
    """Nothing cut: no line past ``width`` (but a single unbreakable value), no ellipsis."""
    assert "…" not in done.stdout, done.stdout
    for line in done.stdout.splitlines():
        assert len(line) <= width or " " not in line.strip().split(": ", 1)[-1], line


def _closed_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


# --version and --help


def test_version_prints_the_installed_version(system: System) -> None:
    done = system.licensectl("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"licensectl {metadata.version('export-license-ledger')}"


def test_help_at_80_columns_names_every_option_whole(system: System) -> None:
    replay = system.licensectl("replay", "--help", columns=80)
    assert replay.returncode == 0, replay.stderr
    assert "--trust-checkpoints / --no-trust-checkpoints" in replay.stdout and "--checkpoint-key" in replay.stdout
    assert "--json" in replay.stdout and "…" not in replay.stdout
    verify = system.licensectl("audit", "verify", "--help", columns=80)
    assert "--public-key" in verify.stdout and "--alarm / --no-alarm" in verify.stdout and "…" not in verify.stdout
    for line in replay.stdout.splitlines() + verify.stdout.splitlines():
        assert len(line) <= 80, line


# status


def test_status_with_an_auditors_key_reads_every_service(system: System) -> None:
    done = system.status("--json", LEDGER_API_KEY=key("auditor44"))
    assert done.returncode == 0, done.stdout + done.stderr
    shown = _json(done)
    assert shown["ok"] is True and shown["exit_code"] == 0
    services = {s["name"]: s for s in shown["services"]}
    assert set(services) == set(SERVICES)
    for service in services.values():
        assert service["ready"] is True and service["problem"] is None
        assert service["checks"]["broker"] == "ok" and service["checks"]["database"] == "ok"
        assert service["dead_letters"] == {} and service["lag"], service
    assert services["registry"]["applied"] == 2  # the submission and its grant
    assert services["applications"]["applied"] is None and services["applications"]["followed"] >= 1
    assert services["applications"]["appended"] == 1 and services["review"]["appended"] == 1
    registry_lag = {
        (x["topic"], x["partition"]) for x in services["registry"]["lag"] if x["group"].endswith("registry")
    }
    assert registry_lag == {(system.topics.cases, p) for p in range(6)}


def test_status_at_80_columns_cuts_nothing(system: System) -> None:
    done = system.status(columns=80, LEDGER_API_KEY=key("auditor44"))
    assert done.returncode == 0, done.stdout + done.stderr
    _fits(done)
    assert "registry" in done.stdout and "lag (records behind)" in done.stdout


def test_status_without_a_key_exits_4_with_401_and_shows_no_zeros(system: System) -> None:
    shown = system.status("--json")
    assert shown.returncode == 4, shown.stdout + shown.stderr
    document = _json(shown)
    assert document["ok"] is False and document["exit_code"] == 4
    for service in document["services"]:
        assert service["problem"]["reason"] == "missing_credential", service
        assert service["dead_letters"] is None and service["applied"] is None and service["appended"] is None
    assert "401 missing_credential" in shown.stderr and "LEDGER_API_KEY" in shown.stderr
    table = system.status()
    assert table.returncode == 4 and "not read" in table.stdout, table.stdout


def test_status_with_a_wrong_key_exits_4_with_401_invalid_credential(system: System) -> None:
    done = system.status("--json", "--key", "lk_nosuchkey_" + "x" * 43)
    assert done.returncode == 4, done.stdout + done.stderr
    assert {s["problem"]["reason"] for s in _json(done)["services"]} == {"invalid_credential"}
    assert "401 invalid_credential" in done.stderr


def test_status_with_a_key_without_the_auditor_role_exits_4_with_403(system: System) -> None:
    done = system.status("--json", LEDGER_API_KEY=key("submitter44"))
    assert done.returncode == 4, done.stdout + done.stderr
    assert {s["problem"]["reason"] for s in _json(done)["services"]} == {"role_required"}
    assert "403 role_required" in done.stderr


def test_status_with_a_service_out_of_reach_exits_3_and_reads_the_others(system: System) -> None:
    closed = _closed_url()
    done = system.licensectl(
        "status",
        f"--applications={system.urls['applications']}",
        f"--review={closed}",
        f"--registry={system.urls['registry']}",
        "--json",
        LEDGER_API_KEY=key("auditor44"),
    )
    assert done.returncode == 3, done.stdout + done.stderr
    services = {s["name"]: s for s in _json(done)["services"]}
    assert services["review"]["problem"]["reason"] == "service_unreachable"
    assert closed in services["review"]["problem"]["message"] and f"cannot reach {closed}" in done.stderr
    assert services["registry"]["problem"] is None and services["registry"]["applied"] == 2


async def test_status_exits_1_when_a_service_is_not_ready_and_3_when_it_cannot_answer(
    system: System, tmp_path: Path
) -> None:
    """A second applications instance whose database is reached through a proxy the test cuts. Its readiness says
    the database is gone; its /metrics still answers a key it checked within its cache time (exit 1: read, and
    not ready), and answers 503 database_unavailable to a key it would have to look up (exit 3: not read)."""
    parts = urlsplit(system.database_url)
    proxy = await Proxy(parts.hostname or "127.0.0.1", parts.port or 5432).start()
    through = system.database_url.replace(f"{parts.hostname}:{parts.port}", f"127.0.0.1:{proxy.port}")
    env = {**system.service_env, "DATABASE_URL": through, "APPLICATIONS_ACCESS_CACHE_SECONDS": "600"}
    instance = ServiceProcess("applications", env, tmp_path)
    instance.start()
    urls = [f"--applications={instance.url}", f"--review={system.urls['review']}"]
    urls.append(f"--registry={system.urls['registry']}")
    try:
        async with httpx.AsyncClient(timeout=5) as client:

            async def ready(status: int) -> bool | None:
                with contextlib.suppress(httpx.HTTPError):
                    return True if (await client.get(f"{instance.url}/health/ready")).status_code == status else None
                return None

            await eventually(lambda: ready(200), timeout=120, what="the second instance ready")
            well = await system.licensectl_async("status", *urls, "--json", LEDGER_API_KEY=key("auditor44"))
            assert well.returncode == 0, well.stdout + well.stderr  # and the auditor's key is in its cache
            proxy.cut()
            await eventually(lambda: ready(503), timeout=60, what="the second instance not ready without its database")
        down = await system.licensectl_async("status", *urls, "--json", LEDGER_API_KEY=key("auditor44"))
        unread = await system.licensectl_async("status", *urls, "--json", LEDGER_API_KEY=key("admin44"))
    finally:
        instance.stop()
        await proxy.stop()
    assert down.returncode == 1, down.stdout + down.stderr
    services = {s["name"]: s for s in _json(down)["services"]}
    assert services["applications"]["ready"] is False and services["applications"]["problem"] is None
    assert services["applications"]["checks"]["database"].startswith("error")
    assert services["applications"]["lag"] is not None and services["registry"]["ready"] is True
    assert unread.returncode == 3, unread.stdout + unread.stderr
    problem = {s["name"]: s for s in _json(unread)["services"]}["applications"]["problem"]
    assert problem["reason"] == "http_503" and "/metrics answered 503" in unread.stderr


# keys list


def test_keys_list_prints_every_key_as_json_and_whole_at_80_columns(system: System) -> None:
    listed = system.licensectl("keys", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    keys = {k["key_id"]: k for k in _json(listed)}
    for name, (agency, roles) in CREDENTIALS.items():
        found = keys[f"test{name}"]
        assert found["agency"] == agency and set(found["roles"]) == set(roles) and found["revoked_at"] is None
    narrow = system.licensectl("keys", "list", columns=80)
    assert narrow.returncode == 0, narrow.stderr
    _fits(narrow)
    for key_id in keys:
        assert key_id in narrow.stdout.split(), key_id


def test_keys_list_exits_4_when_the_database_refuses_the_login(system: System) -> None:
    wrong = system.database_url.replace("ledger:ledger@", "ledger:wrong-password@")
    assert wrong != system.database_url
    done = system.licensectl("keys", "list", "--json", DATABASE_URL=wrong)
    assert done.returncode == 4, done.stdout + done.stderr
    assert _json(done)["error"]["reason"] == "database_login_refused"
    assert "refused the login" in done.stderr and "wrong-password" not in done.stderr + done.stdout
    assert "Traceback" not in done.stderr


def test_keys_list_exits_3_when_the_database_is_out_of_reach(system: System) -> None:
    port = free_port()
    done = system.licensectl("keys", "list", DATABASE_URL=f"postgresql://ledger:ledger@127.0.0.1:{port}/ledger")
    assert done.returncode == 3, done.stdout + done.stderr
    assert f"cannot reach the database at 127.0.0.1:{port}" in done.stderr and "Traceback" not in done.stderr


# keys trusted


def test_keys_trusted_prints_each_key_as_json_and_whole_at_80_columns(system: System) -> None:
    listed = system.licensectl("keys", "trusted", "--json")
    assert listed.returncode == 0, listed.stderr
    shown = _json(listed)
    test_key = signatures.key_id(SIGNING_KEY.public_key())
    assert {k["producer"] for k in shown["keys"] if k["key_id"] == test_key} >= {"test", "fixture", "gd-commerce"}
    assert shown["skipped"] == []
    narrow = system.licensectl("keys", "trusted", columns=80)
    assert narrow.returncode == 0, narrow.stderr
    _fits(narrow)
    for entry in shown["keys"]:
        assert entry["key_id"] in narrow.stdout.split()


def test_keys_trusted_exits_4_when_the_broker_refuses_the_login(system: System) -> None:
    if not system.infrastructure.kafka.authenticated:
        pytest.fail("this broker takes no logins: the tests' broker must (deploy/local/kafka.sh)")
    done = system.licensectl("keys", "trusted", "--json", KAFKA_PASSWORD="wrong-password")
    assert done.returncode == 4, done.stdout + done.stderr
    assert _json(done)["error"]["reason"] == "broker_login_refused" and "Traceback" not in done.stderr


def test_keys_trusted_exits_3_when_the_broker_is_out_of_reach(system: System) -> None:
    port = free_port()
    done = system.licensectl("keys", "trusted", KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{port}")
    assert done.returncode == 3, done.stdout + done.stderr
    assert f"cannot reach the broker at 127.0.0.1:{port}" in done.stderr and "Traceback" not in done.stderr


# kafka acls


@pytest.fixture
def customs_principal(system: System) -> Iterator[str]:
    name = f"{system.topics.namespace}-customs-with-a-long-name"
    grant(system.infrastructure.kafka, name, Role.CUSTOMS, system.topics, new_password())
    yield name
    revoke(system.infrastructure.kafka, name)


def test_kafka_acls_prints_each_acl_as_json_and_whole_at_80_columns(system: System, customs_principal: str) -> None:
    listed = system.licensectl("kafka", "acls", "--json")
    assert listed.returncode == 0, listed.stderr
    mine = [acl for acl in _json(listed) if acl["principal"] == customs_principal]
    assert {"resource": "topic", "name": system.topics.intake_exports, "pattern": "literal"}.items() <= mine[0].items()
    narrow = system.licensectl("kafka", "acls", columns=80)
    assert narrow.returncode == 0, narrow.stderr
    _fits(narrow)
    assert customs_principal in narrow.stdout.split() and system.topics.intake_exports in narrow.stdout.split()


def test_kafka_acls_exits_4_at_once_when_the_broker_refuses_the_login(system: System) -> None:
    done = system.licensectl("kafka", "acls", "--json", KAFKA_PASSWORD="wrong-password")
    assert done.returncode == 4, done.stdout + done.stderr
    assert _json(done)["error"]["reason"] == "broker_login_refused"


def test_kafka_acls_exits_3_when_the_broker_is_out_of_reach(system: System) -> None:
    done = system.licensectl("kafka", "acls", KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}")
    assert done.returncode == 3, done.stdout + done.stderr
    assert "cannot reach the broker" in done.stderr


# replay and audit verify


def test_replay_json_says_the_ledger_follows_from_the_log(system: System) -> None:
    done = system.licensectl("replay", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    shown = _json(done)
    assert shown["matches"] is True and shown["events"] == 2 and shown["differences"] == []
    assert shown["live"] == shown["rebuilt"] and shown["live"]["rows"] > 0


def test_replay_exits_4_when_the_database_refuses_the_login(system: System) -> None:
    wrong = system.database_url.replace("ledger:ledger@", "ledger:wrong-password@")
    done = system.licensectl("replay", "--json", DATABASE_URL=wrong)
    assert done.returncode == 4, done.stdout + done.stderr
    assert _json(done)["error"]["reason"] == "database_login_refused"


def test_audit_verify_json_names_each_checkpoint_it_checked(system: System) -> None:
    # No --public-key: each checkpoint's signature is checked against the key it carries (a warning says so).
    done = system.licensectl("audit", "verify", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    shown = _json(done)
    assert shown["ok"] is True and shown["checkpoints"] and shown["records"] == 2
    assert all(c["ok"] and c["signed"] and c["ledger_checked"] for c in shown["checkpoints"])


def test_audit_verify_exits_3_when_the_broker_is_out_of_reach(system: System) -> None:
    done = system.licensectl("audit", "verify", "--json", KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}")
    assert done.returncode == 3, done.stdout + done.stderr
    assert _json(done)["error"]["reason"] == "broker_unreachable" and "Traceback" not in done.stderr
