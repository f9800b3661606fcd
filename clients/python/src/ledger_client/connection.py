"""How a party reaches the ledger's Kafka: its own SASL/SCRAM login, and the topic names (with the deployment's
namespace, if it has one)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ledger_client.contract import topics


@dataclass(frozen=True)
class KafkaLogin:
    """A principal's login to the ledger's brokers (``licensectl kafka grant NAME --role ...`` makes one)."""

    bootstrap_servers: str
    username: str
    password: str
    mechanism: str = "SCRAM-SHA-512"
    tls: bool = False

    @classmethod
    def from_env(cls) -> KafkaLogin:
        """From ``LEDGER_KAFKA_BOOTSTRAP``, ``LEDGER_KAFKA_USERNAME``, ``LEDGER_KAFKA_PASSWORD`` (and
        ``LEDGER_KAFKA_TLS=1`` for a cluster behind TLS)."""
        return cls(
            bootstrap_servers=os.environ["LEDGER_KAFKA_BOOTSTRAP"],
            username=os.environ["LEDGER_KAFKA_USERNAME"],
            password=os.environ["LEDGER_KAFKA_PASSWORD"],
            tls=os.environ.get("LEDGER_KAFKA_TLS", "") in {"1", "true"},
        )

    def options(self) -> dict[str, Any]:
        """The aiokafka client options for this login."""
        return {
            "bootstrap_servers": self.bootstrap_servers,
            # aiokafka does not refresh its view of the cluster when a consumer's position lookup is refused by a
            # broker no longer leading the partition: refreshed every 10 s, not every 5 min, a subscriber whose
            # partition's leader moved starts reading within seconds.
            "metadata_max_age_ms": 10_000,
            "security_protocol": "SASL_SSL" if self.tls else "SASL_PLAINTEXT",
            "sasl_mechanism": self.mechanism,
            "sasl_plain_username": self.username,
            "sasl_plain_password": self.password,
        }


@dataclass(frozen=True)
class Topics:
    """The ledger's topic names under a deployment's namespace (``LEDGER_TOPIC_NAMESPACE``; none by default)."""

    namespace: str = ""

    @classmethod
    def from_env(cls) -> Topics:
        return cls(os.environ.get("LEDGER_TOPIC_NAMESPACE", ""))

    def name(self, base: str) -> str:
        return f"{self.namespace}.{base}" if self.namespace else base

    @property
    def intake_applications(self) -> str:
        return self.name(topics.INTAKE_APPLICATIONS)

    @property
    def intake_exports(self) -> str:
        return self.name(topics.INTAKE_EXPORTS)

    @property
    def license_changes(self) -> str:
        return self.name(topics.LICENSE_CHANGES)
