"""The HTTP edge every service shares: one error body, credentials before the body, JSON read strictly.

Every refusal, whatever raised it (a :class:`Refusal`, FastAPI's validation, a route that does not
exist), is answered as an :class:`ErrorBody`: a stable ``code``, a ``message``, and the ``errors`` at
fault (each field with its own code; at least the refusal's own). A route that requires a role checks
the credential first, so an unauthenticated request gets 401, not a complaint about its body; then the
body is read with ``shared.contract.strict_json`` (a key named twice, a control or bidirectional character are
refused as the Kafka intake refuses them).
"""

from __future__ import annotations

import email.message
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

import asyncpg
import structlog
from aiokafka.errors import KafkaError
from fastapi import FastAPI, Header, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute, APIRouter
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.contract import strict_json
from shared.contract.refusal import Refusal, invalid_fields
from shared.platform import logs

ROLES_ATTRIBUTE = "__ledger_roles__"
"""Set on a role-checking dependency (``shared.platform.access.require``): the roles its route requires."""
Authorize = Callable[[Request, tuple[str, ...]], Coroutine[Any, Any, Any]]
"""Checks a request's credential for roles and returns its principal; set as ``app.state.authorize``."""


IdempotencyKey = Annotated[
    str | None,
    Header(
        min_length=1,
        max_length=200,
        pattern=r"^[!-~]+( [!-~]+)*$",
        description="a retry with the same key repeats nothing; one to 200 printable ASCII characters, chosen "
        "per request by the client (an empty key would be one shared by every client that sends it). Keys are "
        "kept per agency: another agency's key of the same spelling is another key",
    ),
]
"""The ``Idempotency-Key`` header: a client's own name for one request, so that a retry repeats nothing."""


class ErrorDetail(BaseModel):
    """One thing at fault: the field (absent when the request as a whole is), a code, a message."""

    field: str | None = None
    code: str
    message: str


class ErrorBody(BaseModel):
    """Every 4xx answer of every service: a stable code a program acts on, a message a person reads, and
    what is at fault (each field with its own code; at least one entry, the refusal's own)."""

    code: str
    message: str
    errors: list[ErrorDetail]


def error_body(refusal: Refusal) -> dict[str, Any]:
    details = [ErrorDetail(field=f.field, code=f.code, message=f.message) for f in refusal.fields]
    body = ErrorBody(
        code=refusal.code,
        message=refusal.message,
        errors=details or [ErrorDetail(code=refusal.code, message=refusal.message)],
    )
    return body.model_dump(exclude_none=True)


def refused(refusal: Refusal) -> JSONResponse:
    """The answer to ``refusal``: its status, its headers, the error body."""
    return JSONResponse(status_code=refusal.status, content=error_body(refusal), headers=refusal.headers)


def _on_refusal(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, Refusal)
    return refused(exc)


def _on_validation(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return refused(invalid_fields(exc.errors()))


STATUS_CODES = {404: "not_found", 405: "method_not_allowed", 400: "bad_request", 413: "request_too_large"}


def _on_http_exception(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = STATUS_CODES.get(exc.status_code, f"http_{exc.status_code}")
    return refused(Refusal(exc.status_code, code, str(exc.detail), headers=dict(exc.headers or {}) or None))


BROKER_RETRY_AFTER = "5"
"""Seconds a client waits after ``broker_unavailable``: about how long Kafka takes to elect a new leader."""


def broker_unavailable(exc: KafkaError) -> Refusal:
    """503 with Retry-After: the broker did not take the write (fewer in-sync replicas than
    ``min.insync.replicas``, no leader, no answer in time). Whatever the request began was rolled back
    with it: an append is the last step of every write, inside its database transaction."""
    message = (
        f"the event store did not acknowledge the write ({type(exc).__name__}: {exc}); nothing of the request "
        "was kept, but its event may still be written when the cluster is back: send the same request again "
        "later (the same Idempotency-Key or declaration number), and it takes effect once"
    )
    return Refusal(503, "broker_unavailable", message, headers={"Retry-After": BROKER_RETRY_AFTER})


def _on_broker_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, KafkaError)
    return refused(broker_unavailable(exc))


DATABASE_DOWN = (asyncpg.PostgresConnectionError, asyncpg.OperatorInterventionError, ConnectionError)
"""The database unreachable, restarting or shutting down: not the request's fault, and over in seconds."""


def _on_database_down(_: Request, exc: Exception) -> Response:
    message = (
        f"the database did not answer ({type(exc).__name__}): nothing was recorded; "
        "send the same request again later (with the same Idempotency-Key or declaration number)"
    )
    return refused(Refusal(503, "database_unavailable", message, headers={"Retry-After": "2"}))


CONNECTION_GONE = ("connection has been released back to the pool", "connection is closed")
"""What asyncpg says (an ``InterfaceError``) when the server closed a connection a request was still using: a
database restarting while the request waited (on the broker, say). Any other ``InterfaceError`` is a server error."""


def _on_interface_error(request: Request, exc: Exception) -> Response:
    if any(gone in str(exc) for gone in CONNECTION_GONE):
        return _on_database_down(request, exc)
    raise exc


def add_error_handlers(app: FastAPI) -> None:
    """Answer every refusal with the one error body; a write the broker would not take, or a database that does
    not answer, with 503 and Retry-After."""
    app.add_exception_handler(Refusal, _on_refusal)
    app.add_exception_handler(KafkaError, _on_broker_error)
    for down in DATABASE_DOWN:
        app.add_exception_handler(down, _on_database_down)
    app.add_exception_handler(asyncpg.InterfaceError, _on_interface_error)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)


def roles_of(route: APIRoute) -> tuple[str, ...] | None:
    """The roles the route's credential check requires (None: the route is open)."""
    pending = [route.dependant]
    while pending:
        dependant = pending.pop()
        roles = getattr(dependant.call, ROLES_ATTRIBUTE, None)
        if roles is not None:
            return tuple(roles)
        pending.extend(dependant.dependencies)
    return None


class LedgerRoute(APIRoute):
    """A route that checks the caller's credential before it reads the body, and reads a JSON body strictly.

    The credential check is the route's own role dependency (``shared.platform.access.require``), run first; its
    principal is kept on ``request.state`` for the dependency to hand over without checking twice.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        roles = roles_of(self)
        reads_body = self.body_field is not None

        async def route(request: Request) -> Response:
            if roles is not None:
                authorize: Authorize = request.app.state.authorize
                request.state.principal = await authorize(request, roles)
            if reads_body and _is_json(request):
                body = await request.body()
                if body:
                    request._json = strict_json.loads(body)  # FastAPI's request.json() returns what is cached
            return await handler(request)

        return route


def router(**options: Any) -> APIRouter:
    """A router of a service's routes: every route a :class:`LedgerRoute` (credentials first, strict JSON)."""
    return APIRouter(route_class=LedgerRoute, **options)


def _is_json(request: Request) -> bool:
    content_type = request.headers.get("content-type")
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (subtype == "json" or subtype.endswith("+json"))


QUIET = frozenset({"/health", "/health/live", "/health/ready", "/metrics"})  # probes and scrapes: logged at debug
REQUEST_ID = "x-request-id"
access = structlog.get_logger("ledger.access")


class AccessLog:
    """One log line per request, once answered: method, route, status, duration and the calling credential; and a
    request id (the caller's ``X-Request-ID`` if it sent a short printable one, else a new one) that every line
    logged meanwhile carries and the answer returns."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(REQUEST_ID.encode(), b"").decode("latin-1")
        request_id = given if 0 < len(given) <= 64 and given.isprintable() else uuid.uuid4().hex
        status, started = 500, time.monotonic()

        async def answering(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (REQUEST_ID.encode(), request_id.encode())]
            await send(message)

        with logs.context(request_id=request_id):
            try:
                await self.app(scope, receive, answering)
            finally:
                route = scope.get("route")
                path = getattr(route, "path", None) or scope["path"]
                principal = scope.get("state", {}).get("principal")
                line = access.debug if path in QUIET else access.info
                line(
                    "request",
                    method=scope["method"],
                    path=path,
                    status=status,
                    duration_ms=round((time.monotonic() - started) * 1000, 2),
                    credential=getattr(principal, "key_id", None),
                )
