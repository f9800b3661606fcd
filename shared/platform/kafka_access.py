"""How a client reaches and logs in to Kafka, and what each kind of principal may do there.

The broker the project provisions (deploy/local/kafka.sh, docker-compose.yml) accepts only SASL/SCRAM
logins and denies whatever no ACL allows. ``KafkaConnection`` is one client's address and login, read
from ``KAFKA_*`` variables; every Kafka client in the code is built from one, so none can forget its
login. ``GRANTS`` is the one table of who may read and write which topic: ``licensectl kafka`` turns it
into SCRAM users and ACLs (shared/platform/kafka_admin.py), and docs/kafka-access.md explains it.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

from aiokafka import AIOKafkaConsumer
from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.contract.topics import (
    CASES,
    CHECKPOINTS,
    DEAD_LETTER,
    INTAKE_APPLICATIONS,
    INTAKE_EXPORTS,
    LICENSE_CHANGES,
    TRUST,
)
from shared.platform.cancelling import cancelled_within

if TYPE_CHECKING:
    from faststream.security import BaseSecurity

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"

Mechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]


METADATA_MAX_AGE_MS = 10_000
"""How old a client's view of the cluster (which broker leads each partition) may grow before it asks again.
aiokafka asks again when a fetch or a send is refused by a broker that no longer leads the partition, but not
when the lookup of a consumer's starting position is: it asks the same broker again and again until its
periodic refresh, five minutes by default. A reader assigned a partition while leadership moved (a broker
paused, then back) read nothing for those minutes, without an error it could act on; refreshed every ten
seconds, it starts within about that."""


class KafkaConnection(BaseSettings):
    """One client's broker address and login; without a username the client connects unauthenticated."""

    model_config = SettingsConfigDict(env_prefix="KAFKA_", extra="ignore", populate_by_name=True, frozen=True)

    bootstrap_servers: str = Field(
        DEFAULT_BOOTSTRAP, validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "bootstrap_servers")
    )
    username: str | None = None
    password: SecretStr | None = Field(None, repr=False)
    sasl_mechanism: Mechanism = "SCRAM-SHA-512"
    # TLS on top of SASL (a managed cluster); the provisioned broker listens on localhost without it.
    use_tls: bool = False

    def login(self, username: str | None, password: str | SecretStr | None) -> KafkaConnection:
        """The same broker, logged in as someone else (a service as its own principal)."""
        secret = SecretStr(password) if isinstance(password, str) else password
        return self.model_copy(update={"username": username, "password": secret})

    @property
    def servers(self) -> list[str]:
        """The bootstrap servers one by one: ``KAFKA_BOOTSTRAP_SERVERS`` lists a cluster's brokers separated by
        commas, and faststream takes a string as one single address."""
        return [server.strip() for server in self.bootstrap_servers.split(",") if server.strip()]

    @property
    def authenticated(self) -> bool:
        return self.username is not None

    def _secret(self) -> str:
        return self.password.get_secret_value() if self.password is not None else ""

    def options(self) -> dict[str, Any]:
        """Keyword arguments for an aiokafka producer, consumer or admin client."""
        # aiokafka splits a comma-separated list of servers itself
        return {
            "bootstrap_servers": self.bootstrap_servers,
            "metadata_max_age_ms": METADATA_MAX_AGE_MS,
            **self.security_options(),
        }

    def security_options(self) -> dict[str, Any]:
        """The login alone, as aiokafka takes it (none without a username): what a raw connection to one
        broker needs too."""
        if not self.authenticated:
            return {}
        return {
            "security_protocol": "SASL_SSL" if self.use_tls else "SASL_PLAINTEXT",
            "ssl_context": ssl.create_default_context() if self.use_tls else None,
            "sasl_mechanism": self.sasl_mechanism,
            "sasl_plain_username": self.username,
            "sasl_plain_password": self._secret(),
        }

    def environment(self) -> dict[str, str]:
        """The same broker and login as ``KAFKA_*`` variables, for a process this one starts."""
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "KAFKA_SASL_MECHANISM": self.sasl_mechanism,
            "KAFKA_USE_TLS": str(self.use_tls).lower(),
        }
        if self.username is not None:
            env["KAFKA_USERNAME"] = self.username
        if self.password is not None:
            env["KAFKA_PASSWORD"] = self._secret()
        return env

    def security(self) -> BaseSecurity | None:
        """The same login for a faststream ``KafkaBroker``."""
        # Imported here: the fold processes and licensectl use aiokafka alone, and faststream's import is slow.
        from faststream.security import SASLPlaintext, SASLScram256, SASLScram512

        if self.username is None:
            return None
        kinds = {"SCRAM-SHA-512": SASLScram512, "SCRAM-SHA-256": SASLScram256, "PLAIN": SASLPlaintext}
        return kinds[self.sasl_mechanism](self.username, self._secret(), use_ssl=self.use_tls)

    def librdkafka(self) -> dict[str, str]:
        """The same login for confluent-kafka's admin client (ACLs and SCRAM users)."""
        config = {"bootstrap.servers": self.bootstrap_servers}
        if self.username is not None:
            config |= {
                "security.protocol": "SASL_SSL" if self.use_tls else "SASL_PLAINTEXT",
                "sasl.mechanism": self.sasl_mechanism,
                "sasl.username": self.username,
                "sasl.password": self._secret(),
            }
        return config


class Role(StrEnum):
    """A kind of principal; each principal has exactly one."""

    APPLICATIONS = "applications"
    REVIEW = "review"
    REGISTRY = "registry"
    AGENCY = "agency"
    CUSTOMS = "customs"
    AUDITOR = "auditor"
    SUBSCRIBER = "subscriber"


@dataclass(frozen=True)
class Grant:
    """What a role may do: the topics it reads and writes, and the consumer groups it may join.

    Topic names are base names (shared/contract/topics.py), put under the namespace in force when applied. A
    service's groups are its own name as a prefix (``review`` covers ``review``); an outside principal
    that reads gets groups prefixed with its own principal name, so two subscribers cannot share one.
    """

    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    service: bool = False


# Only our three services write licensing.cases; each outside publisher writes its own intake topic.
GRANTS: dict[Role, Grant] = {
    Role.APPLICATIONS: Grant(reads=(INTAKE_APPLICATIONS, CASES, TRUST), writes=(CASES, DEAD_LETTER), service=True),
    Role.REVIEW: Grant(reads=(CASES, TRUST), writes=(CASES, DEAD_LETTER), service=True),
    Role.REGISTRY: Grant(
        reads=(CASES, INTAKE_EXPORTS, CHECKPOINTS, TRUST, DEAD_LETTER),  # the dead letters: senders' refusals
        writes=(CASES, LICENSE_CHANGES, CHECKPOINTS, DEAD_LETTER),
        service=True,
    ),
    Role.AGENCY: Grant(writes=(INTAKE_APPLICATIONS,)),
    Role.CUSTOMS: Grant(writes=(INTAKE_EXPORTS,)),
    # Auditors replay the whole history offline (licensectl replay, audit verify): they read, never write.
    Role.AUDITOR: Grant(reads=(CASES, CHECKPOINTS, LICENSE_CHANGES, DEAD_LETTER, TRUST)),
    Role.SUBSCRIBER: Grant(reads=(LICENSE_CHANGES,)),
}

SERVICES: tuple[Role, ...] = (Role.APPLICATIONS, Role.REVIEW, Role.REGISTRY)

log = logging.getLogger(__name__)


async def started_consumer(kafka: KafkaConnection, **options: Any) -> AIOKafkaConsumer:
    """A consumer of ``kafka`` with ``options``, started (logged in); one that fails to start is closed first."""
    consumer = AIOKafkaConsumer(**kafka.options(), **options)
    try:
        await consumer.start()
    except BaseException:
        await stop_consumer(consumer)
        raise
    return consumer


async def stop_consumer(consumer: AIOKafkaConsumer) -> None:
    """Stop ``consumer``. aiokafka's ``stop()`` may raise the CancelledError of a fetch it cancelled itself (seen
    while brokers are down): that one is swallowed, so that it neither hides the error the caller is stopping for
    nor ends the caller's task. A cancellation of the caller's own task still goes through."""
    try:
        await consumer.stop()
    except asyncio.CancelledError as cancelled:
        if cancelled_within(cancelled) is None:
            raise
        log.warning("a Kafka consumer's stop raised the cancellation of its own fetch; it is stopped")
