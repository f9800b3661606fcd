"""Auditors' pages (and the license page officers act from): a license's states over time, the exports list
with its filters, the exports of a VIN, and the refused input by reason."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from services.console import audit
from services.console.case_view import license_events
from services.console.officer import REASON_CODES, offered_actions, today
from services.console.web import Form, finish, ledger_for, render, settings_of, signed_in

pages = APIRouter()
READER = Depends(signed_in("officer", "auditor"))
AUDITOR = Depends(signed_in("auditor"))
UUID = re.compile(r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
EXPORT_FILTERS = ("from", "to", "destination", "port", "applicant", "outcome", "license", "after")


@pages.get("/licenses/{number}")
async def license_page(request: Request, number: str, session: Any = READER) -> Response:
    ledger = ledger_for(request, session)
    as_of = request.query_params.get("as_of") or None
    current = await ledger.get("registry", f"/licenses/{number}")
    if not current.ok:
        return render(request, session, "message.html", status=current.status, message=current.error)
    shown = current
    if as_of:
        shown = await ledger.get("registry", f"/licenses/{number}", as_of=_instant(as_of))
    exports = await ledger.get("registry", "/exports", license=number, limit=1000)
    offered = offered_actions(current.body, today(request)) if "officer" in session.roles else ()
    return render(
        request,
        session,
        "license.html",
        license=current.body,
        shown=shown.body if shown.ok else None,
        shown_error=None if shown.ok else shown.error,
        as_of=as_of,
        history=await license_events(ledger, number),
        exports=exports.body["items"] if exports.ok else None,  # customs' and auditors' to read, not officers'
        offered=offered,
        reason_codes=REASON_CODES,
        done=request.query_params.get("done"),
    )


def _instant(value: str) -> str:
    """A ``datetime-local`` field's value (``YYYY-MM-DDTHH:MM``) as an instant in China's time, as the regulation
    counts; a value with its own offset is kept."""
    if value.endswith("Z") or "+" in value[10:]:
        return value
    return f"{value}:00+08:00" if len(value) == 16 else f"{value}+08:00"


@pages.get("/exports")
async def exports(request: Request, session: Any = AUDITOR) -> Response:
    params = {k: request.query_params.get(k) for k in EXPORT_FILTERS}
    answer = await ledger_for(request, session).get("registry", "/exports", **params, limit=50)
    page = answer.body if answer.ok else {"items": [], "next_after": None}
    filters = {k: v for k, v in params.items() if v and k != "after"}
    return render(
        request, session, "exports.html", page=page, filters=filters, error=None if answer.ok else answer.error
    )


@pages.get("/vins")
async def vin_exports(request: Request, session: Any = AUDITOR) -> Response:
    vin = (request.query_params.get("vin") or "").strip().upper()
    answer = await ledger_for(request, session).get("registry", f"/vins/{vin}/exports") if vin else None
    return render(
        request,
        session,
        "vin.html",
        vin=vin,
        items=answer.body if answer and answer.ok else [],
        error=answer.error if answer and not answer.ok else None,
    )


@pages.get("/dead-letters")
async def dead_letters(request: Request, session: Any = AUDITOR) -> Response:
    ledger = ledger_for(request, session)
    refusals: list[dict[str, Any]] = []
    after = 0
    while True:  # every refusal the registry keeps, a page at a time
        answer = await ledger.get("registry", "/refusals", after=after, limit=1000)
        if not answer.ok:
            return render(request, session, "message.html", status=answer.status, message=answer.error)
        refusals.extend(answer.body["items"])
        if answer.body["next_after"] is None:
            break
        after = answer.body["next_after"]
    by_reason = Counter(r["reason"]["code"] for r in refusals).most_common()
    latest = refusals[-50:][::-1]
    return render(request, session, "dead_letters.html", by_reason=by_reason, latest=latest)


@pages.get("/find")
async def find_license(request: Request, session: Any = READER) -> Response:
    """A license by its number, or a case by its application id."""
    number = (request.query_params.get("number") or "").strip()
    if not number:
        return finish(request, RedirectResponse("/", status_code=303))
    kind = "cases" if UUID.fullmatch(number) else "licenses"
    return finish(request, RedirectResponse(f"/{kind}/{quote(number)}", status_code=303))


@pages.get("/audit")
async def audit_page(request: Request, session: Any = AUDITOR) -> Response:
    return render(request, session, "audit.html", result=None)


@pages.post("/audit/verify")
async def audit_verify(request: Request, form: Form, session: Any = AUDITOR) -> Response:
    """Run ``licensectl audit verify`` (offline from the services: the log and the signed checkpoints) and show
    its output. It reads the log with the console's own Kafka login (an auditor's: scripts/up grants it)."""
    result = await audit.verify(settings_of(request).audit_public_key)
    return render(request, session, "audit.html", result=result)
