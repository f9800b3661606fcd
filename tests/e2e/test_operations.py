"""Operators see the system: metrics per service, and licensectl status over them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import httpx
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

import samples
from shared.contract.topics import Topics
from tests.infra import ROOT, Infrastructure
from tests.support import auth, eventually, key


def _metrics(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


async def test_each_service_reports_its_flow_dead_letters_and_lag_and_licensectl_shows_them(
    services: dict[str, str], infrastructure: Infrastructure, topics: Topics
) -> None:
    async with httpx.AsyncClient(timeout=10, headers=auth()) as client:
        for _ in range(3):
            answer = await client.post(f"{services['applications']}/applications", json=samples.application_data())
            assert answer.status_code == 202
        producer = AIOKafkaProducer(**infrastructure.kafka.options())
        await producer.start()
        await producer.send_and_wait(topics.intake_applications, b"{not json")
        bad_version = {"command_id": str(uuid.uuid4()), "type": "SubmitApplication", "schema_version": 9}
        await producer.send_and_wait(topics.intake_applications, json.dumps(bad_version).encode())
        await producer.stop()

        async def settled() -> dict | None:  # type: ignore[type-arg]
            registry = _metrics((await client.get(f"{services['registry']}/metrics")).text)
            applications = _metrics((await client.get(f"{services['applications']}/metrics")).text)
            applied = sum(v for _, v in registry.get("ledger_events_applied_total", []))
            dead = {labels["reason"]: v for labels, v in applications.get("ledger_dead_letters_total", [])}
            lag = registry.get("ledger_consumer_lag", [])
            done = applied == 6 and len(dead) == 2 and lag and all(v == 0 for _, v in lag)
            return {"registry": registry, "dead": dead, "lag": lag} if done else None

        seen = await eventually(settled, timeout=30, what="three submissions and decisions applied, two refusals")
    assert seen["dead"] == {"malformed_json": 1.0, "unsupported_schema_version": 1.0}
    ledger_lag = [labels for labels, _ in seen["lag"] if labels["group"] == topics.group("registry")]
    assert {labels["partition"] for labels in ledger_lag} == {str(p) for p in range(6)}
    groups = {topics.group(g) for g in ("registry", "registry-intake", "registry-refusals")}
    assert {labels["group"] for labels, _ in seen["lag"]} == groups
    env = {
        **os.environ,
        "LEDGER_TOPIC_NAMESPACE": topics.namespace,
        "COLUMNS": "250",
        "LEDGER_API_KEY": key("auditor44"),
    }
    urls = [f"--{name}={url}" for name, url in services.items()]
    shown = subprocess.run(
        [sys.executable, "-m", "licensectl", "status", *urls],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "malformed_json: 1" in shown.stdout and "registry" in shown.stdout
