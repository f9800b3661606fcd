"""Reference data the review decides against: versioned files in the repo, checked for consistency.

A version is immutable once published (a correction is a new version), so a past decision can be
explained against the data it was taken on. ``reference/generate.py`` builds the current one. The
running service loads a version into its own tables and decides against what they hold
(``reference_store``): changes after start-up are made there, each one a new revision.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from datetime import date
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.contract.events import USCC, VIN, CountryCode, CurrencyCode, Role

REFERENCE_DIR = Path(__file__).resolve().parent
CURRENT_VERSION = "2026.2"

ListingStatus = Literal["listed", "suspended", "cancelled"]
Tier = Literal["A", "B", "C"]
"""A manufacturer's tier, which caps how many distributors it may authorise in a year."""


class Inconsistent(ValueError):
    """Rows that contradict each other (an unknown party, a cap exceeded); ``problems`` says how, one each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("inconsistent reference data: " + "; ".join(problems))
        self.problems = problems


class _Row(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Enterprise(_Row):
    code: USCC
    name: str
    role: Role
    years: dict[int, ListingStatus]
    tier: Tier | None = None


class Authorisation(_Row):
    distributor: USCC
    manufacturer: USCC
    brands: tuple[str, ...]
    year: int
    status: Literal["active", "withdrawn"]


class VehicleModel(_Row):
    model_code: str
    manufacturer: USCC
    brand: str
    ccc_certificate: str
    ccc_valid_until: date
    reference_price_cny: Annotated[int, Field(gt=0)] | None = None
    """None while no reference price is published for the model: review cannot judge its price."""


class Port(_Row):
    code: str
    name: str


class AfterSalesOutlet(_Row):
    """A service outlet an enterprise runs (or contracts) in a destination country."""

    enterprise: USCC
    country: CountryCode
    city: str
    name: str


class AfterSalesConfirmation(_Row):
    """A manufacturer confirms it will service this vehicle in the destination (the zero-mileage guard)."""

    number: str
    manufacturer: USCC
    vin: VIN
    destination_country: CountryCode
    confirmed_on: date


class ReferenceData(_Row):
    """One version of the reference data, checked for consistency and indexed for the rules."""

    version: str
    revision: int = 0
    """Review's reference revision counter when this was read from its tables (each load and change moves it);
    0 when read from a file."""
    licensed_commodity_codes: frozenset[str]
    enterprises: tuple[Enterprise, ...]
    authorisations: tuple[Authorisation, ...]
    models: tuple[VehicleModel, ...]
    ports: tuple[Port, ...]
    distributor_caps: dict[Tier, Annotated[int, Field(ge=0)]] = {}
    after_sales_outlets: tuple[AfterSalesOutlet, ...] = ()
    after_sales_confirmations: tuple[AfterSalesConfirmation, ...] = ()
    fx_as_of: date | None = None
    cny_per_unit: dict[CurrencyCode, Annotated[Decimal, Field(gt=0)]] = {}
    """Fixed reference rates (CNY for one unit of the currency), so foreign prices can be compared."""
    public_holidays: frozenset[date] = frozenset()
    working_weekend_days: frozenset[date] = frozenset()
    """Weekend days declared working days (the make-up days of the holiday schedule)."""

    @model_validator(mode="after")
    def _consistent(self) -> ReferenceData:
        problems = [
            *_duplicates("enterprise", (e.code for e in self.enterprises)),
            *_duplicates("model", (m.model_code for m in self.models)),
            *_duplicates("authorisation", ((a.distributor, a.manufacturer, a.year) for a in self.authorisations)),
            *_duplicates("confirmation", ((c.vin, c.destination_country) for c in self.after_sales_confirmations)),
            *self._unknown_parties(),
            *self._unknown_brands(),
            *self._caps_exceeded(),
        ]
        if problems:
            raise Inconsistent(problems)
        return self

    def _unknown_parties(self) -> Iterable[str]:
        manufacturers = {e.code for e in self.enterprises if e.role is Role.MANUFACTURER}
        distributors = {e.code for e in self.enterprises if e.role is Role.DISTRIBUTOR}
        for a in self.authorisations:
            if a.distributor not in distributors or a.manufacturer not in manufacturers:
                yield f"authorisation {a.distributor}->{a.manufacturer} names an unknown distributor or manufacturer"
        yield from (
            f"model {m.model_code}: unknown manufacturer" for m in self.models if m.manufacturer not in manufacturers
        )
        outlets = {o.enterprise for o in self.after_sales_outlets}
        yield from (f"outlets of unknown enterprise {code}" for code in sorted(outlets - manufacturers - distributors))
        confirmations = self.after_sales_confirmations
        yield from (
            f"confirmation {c.number}: unknown manufacturer"
            for c in confirmations
            if c.manufacturer not in manufacturers
        )

    def _unknown_brands(self) -> Iterable[str]:
        brands = {(m.manufacturer, m.brand) for m in self.models}
        for a in self.authorisations:
            for brand in a.brands:
                if (a.manufacturer, brand) not in brands:
                    yield f"authorisation {a.distributor}->{a.manufacturer} names brand {brand!r} it has no model of"

    def _caps_exceeded(self) -> Iterable[str]:
        if not self.distributor_caps:  # a version without caps (2026.1) predates their publication
            return
        active = Counter((a.manufacturer, a.year) for a in self.authorisations if a.status == "active")
        for (manufacturer, year), count in sorted(active.items()):
            tier = self.enterprise(manufacturer).tier  # type: ignore[union-attr]  # parties checked above
            cap = self.distributor_caps.get(tier) if tier else None
            if cap is None or count > cap:
                yield f"{manufacturer} (tier {tier}) authorises {count} distributors for {year}, cap {cap}"

    @cached_property
    def _enterprises(self) -> dict[str, Enterprise]:
        return {e.code: e for e in self.enterprises}

    @cached_property
    def _models(self) -> dict[str, VehicleModel]:
        return {m.model_code: m for m in self.models}

    @cached_property
    def _authorisations(self) -> dict[tuple[str, str, int], Authorisation]:
        return {(a.distributor, a.manufacturer, a.year): a for a in self.authorisations}

    @cached_property
    def _outlets(self) -> dict[tuple[str, str], tuple[AfterSalesOutlet, ...]]:
        index: dict[tuple[str, str], list[AfterSalesOutlet]] = {}
        for outlet in self.after_sales_outlets:
            index.setdefault((outlet.enterprise, outlet.country), []).append(outlet)
        return {key: tuple(rows) for key, rows in index.items()}

    @cached_property
    def _confirmations(self) -> dict[tuple[str, str, str], AfterSalesConfirmation]:
        return {(c.manufacturer, c.vin, c.destination_country): c for c in self.after_sales_confirmations}

    def enterprise(self, code: str) -> Enterprise | None:
        return self._enterprises.get(code)

    def model(self, model_code: str) -> VehicleModel | None:
        return self._models.get(model_code)

    def authorisation(self, *, distributor: str, manufacturer: str, year: int) -> Authorisation | None:
        return self._authorisations.get((distributor, manufacturer, year))

    def is_port(self, code: str) -> bool:
        return any(p.code == code for p in self.ports)

    def outlets(self, enterprise: str, country: str) -> tuple[AfterSalesOutlet, ...]:
        return self._outlets.get((enterprise, country), ())

    def confirmation(self, *, manufacturer: str, vin: str, destination: str) -> AfterSalesConfirmation | None:
        return self._confirmations.get((manufacturer, vin, destination))

    def to_cny(self, amount: Decimal, currency: str) -> Decimal | None:
        """``amount`` in CNY at this version's reference rate; None when the currency has no rate."""
        if currency == "CNY":
            return amount
        rate = self.cny_per_unit.get(currency)
        return None if rate is None else amount * rate

    def is_working_day(self, day: date) -> bool:
        if day in self.working_weekend_days:
            return True
        return day.weekday() < 5 and day not in self.public_holidays


def _duplicates(kind: str, keys: Iterable[object]) -> Iterable[str]:
    return (f"{kind} {key} is listed {n} times" for key, n in Counter(keys).items() if n > 1)


def document(version: str = CURRENT_VERSION, directory: Path = REFERENCE_DIR) -> dict[str, Any]:
    """The file of reference data ``version``, as JSON data (unchecked)."""
    data: dict[str, Any] = json.loads((directory / f"{version}.json").read_text(encoding="utf-8"))
    return data


def load(version: str = CURRENT_VERSION, directory: Path = REFERENCE_DIR) -> ReferenceData:
    """Read reference data ``version`` from its file."""
    return ReferenceData.model_validate(document(version, directory))
