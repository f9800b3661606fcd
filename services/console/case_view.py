"""A case as the console shows it: the application, each rule's verdict, and the case's events in order, read
from review's queue and the registry's ledger (never from a database of the console's own)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from services.console.ledger import Ledger

# The escalating reasons (services/review/rules.py ESCALATING) and the rule each belongs to.
ESCALATING_RULE = {
    "zero_mileage_borderline": 5,
    "reference_price_missing": 6,
    "price_unverifiable": 6,
    "price_below_reference": 6,
}
RULES = (1, 2, 3, 4, 5, 6, 7)
SHOWN_FIELDS = (
    "status",
    "quantity",
    "balance",
    "declarations_used",
    "valid_from",
    "valid_to",
    "port_of_exit",
    "destination_country",
)


@dataclass(frozen=True)
class Verdict:
    rule: int
    passed: bool
    reasons: list[dict[str, str]]


@dataclass
class CaseView:
    application_id: uuid.UUID
    queued: dict[str, Any] | None
    ledger: dict[str, Any] | None
    verdicts: list[Verdict] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def application(self) -> dict[str, Any] | None:
        return self.queued["application"] if self.queued else None

    @property
    def license_number(self) -> str | None:
        return self.ledger.get("license_number") if self.ledger else None

    @property
    def open(self) -> bool:
        """Still before the officers: the actions on the application are offered."""
        return self.queued is not None and (self.ledger is None or self.ledger["status"] == "escalated")


async def load(ledger: Ledger, application_id: uuid.UUID) -> CaseView | None:
    queue = await ledger.get("review", "/officer/queue", limit=1000)
    queued = next((q for q in queue.body if q["application_id"] == str(application_id)), None) if queue.ok else None
    registry = await ledger.get("registry", f"/applications/{application_id}")
    if queued is None and not registry.ok:
        return None
    view = CaseView(application_id, queued, registry.body if registry.ok else None)
    view.verdicts = verdicts(queued["reasons"] if queued else (view.ledger or {}).get("reasons", []))
    view.events = await events(ledger, view)
    return view


def verdicts(reasons: list[dict[str, str]]) -> list[Verdict]:
    """Each rule's verdict on an escalated application: the rules that reject passed (else it would have been
    rejected, not escalated); an escalating rule is for the officer when one of its reasons was given."""
    by_rule: dict[int, list[dict[str, str]]] = {}
    for reason in reasons:
        by_rule.setdefault(ESCALATING_RULE.get(reason["code"], 0), []).append(reason)
    return [Verdict(rule, rule not in by_rule, by_rule.get(rule, [])) for rule in RULES]


async def events(ledger: Ledger, view: CaseView) -> list[dict[str, Any]]:
    """The case's events read back from the log (the registry's ``/cases/{id}/events``), each with who signed it
    and whether the signature holds, and what it changed in the ledger; where the log cannot be read, what the
    ledger's rows show of them."""
    signed = await ledger.get("registry", f"/cases/{view.application_id}/events")
    if not signed.ok:
        return await ledger_events(ledger, view)
    changes = {e["event"]: e["changed"] for e in await license_events(ledger, view.license_number or "")}
    return [
        {
            "event": e["type"],
            "when": e["occurred_at"],
            "position": f"{e['partition']}/{e['offset']}",
            "changed": changes.get(e["event_id"], {}),
            "signer": f"{e['producer']} · {(e['key_id'] or '-')[:16]}",
            "signature": e["signature"],
        }
        for e in signed.body
    ]


async def ledger_events(ledger: Ledger, view: CaseView) -> list[dict[str, Any]]:
    """The case's events as the ledger's rows show their effect: submission, escalation, decision, then each state
    of its license with the event and stream position that made it, and what that event changed."""
    found: list[dict[str, Any]] = []
    if view.ledger:
        found.append({"event": "ApplicationSubmitted", "when": view.ledger["submitted_at"], "changed": {}})
    if view.queued:
        reasons = ", ".join(r["code"] for r in view.queued["reasons"])
        found.append(
            {"event": "ApplicationEscalated", "when": view.queued["escalated_at"], "changed": {"reasons": reasons}}
        )
    if view.ledger and view.ledger.get("decided_at") and view.ledger["status"] != "escalated":
        status = view.ledger["status"]
        kind = {"approved": "LicenseGranted", "rejected": "ApplicationRejected", "returned": "ApplicationReturned"}
        found.append(
            {"event": kind.get(status, status), "when": view.ledger["decided_at"], "changed": {"status": status}}
        )
    if view.license_number:
        found.extend(await license_events(ledger, view.license_number))
    return found


async def license_events(ledger: Ledger, number: str) -> list[dict[str, Any]]:
    """Each state of a license in stream order, with what changed from the state before it."""
    if not number:
        return []
    history = await ledger.get("registry", f"/licenses/{number}/history")
    if not history.ok:
        return []
    found: list[dict[str, Any]] = []
    before: dict[str, Any] = {}
    for version in history.body:
        state = version["state"]
        changed = {k: state[k] for k in SHOWN_FIELDS if before.get(k) != state[k]}
        found.append(
            {
                "event": state["as_of_event"],
                "when": state["as_of"],
                "position": f"{version['partition']}/{version['offset']}",
                "changed": changed,
                "license_number": number,
                "case_id": state["case_id"],
            }
        )
        before = state
    return found
