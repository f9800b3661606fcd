"""docs/operations.md stays true to the operations files and the code: a runbook section for each alert, at the
anchor its annotation names; every metric family the alerts and the dashboard query, described; licensectl's
exit codes as licensectl/failures.py has them."""

from __future__ import annotations

import json
import re

from licensectl import failures
from tests.infra import ROOT

OPERATIONS = (ROOT / "docs" / "operations.md").read_text()
ALERTS = (ROOT / "deploy" / "prometheus" / "alerts.yml").read_text()
DASHBOARD = json.loads((ROOT / "deploy" / "grafana" / "ledger-dashboard.json").read_text())
FAMILY = re.compile(r"\b((?:ledger|http)_[a-z_]+?)(?:_bucket|_count|_sum)?\b")


def test_each_alert_has_a_runbook_section_at_the_anchor_it_names() -> None:
    # Each rule's alert name, then (before the next rule) its runbook annotation.
    rules = re.findall(r"- alert: (\w+)\n(?:(?!- alert:).*\n)*?\s+runbook: \"([^\"]+)\"", ALERTS)
    assert len(rules) == ALERTS.count("- alert:") > 0
    for alert, runbook in rules:
        page, _, anchor = runbook.partition("#")
        assert page == "docs/operations.md" and anchor, alert
        section = re.search(rf'^### <a id="{re.escape(anchor)}"></a>{alert}:', OPERATIONS, re.MULTILINE)
        assert section, f"{alert}: no section with anchor #{anchor}"


def test_every_family_the_alerts_and_the_dashboard_query_is_described() -> None:
    expressions = [target["expr"] for panel in DASHBOARD["panels"] for target in panel["targets"]]
    expressions.append(ALERTS)
    queried = {name for text in expressions for name in FAMILY.findall(text)}
    assert queried
    for family in queried:
        assert f"| `{family}` |" in OPERATIONS, family


def test_the_exit_codes_are_those_licensectl_uses() -> None:
    for code in (failures.CHECK_FAILED, failures.USAGE, failures.UNREACHABLE, failures.REFUSED):
        assert re.search(rf"^\| {code} \| ", OPERATIONS, re.MULTILINE), code
