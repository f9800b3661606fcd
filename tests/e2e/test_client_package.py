"""An agency, a customs office and a subscriber connect from empty virtual environments holding only the client
package (clients/python) and the documented commands: the agency's command is granted, a bad one refused and
read back, customs records an export, the subscriber sees the license change. The README's examples, as run."""

from __future__ import annotations

import os
import re
import subprocess
import venv
from pathlib import Path

import pytest

from shared.contract import signatures
from shared.contract.topics import Topics
from tests.infra import ROOT, Infrastructure
from tests.support import ROOT_KEY, licensectl

CLIENT = ROOT / "clients" / "python"


@pytest.fixture(scope="module")
def client_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtual environment with the client package installed, and nothing of the ledger's own."""
    where = tmp_path_factory.mktemp("client-venv")
    venv.create(where, with_pip=True)
    python = where / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(CLIENT)],
        check=True,
        timeout=600,
    )
    clean = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    shown = subprocess.run([str(python), "-c", "import shared"], capture_output=True, text=True, cwd="/", env=clean)
    assert shown.returncode != 0, "the client's environment must not see the ledger's own packages"
    return python


class Operator:
    """The ledger's operator, running the documented licensectl commands against the test's broker and database."""

    def __init__(self, infrastructure: Infrastructure, database_url: str, topics: Topics, tmp_path: Path) -> None:
        self.infrastructure, self.database_url, self.topics, self.tmp_path = (
            infrastructure,
            database_url,
            topics,
            tmp_path,
        )
        self.root = tmp_path / "root.key"
        self.root.write_text(signatures.private_b64(ROOT_KEY) + "\n")

    def run(self, *args: str) -> str:
        done = licensectl(*args, infrastructure=self.infrastructure, database_url=self.database_url, topics=self.topics)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def onboard(self, name: str, role: str, sender: str | None = None, scope: tuple[str, ...] = ()) -> dict[str, str]:
        """What docs/onboarding.md walks a party through, command by command: a Kafka login; for a sender, a
        signing key the operator trusts and an API key bound to it. Returns the party's environment."""
        principal = f"{self.topics.namespace}-{name}"
        granted = re.search(r"password \(shown once\): (\S+)", self.run("kafka", "grant", principal, "--role", role))
        assert granted is not None
        env = {
            "LEDGER_KAFKA_BOOTSTRAP": self.infrastructure.kafka.bootstrap_servers,
            "LEDGER_KAFKA_USERNAME": principal,
            "LEDGER_KAFKA_PASSWORD": granted.group(1),
            "LEDGER_TOPIC_NAMESPACE": self.topics.namespace,
        }
        if sender is None:
            return env
        key_file = self.tmp_path / f"{sender}.key"
        made = self.run("keys", "signing", "new", "--producer", sender, "--out", str(key_file), *scope)
        trust = re.search(r"licensectl (keys trust --producer .*) --root-key", made)
        create = re.search(r"licensectl (keys create .*)", made)
        assert trust is not None and create is not None, made
        self.run(*trust.group(1).split(), "--root-key", str(self.root))
        api_key = self.run(*create.group(1).split()).strip().splitlines()[-1]
        return env | {"LEDGER_SENDER": sender, "LEDGER_SIGNING_KEY_FILE": str(key_file), "LEDGER_API_KEY": api_key}


def _example(python: Path, name: str, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    clean = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    return subprocess.Popen(
        [str(python), str(CLIENT / "examples" / f"{name}.py"), *args],
        env=clean | env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd="/",  # nowhere near the repository: only the installed package is importable
    )


def _finished(process: subprocess.Popen[str], timeout: float = 180) -> str:
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, output
    return output


def test_an_agency_customs_and_a_subscriber_connect_with_the_client_package_alone(
    services: dict[str, str],
    client_python: Path,
    infrastructure: Infrastructure,
    database_url: str,
    topics: Topics,
    tmp_path: Path,
) -> None:
    operator = Operator(infrastructure, database_url, topics, tmp_path)
    registry = {"LEDGER_REGISTRY_URL": services["registry"]}
    agency = operator.onboard("agency-44", "agency", "gd-backend", ("--agency", "44")) | registry
    customs = operator.onboard("customs-sz", "customs", "sz-customs", ("--port", "CNSZX")) | registry
    subscriber = operator.onboard("erp", "subscriber")

    granted = _finished(_example(client_python, "agency", agency))
    assert "decided: approved, license " in granted, granted
    assert re.search(r"refused: other_agency: ", granted), granted
    assert "refused_at_intake (other_agency)" in granted, granted
    license_number = re.search(r"decided: approved, license (\S+)", granted).group(1)  # type: ignore[union-attr]

    following = _example(client_python, "subscriber", subscriber, license_number)
    recorded = _finished(_example(client_python, "customs", customs, license_number))
    assert "export accepted" in recorded, recorded
    seen = _finished(following)
    assert f"seen: {license_number} drawn on, balance 8" in seen, seen
