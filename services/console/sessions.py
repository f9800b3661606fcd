"""Sessions kept on the server: the browser holds only a random id in a Secure, HttpOnly, SameSite=Strict
cookie, never the credential. Each session has its CSRF token, which every form carries and every POST checks.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

COOKIE = "console_session"
MAX_SESSIONS = 10_000


@dataclass
class Session:
    """One browser's session: its CSRF token and language; once signed in, the credential and its grants."""

    id: str
    csrf: str
    expires: float
    lang: str = "en"
    credential: str | None = None
    who: dict[str, Any] = field(default_factory=dict)

    @property
    def roles(self) -> frozenset[str]:
        return frozenset(self.who.get("roles", ()))

    def csrf_matches(self, sent: str | None) -> bool:
        return sent is not None and hmac.compare_digest(self.csrf, sent)


class Sessions:
    """The sessions of this console process (a restart signs everyone out: nothing secret is ever persisted)."""

    def __init__(self, lifetime_seconds: float) -> None:
        self.lifetime = lifetime_seconds
        self._sessions: dict[str, Session] = {}

    def get(self, session_id: str | None) -> Session | None:
        found = self._sessions.get(session_id or "")
        if found is None or found.expires < time.monotonic():
            self._sessions.pop(session_id or "", None)
            return None
        return found

    def new(self, lang: str = "en") -> Session:
        if len(self._sessions) >= MAX_SESSIONS:
            self._expire()
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), time.monotonic() + self.lifetime, lang)
        self._sessions[session.id] = session
        return session

    def sign_in(self, old: Session, credential: str, who: dict[str, Any]) -> Session:
        """A fresh session id and CSRF token for the signed-in user: an id planted before sign-in is worth nothing."""
        self.end(old)
        session = self.new(old.lang)
        session.credential, session.who = credential, who
        return session

    def end(self, session: Session) -> None:
        self._sessions.pop(session.id, None)

    def _expire(self) -> None:
        now = time.monotonic()
        for key in [k for k, s in self._sessions.items() if s.expires < now]:
            del self._sessions[key]
        while len(self._sessions) >= MAX_SESSIONS:
            self._sessions.pop(next(iter(self._sessions)))
