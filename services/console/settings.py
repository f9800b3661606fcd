"""The console's settings, each read from the environment (``CONSOLE_...``)."""

from __future__ import annotations

from datetime import date

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where the services answer, and how the console keeps its sessions."""

    model_config = SettingsConfigDict(env_prefix="CONSOLE_", extra="ignore")
    host: str = "127.0.0.1"
    port: int = 8004
    applications_url: str = "http://127.0.0.1:8001"
    review_url: str = "http://127.0.0.1:8002"
    registry_url: str = "http://127.0.0.1:8003"
    # The session cookie is Secure (browsers send it over HTTPS, and to localhost over HTTP); off only behind a
    # proxy that terminates TLS and speaks plain HTTP to a non-local address.
    cookie_secure: bool = True
    session_minutes: int = 480
    # The day the console counts due dates against (rule 12). Unset: today in China. Set for demonstrations and
    # tests that show an overdue case without waiting three working days.
    today: date | None = None
    # The registry's checkpoint public key (``licensectl audit public-key``) that `audit verify` checks checkpoints
    # against; the log is read with the Kafka login in KAFKA_USERNAME / KAFKA_PASSWORD (an auditor's).
    audit_public_key: str | None = None
    log_level: str = "INFO"
