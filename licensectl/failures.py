"""What kept a licensectl command from reading what it reports, as an exit code and a reason a person or a script
reads: never a traceback, and never a report of zeros that were not read.

Exit codes (docs/operations.md): 0 read, and all is well; 1 read, and what was read is wrong (a service not ready,
a ledger that differs from its log, an audit that fails); 2 the command was given wrongly; 3 something it reads
could not be reached (a service, the broker, the database); 4 a credential was refused (an API key: 401 or 403; the
broker's or the database's login; an ACL that does not allow the read).
"""

from __future__ import annotations

import asyncio
import socket
import sys
import traceback
from dataclasses import dataclass
from urllib.parse import urlsplit

import asyncpg
import httpx
from aiokafka.conn import create_conn
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    KafkaError,
    SaslAuthenticationFailed,
    TopicAuthorizationFailedError,
)
from confluent_kafka import KafkaException
from rich.console import Console

from licensectl.output import emit_json
from shared.platform.kafka_access import KafkaConnection
from shared.platform.settings import ServiceSettings

CHECK_FAILED = 1
USAGE = 2
UNREACHABLE = 3
REFUSED = 4


@dataclass
class CannotRead(Exception):
    """A command could not read what it reports: ``reason`` is a stable code, ``message`` says what and where."""

    exit_code: int
    reason: str
    message: str

    def __str__(self) -> str:
        return self.message

    def to_json(self) -> dict[str, str | int]:
        return {"reason": self.reason, "message": self.message, "exit_code": self.exit_code}


def report(failure: CannotRead, *, as_json: bool) -> None:
    """The reason on stderr; with ``--json``, also as ``{"error": ...}`` on stdout, where the script reads."""
    Console(stderr=True).print(f"licensectl: {failure.message}", style="red", markup=False, soft_wrap=True)
    if as_json:
        emit_json({"error": failure.to_json()})


def explain(exc: BaseException) -> CannotRead | None:
    """What ``exc`` means to an operator, if it is a service, the broker or the database out of reach or refusing
    a login; None for anything else (a bug, to be shown as one)."""
    if isinstance(exc, CannotRead):
        return exc
    if isinstance(exc, httpx.TransportError):
        return CannotRead(UNREACHABLE, "service_unreachable", f"cannot reach {exc.request.url}: {exc or type(exc)}")
    if isinstance(exc, (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError)):
        return CannotRead(REFUSED, "database_login_refused", f"the database at {_database()} refused the login: {exc}")
    if isinstance(exc, (asyncpg.InvalidCatalogNameError, asyncpg.CannotConnectNowError)) or (
        isinstance(exc, (ConnectionError, socket.gaierror, TimeoutError)) and _raised_in(exc, "asyncpg")
    ):
        return CannotRead(UNREACHABLE, "database_unreachable", f"cannot reach the database at {_database()}: {exc}")
    if isinstance(exc, (asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError)):
        missing = f"the database at {_database()} has no ledger schema ({exc}): run licensectl migrate"
        return CannotRead(UNREACHABLE, "database_not_migrated", missing)
    denied = (TopicAuthorizationFailedError, GroupAuthorizationFailedError, ClusterAuthorizationFailedError)
    if isinstance(exc, denied) or (isinstance(exc, KafkaException) and "AUTHORIZATION" in str(exc)):
        return CannotRead(
            REFUSED, "broker_denied", f"the broker denies {_kafka_user()} this read (no ACL allows it): {exc}"
        )
    if isinstance(exc, (KafkaConnectionError, KafkaException)):
        return broker_problem(ServiceSettings().kafka) or CannotRead(
            UNREACHABLE, "broker_unreachable", f"the broker did not answer: {exc}"
        )
    return None


def check_broker(kafka: KafkaConnection) -> None:
    """Raise :class:`CannotRead` at once if the broker cannot be reached or refuses the login (the admin client
    would wait its full timeout, then say only that it timed out)."""
    problem = broker_problem(kafka)
    if problem is not None:
        raise problem


def broker_problem(kafka: KafkaConnection) -> CannotRead | None:
    """Whether the broker is out of reach or refuses the login: a connection to each bootstrap server, logged in
    as ``kafka`` is; None if one of them takes it."""
    return asyncio.run(_broker_problem(kafka))


async def _broker_problem(kafka: KafkaConnection) -> CannotRead | None:
    login = kafka.security_options()
    problem: CannotRead | None = None
    for server in kafka.bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            connection = await create_conn(host, int(port), request_timeout_ms=5000, **login)
        except SaslAuthenticationFailed as refused:
            return CannotRead(
                REFUSED, "broker_login_refused", f"the broker at {server} refused {_kafka_user()}: {refused}"
            )
        except (OSError, KafkaError, ValueError) as exc:
            problem = CannotRead(UNREACHABLE, "broker_unreachable", f"cannot reach the broker at {server}: {exc}")
            continue
        connection.close()
        return None
    return problem


def _raised_in(exc: BaseException, package: str) -> bool:
    return any(f"/{package}/" in frame.f_code.co_filename for frame, _ in traceback.walk_tb(exc.__traceback__))


def _database() -> str:
    """Where DATABASE_URL points, without its password."""
    url = urlsplit(ServiceSettings().database_url)
    return f"{url.hostname}:{url.port or 5432}{url.path} (DATABASE_URL)"


def _kafka_user() -> str:
    username = ServiceSettings().kafka.username
    return f"the login {username!r} (KAFKA_USERNAME)" if username else "a client without a login (KAFKA_USERNAME unset)"


def exit_with(failure: CannotRead, *, as_json: bool) -> None:
    report(failure, as_json=as_json)
    sys.exit(failure.exit_code)
