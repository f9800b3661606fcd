"""What an on-call engineer gets from the running services: the metric families the alerts and the dashboard
use, present and moving under the flow; and logs a machine can read, one JSON line per event, carrying the
request's id and credential, or the record's position and the case event's ids; no error at a normal start."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

import samples
from tests.infra import ROOT
from tests.support import auth, eventually

NAME = re.compile(r"\b((?:ledger|http|process)_[a-z_]+)\b")


def _samples(text: str) -> dict[str, float]:
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name] = found.get(sample.name, 0.0) + sample.value
    return found


def _used_by_alerts_and_dashboard() -> set[str]:
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "ledger-dashboard.json").read_text())
    expressions = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    expressions.append((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    return {name for text in expressions for name in NAME.findall(text)}


async def _scrape(client: httpx.AsyncClient, services: dict[str, str]) -> dict[str, dict[str, float]]:
    scraped = {}
    for name, url in services.items():
        answer = await client.get(f"{url}/metrics", headers=auth("auditor44"))
        assert answer.status_code == 200, answer.text
        scraped[name] = _samples(answer.text)
    return scraped


def _log_lines(path: Path) -> list[dict[str, Any]]:
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    parsed = [json.loads(line) for line in lines]  # every line is one JSON object: a line that is not fails here
    assert all({"event", "level", "timestamp", "service", "logger"} <= line.keys() for line in parsed)
    return parsed


async def test_metrics_move_under_the_flow_and_logs_are_json_lines_with_their_context(
    services: dict[str, str], tmp_path: Path
) -> None:
    applications, registry = services["applications"], services["registry"]
    async with httpx.AsyncClient(timeout=10, headers=auth("submitter44")) as client:
        before = await _scrape(client, services)
        answer = await client.post(
            f"{applications}/applications", json=samples.application_data(), headers={"X-Request-ID": "trace-4711"}
        )
        assert answer.status_code == 202 and answer.headers["x-request-id"] == "trace-4711"
        application_id = answer.json()["application_id"]

        async def decided() -> bool | None:
            found = await client.get(f"{registry}/applications/{application_id}")
            return True if found.status_code == 200 and found.json()["status"] == "approved" else None

        await eventually(decided, what="the application approved")
        refused = await client.post(f"{applications}/applications", json={"quantity": "ten"})
        assert refused.status_code == 422

        async def moved() -> dict[str, dict[str, float]] | None:
            after = await _scrape(client, services)
            return after if after["registry"].get("ledger_events_applied_total", 0) >= 2 else None

        after = await eventually(moved, what="the registry's fold counted in its metrics")

    present = set().union(*(set(found) for found in after.values()))
    wanted = _used_by_alerts_and_dashboard()
    missing = {name for name in wanted if not any(s == name or s.startswith(name + "_") for s in present)}
    # Dead letters are counted by reason, so the family has no series until something is refused over Kafka.
    assert missing <= {"ledger_dead_letters_total"}, sorted(missing)
    for name in ("applications", "registry"):
        assert after[name]["http_requests_total"] > before[name]["http_requests_total"], name
    assert after["applications"]["ledger_events_appended_total"] > before["applications"].get(
        "ledger_events_appended_total", 0
    )
    assert after["review"]["ledger_events_followed_total"] >= 1
    assert after["registry"]["ledger_fold_batch_seconds_count"] >= 1
    assert after["registry"]["ledger_outbox_depth"] == 0  # published
    assert after["registry"]["process_resident_memory_bytes"] > 0
    for name in ("applications", "review"):
        assert "ledger_events_applied_total" not in after[name], f"{name} folds no ledger: no such series"

    logs = {name: _log_lines(tmp_path / f"{name}.log") for name in services}
    for name, lines in logs.items():
        assert not [line for line in lines if line["level"] in ("error", "critical")], name
        assert all(line["service"] == name for line in lines)
        assert not [line for line in lines if line["event"] in ("Received", "Processed")], "faststream at debug"
    [submitted] = [line for line in logs["applications"] if line.get("request_id") == "trace-4711"]
    assert (submitted["event"], submitted["path"], submitted["status"]) == ("request", "/applications", 202)
    assert submitted["credential"] == "testsubmitter44" and submitted["duration_ms"] >= 0
    assert [line for line in logs["applications"] if line.get("status") == 422 and line.get("request_id")]
    decisions = [line for line in logs["review"] if line["event"] == "decided"]
    assert decisions and all(
        {"case_id", "event_id", "correlation_id", "topic", "partition", "offset"} <= d.keys() for d in decisions
    )
    assert application_id in {d["case_id"] for d in decisions}
