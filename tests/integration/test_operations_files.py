"""The operations files are checked by the tools that read them: the alerting rules and the scrape configuration
by promtool, the rules' own unit tests by promtool, the dashboard as the JSON Grafana imports."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.infra import ROOT

PROMETHEUS = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "ledger-dashboard.json"


def _promtool(*args: str, cwd: Path = PROMETHEUS) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    if tool is None:
        pytest.fail("promtool is not installed: run ./scripts/test (scripts/lib.sh ensure_promtool)")
    return subprocess.run([tool, *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_the_alerting_rules_are_valid_and_fire_as_their_tests_say() -> None:
    checked = _promtool("check", "rules", "alerts.yml")
    assert checked.returncode == 0 and "SUCCESS: 8 rules found" in checked.stdout, checked.stdout + checked.stderr
    tested = _promtool("test", "rules", "alerts.test.yml")
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr


def test_the_scrape_configuration_is_valid(tmp_path: Path) -> None:
    key = tmp_path / "ledger-auditor.key"
    key.write_text("lk_example_key\n")
    config = (PROMETHEUS / "prometheus.yml").read_text().replace("/etc/prometheus/ledger-auditor.key", str(key))
    (tmp_path / "prometheus.yml").write_text(config)
    shutil.copy(PROMETHEUS / "alerts.yml", tmp_path / "alerts.yml")
    checked = _promtool("check", "config", "prometheus.yml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_dashboard_is_grafana_json_with_a_query_on_each_panel() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["panels"]
    for panel in dashboard["panels"]:
        assert panel["targets"] and all(t["expr"] for t in panel["targets"]), panel["title"]
