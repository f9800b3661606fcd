"""The registry's queries: applications, licenses now or as of a moment of the stream, their history."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import Depends, Query
from pydantic import AwareDatetime, BaseModel, create_model

from services.registry import reads, refusals
from shared.contract.events import ApplicationStatus, LicenseState, Reason
from shared.contract.refusal import Refusal
from shared.fold import LicenseEntry
from shared.platform.access import Principal, require
from shared.platform.http import ErrorBody, router
from shared.platform.service import ServiceRuntime

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody}}
# Auditors read every route (shared.platform.access.permit); a submitter sees its own agency's applications only.
READER = Annotated[Principal, Depends(require("submitter", "officer", "admin"))]
SEE_ALL = frozenset({"officer", "auditor", "admin"})  # who reads every agency's applications
LICENSES = [Depends(require("customs", "officer", "admin"))]
MAX_OFFSET = 2**63 - 1  # a Kafka offset is a signed 64-bit integer; a larger one failed the query with a 500

queries = router(tags=["queries"])


class ApplicationView(BaseModel):
    application_id: uuid.UUID
    status: ApplicationStatus
    applicant_code: str
    destination_country: str
    quantity: int
    reasons: list[Reason]
    license_number: str | None
    submitted_at: datetime
    decided_at: datetime | None


HIDDEN = ("schema_version", "case_id", "as_of_event", "as_of")
LicenseView = create_model(  # type: ignore[call-overload]
    "LicenseView",
    __doc__="A license as the ledger holds it: the contract's LicenseState, without where it stands in the stream.",
    **{name: (field.annotation, ...) for name, field in LicenseState.model_fields.items() if name not in HIDDEN},
)
"""The contract's ``LicenseState`` but for its case and position: derived from it, so the two cannot drift."""


class LicensePage(BaseModel):
    items: list[LicenseView]
    next_after: str | None = None


class LicenseVersion(BaseModel):
    partition: int
    offset: int
    state: LicenseState


@queries.get(
    "/applications/{application_id}",
    response_model=ApplicationView,
    responses={**NOT_FOUND, 422: {"model": ErrorBody, "description": "refused at intake (refused_at_intake)"}},
)
async def get_application(application_id: uuid.UUID, principal: READER, runtime: ServiceRuntime) -> ApplicationView:
    """An application's status, the reasons of a rejection, and its license once granted."""
    entry = await reads.application(runtime.pool, application_id)
    if entry is None:
        refused = await refusals.refused_application(runtime.pool, application_id, principal, unless=SEE_ALL)
        raise refused or Refusal(404, "unknown_application", f"no application {application_id} in the ledger (yet)")
    principal.ensure_agency(entry.agency_code, unless=SEE_ALL)
    return ApplicationView(
        application_id=entry.application_id,
        status=entry.status,
        applicant_code=entry.applicant_code,
        destination_country=entry.destination_country,
        quantity=entry.quantity,
        reasons=list(entry.reasons),
        license_number=entry.license_number,
        submitted_at=entry.submitted_at,
        decided_at=entry.decided_at,
    )


@queries.get("/licenses/{license_number}", response_model=LicenseView, responses=NOT_FOUND, dependencies=LICENSES)
async def get_license(
    license_number: str,
    runtime: ServiceRuntime,
    as_of: Annotated[AwareDatetime | None, Query(description="the license as it stood at this instant")] = None,
    as_of_offset: Annotated[
        int | None, Query(ge=0, le=MAX_OFFSET, description="as it stood before this offset of its case's partition")
    ] = None,
) -> Any:
    """A license's status, balance, declarations used, validity, port and destination; now or as of."""
    if as_of is not None and as_of_offset is not None:
        raise Refusal(422, "conflicting_parameters", "give as_of or as_of_offset, not both")
    if as_of is None and as_of_offset is None:
        entry = await reads.license_(runtime.pool, license_number)
        if entry is None:
            raise Refusal(404, "unknown_license", f"no license {license_number}")
        return license_view(entry)
    state = await reads.license_as_of(runtime.pool, license_number, at=as_of, before_offset=as_of_offset)
    if state is None:
        raise Refusal(404, "unknown_license", f"license {license_number} did not exist at that point")
    return LicenseView.model_validate(state.model_dump())


@queries.get("/licenses", response_model=LicensePage, dependencies=LICENSES)
async def list_licenses(
    runtime: ServiceRuntime,
    applicant: str | None = None,
    status: str | None = None,
    destination: str | None = None,
    valid_on: date | None = None,
    as_of: AwareDatetime | None = None,
    after: Annotated[str | None, Query(description="the last license number of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> LicensePage:
    """Licenses by applicant, status, destination and validity, in license-number order, now or as of."""
    where = reads.LicenseFilter(
        applicant_code=applicant, status=status, destination_country=destination, valid_on=valid_on
    )
    found = await reads.licenses(runtime.pool, where, as_of=as_of, after=after, limit=limit)
    items = [LicenseView.model_validate(s.model_dump()) for s in found]
    return LicensePage(items=items, next_after=found[-1].license_number if len(found) == limit else None)


@queries.get(
    "/licenses/{license_number}/history",
    response_model=list[LicenseVersion],
    responses=NOT_FOUND,
    dependencies=LICENSES,
)
async def license_history(license_number: str, runtime: ServiceRuntime) -> list[LicenseVersion]:
    """Every state of the license in stream order, with the event and stream position that made it."""
    versions = await reads.license_history(runtime.pool, license_number)
    if not versions:
        raise Refusal(404, "unknown_license", f"no license {license_number}")
    return [LicenseVersion(partition=p, offset=o, state=s) for p, o, s in versions]


def license_view(entry: LicenseEntry) -> Any:
    """The view of a license the fold holds: its fields that the contract's ``LicenseState`` has."""
    return LicenseView.model_validate({name: getattr(entry, name) for name in LicenseView.model_fields})
