"""What the HTTP edge of every service refuses: a body too large, a client too fast, a URL holding NUL.

Each is plain ASGI middleware, so it refuses a request before FastAPI reads or parses anything of it.
A refusal has the shape of every other error answer (``shared.platform.http.ErrorBody``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Collection, MutableMapping
from dataclasses import dataclass
from typing import Any

from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from shared.contract.refusal import Refusal
from shared.platform.http import refused

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Clock = Callable[[], float]

UNMETERED = frozenset({"/health", "/health/live", "/health/ready", "/metrics"})
"""Paths no client is rate-limited on: probes and scrapers poll them, and they cost next to nothing."""


def refusal(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """An error answer in the shape of every other one."""
    return refused(Refusal(status, code, message, headers=headers))


class RequestTooLarge(HTTPException):
    """A request body went past the limit while it was being read.

    An ``HTTPException`` so that FastAPI passes it on to the exception handlers as it is: any other
    exception raised while it reads a body becomes a 400 "error parsing the body".
    """

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than the limit of {limit} bytes")
        self.limit = limit


def too_large(limit: int) -> JSONResponse:
    return refusal(413, "request_too_large", f"the request body is larger than the limit of {limit} bytes")


class BodySizeLimit:
    """Refuse a body over ``max_bytes`` with 413: by its Content-Length at once, else once that many bytes arrived."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await too_large(self.max_bytes)(scope, receive, send)
            return
        await self.app(scope, self._counting(receive), send)

    def _counting(self, receive: Receive) -> Receive:
        # A chunked body, or one longer than its Content-Length says, is counted as it streams in.
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise RequestTooLarge(self.max_bytes)
            return message

        return counted


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed length itself; the streamed count still holds
    return None


class NoNulInURL:
    """Refuse a path or query holding a NUL character (``%00``) with 422, as the intake refuses one in a command.

    PostgreSQL text cannot hold NUL: a path or query parameter with one passed validation and then failed the
    query with a 500. Refused here once, for every route, before any parameter is read.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _has_nul(scope):
            message = "the URL contains a NUL character (%00), which no path or query parameter may hold"
            await refusal(422, "invalid_text", message)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _has_nul(scope: Scope) -> bool:
    query: bytes = scope.get("query_string", b"")
    return "\x00" in scope["path"] or b"%00" in query or b"\x00" in query


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    """A token bucket per client: ``rate`` tokens a second, at most ``burst`` saved up; a request takes one."""

    def __init__(self, rate: float, burst: int, *, clock: Clock = time.monotonic, max_clients: int = 10_000) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a rate limit needs a positive rate and a burst of at least 1")
        self.rate, self.burst, self.clock, self.max_clients = rate, burst, clock, max_clients
        self._buckets: dict[str, _Bucket] = {}

    def take(self, client: str) -> float:
        """Take a token for ``client``: 0 if it had one, else the seconds until it will."""
        now = self.clock()
        bucket = self._buckets.get(client)
        if bucket is None:
            self._forget_idle(now)
            bucket = self._buckets[client] = _Bucket(tokens=self.burst, updated=now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / self.rate

    def _forget_idle(self, now: float) -> None:
        # A client whose bucket has refilled is indistinguishable from a new one: dropping it bounds the memory.
        if len(self._buckets) < self.max_clients:
            return
        full = self.burst / self.rate
        self._buckets = {k: b for k, b in self._buckets.items() if now - b.updated < full}


class RateLimit:
    """Refuse a client past its rate with 429 and Retry-After; ``unmetered`` paths are never limited.

    The client is its address as the server sees it (behind a proxy, run uvicorn with ``--proxy-headers``
    so that it is the caller's, not the proxy's). Each credential has a bucket of its own as well, taken
    once the credential is checked (``shared.platform.access.authorize``): a key spread over many addresses
    gets one rate.
    """

    def __init__(self, app: ASGIApp, *, buckets: TokenBuckets, unmetered: Collection[str] = UNMETERED) -> None:
        self.app = app
        self.buckets = buckets
        self.unmetered = unmetered

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.unmetered:
            await self.app(scope, receive, send)
            return
        wait = self.buckets.take(_client(scope))
        if wait == 0:
            await self.app(scope, receive, send)
            return
        await too_many(wait, "client")(scope, receive, send)


def rate_limited(wait: float, who: str) -> Refusal:
    """429 with the whole seconds to wait, in Retry-After and in words."""
    retry_after = max(1, math.ceil(wait))
    message = f"too many requests from this {who}; retry after {retry_after} s"
    return Refusal(429, "rate_limited", message, headers={"Retry-After": str(retry_after)})


def too_many(wait: float, who: str) -> JSONResponse:
    return refused(rate_limited(wait, who))


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"
