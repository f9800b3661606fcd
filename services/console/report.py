"""A report of the ledger for a period, from the registry's ``GET /statistics``: charts as SVG (pygal), the
figures as CSV, the page as HTML and as a printable PDF (weasyprint). The console's report pages and
``licensectl report`` both render with this module, so the browser and the command line give the same report.

The SVG charts carry no script (pygal's tooltips load one from the web by default) and name fonts with Chinese
glyphs (WenQuanYi Zen Hei, Debian's fonts-wqy-zenhei, installed by scripts/lib.sh), so the PDF prints Chinese.
"""

from __future__ import annotations

import base64
import csv
import io
import re
from dataclasses import dataclass
from typing import Any

import pygal
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pygal.style import Style

from services.console.i18n import text
from services.console.web import HERE

FONTS = "'WenQuanYi Zen Hei', 'Noto Sans CJK SC', 'Noto Sans', 'DejaVu Sans', sans-serif"
STYLE = Style(
    font_family=FONTS,
    background="white",
    plot_background="white",
    foreground="#1f2933",
    foreground_strong="#1f2933",
    foreground_subtle="#9aa5b1",
    colors=("#b91c1c", "#1d4ed8", "#15803d", "#b45309", "#6d28d9", "#0f766e", "#be185d", "#4b5563"),
    title_font_size=18,
    label_font_size=12,
    major_label_font_size=12,
    legend_font_size=13,
    value_font_size=11,
)
CHARTS = (
    "exports_by_month",
    "exports_by_destination",
    "exported_vs_licensed",
    "refusals_by_reason",
    "licenses_by_status",
    "decision_time",
)
SCRIPT = re.compile(r"<script\b.*?</script>", re.DOTALL)
PDF_CSS = HERE / "static" / "report-print.css"
_pages = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape())


@dataclass(frozen=True)
class Chart:
    name: str
    title: str
    svg: str

    @property
    def data_uri(self) -> str:
        return "data:image/svg+xml;base64," + base64.b64encode(self.svg.encode()).decode()


def charts(figures: dict[str, Any], lang: str) -> list[Chart]:
    """One SVG chart per figure of the report, titled in ``lang``."""

    def t(key: str) -> str:
        return text(key, lang)

    def chart(kind: type[pygal.graph.graph.Graph], name: str, **options: Any) -> Any:
        return kind(
            style=STYLE,
            title=t(name),
            js=[],  # no script: the SVG is shown and printed as it is
            disable_xml_declaration=True,
            width=800,
            height=380,
            show_legend=True,
            legend_at_bottom=True,
            print_values=False,
            no_data_text=t("none_found"),
            **options,
        )

    months = figures["exports_by_month"]
    by_month = chart(pygal.Bar, "exports_by_month", x_labels=[m["month"] for m in months])
    by_month.add(t("vehicles"), [m["vehicles"] for m in months])
    by_month.add(t("refused"), [m["refused"] for m in months])

    destinations = figures["exports_by_destination"]
    by_destination = chart(
        pygal.HorizontalBar, "exports_by_destination", x_labels=[d["destination"] for d in destinations]
    )
    by_destination.add(t("vehicles"), [d["vehicles"] for d in destinations])

    pairs = figures["exported_vs_licensed"]
    versus = chart(pygal.Bar, "exported_vs_licensed", x_labels=[p["month"] for p in pairs])
    versus.add(t("licensed"), [p["licensed"] for p in pairs])
    versus.add(t("exported"), [p["exported"] for p in pairs])

    refusals = chart(pygal.HorizontalBar, "refusals_by_reason")
    refusals.x_labels = [f"{r['code']} ({t(r['kind'] + '_kind')})" for r in figures["refusals_by_reason"]]
    refusals.add(t("count"), [r["count"] for r in figures["refusals_by_reason"]])

    statuses = chart(pygal.Pie, "licenses_by_status", inner_radius=0.45)
    for s in figures["licenses_by_status"]:
        statuses.add(t(s["status"]), s["count"])

    decision = figures["decision_time"]
    buckets = ("within_hour", "within_day", "within_three_days", "longer")
    decided = chart(pygal.Bar, "decision_time", x_labels=[t(b) for b in buckets])
    decided.add(t("decided"), [decision[b] for b in buckets])

    made = (by_month, by_destination, versus, refusals, statuses, decided)
    return [
        Chart(name, t(name), _inert(graph.render(is_unicode=True))) for name, graph in zip(CHARTS, made, strict=True)
    ]


def _inert(svg: str) -> str:
    """The SVG without the config script pygal writes into it even with ``js=[]`` (used only by its tooltips)."""
    return SCRIPT.sub("", svg)


def csv_text(figures: dict[str, Any]) -> str:
    """Every figure of the report as CSV rows: section, key, then the figure's columns."""
    out = io.StringIO()
    rows = csv.writer(out)
    rows.writerow(["period", figures["from"], figures["to"]])
    rows.writerow(["section", "key", "value", "value2", "value3"])
    for m in figures["exports_by_month"]:
        rows.writerow(["exports_by_month", m["month"], m["vehicles"], m["accepted"], m["refused"]])
    for d in figures["exports_by_destination"]:
        rows.writerow(["exports_by_destination", d["destination"], d["vehicles"], d["declarations"], ""])
    for p in figures["exported_vs_licensed"]:
        rows.writerow(["exported_vs_licensed", p["month"], p["exported"], p["licensed"], ""])
    for r in figures["refusals_by_reason"]:
        rows.writerow(["refusals_by_reason", f"{r['kind']}:{r['code']}", r["count"], "", ""])
    for s in figures["licenses_by_status"]:
        rows.writerow(["licenses_by_status", s["status"], s["count"], "", ""])
    for key, value in figures["decision_time"].items():
        rows.writerow(["decision_time", key, value, "", ""])
    return out.getvalue()


def html(figures: dict[str, Any], lang: str, *, standalone: bool = True) -> str:
    """The report as one HTML page (its charts inline, its style inline when ``standalone``)."""

    def t(key: str) -> str:
        return text(key, lang)

    css = PDF_CSS.read_text() if standalone else ""
    return _pages.get_template("report_document.html").render(
        t=t, lang=lang, figures=figures, charts=charts(figures, lang), css=css
    )


def pdf(figures: dict[str, Any], lang: str) -> bytes:
    """The report as a printable PDF, charts included."""
    from weasyprint import HTML  # pango is loaded only when a PDF is made

    document: bytes = HTML(string=html(figures, lang), base_url=str(HERE)).write_pdf()
    return document
