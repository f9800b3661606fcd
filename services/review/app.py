"""The review service: decides each submitted application against the rules and reference data."""

from __future__ import annotations

from fastapi import FastAPI
from prometheus_client import Gauge
from pydantic_settings import SettingsConfigDict

from services.review import expiry, reference, reviewing
from services.review.officer.api import OfficerDesk
from services.review.officer.api import router as officer_router
from services.review.reference.api import reference_routes
from services.review.reference.store import ReferenceCache
from shared.platform.clock import china_today
from shared.platform.service import Runtime, create_service
from shared.platform.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="REVIEW_", extra="ignore", populate_by_name=True)
    port: int = 8002
    reference_version: str = reference.CURRENT_VERSION
    expiry_interval_seconds: float = 60.0
    batch_size: int = 500  # case events read, decided and committed together


def create_app(settings: Settings | None = None, *, clock: expiry.Clock = china_today) -> FastAPI:
    settings = settings or Settings()
    app, runtime = create_service(
        "review",
        settings,
        title="Export license review",
        description="Applies the eligibility rules to each submitted application; grants or rejects it.",
    )
    references = _add_reference_data(runtime, settings.reference_version)
    app.state.references = references
    runtime.broker.context.set_global("references", references)
    app.state.officer_desk = OfficerDesk(runtime, references, clock)
    app.include_router(reference_routes)
    app.include_router(officer_router)
    reviewing.follow_cases(runtime, settings.batch_size)
    _add_expiry(runtime, settings.expiry_interval_seconds, clock)
    return app


def _add_reference_data(runtime: Runtime, version: str) -> ReferenceCache:
    """Load the configured version into review's tables at start-up (if no instance has yet), and
    decide against what the tables hold."""
    references = ReferenceCache()

    async def start(rt: Runtime) -> None:
        await references.start(rt.pool, version)

    runtime.on_start.append(start)
    return references


def _add_expiry(runtime: Runtime, interval: float, clock: expiry.Clock) -> None:
    """Run the expiry scheduler while the service runs; ``clock`` gives China's date (tests set it)."""

    ran = Gauge(
        "ledger_expiry_last_run_timestamp_seconds",
        "When the expiry scheduler last finished a round (Unix time)",
        registry=runtime.metrics.registry,
    )

    async def start(rt: Runtime) -> None:
        work = expiry.run_forever(rt.pool, rt.append, clock, interval, rt.reader("expiry"), ran)
        rt.run_in_background(work, name="expiry")

    runtime.on_start.append(start)
