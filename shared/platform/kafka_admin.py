"""Administering the broker: the topics the system needs, and the principals and ACLs of GRANTS.

Topics go through aiokafka; SCRAM users and ACLs through confluent-kafka's admin client, which has
the Kafka APIs for them (aiokafka has neither). Both act as whoever ``connection`` logs in as: on the
provisioned broker that is the ``admin`` super user (deploy/local/kafka.sh credentials).
"""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass
from typing import cast

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_exponential_jitter

from shared.contract.topics import Topics
from shared.platform.kafka_access import GRANTS, KafkaConnection, Role

log = logging.getLogger(__name__)

PRINCIPAL_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
SCRAM_ITERATIONS = 8192
_TIMEOUT_S = 30.0


async def ensure_topics(connection: KafkaConnection, topics: Topics, *, replication_factor: int = 1) -> list[str]:
    """Create each missing topic of ``topics``; return the names it asked for.

    A principal that may not create topics (every one but the admin) gets an authorization error per
    topic in the answer, which is left alone: an operator creates the topics (``licensectl topics``).
    """
    admin = AIOKafkaAdminClient(**connection.options(), client_id="ledger-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(s.name, s.partitions, replication_factor, topic_configs=s.config)
            for s in topics.specs()
            if s.name not in existing
        ]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                log.info("another process created the topics first")
        return [t.name for t in missing]
    finally:
        await admin.close()


async def partition_count(connection: KafkaConnection, topic: str) -> int:
    """How many partitions ``topic`` has (LookupError if there is no such topic)."""
    admin = AIOKafkaAdminClient(**connection.options(), client_id="ledger-admin")
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    found = [d for d in described if d.get("topic") == topic and not d.get("error_code")]
    if not found:
        raise LookupError(f"no topic {topic}")
    return len(found[0]["partitions"])


async def delete_topics(connection: KafkaConnection, topics: Topics) -> None:
    """Delete the topics of ``topics`` that exist (a test namespace, once the test is done)."""
    admin = AIOKafkaAdminClient(**connection.options(), client_id="ledger-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        doomed = [s.name for s in topics.specs() if s.name in existing]
        if doomed:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()


class PrincipalError(ValueError):
    """A principal's name or role that cannot be granted; the message says why."""


@dataclass(frozen=True)
class Permission:
    """One ACL, as the listing shows it."""

    principal: str
    resource: str
    name: str
    pattern: str
    operation: str


def acl_bindings(principal: str, role: Role, topics: Topics) -> list[AclBinding]:
    """The ACLs that let ``principal`` do what ``role`` may, on the topics of ``topics``' namespace."""
    grant = GRANTS[role]
    user = f"User:{principal}"

    def allow(kind: ResourceType, name: str, pattern: ResourcePatternType, operation: AclOperation) -> AclBinding:
        return AclBinding(kind, name, pattern, user, "*", operation, AclPermissionType.ALLOW)

    bindings = [
        allow(ResourceType.TOPIC, topics.name(t), ResourcePatternType.LITERAL, AclOperation.READ) for t in grant.reads
    ]
    bindings += [
        allow(ResourceType.TOPIC, topics.name(t), ResourcePatternType.LITERAL, AclOperation.WRITE) for t in grant.writes
    ]
    if grant.reads:
        # A service joins groups named after it; an outside reader joins groups named after itself.
        prefix = topics.group(role.value if grant.service else principal)
        bindings.append(allow(ResourceType.GROUP, prefix, ResourcePatternType.PREFIXED, AclOperation.READ))
    return bindings


def _admin(connection: KafkaConnection) -> AdminClient:
    # log_level 4: warnings and errors only, not the client's notices on every close.
    config: dict[str, str | int | float | bool] = {**connection.librdkafka(), "log_level": 4}
    return AdminClient(config)


# A filter's "any name / any principal / any host": the stubs type these fields as str, the client takes None.
_ANY = cast(str, None)


def _mechanism(connection: KafkaConnection) -> ScramMechanism:
    if connection.sasl_mechanism == "SCRAM-SHA-256":
        return ScramMechanism.SCRAM_SHA_256
    return ScramMechanism.SCRAM_SHA_512


def new_password() -> str:
    return secrets.token_urlsafe(32)


def _check_name(principal: str) -> None:
    if not PRINCIPAL_NAME.match(principal):
        raise PrincipalError(
            f"principal {principal!r}: use 1-63 of a-z, 0-9, '.', '_', '-', starting with a letter or digit"
        )
    if principal in {"admin", "controller"}:
        raise PrincipalError(f"principal {principal!r} is the broker's own super user")


def _set_password(admin: AdminClient, connection: KafkaConnection, principal: str, password: str) -> None:
    """Create ``principal``'s SCRAM credential, or replace it, with ``password``."""
    info = ScramCredentialInfo(_mechanism(connection), SCRAM_ITERATIONS)
    upsert = UserScramCredentialUpsertion(principal, info, password.encode())
    for future in admin.alter_user_scram_credentials([upsert], request_timeout=_TIMEOUT_S).values():
        future.result()


def grant(connection: KafkaConnection, principal: str, role: Role, topics: Topics, password: str) -> None:
    """Make ``principal`` a SCRAM user with ``password`` and give it the ACLs of ``role``; idempotent.

    Returns once the broker accepts the login, so the caller can use it at once.
    """
    _check_name(principal)
    admin = _admin(connection)
    _set_password(admin, connection, principal, password)
    for future in admin.create_acls(acl_bindings(principal, role, topics), request_timeout=_TIMEOUT_S).values():
        future.result()
    _await_login(connection.login(principal, password))


def revoke(connection: KafkaConnection, principal: str) -> int:
    """Take ``principal``'s access away; return how many of its ACLs were deleted.

    Its password is replaced by a random one no one holds, so its next login is refused, and every ACL
    naming it is deleted. The SCRAM user itself stays: on Kafka 4.1.1 deleting a SCRAM credential left
    the broker refusing every SCRAM login, the admin's included, after its next restart (reproduced on
    a fresh broker: grant, delete the credential, restart; docs/kafka-access.md).
    """
    _check_name(principal)
    admin = _admin(connection)
    _set_password(admin, connection, principal, new_password())  # one no one holds
    user = f"User:{principal}"
    everything = AclBindingFilter(
        ResourceType.ANY, _ANY, ResourcePatternType.ANY, user, _ANY, AclOperation.ANY, AclPermissionType.ANY
    )
    deleted = 0
    for future in admin.delete_acls([everything], request_timeout=_TIMEOUT_S).values():
        deleted += len(future.result())
    return deleted


def permissions(connection: KafkaConnection) -> list[Permission]:
    """Every ACL on the broker, sorted by principal."""
    everything = AclBindingFilter(
        ResourceType.ANY, _ANY, ResourcePatternType.ANY, _ANY, _ANY, AclOperation.ANY, AclPermissionType.ANY
    )
    admin = _admin(connection)
    found = admin.describe_acls(everything, request_timeout=_TIMEOUT_S).result()
    rows = [
        Permission(
            principal=b.principal.removeprefix("User:"),
            resource=b.restype.name.lower(),
            name=b.name,
            pattern=b.resource_pattern_type.name.lower(),
            operation=b.operation.name.lower(),
        )
        for b in found
    ]
    return sorted(rows, key=lambda p: (p.principal, p.resource, p.name, p.operation))


@retry(
    retry=retry_if_exception_type(KafkaException),
    wait=wait_exponential_jitter(multiplier=0.1, max=1.0),
    stop=stop_after_delay(15.0),
    reraise=True,
)
def _await_login(connection: KafkaConnection) -> None:
    """Wait until the broker has the new credential: the controller commits it before the broker serves it."""
    _admin(connection).list_topics(timeout=5.0)
