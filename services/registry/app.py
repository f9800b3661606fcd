"""The registry service: the license ledger, its queries, and customs' exports against licenses."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date, datetime
from decimal import Decimal
from functools import partial
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, FastAPI, Path, Query
from faststream import AckPolicy
from faststream.kafka.annotations import KafkaMessage
from pydantic import AwareDatetime, BaseModel
from pydantic_settings import SettingsConfigDict

from services.registry import admission, checkpoints, seal, store
from services.registry.guard import LogGuard
from services.registry.projector import Projector, relay_forever, run_forever
from shared.access import Principal, require
from shared.events import (
    VIN,
    ExportDeclaration,
    LicenseState,
    Reason,
)
from shared.fold import LicenseEntry
from shared.http import ErrorBody
from shared.intake import (
    keep_batch_bodies,
    parse_record_batch,
    records_by_partition,
)
from shared.metrics import stored_positions
from shared.reading import Reader
from shared.refusal import Refusal
from shared.service import Runtime, create_service
from shared.settings import ServiceSettings

PRODUCER = "registry"
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody}}
# Auditors read every route (shared.access.permit); a submitter sees its own agency's applications only.
READER = Annotated[Principal, Depends(require("submitter", "officer", "admin"))]
LICENSES = [Depends(require("customs", "officer", "admin"))]
CUSTOMS = [Depends(require("customs"))]
MAX_OFFSET = 2**63 - 1  # a Kafka offset is a signed 64-bit integer; a larger one failed the query with a 500


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="REGISTRY_", extra="ignore", populate_by_name=True)
    port: int = 8003
    batch_size: int = 2000
    intake_batch_size: int = 500  # customs' RecordExport commands read together (each admitted in its order)
    # Signed checkpoints (services/registry/checkpoints.py): every so many seconds, or sooner after so many batches.
    checkpoint_interval_seconds: float = 60.0
    checkpoint_every_batches: int = 1000
    # The signing key of events and checkpoints (shared/signing.py); the registry's own key directory.
    key_dir: str = "~/.local/state/license-registry"


class ApplicationView(BaseModel):
    application_id: uuid.UUID
    status: str
    applicant_code: str
    destination_country: str
    quantity: int
    reasons: list[Reason]
    license_number: str | None
    submitted_at: datetime
    decided_at: datetime | None


class LicenseView(BaseModel):
    license_number: str
    status: str
    applicant_code: str
    quantity: int
    balance: int
    declarations_used: int
    valid_from: date
    valid_to: date
    port_of_exit: str
    destination_country: str
    batch_mode: str


class LicensePage(BaseModel):
    items: list[LicenseView]
    next_after: str | None = None


class LicenseVersion(BaseModel):
    partition: int
    offset: int
    state: LicenseState


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


class PreCheck(BaseModel):
    """Whether the ledger would accept the declaration if it were recorded now, and if not, why."""

    would_pass: bool
    reason: Reason | None = None


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    app, runtime = create_service(
        "registry",
        settings,
        title="Export license registry",
        description="The license ledger folded from the case stream; admits customs' exports against licenses.",
    )
    _add_projector(runtime, settings)
    _add_queries(app, runtime)
    _add_exports(app, runtime, settings.intake_batch_size)
    return app


def _add_projector(runtime: Runtime, settings: Settings) -> None:
    changes = runtime.broker.publisher(
        settings.topics.license_changes,
        title="license-changes",
        schema=LicenseState,
        description="Each license's state after each ledger commit; compacted, keyed by license number.",
    )

    async def publish(license_number: str, state: bytes) -> asyncio.Future[Any]:
        headers = {"content-type": "application/json"}
        return await changes.publish(state, key=license_number.encode(), headers=headers, no_confirm=True)

    async def stored() -> dict[int, int]:
        return await store.stored_offsets(runtime.pool, settings.topics.cases)

    checkpoints_topic = runtime.broker.publisher(
        settings.topics.checkpoints,
        title="checkpoints",
        schema=checkpoints.SignedCheckpoint,
        description="Signed checkpoints: each partition's hash chain head and offset, and the ledger checksum there.",
    )

    async def publish_checkpoint(body: bytes) -> None:
        await checkpoints_topic.publish(body, key=b"registry", headers={"content-type": "application/json"})

    runtime.metrics.watch(
        settings.topics.group("registry"),
        stored_positions(settings.kafka, settings.topics.cases, stored),
    )

    async def start(rt: Runtime) -> None:
        guard = LogGuard(rt.settings.kafka, rt.settings.topics.cases, rt.pool)
        await guard.start()
        rt.on_stop.append(lambda _: guard.stop())
        checkpointer = checkpoints.Checkpointer(
            pool=rt.pool,
            topic=rt.settings.topics.cases,
            publish=publish_checkpoint,
            key=rt.signing_key,
            instance=settings.instance_id or checkpoints.default_instance(),
            interval=settings.checkpoint_interval_seconds,
            every_batches=settings.checkpoint_every_batches,
        )

        def applied(events: int) -> None:
            rt.metrics.events_applied.inc(events)
            checkpointer.batch_applied()

        projector = Projector(
            kafka=rt.settings.kafka,
            topic=rt.settings.topics.cases,
            pool=rt.pool,
            dead_letter=rt.dead_letter,
            group_id=rt.settings.topics.group("registry"),
            instance_id=settings.instance_id,
            max_records=settings.batch_size,
            publish=publish,
            on_applied=applied,
            reader=rt.reader("projector"),
            trust=rt.trust,
            guard=guard,
            seal_key=seal.key_of(rt.signing_key),
            altered=lambda: checkpointer.altered,
        )
        rt.checks["ledger"] = lambda: projector.failure or checkpointer.altered or "ok"
        rt.run_in_background(run_forever(projector, rt.reader("projector")), name="projector")
        rt.run_in_background(relay_forever(rt.pool, publish, rt.reader("outbox-relay")), name="outbox-relay")
        rt.run_in_background(checkpointer.run(), name="checkpoints")

    runtime.on_start.append(start)


def _add_queries(app: FastAPI, runtime: Runtime) -> None:
    @app.get("/applications/{application_id}", response_model=ApplicationView, tags=["queries"], responses=NOT_FOUND)
    async def get_application(application_id: uuid.UUID, principal: READER) -> ApplicationView:
        """An application's status, the reasons of a rejection, and its license once granted."""
        entry = await store.application(runtime.pool, application_id)
        if entry is None:
            raise Refusal(404, "unknown_application", f"no application {application_id} in the ledger (yet)")
        principal.ensure_agency(entry.agency_code, unless=("officer", "auditor", "admin"))
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

    @app.get(
        "/licenses/{license_number}",
        response_model=LicenseView,
        tags=["queries"],
        responses=NOT_FOUND,
        dependencies=LICENSES,
    )
    async def get_license(
        license_number: str,
        as_of: Annotated[AwareDatetime | None, Query(description="the license as it stood at this instant")] = None,
        as_of_offset: Annotated[
            int | None, Query(ge=0, le=MAX_OFFSET, description="as it stood before this offset of its case's partition")
        ] = None,
    ) -> LicenseView:
        """A license's status, balance, declarations used, validity, port and destination; now or as of."""
        if as_of is not None and as_of_offset is not None:
            raise Refusal(422, "conflicting_parameters", "give as_of or as_of_offset, not both")
        if as_of is None and as_of_offset is None:
            entry = await store.license_(runtime.pool, license_number)
            if entry is None:
                raise Refusal(404, "unknown_license", f"no license {license_number}")
            return _license_view(entry)
        state = await store.license_as_of(runtime.pool, license_number, at=as_of, before_offset=as_of_offset)
        if state is None:
            raise Refusal(404, "unknown_license", f"license {license_number} did not exist at that point")
        return LicenseView.model_validate(state.model_dump())

    @app.get("/licenses", response_model=LicensePage, tags=["queries"], dependencies=LICENSES)
    async def list_licenses(
        applicant: str | None = None,
        status: str | None = None,
        destination: str | None = None,
        valid_on: date | None = None,
        as_of: AwareDatetime | None = None,
        after: Annotated[str | None, Query(description="the last license number of the previous page")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> LicensePage:
        """Licenses by applicant, status, destination and validity, in license-number order, now or as of."""
        where = store.LicenseFilter(
            applicant_code=applicant, status=status, destination_country=destination, valid_on=valid_on
        )
        found = await store.licenses(runtime.pool, where, as_of=as_of, after=after, limit=limit)
        items = [LicenseView.model_validate(s.model_dump()) for s in found]
        return LicensePage(items=items, next_after=items[-1].license_number if len(items) == limit else None)

    @app.get(
        "/licenses/{license_number}/history",
        response_model=list[LicenseVersion],
        tags=["queries"],
        responses=NOT_FOUND,
        dependencies=LICENSES,
    )
    async def license_history(license_number: str) -> list[LicenseVersion]:
        """Every state of the license in stream order, with the event and stream position that made it."""
        versions = await store.license_history(runtime.pool, license_number)
        if not versions:
            raise Refusal(404, "unknown_license", f"no license {license_number}")
        return [LicenseVersion(partition=p, offset=o, state=s) for p, o, s in versions]

    @app.get(
        "/exports/{declaration_number}",
        response_model=list[ExportView],
        tags=["exports"],
        responses=NOT_FOUND,
        dependencies=CUSTOMS,
    )
    async def get_export(declaration_number: str) -> list[ExportView]:
        """How the ledger judged a declaration: accepted, or refused with its reason."""
        rows = await store.exports_of_declaration(runtime.pool, declaration_number)
        if not rows:
            raise Refusal(404, "unknown_declaration", f"declaration {declaration_number} is not in the ledger (yet)")
        return [_export_view(r) for r in rows]

    @app.get("/vins/{vin}/exports", response_model=list[ExportView], tags=["exports"], dependencies=CUSTOMS)
    async def exports_of_vin(vin: Annotated[VIN, Path(description="a 17-character VIN")]) -> list[ExportView]:
        """Every export that declared this VIN, accepted or refused, in the order the ledger recorded them."""
        return [_export_view(r) for r in await store.exports_of_vin(runtime.pool, vin)]


def _export_view(r: asyncpg.Record) -> ExportView:
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


def _license_view(entry: LicenseEntry) -> LicenseView:
    return LicenseView(
        license_number=entry.license_number,
        status=entry.status,
        applicant_code=entry.applicant_code,
        quantity=entry.quantity,
        balance=entry.balance,
        declarations_used=entry.declarations_used,
        valid_from=entry.valid_from,
        valid_to=entry.valid_to,
        port_of_exit=entry.port_of_exit,
        destination_country=entry.destination_country,
        batch_mode=entry.batch_mode,
    )


def _add_exports(app: FastAPI, runtime: Runtime, intake_batch_size: int) -> None:
    def ledger_problem() -> str | None:
        """Why the ledger cannot be trusted to follow its log now (its own health checks), or None."""
        failing = [f"{name}: {state}" for name, check in runtime.checks.items() if (state := check()) != "ok"]
        return "the ledger does not follow its log now: " + "; ".join(failing) if failing else None

    @app.post("/exports", status_code=202, response_model=ExportAccepted, tags=["exports"], dependencies=CUSTOMS)
    async def record_export(declaration: ExportDeclaration) -> ExportAccepted:
        """Record an export declaration against a license (customs). Resending it changes nothing."""
        event_id = await admission.admit(runtime, declaration, ledger_problem)
        return ExportAccepted(
            declaration_number=declaration.declaration_number,
            license_number=declaration.license_number,
            event_id=event_id,
            status_url=f"/exports/{declaration.declaration_number}",
        )

    @app.post("/exports/check", response_model=PreCheck, tags=["exports"], dependencies=CUSTOMS)
    async def check_export(declaration: ExportDeclaration) -> PreCheck:
        """Customs' pre-check: would this declaration pass now? Judged by the ledger; nothing is recorded."""
        if (problem := ledger_problem()) is not None:
            raise Refusal(503, "ledger_unavailable", problem, headers={"Retry-After": "30"})
        reason = await admission.would_refuse(runtime.pool, declaration)
        return PreCheck(would_pass=reason is None, reason=reason)

    @runtime.broker.subscriber(
        runtime.settings.topics.intake_exports,
        group_id=runtime.consumes(
            runtime.settings.topics.group("registry-intake"), runtime.settings.topics.intake_exports
        ),
        group_instance_id=runtime.settings.instance_id,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        batch=True,
        max_records=intake_batch_size,
        title="intake-exports",
        description="RecordExport commands from customs backends, signed by their sender (docs/signing.md).",
        parser=parse_record_batch,  # a record with a binary or null header is read, not dropped with its batch
        decoder=keep_batch_bodies,  # each body is read by decode_command alone, whatever it holds
    )
    async def on_record_exports(message: KafkaMessage) -> None:
        # Each partition's commands are admitted in their order (customs key them by license), the partitions
        # at once. The batch is committed when this returns: every verdict in it is in the log by then.
        reader = runtime.reader("intake-exports")
        async with asyncio.TaskGroup() as group:
            for records in records_by_partition(message):
                group.create_task(admit_in_order(reader, records))

    async def admit_in_order(reader: Reader, records: list[Any]) -> None:
        for record in records:
            await reader.each(record, partial(admission.record_export_command, runtime, ledger_problem))
