"""The review service: decides each submitted application against the rules and reference data."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from fastapi import FastAPI
from faststream import AckPolicy
from faststream.kafka.annotations import KafkaMessage
from pydantic import ValidationError
from pydantic_settings import SettingsConfigDict

from services.review import reference
from services.review.decisions import decide_once
from services.review.rules import decide
from shared.events import ApplicationSubmitted, Envelope, Reason
from shared.intake import describe
from shared.service import Runtime, create_service
from shared.settings import ServiceSettings

CHINA = ZoneInfo("Asia/Shanghai")  # dates of the regulation (validity, working days) are China's


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="REVIEW_", extra="ignore", populate_by_name=True)
    port: int = 8002
    reference_version: str = reference.CURRENT_VERSION


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    app, runtime = create_service(
        "review",
        settings,
        title="Export license review",
        description="Applies the eligibility rules to each submitted application; grants or rejects it.",
    )
    ref = reference.load(settings.reference_version)

    @app.get("/reference", tags=["reference"])
    async def reference_version() -> dict[str, object]:
        """Which reference data the rules decide against."""
        return {"version": ref.version, "enterprises": len(ref.enterprises), "models": len(ref.models)}

    @runtime.broker.subscriber(
        settings.topics.cases,
        group_id=settings.topics.group("review"),
        group_instance_id=settings.instance_id,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        title="cases-review",
        description="Review reads ApplicationSubmitted from the case stream and ignores the rest.",
    )
    async def on_case_event(message: KafkaMessage) -> None:
        envelope = await _read(runtime, message)
        if envelope is None or not isinstance(envelope.payload, ApplicationSubmitted):
            return
        today = datetime.now(CHINA).date()
        submitted = envelope.occurred_at.astimezone(CHINA).date()
        decision = decide(envelope.payload.application, ref, today, submitted=submitted)
        await runtime.append(await decide_once(runtime.pool, envelope, decision, today))

    return app


async def _read(runtime: Runtime, message: KafkaMessage) -> Envelope | None:
    try:
        return Envelope.from_bytes(message.body)
    except ValidationError as exc:
        reason = Reason(code="unreadable_event", message=describe(exc))
        await runtime.dead_letter(message.raw_message, reason)
        return None
