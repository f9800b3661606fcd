"""Officers' pages: the queue, a case, and the actions on applications and licenses, each confirmed first and
taken through the officer API with the officer's own credential; the result shown once the ledger has it."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from services.console import case_view
from services.console.ledger import Answer
from services.console.web import Form, finish, ledger_for, render, settings_of, signed_in
from shared.platform.clock import china_today

pages = APIRouter()
OFFICER = Depends(signed_in("officer"))
READER = Depends(signed_in("officer", "auditor"))  # an auditor reads a case; only an officer is offered its actions
APPLICATION_ACTIONS = ("approve", "reject", "return")
LICENSE_ACTIONS = ("suspend", "reinstate", "revoke", "replace")
REASON_CODES = {
    "reject": ("price_dumping", "documents_forged", "zero_mileage", "other"),
    "return": ("price_unexplained", "documents_missing", "other"),
    "suspend": ("investigation", "customs_inquiry", "other"),
    "revoke": ("fraud", "zero_mileage", "qualification_cancelled", "other"),
    "replace": ("destination_changed", "quantity_changed", "validity_changed", "port_changed", "other"),
}
# What the ledger allows on a license of each status (shared/fold.py): nothing else is offered.
OFFERED = {
    "active": ("suspend", "revoke", "replace"),
    "suspended": ("reinstate", "revoke"),
    "exhausted": ("revoke",),
}


def today(request: Request) -> date:
    """The day due dates are counted against: China's today, unless the console is set to another."""
    return settings_of(request).today or china_today()


def offered_actions(license_: dict[str, Any], on: date) -> tuple[str, ...]:
    """The actions the ledger would take on the license: none once its validity has passed."""
    if date.fromisoformat(license_["valid_to"]) < on:
        return ()
    return OFFERED.get(license_["status"], ())


@pages.get("/queue")
async def queue(request: Request, session: Any = OFFICER) -> Response:
    answer = await ledger_for(request, session).get("review", "/officer/queue", limit=1000)
    items = answer.body if answer.ok else []
    on = today(request)
    for item in items:
        item["overdue"] = date.fromisoformat(item["due"]) < on
    return render(request, session, "queue.html", items=items, error=None if answer.ok else answer.error, today=on)


@pages.get("/cases/{application_id}")
async def case(request: Request, application_id: uuid.UUID, session: Any = READER) -> Response:
    ledger = ledger_for(request, session)
    found = await case_view.load(ledger, application_id)
    if found is None:
        return render(request, session, "message.html", status=404, message=f"no application {application_id}")
    return render(
        request,
        session,
        "case.html",
        case=found,
        reason_codes=REASON_CODES,
        done=request.query_params.get("done"),
        overdue=found.queued is not None and date.fromisoformat(found.queued["due"]) < today(request),
    )


@pages.post("/cases/{application_id}/{action}")
async def act_on_application(
    request: Request, application_id: uuid.UUID, action: str, form: Form, session: Any = OFFICER
) -> Response:
    if action not in APPLICATION_ACTIONS:
        return render(request, session, "message.html", status=404, message=f"no action {action}")
    target = f"/cases/{application_id}"
    if form.get("confirmed") != "yes":
        return _confirm(request, session, action, target, form)
    ledger = ledger_for(request, session)
    body = _application_body(action, form)
    answer = await ledger.post("review", f"/officer/applications/{application_id}/{action}", body)
    if not answer.ok:
        return render(request, session, "result.html", status=answer.status, error=answer.error, back=target)
    wanted = {"approve": "approved", "reject": "rejected", "return": "returned"}[action]
    decided = await _until(
        lambda: ledger.get("registry", f"/applications/{application_id}"),
        lambda b: b["status"] == wanted and (action != "approve" or b["license_number"]),
    )
    if action == "approve" and decided is not None:
        return finish(request, RedirectResponse(f"/licenses/{decided['license_number']}?done=approve", 303))
    return finish(request, RedirectResponse(f"{target}?done={action}", 303))


@pages.post("/licenses/{number}/{action}")
async def act_on_license(request: Request, number: str, action: str, form: Form, session: Any = OFFICER) -> Response:
    if action not in LICENSE_ACTIONS:
        return render(request, session, "message.html", status=404, message=f"no action {action}")
    target = f"/licenses/{number}"
    if form.get("confirmed") != "yes":
        return _confirm(request, session, action, target, form)
    ledger = ledger_for(request, session)
    answer = await ledger.post(
        "review", f"/officer/licenses/{number}/{action}", _license_body(action, form), form.get("idempotency_key")
    )
    if not answer.ok:
        return render(request, session, "result.html", status=answer.status, error=answer.error, back=target)
    if action == "replace":
        successor = answer.body.get("successor_license_number")
        await _until(lambda: ledger.get("registry", f"/licenses/{successor}"), lambda b: bool(b))
        return finish(request, RedirectResponse(f"/licenses/{successor}?done=replace", 303))
    wanted = {"suspend": "suspended", "reinstate": "active", "revoke": "revoked"}[action]
    await _until(lambda: ledger.get("registry", target), lambda b: b["status"] == wanted)
    return finish(request, RedirectResponse(f"{target}?done={action}", 303))


def _confirm(request: Request, session: Any, action: str, target: str, form: dict[str, str]) -> Response:
    """The confirmation of an action: what will be done, with a required reason checked before it is offered."""
    fields = {k: v for k, v in form.items() if k not in ("csrf", "confirmed") and v.strip()}
    needs = "note" if action == "reinstate" else "reason" if action != "approve" else None
    missing = needs is not None and not fields.get("message", "").strip()
    fields.setdefault("idempotency_key", f"console-{uuid.uuid4()}")
    return render(
        request,
        session,
        "confirm.html",
        status=422 if missing else 200,
        action=action,
        target=target,
        fields=fields,
        missing=needs if missing else None,
    )


def _application_body(action: str, form: dict[str, str]) -> dict[str, Any]:
    if action == "approve":
        body: dict[str, Any] = {}
        if form.get("quantity"):
            body["quantity"] = int(form["quantity"])
        if form.get("valid_to"):
            body["valid_to"] = form["valid_to"]
        return body
    return {"reasons": [{"code": form.get("code") or "other", "message": form["message"]}]}


def _license_body(action: str, form: dict[str, str]) -> dict[str, Any]:
    if action == "reinstate":
        return {"note": form["message"]}
    body: dict[str, Any] = {"reason": {"code": form.get("code") or "other", "message": form["message"]}}
    if action == "replace":
        for name in ("valid_from", "valid_to", "port_of_exit", "destination_country"):
            if form.get(name):
                body[name] = form[name]
        if form.get("quantity"):
            body["quantity"] = int(form["quantity"])
    return body


async def _until(
    read: Callable[[], Awaitable[Answer]], done: Callable[[Any], bool], timeout: float = 20
) -> dict[str, Any] | None:
    """The body ``read`` answers once ``done`` holds of it: the ledger has the action's result (None: not yet)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = await read()
        if answer.ok and done(answer.body):
            found: dict[str, Any] = answer.body
            return found
        await asyncio.sleep(0.2)
    return None
