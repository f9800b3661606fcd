"""The reference data's HTTP API on the review service: what the rules decide against, and the admins'
changes to it after start-up (each logged with who and why, and in force for the next decision)."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Annotated, Any, Literal

from fastapi import Depends, Path, Query, Request
from pydantic import BaseModel, Field, model_validator

from services.review.reference import ListingStatus, store
from services.review.reference.store import ReferenceCache
from shared.contract.events import USCC, Count, CountryCode, Day, OfficerId, Text
from shared.platform.access import ROLES, require
from shared.platform.http import ErrorBody, router
from shared.platform.service import ServiceRuntime

TAGS: list[str | Enum] = ["reference"]
RESPONSES: dict[int | str, dict[str, Any]] = {code: {"model": ErrorBody} for code in (404, 422)}
ADMIN = [Depends(require("admin"))]
Year = Annotated[Count, Field(ge=2000, le=2100)]
CODE = r"^[0-9A-HJ-NP-RTUW-Y]{2}\d{6}[0-9A-HJ-NP-RTUW-Y]{10}$"  # USCC, as shared.contract.events spells it
MODEL_CODE = r"^[A-Z0-9-]{1,40}$"
MAX_PRICE_CNY = 100_000_000  # far above any car, and inside the column's int
MAX_REVISION = 2**62  # inside the counter's bigint


class ReferenceInForce(BaseModel):
    """The reference data the rules decide against: its version, the changes made since, its size."""

    version: str
    revision: int
    enterprises: int
    authorisations: int
    models: int
    outlets: int
    confirmations: int


class _Change(BaseModel):
    changed_by: OfficerId
    why: Text


class ListingChange(_Change):
    status: ListingStatus


class AuthorisationChange(_Change):
    distributor: USCC
    manufacturer: USCC
    year: Year
    status: Literal["active", "withdrawn"]
    brands: Annotated[tuple[Text, ...] | None, Field(min_length=1, description="required for a new one")] = None


class ModelChange(_Change):
    ccc_certificate: Annotated[str | None, Field(pattern=r"^\d{16}$")] = None
    ccc_valid_until: Day | None = None
    reference_price_cny: Annotated[
        Count | None, Field(gt=0, le=MAX_PRICE_CNY, description="null: no reference price published")
    ] = None

    @model_validator(mode="after")
    def _changes_something(self) -> ModelChange:
        if not self.fields():
            raise ValueError("name at least one of ccc_certificate, ccc_valid_until, reference_price_cny")
        if "ccc_certificate" in self.fields() and self.ccc_certificate is None:
            raise ValueError("a listed model keeps a CCC certificate number")
        if "ccc_valid_until" in self.fields() and self.ccc_valid_until is None:
            raise ValueError("a listed model keeps a CCC validity date")
        return self

    def fields(self) -> dict[str, Any]:
        """The model's fields this change sets (a reference price set to null is one)."""
        return {name: getattr(self, name) for name in self.model_fields_set - set(_Change.model_fields)}


class OutletChange(_Change):
    enterprise: USCC
    country: CountryCode
    city: Text
    name: Text
    status: Literal["open", "closed"]


class ReferenceChanged(BaseModel):
    """The revision in force after the change; ``changed`` is false when the data already said so."""

    revision: int
    changed: bool


class LoggedChange(BaseModel):
    """One entry of the append-only change log."""

    revision: int
    kind: str
    target: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    changed_by: str
    why: str
    changed_at: datetime


reference_routes = router(tags=TAGS)


async def references_of(request: Request) -> ReferenceCache:
    """The reference data the review service decides against (its cache of the tables)."""
    found: ReferenceCache = request.app.state.references
    return found


References = Annotated[ReferenceCache, Depends(references_of)]


# Whoever holds a credential may see which data decides; only admins change it (auditors read the log).
@reference_routes.get("/reference", dependencies=[Depends(require(*ROLES))])
async def reference_version(cache: References) -> ReferenceInForce:
    """Which reference data the rules decide against."""
    ref = await cache.current()
    return ReferenceInForce(
        version=ref.version,
        revision=ref.revision,
        enterprises=len(ref.enterprises),
        authorisations=len(ref.authorisations),
        models=len(ref.models),
        outlets=len(ref.after_sales_outlets),
        confirmations=len(ref.after_sales_confirmations),
    )


@reference_routes.get("/admin/reference/changes", responses={422: RESPONSES[422]}, dependencies=ADMIN)
async def changes(
    runtime: ServiceRuntime,
    after_revision: Annotated[int, Query(ge=0, le=MAX_REVISION)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[LoggedChange]:
    """The change log, oldest first: each version loaded and each admin change, with who, when and why."""
    rows = await store.changes(runtime.pool, after_revision=after_revision, limit=limit)
    return [LoggedChange.model_validate(row) for row in rows]


async def _apply(runtime: ServiceRuntime, edit: store.Edit, change: _Change) -> ReferenceChanged:
    applied = await store.apply(runtime.pool, edit, changed_by=change.changed_by, why=change.why)
    return ReferenceChanged(revision=applied.revision, changed=applied.changed)


@reference_routes.put("/admin/reference/enterprises/{code}/listing/{year}", responses=RESPONSES, dependencies=ADMIN)
async def set_listing(
    code: Annotated[str, Path(pattern=CODE)],
    year: Annotated[int, Path(ge=2000, le=2100)],
    body: ListingChange,
    runtime: ServiceRuntime,
) -> ReferenceChanged:
    """Set an enterprise's listing for a year: listed, suspended or cancelled."""
    return await _apply(runtime, store.set_listing(code, year, body.status), body)


@reference_routes.put("/admin/reference/authorisations", responses=RESPONSES, dependencies=ADMIN)
async def set_authorisation(body: AuthorisationChange, runtime: ServiceRuntime) -> ReferenceChanged:
    """Grant (active) or withdraw a manufacturer's authorisation of a distributor for a year."""
    edit = store.set_authorisation(
        distributor=body.distributor,
        manufacturer=body.manufacturer,
        year=body.year,
        status=body.status,
        brands=body.brands,
    )
    return await _apply(runtime, edit, body)


@reference_routes.put("/admin/reference/models/{model_code}", responses=RESPONSES, dependencies=ADMIN)
async def set_model(
    model_code: Annotated[str, Path(pattern=MODEL_CODE)], body: ModelChange, runtime: ServiceRuntime
) -> ReferenceChanged:
    """Change a listed model's CCC certificate, its validity or its reference price."""
    return await _apply(runtime, store.set_model(model_code, body.fields()), body)


@reference_routes.put("/admin/reference/outlets", responses=RESPONSES, dependencies=ADMIN)
async def set_outlet(body: OutletChange, runtime: ServiceRuntime) -> ReferenceChanged:
    """Open (add) or close (remove) an enterprise's after-sales outlet in a destination country."""
    is_open = body.status == "open"
    edit = store.set_outlet(
        enterprise=body.enterprise, country=body.country, city=body.city, name=body.name, is_open=is_open
    )
    return await _apply(runtime, edit, body)
