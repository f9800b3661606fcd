"""Every route of every service checks the credential before the body and reads JSON strictly."""

from fastapi import FastAPI
from fastapi.routing import APIRoute

from services.applications import app as applications
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
