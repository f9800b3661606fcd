"""The ledger in figures for a period: what the console's reports and ``licensectl report`` chart and tabulate.

Every figure is an aggregate over the rows the fold wrote (``store.py``), so a report follows from the log as
the ledger does. A period is a range of days (both ends included, UTC): an export counts by its export date,
a license by the day it was granted, an application by the day it was submitted.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

import asyncpg
from fastapi import Depends, Query
from pydantic import BaseModel, Field

from shared.contract.refusal import Refusal
from shared.platform.access import require
from shared.platform.http import ErrorBody, router
from shared.platform.service import ServiceRuntime

statistics = router(tags=["statistics"], dependencies=[Depends(require("officer", "admin"))])

EXPORTS_BY_MONTH = """
SELECT to_char(export_date, 'YYYY-MM') AS month,
       coalesce(sum(quantity) FILTER (WHERE outcome = 'accepted'), 0)::int AS vehicles,
       count(*) FILTER (WHERE outcome = 'accepted')::int AS accepted,
       count(*) FILTER (WHERE outcome = 'refused')::int AS refused
FROM exports WHERE export_date BETWEEN $1 AND $2 GROUP BY 1 ORDER BY 1
"""
EXPORTS_BY_DESTINATION = """
SELECT l.destination_country AS destination, sum(e.quantity)::int AS vehicles, count(*)::int AS declarations
FROM exports e JOIN licenses l USING (license_number)
WHERE e.outcome = 'accepted' AND e.export_date BETWEEN $1 AND $2 GROUP BY 1 ORDER BY 2 DESC, 1
"""
LICENSED_BY_MONTH = """
SELECT to_char(granted_at AT TIME ZONE 'UTC', 'YYYY-MM') AS month, sum(quantity)::int AS vehicles
FROM licenses WHERE (granted_at AT TIME ZONE 'UTC')::date BETWEEN $1 AND $2 GROUP BY 1 ORDER BY 1
"""
EXPORT_REFUSALS = """
SELECT reason_code AS code, count(*)::int AS count FROM exports
WHERE outcome = 'refused' AND export_date BETWEEN $1 AND $2 GROUP BY 1 ORDER BY 2 DESC, 1
"""
APPLICATION_REFUSALS = """
SELECT r->>'code' AS code, count(*)::int AS count FROM applications, jsonb_array_elements(reasons) r
WHERE status IN ('rejected', 'returned') AND (submitted_at AT TIME ZONE 'UTC')::date BETWEEN $1 AND $2
GROUP BY 1 ORDER BY 2 DESC, 1
"""
LICENSES_BY_STATUS = """
SELECT status, count(*)::int AS count FROM licenses
WHERE (granted_at AT TIME ZONE 'UTC')::date BETWEEN $1 AND $2 GROUP BY 1 ORDER BY 2 DESC, 1
"""
# Hours from submission to the decision (approved or rejected), for the applications submitted in the period.
DECISION_TIME = """
SELECT count(*)::int AS decided,
       coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY hours), 0)::float AS median_hours,
       coalesce(percentile_cont(0.9) WITHIN GROUP (ORDER BY hours), 0)::float AS p90_hours,
       coalesce(max(hours), 0)::float AS max_hours,
       count(*) FILTER (WHERE hours < 1)::int AS within_hour,
       count(*) FILTER (WHERE hours >= 1 AND hours < 24)::int AS within_day,
       count(*) FILTER (WHERE hours >= 24 AND hours < 72)::int AS within_three_days,
       count(*) FILTER (WHERE hours >= 72)::int AS longer
FROM (SELECT extract(epoch FROM decided_at - submitted_at) / 3600 AS hours FROM applications
      WHERE decided_at IS NOT NULL AND status IN ('approved', 'rejected')
        AND (submitted_at AT TIME ZONE 'UTC')::date BETWEEN $1 AND $2) d
"""


class MonthOfExports(BaseModel):
    month: str = Field(description="YYYY-MM")
    vehicles: int = Field(description="vehicles exported (accepted declarations)")
    accepted: int
    refused: int


class DestinationExports(BaseModel):
    destination: str
    vehicles: int
    declarations: int


class MonthExportedLicensed(BaseModel):
    month: str
    licensed: int = Field(description="vehicles on the licenses granted that month")
    exported: int = Field(description="vehicles exported that month")


class ReasonCount(BaseModel):
    kind: str = Field(description="export (a declaration refused, rule 11) or application (rejected or returned)")
    code: str
    count: int


class StatusCount(BaseModel):
    status: str
    count: int


class DecisionTime(BaseModel):
    """Hours from submission to approval or rejection, of the applications submitted in the period."""

    decided: int
    median_hours: float
    p90_hours: float
    max_hours: float
    within_hour: int
    within_day: int
    within_three_days: int
    longer: int


class Statistics(BaseModel):
    """The ledger in figures for a period of days (both ends included, UTC)."""

    date_from: date = Field(alias="from")
    date_to: date = Field(alias="to")
    exports_by_month: list[MonthOfExports]
    exports_by_destination: list[DestinationExports]
    exported_vs_licensed: list[MonthExportedLicensed]
    refusals_by_reason: list[ReasonCount]
    licenses_by_status: list[StatusCount]
    decision_time: DecisionTime

    model_config = {"populate_by_name": True}


@statistics.get(
    "/statistics", response_model=Statistics, response_model_by_alias=True, responses={422: {"model": ErrorBody}}
)
async def get_statistics(
    runtime: ServiceRuntime,
    date_from: Annotated[date, Query(alias="from", description="the first day of the period")],
    date_to: Annotated[date, Query(alias="to", description="the last day of the period")],
) -> Statistics:
    """Exports by month and by destination, vehicles exported against licensed, refusals by reason, licenses by
    status and the time from submission to decision, for a period."""
    if date_to < date_from:
        raise Refusal(422, "conflicting_parameters", "the period ends before it begins: give from <= to")
    return await figures(runtime.pool, date_from, date_to)


async def figures(pool: asyncpg.Pool, date_from: date, date_to: date) -> Statistics:
    """Every figure of the period, read in one snapshot of the ledger."""
    async with pool.acquire() as connection, connection.transaction(isolation="repeatable_read", readonly=True):

        async def rows(query: str) -> list[dict[str, object]]:
            return [dict(r) for r in await connection.fetch(query, date_from, date_to)]

        by_month = await rows(EXPORTS_BY_MONTH)
        licensed = {str(r["month"]): r["vehicles"] for r in await rows(LICENSED_BY_MONTH)}
        exported = {str(r["month"]): r["vehicles"] for r in by_month}
        refusals = [{"kind": "export", **r} for r in await rows(EXPORT_REFUSALS)]
        refusals += [{"kind": "application", **r} for r in await rows(APPLICATION_REFUSALS)]
        return Statistics.model_validate(
            {
                "from": date_from,
                "to": date_to,
                "exports_by_month": by_month,
                "exports_by_destination": await rows(EXPORTS_BY_DESTINATION),
                "exported_vs_licensed": [
                    {"month": m, "licensed": licensed.get(m, 0), "exported": exported.get(m, 0)}
                    for m in sorted(set(licensed) | set(exported))
                ],
                "refusals_by_reason": refusals,
                "licenses_by_status": await rows(LICENSES_BY_STATUS),
                "decision_time": dict((await rows(DECISION_TIME))[0]),
            }
        )
