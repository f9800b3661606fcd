"""deploy/local/kafka.sh console runs the broker's own tools already logged in: an operator looks at a topic
without Python."""

from __future__ import annotations

import os
import subprocess

import pytest

from shared.contract.topics import Topics
from tests.infra import ROOT, Infrastructure

KAFKA_SH = ROOT / "deploy" / "local" / "kafka.sh"


def _console(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(KAFKA_SH), "console", *args], input=stdin, capture_output=True, text=True, timeout=120, env=os.environ
    )


def test_the_console_tools_list_produce_and_consume_logged_in(infrastructure: Infrastructure, topics: Topics) -> None:
    if not infrastructure.source.startswith("kafka: deploy/local"):
        pytest.skip(f"the console tools serve the broker deploy/local/kafka.sh runs, not {infrastructure.source}")
    listed = _console("topics", "--list")
    assert listed.returncode == 0 and topics.cases in listed.stdout.split(), listed.stderr
    produced = _console("produce", "--topic", topics.dead_letter, stdin="looked at by an operator\n")
    assert produced.returncode == 0, produced.stderr
    consumed = _console("consume", "--topic", topics.dead_letter, "--from-beginning", "--max-messages", "1")
    assert consumed.returncode == 0 and consumed.stdout.strip() == "looked at by an operator", consumed.stderr
    assert _console("groups", "--list").returncode == 0
    wrong = _console("bogus")
    assert wrong.returncode != 0 and "console {consume|produce|groups|topics}" in wrong.stderr
