"""Settings, read from the environment once at start-up.

``KAFKA_BOOTSTRAP_SERVERS``, ``DATABASE_URL`` and ``LEDGER_TOPIC_NAMESPACE`` are shared by every
service, so that one pair of variables points the whole system at an existing broker and database.
Everything else a service reads carries its own prefix (``APPLICATIONS_``, ``REVIEW_``, ``REGISTRY_``).
"""

from __future__ import annotations

from functools import cached_property
from typing import Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.contract.topics import Topics
from shared.platform.kafka_access import DEFAULT_BOOTSTRAP, KafkaConnection
from shared.platform.trust import root_keys

DEFAULT_DATABASE_URL = "postgresql://ledger:ledger@127.0.0.1:54329/ledger"


class ServiceSettings(BaseSettings):
    """What every service needs; subclasses add their own fields under their own prefix."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    kafka_bootstrap_servers: str = Field(
        DEFAULT_BOOTSTRAP, validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "kafka_bootstrap_servers")
    )
    # Out of the settings' repr: it holds the database password, and a traceback or a log line may print it.
    database_url: str = Field(
        DEFAULT_DATABASE_URL, validation_alias=AliasChoices("DATABASE_URL", "database_url"), repr=False
    )
    topic_namespace: str = Field("", validation_alias=AliasChoices("LEDGER_TOPIC_NAMESPACE", "topic_namespace"))
    topic_replication_factor: int = Field(
        1, validation_alias=AliasChoices("LEDGER_TOPIC_REPLICATION_FACTOR", "topic_replication_factor")
    )
    # How long a request waits for Kafka to acknowledge its event. An idempotent producer retries a write the
    # cluster cannot take (fewer in-sync replicas than min.insync.replicas, no leader) for as long as that
    # lasts; the request answers 503 broker_unavailable after this many seconds instead of hanging.
    append_timeout_seconds: float = Field(15.0, gt=0)
    host: str = "127.0.0.1"
    port: int = 8000
    max_message_bytes: int = 256 * 1024
    # Per HTTP client (shared/platform/limits.py): a larger body is refused with 413, a faster client with 429.
    max_request_bytes: int = Field(256 * 1024, ge=1)
    rate_limit_per_second: float = Field(200.0, ge=0, description="0 turns the rate limit off")
    rate_limit_burst: int = Field(400, ge=1)
    # Per credential (API key or JWT subject), counted once the credential is checked: 429 past it.
    rate_limit_per_credential_per_second: float = Field(200.0, ge=0, description="0 turns the limit off")
    rate_limit_per_credential_burst: int = Field(400, ge=1)
    # A stable id per instance (a StatefulSet pod name, say) makes its consumers static group members:
    # restarted, they get their partitions back at once instead of after the session timeout.
    instance_id: str | None = None
    log_level: str = "INFO"
    # JSON lines for machines; text for a person at a terminal ("auto": text when stderr is a terminal).
    log_format: Literal["auto", "json", "text"] = "auto"
    # /health/ready answers 503 while the service's consumer groups are further behind their topics than this.
    ready_max_lag: int = Field(10_000, ge=0)
    # How often a topic reader whose consume loop has ended is started again (``Runtime.keep_readers_consuming``).
    readers_watch_seconds: float = Field(5.0, gt=0)
    # How long records may wait at a reader's position, none of its handler calls running, before it is started
    # again with a new consumer (``shared/platform/stalls.py``).
    readers_stall_seconds: float = Field(30.0, gt=0)
    # How long a service trusts what it read of a key: a revoked key stops working within this time.
    access_cache_seconds: float = Field(5.0, ge=0)
    # JWTs are accepted from one issuer, the same for every service: its iss, its public key (PEM), the aud.
    jwt_issuer: str | None = Field(None, validation_alias=AliasChoices("LEDGER_JWT_ISSUER", "jwt_issuer"))
    jwt_public_key: str | None = Field(
        None, validation_alias=AliasChoices("LEDGER_JWT_PUBLIC_KEY", "jwt_public_key"), repr=False
    )
    # The key this service signs its events with (shared/platform/signing.py): base64 of the raw Ed25519 key, or a
    # file holding that (<SERVICE>_SIGNING_KEY, <SERVICE>_SIGNING_KEY_FILE); else one is made once in key_dir.
    signing_key: SecretStr | None = None
    signing_key_file: str | None = None
    key_dir: str = "~/.local/state/license-ledger"
    # The operators' root keys, pinned: whose signed statements on the trust topic say who may sign what
    # (shared/platform/trust.py). Base64 of raw Ed25519 public keys, or files holding one, separated by commas.
    trust_root_keys: str | None = Field(
        None, validation_alias=AliasChoices("LEDGER_TRUST_ROOT_KEYS", "trust_root_keys")
    )
    jwt_audience: str = Field(
        "export-license-ledger", validation_alias=AliasChoices("LEDGER_JWT_AUDIENCE", "jwt_audience")
    )

    # The service's own Kafka login (<SERVICE>_KAFKA_USERNAME, <SERVICE>_KAFKA_PASSWORD, made by
    # `licensectl kafka setup`); without one, the shared KAFKA_USERNAME/KAFKA_PASSWORD, if any.
    kafka_username: str | None = None
    kafka_password: SecretStr | None = Field(None, repr=False)

    @cached_property
    def trust_roots(self) -> dict[str, Ed25519PublicKey]:
        """The pinned root keys by key id (none: no statement is trusted, so no signature is either)."""
        return root_keys(self.trust_root_keys)

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_namespace)

    @cached_property
    def kafka(self) -> KafkaConnection:
        """This service's broker and login, for every Kafka client it makes."""
        shared = KafkaConnection(bootstrap_servers=self.kafka_bootstrap_servers)
        if self.kafka_username is None:
            return shared
        return shared.login(self.kafka_username, self.kafka_password)
