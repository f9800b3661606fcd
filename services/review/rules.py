"""The eligibility rules of the regulation, as pure functions of an application and reference data.

Each rule returns the reasons it fails (none when it passes); review reports every failed rule.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, timedelta

from dateutil.relativedelta import relativedelta

from services.review.reference import ReferenceData
from shared.events import Application, BatchMode, Condition, Reason, Role

MAX_VALIDITY = relativedelta(months=6)


def _reason(code: str, message: str) -> Reason:
    return Reason(code=code, message=message)


def applicant_is_qualified(app: Application, ref: ReferenceData, today: date) -> Iterable[Reason]:
    """Rule 1: the applicant is listed for the year; a distributor is authorised for the brand."""
    enterprise = ref.enterprise(app.applicant.code)
    status = enterprise.years.get(today.year) if enterprise else None
    if status is None:
        yield _reason("applicant_not_qualified", f"{app.applicant.code} is not a qualified exporter for {today.year}")
    elif status != "listed":
        yield _reason(f"applicant_listing_{status}", f"{app.applicant.code}'s listing for {today.year} is {status}")
    if app.applicant.role is Role.MANUFACTURER and app.applicant.code != app.manufacturer.code:
        yield _reason("manufacturer_mismatch", "a manufacturer applies only for vehicles it manufactures")
    if app.applicant.role is Role.DISTRIBUTOR:
        yield from _distributor_is_authorised(app, ref, today)


def _distributor_is_authorised(app: Application, ref: ReferenceData, today: date) -> Iterable[Reason]:
    grant = ref.authorisation(distributor=app.applicant.code, manufacturer=app.manufacturer.code, year=today.year)
    if grant is None or grant.status != "active":
        yield _reason(
            "distributor_not_authorised",
            f"{app.applicant.code} holds no active {today.year} authorisation from {app.manufacturer.code}",
        )
    elif app.brand not in grant.brands:
        yield _reason("brand_not_authorised", f"the authorisation does not cover brand {app.brand!r}")


def model_is_listed(app: Application, ref: ReferenceData, today: date) -> Iterable[Reason]:
    """Rule 2: the model is MIIT-listed with valid CCC certification, for that manufacturer."""
    model = ref.model(app.model_code)
    if model is None:
        yield _reason("model_not_listed", f"model {app.model_code} is not in the MIIT announcement")
        return
    if model.manufacturer != app.manufacturer.code:
        yield _reason("model_manufacturer_mismatch", f"model {app.model_code} is not made by {app.manufacturer.code}")
    if model.brand != app.brand:
        yield _reason("model_brand_mismatch", f"model {app.model_code} is sold as {model.brand!r}, not {app.brand!r}")
    if model.ccc_valid_until < today:
        yield _reason("ccc_expired", f"CCC certificate {model.ccc_certificate} expired on {model.ccc_valid_until}")


def one_destination_port_and_contract(app: Application, ref: ReferenceData, today: date) -> Iterable[Reason]:
    """Rule 3: one destination country, one known port of exit, one trade mode and contract.

    One of each is already the shape of an application; here the port and the goods are checked.
    """
    if not ref.is_port(app.port_of_exit):
        yield _reason("unknown_port", f"{app.port_of_exit} is not a customs port of exit for vehicles")
    if app.commodity_code not in ref.licensed_commodity_codes:
        yield _reason("commodity_not_licensed", f"commodity code {app.commodity_code} is not a licensed vehicle code")


Rule = Callable[[Application, ReferenceData, date], Iterable[Reason]]
RULES: tuple[Rule, ...] = (applicant_is_qualified, model_is_listed, one_destination_port_and_contract)


@dataclass(frozen=True)
class Grant:
    """Grant a license with these terms (its number is allocated when the grant is recorded)."""

    valid_from: date
    valid_to: date
    quantity: int
    batch_mode: BatchMode


@dataclass(frozen=True)
class Reject:
    reasons: tuple[Reason, ...]


Decision = Grant | Reject


def validity(issued: date) -> tuple[date, date]:
    """Rule 7: at most six months from issue, and never past 31 December of the issue year."""
    six_months = issued + MAX_VALIDITY - timedelta(days=1)
    return issued, min(six_months, date(issued.year, 12, 31))


def decide(app: Application, ref: ReferenceData, today: date) -> Decision:
    """Every failed rule, or the terms of the license the application earns."""
    reasons = tuple(reason for rule in RULES for reason in rule(app, ref, today))
    if reasons:
        return Reject(reasons)
    valid_from, valid_to = validity(today)
    batch = BatchMode.SINGLE if app.condition is Condition.USED else BatchMode.MULTI
    return Grant(valid_from=valid_from, valid_to=valid_to, quantity=app.quantity, batch_mode=batch)
