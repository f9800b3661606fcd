"""What every page of the console shares: the session of the request, who may see a page, the CSRF check of
every form, and rendering a template in the user's language."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import Response
from fastapi.templating import Jinja2Templates

from services.console.i18n import LANGUAGES, text
from services.console.ledger import Ledger
from services.console.sessions import COOKIE, Session, Sessions
from services.console.settings import Settings

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=HERE / "templates")
# No script, style or font from anywhere but this console; no framing; no referrer leaving it.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


class Forbidden(Exception):
    """The signed-in user's roles do not reach this page."""


class SignInNeeded(Exception):
    """No session, or one not signed in."""


class CsrfRefused(Exception):
    """A form without this session's CSRF token."""


def sessions_of(request: Request) -> Sessions:
    found: Sessions = request.app.state.sessions
    return found


def settings_of(request: Request) -> Settings:
    found: Settings = request.app.state.settings
    return found


async def session_of(request: Request) -> Session:
    """The request's session; a new anonymous one (set on the answer) when it has none."""
    sessions = sessions_of(request)
    session = sessions.get(request.cookies.get(COOKIE))
    if session is None:
        session = sessions.new(_preferred_language(request))
        request.state.new_session = session
    lang = request.query_params.get("lang")
    if lang in LANGUAGES:
        session.lang = lang
    return session


def _preferred_language(request: Request) -> str:
    return "zh" if request.headers.get("accept-language", "").lower().startswith("zh") else "en"


CurrentSession = Annotated[Session, Depends(session_of)]


def signed_in(*roles: str) -> Callable[..., Awaitable[Session]]:
    """A dependency: the signed-in session if its credential holds one of ``roles`` (any role when none given)."""

    async def check(session: CurrentSession) -> Session:
        if session.credential is None:
            raise SignInNeeded
        if roles and not session.roles & set(roles):
            raise Forbidden
        return session

    return check


async def csrf_checked(request: Request, session: CurrentSession) -> dict[str, str]:
    """The form of a POST, once it carries this session's CSRF token (else :class:`CsrfRefused`)."""
    form = await request.form()
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    if not session.csrf_matches(fields.get("csrf")):
        raise CsrfRefused
    return fields


Form = Annotated[dict[str, str], Depends(csrf_checked)]


def ledger_for(request: Request, session: Session) -> Ledger:
    settings = settings_of(request)
    urls = {
        "applications": settings.applications_url,
        "review": settings.review_url,
        "registry": settings.registry_url,
    }
    return Ledger(request.app.state.http, urls, session.credential)


def render(request: Request, session: Session, template: str, status: int = 200, **context: Any) -> Response:
    """The page ``template`` in the session's language, with its CSRF token and the user's grants."""

    def t(key: str) -> str:
        return text(key, session.lang)

    page = templates.TemplateResponse(
        request,
        template,
        {"t": t, "session": session, "csrf": session.csrf, "lang": session.lang, **context},
        status_code=status,
    )
    return finish(request, page)


def finish(request: Request, response: Response) -> Response:
    """The security headers on every answer, and the cookie of a session made by this request."""
    response.headers.update(SECURITY_HEADERS)
    new: Session | None = getattr(request.state, "new_session", None)
    if new is not None:
        set_cookie(request, response, new)
    return response


def set_cookie(request: Request, response: Response, session: Session) -> None:
    settings = settings_of(request)
    response.set_cookie(
        COOKIE,
        session.id,
        max_age=settings.session_minutes * 60,
        httponly=True,
        secure=settings.cookie_secure,
        samesite="strict",
        path="/",
    )
