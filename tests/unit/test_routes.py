"""Every route of every service checks the credential before the body and reads JSON strictly."""

import inspect
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from services.applications import app as applications
from services.console import app as console
from services.console.settings import Settings as ConsoleSettings
from services.registry import app as registry
from services.review import app as review
from shared.platform.http import LedgerRoute, roles_of


def _apps() -> dict[str, FastAPI]:
    # Made, not started: nothing connects until the lifespan runs.
    return {
        "applications": applications.create_app(applications.Settings()),
        "review": review.create_app(review.Settings()),
        "registry": registry.create_app(registry.Settings()),
    }


def test_every_route_of_every_service_is_a_ledger_route() -> None:
    plain = [
        f"{name} {route.path}"
        for name, app in _apps().items()
        for route in app.routes
        if isinstance(route, APIRoute) and not isinstance(route, LedgerRoute)
    ]
    assert plain == []


def test_every_route_but_the_probes_and_documents_requires_a_role() -> None:
    open_routes = {
        f"{name} {route.path}"
        for name, app in _apps().items()
        for route in app.routes
        if isinstance(route, APIRoute) and roles_of(route) is None
    }
    assert {r.split(" ", 1)[1] for r in open_routes} <= {"/health", "/asyncapi.json"}


def _calls(dependant: Dependant) -> Iterator[Any]:
    if dependant.call is not None:
        yield dependant.call
    for sub in dependant.dependencies:
        yield from _calls(sub)


def _awaited(call: Any) -> bool:
    if inspect.isroutine(call):
        return inspect.iscoroutinefunction(call)
    return inspect.iscoroutinefunction(type(call).__call__)


def test_every_handler_and_dependency_runs_on_the_event_loop() -> None:
    # FastAPI runs a plain ``def`` handler or dependency in its thread pool: a thread hop on every request, a
    # tenth of the applications service's CPU at 200 submissions/s when one dependency was one.
    threaded = {
        f"{name} {route.path} {getattr(call, '__qualname__', call)}"
        for name, app in (_apps() | {"console": console.create_app(ConsoleSettings())}).items()
        for route in app.routes
        if isinstance(route, APIRoute)
        for call in _calls(route.dependant)
        if not _awaited(call)
    }
    assert threaded == set()
