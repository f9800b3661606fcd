"""Schemathesis against each service's OpenAPI document, the service started as in production.

Every operation gets valid and invalid requests drawn from its schema; none may be answered with a 5xx,
and every answer must be one the document declares, in the shape it declares. Every request carries a
valid test API key in place of the random bearer token schemathesis draws for the declared scheme.
The app runs on the test's event loop (its lifespan: pool, broker, consumers); hypothesis runs in a
worker thread and sends each request to that loop, so the app's connections stay on the loop that made
them.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
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
from shared.contract.topics import Topics
from tests.infra import Infrastructure
from tests.support import auth, serving

MAX_EXAMPLES = 15
"""Per operation and generation mode: enough to find the cheap failures, small enough for every CI run."""
SECONDS_PER_SERVICE = 90.0
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
Send = Callable[[Case[Any]], httpx.Response]
# Schemathesis's own strategies draw from `random`, which hypothesis frowns on; nothing here can change that.
pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")


@pytest.mark.parametrize("service", APPS)
async def test_no_request_fails_the_service_or_gets_an_undocumented_answer(
    service: str, infrastructure: Infrastructure, database_url: str, topics: Topics
) -> None:
    app = APPS[service](
        {
            **infrastructure.service_kafka(),
            "database_url": database_url,
            "topic_namespace": topics.namespace,
            "rate_limit_per_second": 0,  # the fuzzer is one client sending as fast as it can
        }
    )
    schema = schemathesis.openapi.from_dict(app.openapi())
    statuses: Counter[int] = Counter()
    async with serving(app) as client:
        send = _sender(client, asyncio.get_running_loop(), statuses)
        failures = await asyncio.to_thread(_fuzz, schema, send, time.monotonic() + SECONDS_PER_SERVICE)
    assert not failures, "\n\n".join(failures)
    # Proof that the key works: the fuzzer got past the 401s into what the routes do.
    assert sum(n for status, n in statuses.items() if status < 300) > 0, statuses


def _fuzz(schema: BaseSchema, send: Send, deadline: float) -> list[str]:
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # an operation that does not parse fails the test
        for mode in GenerationMode:
            if time.monotonic() > deadline:
                failures.append(f"{operation.label} ({mode.value}): not fuzzed, the time bound ran out")
                continue
            failure = _fuzz_operation(operation, mode, send)
            if failure:
                failures.append(f"{operation.label} ({mode.value}): {failure}")
    return failures


def _fuzz_operation(operation: APIOperation[Any, Any, Any, Any], mode: GenerationMode, send: Send) -> str | None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def answers_as_documented(case: Case[Any]) -> None:
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


def _sender(client: httpx.AsyncClient, loop: asyncio.AbstractEventLoop, statuses: Counter[int]) -> Send:
    def send(case: Case[Any]) -> httpx.Response:
        request = case.as_transport_kwargs(base_url=str(client.base_url))
        answer = asyncio.run_coroutine_threadsafe(_request(client, request), loop).result(timeout=30)
        statuses[answer.status_code] += 1
        return answer

    return send


def _of_the_keys_agency(data: Any) -> Any:
    """A well-formed application made out for the test key's agency (44), which it may submit for: with any
    other it would get 403 other_agency and the fuzzer would not reach the submission itself."""
    code = data.get("agency_code") if isinstance(data, dict) else None
    if isinstance(code, str) and len(code) == 2 and code.isdigit():
        return {**data, "agency_code": "44"}
    return data


async def _request(client: httpx.AsyncClient, request: dict[str, Any]) -> httpx.Response:
    """Send what schemathesis prepared for ``requests`` with httpx: the same call, spelled as httpx spells it."""
    body: dict[str, Any] = {}
    if "json" in request:
        body["json"] = _of_the_keys_agency(request["json"])
    elif isinstance(request.get("data"), str | bytes):
        body["content"] = request["data"]
    elif request.get("data") is not None:
        body["data"] = request["data"]
    # A key of every role (agency 44), so that the fuzzer explores what the routes do behind the 401 that
    # its own random tokens would get; tests/integration/test_access.py covers wrong and missing keys.
    headers = {**dict(request.get("headers") or {}), **auth("all")}
    if request.get("cookies"):  # httpx takes cookies per client only; the schemas declare none so far
        headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in request["cookies"].items())
    params = request.get("params")
    return await client.request(request["method"], request["url"], params=params, headers=headers, **body)
