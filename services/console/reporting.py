"""The report pages: a period's figures with their charts, and the same report as CSV and PDF downloads."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from services.console import report
from services.console.ledger import Answer
from services.console.officer import today
from services.console.web import finish, ledger_for, render, signed_in

pages = APIRouter()
READER = Depends(signed_in("officer", "auditor"))


def period(request: Request) -> tuple[str, str]:
    """The period asked for; by default from the first of January to today."""
    on = today(request)
    start = request.query_params.get("from") or date(on.year, 1, 1).isoformat()
    end = request.query_params.get("to") or on.isoformat()
    return start, end


async def figures(request: Request, session: Any) -> tuple[tuple[str, str], Answer]:
    start, end = period(request)
    return (start, end), await ledger_for(request, session).get("registry", "/statistics", **{"from": start, "to": end})


@pages.get("/reports")
async def reports(request: Request, session: Any = READER) -> Response:
    (start, end), answer = await figures(request, session)
    if not answer.ok:
        return render(request, session, "message.html", status=answer.status, message=answer.error)
    return render(
        request,
        session,
        "reports.html",
        start=start,
        end=end,
        figures=answer.body,
        charts=report.charts(answer.body, session.lang),
    )


@pages.get("/reports.csv")
async def report_csv(request: Request, session: Any = READER) -> Response:
    (start, end), answer = await figures(request, session)
    if not answer.ok:
        return render(request, session, "message.html", status=answer.status, message=answer.error)
    name = f"ledger-report-{start}-{end}.csv"
    return _download(request, report.csv_text(answer.body).encode("utf-8-sig"), "text/csv; charset=utf-8", name)


@pages.get("/reports.pdf")
async def report_pdf(request: Request, session: Any = READER) -> Response:
    (start, end), answer = await figures(request, session)
    if not answer.ok:
        return render(request, session, "message.html", status=answer.status, message=answer.error)
    name = f"ledger-report-{start}-{end}-{session.lang}.pdf"
    return _download(request, await asyncio.to_thread(report.pdf, answer.body, session.lang), "application/pdf", name)


def _download(request: Request, body: bytes, media_type: str, name: str) -> Response:
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    return finish(request, Response(body, media_type=media_type, headers=headers))
