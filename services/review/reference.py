"""Reference data the review decides against, loaded from a versioned file in the repo."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from shared.events import USCC, Role

REFERENCE_DIR = Path(__file__).resolve().parent / "reference"
CURRENT_VERSION = "2026.1"

ListingStatus = Literal["listed", "suspended", "cancelled"]


class _Row(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Enterprise(_Row):
    code: USCC
    name: str
    role: Role
    years: dict[int, ListingStatus]


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
    reference_price_cny: int


class Port(_Row):
    code: str
    name: str


class ReferenceData(_Row):
    """One version of the reference data, indexed for the rules."""

    version: str
    licensed_commodity_codes: frozenset[str]
    enterprises: tuple[Enterprise, ...]
    authorisations: tuple[Authorisation, ...]
    models: tuple[VehicleModel, ...]
    ports: tuple[Port, ...]

    def enterprise(self, code: str) -> Enterprise | None:
        return next((e for e in self.enterprises if e.code == code), None)

    def model(self, model_code: str) -> VehicleModel | None:
        return next((m for m in self.models if m.model_code == model_code), None)

    def authorisation(self, *, distributor: str, manufacturer: str, year: int) -> Authorisation | None:
        return next(
            (
                a
                for a in self.authorisations
                if a.distributor == distributor and a.manufacturer == manufacturer and a.year == year
            ),
            None,
        )

    def is_port(self, code: str) -> bool:
        return any(p.code == code for p in self.ports)


def load(version: str = CURRENT_VERSION, directory: Path = REFERENCE_DIR) -> ReferenceData:
    """Read reference data ``version`` from its file."""
    data = json.loads((directory / f"{version}.json").read_text(encoding="utf-8"))
    return ReferenceData.model_validate(data)
