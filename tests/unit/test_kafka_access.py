"""A client's Kafka login, and the table of what each principal may do, as pure data."""

from __future__ import annotations

import pytest
from confluent_kafka.admin import AclOperation, ResourcePatternType, ResourceType
from faststream.security import SASLScram512

from shared.contract.topics import CASES, Topics
from shared.platform.kafka_access import GRANTS, METADATA_MAX_AGE_MS, SERVICES, KafkaConnection, Role
from shared.platform.kafka_admin import acl_bindings
from shared.platform.settings import ServiceSettings


def test_without_a_username_a_client_connects_without_a_login(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAFKA_USERNAME", raising=False)
    connection = KafkaConnection(bootstrap_servers="b:9092")
    assert connection.options() == {"bootstrap_servers": "b:9092", "metadata_max_age_ms": METADATA_MAX_AGE_MS}
    assert connection.security() is None
    assert connection.librdkafka() == {"bootstrap.servers": "b:9092"}


def test_a_login_becomes_sasl_scram_for_every_kind_of_client() -> None:
    connection = KafkaConnection(bootstrap_servers="b:9092").login("review", "s3cret")
    options = connection.options()
    assert (options["security_protocol"], options["sasl_mechanism"]) == ("SASL_PLAINTEXT", "SCRAM-SHA-512")
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("review", "s3cret")
    security = connection.security()
    assert isinstance(security, SASLScram512) and security.username == "review" and not security.use_ssl
    assert connection.librdkafka()["sasl.password"] == "s3cret"
    assert "s3cret" not in repr(connection)


def test_tls_turns_the_protocol_to_sasl_ssl() -> None:
    connection = KafkaConnection(bootstrap_servers="b:9093", use_tls=True).login("registry", "pw")
    assert connection.options()["security_protocol"] == "SASL_SSL"
    assert connection.options()["ssl_context"] is not None
    assert connection.librdkafka()["security.protocol"] == "SASL_SSL"


def test_a_services_own_login_wins_over_the_shared_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_USERNAME", "admin")
    monkeypatch.setenv("KAFKA_PASSWORD", "admin-password")
    assert ServiceSettings().kafka.username == "admin"
    own = ServiceSettings(kafka_username="review", kafka_password="review-password").kafka
    assert own.username == "review"
    assert own.password is not None and own.password.get_secret_value() == "review-password"


def test_only_our_services_may_write_the_case_stream() -> None:
    writers = {role for role, grant in GRANTS.items() if CASES in grant.writes}
    assert writers == set(SERVICES)


def test_customs_gets_one_acl_write_on_its_intake_topic_under_the_namespace() -> None:
    [binding] = acl_bindings("t1-customs", Role.CUSTOMS, Topics("t1"))
    assert (binding.restype, binding.name, binding.resource_pattern_type) == (
        ResourceType.TOPIC,
        "t1.licensing.intake.exports",
        ResourcePatternType.LITERAL,
    )
    assert (binding.principal, binding.operation) == ("User:t1-customs", AclOperation.WRITE)


def test_a_service_joins_groups_named_after_it_and_a_subscriber_groups_named_after_itself() -> None:
    def groups(principal: str, role: Role) -> list[str]:
        bindings = acl_bindings(principal, role, Topics(""))
        return [b.name for b in bindings if b.restype == ResourceType.GROUP]

    assert groups("registry", Role.REGISTRY) == ["registry"]
    assert groups("statistics", Role.SUBSCRIBER) == ["statistics"]
    assert groups("agency-44", Role.AGENCY) == []  # writes only: no group to join


def test_a_cluster_of_brokers_is_handed_to_faststream_one_by_one() -> None:
    connection = KafkaConnection(bootstrap_servers="127.0.0.1:19092, 127.0.0.1:19093,127.0.0.1:19094")
    assert connection.servers == ["127.0.0.1:19092", "127.0.0.1:19093", "127.0.0.1:19094"]
