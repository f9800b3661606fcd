"""The registry service: the license ledger, its queries, and customs' exports against licenses."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI
from pydantic_settings import SettingsConfigDict

from services.registry import checkpoints, exports, refusals, seal, statistics, store
from services.registry.evidence import evidence, keep_case_records
from services.registry.guard import LogGuard
from services.registry.observed import RegistryMetrics
from services.registry.projector import Projector, relay_forever, run_forever
from services.registry.queries import queries
from shared.contract.checkpoints import SignedCheckpoint
from shared.contract.events import LicenseState
from shared.platform.metrics import stored_positions
from shared.platform.service import Runtime, create_service
from shared.platform.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="REGISTRY_", extra="ignore", populate_by_name=True)
    port: int = 8003
    batch_size: int = 2000
    intake_batch_size: int = 500  # customs' RecordExport commands read together (each admitted in its order)
    # Signed checkpoints (services/registry/checkpoints.py): every so many seconds, or sooner after so many batches.
    checkpoint_interval_seconds: float = 60.0
    checkpoint_every_batches: int = 1000
    # The signing key of events and checkpoints (shared/platform/signing.py); the registry's own key directory.
    key_dir: str = "~/.local/state/license-registry"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    app, runtime = create_service(
        "registry",
        settings,
        title="Export license registry",
        description="The license ledger folded from the case stream; admits customs' exports against licenses.",
    )
    app.include_router(queries)
    app.include_router(exports.exports)
    app.include_router(refusals.refusal_routes)
    app.include_router(statistics.statistics)
    app.include_router(evidence)
    keep_case_records(app, runtime)
    exports.follow_intake(runtime, settings.intake_batch_size)
    refusals.follow_dead_letters(runtime, settings.intake_batch_size)
    _add_projector(runtime, settings)
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
        schema=SignedCheckpoint,
        description="Signed checkpoints: each partition's hash chain head and offset, and the ledger checksum there.",
    )

    async def publish_checkpoint(body: bytes) -> None:
        await checkpoints_topic.publish(body, key=b"registry", headers={"content-type": "application/json"})

    runtime.reads[settings.topics.cases] = (
        "Folds the case stream into the ledger, each partition's batch in one transaction with its offset."
    )
    runtime.metrics.watch(
        settings.topics.group("registry"),
        stored_positions(settings.topics.cases, stored),
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

        observed = RegistryMetrics(rt.metrics, lambda: rt.pool, lambda: checkpointer.checked_at)

        def applied(events: int, seconds: float) -> None:
            rt.metrics.events_applied.inc(events)
            observed.fold_seconds.observe(seconds)
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
