"""The applications service: takes applications over HTTP and from agency backends' intake topic."""

from __future__ import annotations

from fastapi import FastAPI
from pydantic_settings import SettingsConfigDict

from services.applications import lifecycle, submitting
from shared.platform.service import create_service
from shared.platform.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="APPLICATIONS_", extra="ignore", populate_by_name=True)
    port: int = 8001


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    app, runtime = create_service(
        "applications",
        settings,
        title="Export license applications",
        description="Takes license applications, validates them and appends ApplicationSubmitted; "
        "withdrawals and resubmissions after an officer's return.",
    )
    app.include_router(submitting.router)
    app.include_router(lifecycle.router)
    submitting.follow_intake(runtime)
    lifecycle.follow_cases(runtime)
    return app
