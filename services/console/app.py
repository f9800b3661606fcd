"""The console's app: sign-in and sign-out, the home page by role, and the pages of officers and auditors.

It holds no data of its own and writes nothing to the ledger: it reads the services' HTTP APIs and acts through
the officer API, always with the signed-in user's own credential.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from services.console import evidence, officer, reporting
from services.console.ledger import Ledger
from services.console.sessions import Sessions
from services.console.settings import Settings
from services.console.web import (
    HERE,
    CsrfRefused,
    CurrentSession,
    Forbidden,
    Form,
    SignInNeeded,
    finish,
    render,
    set_cookie,
    settings_of,
)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with httpx.AsyncClient(timeout=30) as client:
            app.state.http = client
            yield

    app = FastAPI(title="Export license console", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings = settings
    app.state.sessions = Sessions(settings.session_minutes * 60)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(officer.pages)
    app.include_router(evidence.pages)
    app.include_router(reporting.pages)
    app.add_api_route("/", home, methods=["GET"])
    app.add_api_route("/signin", signin_page, methods=["GET"])
    app.add_api_route("/signin", signin, methods=["POST"])
    app.add_api_route("/signout", signout, methods=["POST"])
    app.add_api_route("/health", health, methods=["GET"])
    app.add_exception_handler(SignInNeeded, _to_signin)
    app.add_exception_handler(Forbidden, _forbidden)
    app.add_exception_handler(CsrfRefused, _csrf_refused)
    return app


async def home(request: Request, session: CurrentSession) -> Response:
    if session.credential is None:
        return finish(request, RedirectResponse("/signin", status_code=303))
    if "officer" in session.roles:
        return finish(request, RedirectResponse("/queue", status_code=303))
    return render(request, session, "home.html")


async def signin_page(request: Request, session: CurrentSession) -> Response:
    return render(request, session, "signin.html")


async def signin(request: Request, session: CurrentSession, form: Form) -> Response:
    """Check the credential against the services (``GET /whoami`` of the registry) and start a signed-in session."""
    credential = form.get("credential", "").strip()
    answer = await Ledger(request.app.state.http, {"registry": settings_of(request).registry_url}, credential).get(
        "registry", "/whoami"
    )
    if not credential or not answer.ok:
        error = answer.error if credential else "missing_credential"
        return render(request, session, "signin.html", status=401, error=error)
    signed = request.app.state.sessions.sign_in(session, credential, answer.body)
    response = RedirectResponse("/", status_code=303)
    set_cookie(request, response, signed)
    return finish(request, response)


async def signout(request: Request, session: CurrentSession, form: Form) -> Response:
    request.app.state.sessions.end(session)
    response = RedirectResponse("/signin", status_code=303)
    response.delete_cookie("console_session", path="/")
    return finish(request, response)


async def health() -> dict[str, str]:
    return {"service": "console", "status": "ok"}


async def _to_signin(request: Request, _: Exception) -> Response:
    return finish(request, RedirectResponse("/signin", status_code=303))


async def _forbidden(request: Request, _: Exception) -> Response:
    session = request.app.state.sessions.get(request.cookies.get("console_session"))
    return render(request, session, "forbidden.html", status=403)


async def _csrf_refused(request: Request, _: Exception) -> Response:
    session = request.app.state.sessions.get(request.cookies.get("console_session"))
    if session is None:
        session = request.app.state.sessions.new()
        request.state.new_session = session
    return render(request, session, "csrf.html", status=403)


def serve() -> None:
    settings = Settings()
    logging.basicConfig(level=settings.log_level)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, access_log=False, log_config=None)
