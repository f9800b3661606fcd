"""The console's pure parts: sessions and their CSRF tokens, the rules' verdicts, the actions offered on a license,
the texts in both languages, and the report's charts and CSV."""

from __future__ import annotations

import csv
import io
import re
from datetime import date
from typing import Any

from services.console import report
from services.console.case_view import verdicts
from services.console.i18n import TEXTS, text
from services.console.officer import offered_actions
from services.console.sessions import Sessions

FIGURES: dict[str, Any] = {
    "from": "2026-01-01",
    "to": "2026-12-31",
    "exports_by_month": [{"month": "2026-11", "vehicles": 6, "accepted": 1, "refused": 1}],
    "exports_by_destination": [{"destination": "MX", "vehicles": 6, "declarations": 1}],
    "exported_vs_licensed": [{"month": "2026-11", "licensed": 10, "exported": 6}],
    "refusals_by_reason": [{"kind": "export", "code": "exceeds_balance", "count": 1}],
    "licenses_by_status": [{"status": "active", "count": 1}],
    "decision_time": {
        "decided": 1,
        "median_hours": 2.0,
        "p90_hours": 2.0,
        "max_hours": 2.0,
        "within_hour": 0,
        "within_day": 1,
        "within_three_days": 0,
        "longer": 0,
    },
}


def test_signing_in_gives_a_new_session_id_and_csrf_token_and_ends_the_anonymous_one() -> None:
    sessions = Sessions(60)
    anonymous = sessions.new("zh")
    signed = sessions.sign_in(anonymous, "lk_x_y", {"roles": ["officer"], "agency_code": "44"})
    assert (signed.id, signed.csrf) != (anonymous.id, anonymous.csrf)
    assert sessions.get(anonymous.id) is None and sessions.get(signed.id) is signed
    assert signed.lang == "zh" and signed.roles == {"officer"}


def test_a_form_without_the_sessions_token_does_not_match() -> None:
    session = Sessions(60).new()
    assert session.csrf_matches(session.csrf)
    assert not session.csrf_matches(None) and not session.csrf_matches("") and not session.csrf_matches("x")


def test_an_expired_session_is_gone() -> None:
    sessions = Sessions(-1)
    assert sessions.get(sessions.new().id) is None


def test_an_escalated_application_passed_the_rejecting_rules_and_waits_on_the_escalating_one() -> None:
    found = {v.rule: v for v in verdicts([{"code": "price_below_reference", "message": "below 60%"}])}
    assert not found[6].passed and found[6].reasons[0]["code"] == "price_below_reference"
    assert all(found[rule].passed for rule in (1, 2, 3, 4, 5, 7))


def test_only_the_actions_the_ledger_takes_are_offered() -> None:
    on = date(2026, 6, 1)

    def offered(status: str, valid_to: str = "2026-12-31") -> tuple[str, ...]:
        return offered_actions({"status": status, "valid_to": valid_to}, on)

    assert offered("active") == ("suspend", "revoke", "replace")
    assert offered("suspended") == ("reinstate", "revoke")
    assert offered("exhausted") == ("revoke",)
    assert offered("expired") == offered("revoked") == offered("replaced") == ()
    assert offered("active", valid_to="2026-05-31") == ()  # past its validity: expired, whatever its status says


def test_every_text_is_in_english_and_in_chinese() -> None:
    assert all(en.strip() and zh.strip() for en, zh in TEXTS.values())
    assert all(re.search(r"[\u4e00-\u9fff]", zh) for key, (_, zh) in TEXTS.items() if key not in {"rule_2"})
    assert text("license", "zh") == "出口许可证" and text("license", "en") == "Export license"
    assert "纯电动乘用车" in text("subtitle", "zh") and "商务部" in text("subtitle", "zh")


def test_the_report_charts_are_svg_without_scripts_titled_in_the_chosen_language() -> None:
    charts = report.charts(FIGURES, "zh")
    assert [c.name for c in charts] == list(report.CHARTS)
    for chart in charts:
        assert chart.svg.lstrip().startswith("<svg") and "<script" not in chart.svg and "http://kozea" not in chart.svg
    assert "按月出口车辆数" in charts[0].svg


def test_the_report_csv_holds_every_figure() -> None:
    rows = list(csv.reader(io.StringIO(report.csv_text(FIGURES))))
    assert ["exports_by_month", "2026-11", "6", "1", "1"] in rows
    assert ["exported_vs_licensed", "2026-11", "6", "10", ""] in rows
    assert ["refusals_by_reason", "export:exceeds_balance", "1", "", ""] in rows
    assert ["decision_time", "within_day", "1", "", ""] in rows


def test_the_report_html_stands_alone() -> None:
    page = report.html(FIGURES, "en")
    assert "<style>" in page and "data:image/svg+xml;base64," in page and "<script" not in page
    assert "Vehicles exported by destination" in page
