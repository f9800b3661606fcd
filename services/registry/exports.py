"""Customs' exports against licenses: recorded over HTTP or from the intake topic, pre-checked, looked up."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import date, datetime
from decimal import Decimal
from functools import partial
from typing import Annotated, Any, Literal, NoReturn

import asyncpg
from fastapi import Depends, Path, Query
from faststream.kafka.annotations import KafkaMessage
from pydantic import BaseModel, Field

from services.registry import admission, reads
from shared.contract.events import VIN, ExportDeclaration, Reason
from shared.contract.refusal import Refusal
from shared.platform.access import require
from shared.platform.http import ErrorBody, router
from shared.platform.reading import Reader
from shared.platform.records import records_by_partition
from shared.platform.service import Runtime, RuntimeContext, ServiceRuntime

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody}}
exports = router(tags=["exports"], dependencies=[Depends(require("customs"))])


class ExportAccepted(BaseModel):
    """The declaration is on the license's case stream; the ledger's verdict follows at its link."""

    declaration_number: str
    license_number: str
    event_id: uuid.UUID
    status_url: str


class ExportView(BaseModel):
    declaration_number: str
    license_number: str
    outcome: str
    reason: Reason | None
    quantity: int
    port_of_exit: str
    export_date: date
    value: Decimal
    currency: str
    vins: list[str] = []
    recorded_at: datetime | None = None


class ListedExport(ExportView):
    """An export in a list, with its license's destination and applicant (what the list filters by)."""

    destination_country: str | None = None
    applicant_code: str | None = None


class ExportPage(BaseModel):
    items: list[ListedExport]
    next_after: str | None = Field(None, description="pass as `after` for the next page; absent on the last one")


Outcome = Literal["accepted", "refused"]
CURSOR = re.compile(r"^(\d{4}-\d{2}-\d{2})_([0-9a-f-]{36})$")


class PreCheck(BaseModel):
    """Whether the ledger would accept the declaration if it were recorded now, and if not, why."""

    would_pass: bool
    reason: Reason | None = None


@exports.post("/exports", status_code=202, response_model=ExportAccepted)
async def record_export(declaration: ExportDeclaration, runtime: ServiceRuntime) -> ExportAccepted:
    """Record an export declaration against a license (customs). Resending it changes nothing."""
    event_id = await admission.admit(runtime, declaration)
    return ExportAccepted(
        declaration_number=declaration.declaration_number,
        license_number=declaration.license_number,
        event_id=event_id,
        status_url=f"/exports/{declaration.declaration_number}",
    )


@exports.post("/exports/check", response_model=PreCheck)
async def check_export(declaration: ExportDeclaration, runtime: ServiceRuntime) -> PreCheck:
    """Customs' pre-check: would this declaration pass now? Judged by the ledger; nothing is recorded."""
    admission.ensure_ledger_follows(runtime)
    reason = await admission.would_refuse(runtime.pool, declaration)
    return PreCheck(would_pass=reason is None, reason=reason)


@exports.get("/exports", response_model=ExportPage, responses={422: {"model": ErrorBody}})
async def list_exports(
    runtime: ServiceRuntime,
    date_from: Annotated[date | None, Query(alias="from", description="exported on or after this day")] = None,
    date_to: Annotated[date | None, Query(alias="to", description="exported on or before this day")] = None,
    destination: Annotated[str | None, Query(description="the license's destination country (ISO 3166)")] = None,
    port: Annotated[str | None, Query(description="the port of exit")] = None,
    applicant: Annotated[str | None, Query(description="the license holder's unified social credit code")] = None,
    outcome: Outcome | None = None,
    license: Annotated[str | None, Query(description="the declarations against this license")] = None,
    after: Annotated[str | None, Query(description="`next_after` of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> ExportPage:
    """Every declaration the ledger judged, accepted and refused, by period, destination, port, applicant and
    outcome, or against one license; in export-date order, paged."""
    where = reads.ExportFilter(date_from, date_to, destination, port, applicant, outcome, license)
    rows = await reads.exports(runtime.pool, where, after=_cursor(after), limit=limit)
    items = [
        ListedExport(
            **export_view(r).model_dump(),
            destination_country=r["destination_country"],
            applicant_code=r["applicant_code"],
        )
        for r in rows
    ]
    last = items[-1] if len(items) == limit else None
    return ExportPage(items=items, next_after=f"{last.export_date}_{rows[-1]['event_id']}" if last else None)


def _license_of(r: asyncpg.Record) -> dict[str, str | None]:
    return {"destination_country": r["destination_country"], "applicant_code": r["applicant_code"]}


def _cursor(after: str | None) -> tuple[date, uuid.UUID] | None:
    if after is None:
        return None
    found = CURSOR.match(after)
    try:
        return (date.fromisoformat(found.group(1)), uuid.UUID(found.group(2))) if found else _bad_cursor()
    except ValueError:
        return _bad_cursor()


def _bad_cursor() -> NoReturn:
    raise Refusal(422, "invalid_cursor", "after is the next_after of a previous page: <export date>_<event id>")


@exports.get("/exports/{declaration_number}", response_model=list[ExportView], responses=NOT_FOUND)
async def get_export(declaration_number: str, runtime: ServiceRuntime) -> list[ExportView]:
    """How the ledger judged a declaration: accepted, or refused with its reason."""
    rows = await reads.exports_of_declaration(runtime.pool, declaration_number)
    if not rows:
        raise Refusal(404, "unknown_declaration", f"declaration {declaration_number} is not in the ledger (yet)")
    return [export_view(r) for r in rows]


@exports.get("/vins/{vin}/exports", response_model=list[ExportView])
async def exports_of_vin(
    vin: Annotated[VIN, Path(description="a 17-character VIN")], runtime: ServiceRuntime
) -> list[ExportView]:
    """Every export that declared this VIN, accepted or refused, in the order the ledger recorded them."""
    return [export_view(r) for r in await reads.exports_of_vin(runtime.pool, vin)]


def export_view(r: asyncpg.Record) -> ExportView:
    return ExportView(
        declaration_number=r["declaration_number"],
        license_number=r["license_number"],
        outcome=r["outcome"],
        reason=Reason(code=r["reason_code"], message=r["reason_message"]) if r["reason_code"] else None,
        quantity=r["quantity"],
        port_of_exit=r["port_of_exit"],
        export_date=r["export_date"],
        value=r["value"],
        currency=r["currency"],
        vins=list(r["vins"]),
        recorded_at=r["recorded_at"],
    )


def follow_intake(runtime: Runtime, batch_size: int) -> None:
    """Read customs backends' ``RecordExport`` commands from the intake topic and admit each."""
    topic = runtime.settings.topics.intake_exports

    runtime.subscribe(
        on_record_exports,
        topic=topic,
        group="registry-intake",
        batch_size=batch_size,
        title="intake-exports",
        description="RecordExport commands from customs backends, signed by their sender (docs/signing.md).",
    )


async def on_record_exports(message: KafkaMessage, runtime: RuntimeContext) -> None:
    # Each partition's commands are admitted in their order (customs key them by license). The batch is committed
    # when this returns: every verdict in it is in the log by then.
    reader = runtime.reader("intake-exports")
    partitions = records_by_partition(message)
    # The whole delivery in one transaction, each partition's commands in their order: under a steady load a
    # delivery holds a few commands of most partitions, and a transaction for each would cost more than they do.
    if len(partitions) > 1 and await reader.run(
        partial(admission.record_export_commands, runtime, [record for records in partitions for record in records])
    ):
        return
    # A command refused or at fault somewhere: each partition's on its own, the partitions at once.
    async with asyncio.TaskGroup() as group:
        for records in partitions:
            group.create_task(_admit_in_order(runtime, reader, records))


async def _admit_in_order(runtime: Runtime, reader: Reader, records: list[Any]) -> None:
    # All in one transaction; if one command is refused or at fault, each on its own, as the reader judges it.
    if await reader.run(partial(admission.record_export_commands, runtime, records)):
        return
    for record in records:
        await reader.each(record, partial(admission.record_export_command, runtime))
