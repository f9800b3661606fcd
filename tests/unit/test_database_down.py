"""A database that goes away under a request is answered 503 database_unavailable with Retry-After, however
asyncpg says it: a connection refused, a server shutting down, or a connection the server closed while the
request still held it (a fault run found the last one answered 500 with no error body)."""

from __future__ import annotations

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from shared.platform.http import add_error_handlers


def _app(error: Exception) -> FastAPI:
    app = FastAPI()
    add_error_handlers(app)

    @app.get("/fails")
    async def fails() -> None:
        raise error

    return app


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.InterfaceError("cannot call Connection.execute(): connection has been released back to the pool"),
        asyncpg.InterfaceError("connection is closed"),
        asyncpg.CannotConnectNowError("the database system is shutting down"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        ConnectionRefusedError(111, "Connection refused"),
    ],
)
async def test_a_database_gone_under_a_request_is_503_database_unavailable(error: Exception) -> None:
    transport = httpx.ASGITransport(app=_app(error))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        answer = await client.get("/fails")
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "2"
    assert answer.json()["code"] == "database_unavailable"


async def test_another_interface_error_is_a_server_error_not_the_databases() -> None:
    transport = httpx.ASGITransport(
        app=_app(asyncpg.InterfaceError("another operation is in progress")), raise_app_exceptions=False
    )
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        answer = await client.get("/fails")
    assert answer.status_code == 500
