"""The eligibility rules of the regulation, as pure functions of an application and reference data.

Each rule returns the reasons it fails (none when it passes). A rule either rejects (the applicant
must change something) or escalates (an officer must look); review reports every failed rule, and
any rejection wins over escalation. The numbers that are policy live in :class:`Policy`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

import pycountry
from dateutil.relativedelta import relativedelta

from services.review.reference import ReferenceData
from shared.contract.events import Application, BatchMode, Condition, Reason, Role, UsedVehicle


@dataclass(frozen=True)
class Policy:
    """The regulation's numbers that may change; each default is today's value."""

    zero_mileage_days: int = 180
    """Rule 5: a used vehicle registered this many days or fewer before applying needs a confirmation."""
    zero_mileage_margin_days: int = 7
    """Rule 5: just past the line, an officer checks the dates (they may be off, or the wait deliberate)."""
    price_floor: Decimal = Decimal("0.6")
    """Rule 6: a unit price below this share of the reference price goes to an officer."""
    validity_months: int = 6
    """Rule 7: the longest validity from issue (never past 31 December)."""
    next_year_opens: tuple[int, int] = (12, 15)
    """Rule 7: (month, day) from which licenses for next year may be issued."""
    decision_working_days: int = 3
    """Rule 12: a complete application is decided within this many working days."""


DEFAULT_POLICY = Policy()
_SEVERAL = re.compile(r"[,;]")  # how applicants list several contracts or trade modes in one field


def _reason(code: str, message: str) -> Reason:
    return Reason(code=code, message=message)


def _country(code: str) -> str:
    country = pycountry.countries.get(alpha_2=code)
    return f"{country.name} ({code})" if country else code


def license_year(app: Application, today: date) -> int:
    """The year the license is for: this year unless the application asks for another."""
    return app.license_year or today.year


def license_start(app: Application, today: date) -> date:
    """The first day of validity: today, or 1 January of the later year applied for."""
    year = license_year(app, today)
    return today if year <= today.year else date(year, 1, 1)


def applicant_is_qualified(
    app: Application, ref: ReferenceData, today: date, policy: Policy = DEFAULT_POLICY
) -> Iterable[Reason]:
    """Rule 1: the applicant is listed for the license year; a distributor is authorised for the brand."""
    year = license_year(app, today)
    enterprise = ref.enterprise(app.applicant.code)
    status = enterprise.years.get(year) if enterprise else None
    if status is None:
        yield _reason("applicant_not_qualified", f"{app.applicant.code} is not a qualified exporter for {year}")
    elif status != "listed":
        yield _reason(f"applicant_listing_{status}", f"{app.applicant.code}'s listing for {year} is {status}")
    if app.applicant.role is Role.MANUFACTURER and app.applicant.code != app.manufacturer.code:
        yield _reason("manufacturer_mismatch", "a manufacturer applies only for vehicles it manufactures")
    if app.applicant.role is Role.DISTRIBUTOR:
        yield from _distributor_is_authorised(app, ref, year)


def _distributor_is_authorised(app: Application, ref: ReferenceData, year: int) -> Iterable[Reason]:
    grant = ref.authorisation(distributor=app.applicant.code, manufacturer=app.manufacturer.code, year=year)
    if grant is None or grant.status != "active":
        yield _reason(
            "distributor_not_authorised",
            f"{app.applicant.code} holds no active {year} authorisation from {app.manufacturer.code}",
        )
    elif app.brand not in grant.brands:
        yield _reason("brand_not_authorised", f"the authorisation does not cover brand {app.brand!r}")


def model_is_listed(
    app: Application, ref: ReferenceData, today: date, policy: Policy = DEFAULT_POLICY
) -> Iterable[Reason]:
    """Rule 2: the model is MIIT-listed with CCC certification valid when the license starts."""
    model = ref.model(app.model_code)
    if model is None:
        yield _reason("model_not_listed", f"model {app.model_code} is not in the MIIT announcement")
        return
    if model.manufacturer != app.manufacturer.code:
        yield _reason("model_manufacturer_mismatch", f"model {app.model_code} is not made by {app.manufacturer.code}")
    if model.brand != app.brand:
        yield _reason("model_brand_mismatch", f"model {app.model_code} is sold as {model.brand!r}, not {app.brand!r}")
    if model.ccc_valid_until < license_start(app, today):
        yield _reason("ccc_expired", f"CCC certificate {model.ccc_certificate} expired on {model.ccc_valid_until}")


def one_destination_port_and_contract(
    app: Application, ref: ReferenceData, today: date, policy: Policy = DEFAULT_POLICY
) -> Iterable[Reason]:
    """Rule 3: one destination country, one known port of exit, one trade mode and contract.

    One country and one port are already the shape of an application; here the port, the goods and
    the free-text fields that could smuggle in a second contract or trade mode are checked.
    """
    if not ref.is_port(app.port_of_exit):
        yield _reason("unknown_port", f"{app.port_of_exit} is not a customs port of exit for vehicles")
    if app.commodity_code not in ref.licensed_commodity_codes:
        yield _reason("commodity_not_licensed", f"commodity code {app.commodity_code} is not a licensed vehicle code")
    if _SEVERAL.search(app.contract_number):
        yield _reason("several_contracts", "an application covers one contract: apply once per contract number")
    if _SEVERAL.search(app.trade_mode):
        yield _reason("several_trade_modes", "an application has one trade mode: apply once per trade mode")


def after_sales_coverage(
    app: Application, ref: ReferenceData, today: date, policy: Policy = DEFAULT_POLICY
) -> Iterable[Reason]:
    """Rule 4: the applicant has after-sales service outlets in the destination country."""
    if ref.enterprise(app.applicant.code) is None:
        return  # rule 1 already rejects an applicant unknown to the reference: it has no network on record
    if not ref.outlets(app.applicant.code, app.destination_country):
        yield _reason(
            "no_after_sales_coverage",
            f"{app.applicant.code} has no after-sales service outlet on record in "
            f"{_country(app.destination_country)}: register one there before applying to export to it",
        )


def _days_registered(vehicle: UsedVehicle, today: date) -> int:
    return (today - vehicle.first_registration_date).days


def zero_mileage_guard(
    app: Application, ref: ReferenceData, today: date, policy: Policy = DEFAULT_POLICY
) -> Iterable[Reason]:
    """Rule 5: a recently registered 'used' vehicle needs its manufacturer's service confirmation
    for this VIN and destination, and must be registered to the applicant."""
    recent = [v for v in app.used_vehicles if _days_registered(v, today) <= policy.zero_mileage_days]
    unconfirmed = [
        v.vin
        for v in recent
        if ref.confirmation(manufacturer=app.manufacturer.code, vin=v.vin, destination=app.destination_country) is None
    ]
    if unconfirmed:
        yield _reason(
            "zero_mileage_unconfirmed",
            f"first registered {policy.zero_mileage_days} days or less ago, so the manufacturer "
            f"{app.manufacturer.code} must confirm after-sales service in {_country(app.destination_country)} "
            f"for: {', '.join(unconfirmed)}",
        )
    not_owned = [v.vin for v in recent if v.registered_owner != app.applicant.code]
    if not_owned:
        yield _reason(
            "registered_owner_not_applicant",
            f"first registered {policy.zero_mileage_days} days or less ago, so these must be registered to "
            f"the applicant {app.applicant.code}: {', '.join(not_owned)}",
        )


def license_year_is_open(
    app: Application, ref: ReferenceData, today: date, policy: Policy = DEFAULT_POLICY
) -> Iterable[Reason]:
    """Rule 7: licenses are for this year; from mid-December also for next year."""
    year = license_year(app, today)
    opens = date(today.year, *policy.next_year_opens)
    if year == today.year + 1 and today < opens:
        yield _reason("next_year_not_open", f"licenses for {year} are issued from {opens}: apply again then")
    elif year not in (today.year, today.year + 1):
        yield _reason(
            "license_year_not_open",
            f"a license is issued for {today.year} or, from {opens}, for {today.year + 1}; not for {year}",
        )


def zero_mileage_borderline(
    app: Application, ref: ReferenceData, today: date, policy: Policy = DEFAULT_POLICY
) -> Iterable[Reason]:
    """Rule 5, escalating: just past the line, the dates decide the case, so an officer checks them."""
    line, last = policy.zero_mileage_days, policy.zero_mileage_days + policy.zero_mileage_margin_days
    near = [v.vin for v in app.used_vehicles if line < _days_registered(v, today) <= last]
    if near:
        yield _reason(
            "zero_mileage_borderline",
            f"first registered {line + 1} to {last} days ago, just past the {line}-day line; an officer "
            f"checks the registration and transfer records of: {', '.join(near)}",
        )


def price_is_plausible(
    app: Application, ref: ReferenceData, today: date, policy: Policy = DEFAULT_POLICY
) -> Iterable[Reason]:
    """Rule 6, escalating: a unit price far below the model's reference price, or one that cannot be
    compared, goes to an officer (the price-war concern), never to automatic approval."""
    model = ref.model(app.model_code)
    if model is None:
        return  # rule 2 rejects an unlisted model
    if model.reference_price_cny is None:
        yield _reason(
            "reference_price_missing",
            f"no reference price is published for {model.model_code}: an officer checks the price",
        )
        return
    price = ref.to_cny(app.unit_price, app.currency)
    if price is None:
        yield _reason(
            "price_unverifiable",
            f"reference data {ref.version} has no rate for {app.currency}: an officer compares the price "
            "(a price in CNY or a currency with a reference rate is compared automatically)",
        )
        return
    floor = policy.price_floor * model.reference_price_cny
    if price < floor:
        yield _reason(
            "price_below_reference",
            f"unit price {app.unit_price:,.2f} {app.currency} ({price:,.0f} CNY) is below {policy.price_floor:.0%} "
            f"of the reference price {model.reference_price_cny:,} CNY for {model.model_code}: "
            "an officer reviews the contract price",
        )


Rule = Callable[[Application, ReferenceData, date, Policy], Iterable[Reason]]
TERMS: tuple[Rule, ...] = (
    applicant_is_qualified,
    model_is_listed,
    one_destination_port_and_contract,
    after_sales_coverage,
    zero_mileage_guard,
)
"""The rules a license's terms must pass, on every path that creates or changes them (``terms_refusals``)."""
REJECTING: tuple[Rule, ...] = (*TERMS, license_year_is_open)
ESCALATING: tuple[Rule, ...] = (zero_mileage_borderline, price_is_plausible)


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


@dataclass(frozen=True)
class Escalate:
    """An officer decides: the rules found nothing to reject but something they cannot judge."""

    reasons: tuple[Reason, ...]
    due: date


Decision = Grant | Reject | Escalate


def validity(issued: date, months: int = DEFAULT_POLICY.validity_months) -> tuple[date, date]:
    """Rule 7: at most six months from issue, and never past 31 December of the issue year."""
    six_months = issued + relativedelta(months=months) - timedelta(days=1)
    return issued, min(six_months, date(issued.year, 12, 31))


def due_date(
    submitted: date,
    working_days: int = DEFAULT_POLICY.decision_working_days,
    is_working_day: Callable[[date], bool] = lambda day: day.weekday() < 5,
) -> date:
    """Rule 12: the last day to decide, ``working_days`` working days after the application was complete."""
    day = submitted
    for _ in range(working_days):
        day += timedelta(days=1)
        while not is_working_day(day):
            day += timedelta(days=1)
    return day


def _failures(
    rules: Collection[Rule], app: Application, ref: ReferenceData, today: date, policy: Policy
) -> tuple[Reason, ...]:
    return tuple(reason for rule in rules for reason in rule(app, ref, today, policy))


@dataclass(frozen=True)
class Terms:
    """A license's terms as a path sets them: the first grant, an officer's approval, a replacement, a
    reinstatement (the terms it would be active on again)."""

    valid_from: date
    valid_to: date
    quantity: int
    port_of_exit: str
    destination_country: str


def terms_refusals(
    app: Application, terms: Terms, ref: ReferenceData, today: date, policy: Policy = DEFAULT_POLICY
) -> tuple[Reason, ...]:
    """Why a license may not stand on ``terms`` (none if it may), whichever path sets them: the rules of the
    application (``TERMS``) on the application as these terms change it (its port, destination, quantity),
    and rule 7 on the validity. The one check of grants, approvals, replacements and reinstatements."""
    changed = app.model_copy(
        update={
            "port_of_exit": terms.port_of_exit,
            "destination_country": terms.destination_country,
            "quantity": terms.quantity,
        }
    )
    return _failures(TERMS, changed, ref, today, policy) + tuple(_validity_refusals(terms, policy))


def _validity_refusals(terms: Terms, policy: Policy) -> Iterable[Reason]:
    longest = validity(terms.valid_from, policy.validity_months)[1]
    if not terms.valid_from <= terms.valid_to <= longest:
        yield _reason(
            "validity_out_of_range",
            f"a license valid from {terms.valid_from} ends by {longest} (rule 7); {terms.valid_to} given",
        )


def decide(
    app: Application,
    ref: ReferenceData,
    today: date,
    *,
    policy: Policy = DEFAULT_POLICY,
    submitted: date | None = None,
) -> Decision:
    """Every rejecting reason; else every reason to escalate, due by rule 12; else the license's terms.

    ``submitted`` is when the application became complete (default ``today``): rule 12 counts from it.
    """
    valid_from, valid_to = validity(license_start(app, today), policy.validity_months)
    terms = Terms(valid_from, valid_to, app.quantity, app.port_of_exit, app.destination_country)
    rejections = terms_refusals(app, terms, ref, today, policy) + _failures(
        (license_year_is_open,), app, ref, today, policy
    )
    if rejections:
        return Reject(rejections)
    if escalations := _failures(ESCALATING, app, ref, today, policy):
        due = due_date(submitted or today, policy.decision_working_days, ref.is_working_day)
        return Escalate(escalations, due=due)
    batch = BatchMode.SINGLE if app.condition is Condition.USED else BatchMode.MULTI
    return Grant(valid_from=valid_from, valid_to=valid_to, quantity=app.quantity, batch_mode=batch)
