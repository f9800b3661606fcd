"""Schemathesis against each service's OpenAPI document, the service started as in production.

Every operation gets valid and invalid requests drawn from its schema; none may be answered with a 5xx,
and every answer must be one the document declares, in the shape it declares. Requests carry a test
API key (the client's default header; a case's own headers would override it). The app runs on the test's
event loop (its lifespan: pool, broker, consumers); hypothesis runs in a worker thread and sends each
request to that loop, so the app's connections stay on the loop that made them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, note, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import FailureGroup
from schemathesis.schemas import APIOperation, BaseSchema

from services.applications import app as applications
from services.registry import app as registry
from services.review import app as review
from shared.topics import Topics
from tests.infra import Infrastructure
from tests.support import serving

MAX_EXAMPLES = 15
"""Per operation and generation mode: enough to find the cheap failures, small enough for every CI run."""
SECONDS_PER_SERVICE = 30.0
"""The time bound of one service's run; operations left when it runs out are reported as not fuzzed."""
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
APPS: dict[str, Callable[[dict[str, Any]], FastAPI]] = {
    "applications": lambda s: applications.create_app(applications.Settings(**s)),
    "review": lambda s: review.create_app(review.Settings(**s)),
    "registry": lambda s: registry.create_app(registry.Settings(**s)),
}
Send = Callable[[Case], httpx.Response]
# Schemathesis's own strategies draw from `random`, which hypothesis frowns on; nothing here can change that.
pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")


@pytest.mark.parametrize("service", APPS)
async def test_no_request_fails_the_service_or_gets_an_undocumented_answer(
    service: str, infrastructure: Infrastructure, database_url: str, topics: Topics
) -> None:
    app = APPS[service](
        {
            "kafka_bootstrap_servers": infrastructure.bootstrap_servers,
            "database_url": database_url,
            "topic_namespace": topics.namespace,
            "rate_limit_per_second": 0,  # the fuzzer is one client sending as fast as it can
        }
    )
    schema = schemathesis.openapi.from_dict(app.openapi())
    # Authenticated as a key of every role (agency 44): the fuzzer explores what the routes do, not only
    # their 401; tests/integration/test_access.py covers the refusals.
    async with serving(app, as_="all") as client:
        send = _sender(client, asyncio.get_running_loop())
        failures = await asyncio.to_thread(_fuzz, schema, send, time.monotonic() + SECONDS_PER_SERVICE)
    assert not failures, "\n\n".join(failures)


def _fuzz(schema: BaseSchema, send: Send, deadline: float) -> list[str]:
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in GenerationMode:
            if time.monotonic() > deadline:
                failures.append(f"{operation.label} ({mode.value}): not fuzzed, the time bound ran out")
                continue
            failure = _fuzz_operation(operation, mode, send)
            if failure:
                failures.append(f"{operation.label} ({mode.value}): {failure}")
    return failures


def _fuzz_operation(operation: APIOperation, mode: GenerationMode, send: Send) -> str | None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def answers_as_documented(case: Case) -> None:
        note(f"request: {case.as_curl_command()}")
        case.validate_response(send(case), checks=CHECKS)

    try:
        answers_as_documented()
    except Unsatisfiable:
        return None  # nothing in the operation can be made invalid (no parameters, no body)
    except (Exception, FailureGroup) as failure:  # a failed check: reported after every other operation ran
        return _describe(failure)
    return None


def _describe(failure: BaseException) -> str:
    """Each failed check with what was sent, as hypothesis found it (its reproduction is in the notes)."""
    parts = list(failure.exceptions) if isinstance(failure, BaseExceptionGroup) else [failure]
    notes = "\n".join(getattr(failure, "__notes__", []))
    return "\n".join(f"{type(p).__name__}: {p}" for p in parts) + (f"\n{notes}" if notes else "")


def _sender(client: httpx.AsyncClient, loop: asyncio.AbstractEventLoop) -> Send:
    def send(case: Case) -> httpx.Response:
        request = case.as_transport_kwargs(base_url=str(client.base_url))
        return asyncio.run_coroutine_threadsafe(_request(client, request), loop).result(timeout=30)

    return send


async def _request(client: httpx.AsyncClient, request: dict[str, Any]) -> httpx.Response:
    """Send what schemathesis prepared for ``requests`` with httpx: the same call, spelled as httpx spells it."""
    body: dict[str, Any] = {}
    if "json" in request:
        body["json"] = request["json"]
    elif isinstance(request.get("data"), str | bytes):
        body["content"] = request["data"]
    elif request.get("data") is not None:
        body["data"] = request["data"]
    headers = dict(request.get("headers") or {})
    if request.get("cookies"):  # httpx takes cookies per client only; the schemas declare none so far
        headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in request["cookies"].items())
    params = request.get("params")
    return await client.request(request["method"], request["url"], params=params, headers=headers, **body)
