"""Who may call what: API keys, or JWTs from a configured issuer, that map to an agency and roles, checked
on every HTTP route but /health.

A key reads ``lk_<key id>_<secret>``. Only its SHA-256 is stored, in ``access.credentials``: the secret is
256 random bits, so a fast hash is as safe as a slow one and costs nothing per request (docs/access.md).
Each service looks keys up in that table and keeps the answer for ``access_cache_seconds``, so a revoked
key stops working within that time. A JWT is signed by the issuer configured in ``LEDGER_JWT_ISSUER`` and
``LEDGER_JWT_PUBLIC_KEY`` and names the agency and roles in its ``agency`` and ``roles`` claims.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import asyncpg
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.contract.events import OFFICER_ID
from shared.contract.refusal import Refusal
from shared.contract.trust import PRODUCER_NAME
from shared.platform import logs
from shared.platform.db import Connection
from shared.platform.http import ROLES_ATTRIBUTE
from shared.platform.limits import rate_limited

Role = Literal["submitter", "officer", "customs", "auditor", "admin"]
ROLES: tuple[Role, ...] = ("submitter", "officer", "customs", "auditor", "admin")
READS = frozenset({"GET", "HEAD"})
PREFIX = "lk"

FIND = """
SELECT key_id, hash, agency_code, roles, officer, sender, expires_at, revoked_at FROM access.credentials
WHERE key_id = $1
"""
INSERT = """
INSERT INTO access.credentials (key_id, hash, agency_code, roles, label, expires_at, officer, sender)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
"""
LIST = """
SELECT key_id, agency_code, roles, officer, sender, label, created_at, expires_at, revoked_at
FROM access.credentials ORDER BY created_at, key_id
"""
REVOKE = "UPDATE access.credentials SET revoked_at = now() WHERE key_id = $1 AND revoked_at IS NULL"
EXPIRE = """
UPDATE access.credentials SET expires_at = least(coalesce(expires_at, $2), $2) WHERE key_id = $1
"""
GRANTS = """
SELECT agency_code, roles, officer, sender, label FROM access.credentials WHERE key_id = $1 AND revoked_at IS NULL
"""
OFFICER = re.compile(OFFICER_ID)
SENDER = re.compile(PRODUCER_NAME)
"""An officer's id as the agency's directory names them (``shared.contract.events.OfficerId``)."""


@dataclass(frozen=True)
class Principal:
    """The caller a credential names: its key, its agency, its roles, and the officer it belongs to, if any."""

    key_id: str
    agency_code: str
    roles: frozenset[str]
    officer: str | None = None
    sender: str | None = None  # the intake sender (a producer of commands) it speaks for: whose refusals it reads

    def acting_officer(self, declared: str | None = None) -> str:
        """The officer an action is attributed to: the credential's own. Refused (403) when the credential
        names no officer, or when the request declares another one."""
        if self.officer is None:
            raise denied(
                403,
                "officer_identity_required",
                f"credential {self.key_id} names no officer: an officer acts with a key issued to them "
                "(licensectl keys create --role officer --officer <id>) or a token whose 'sub' is their id",
            )
        if declared is not None and declared != self.officer:
            raise denied(403, "officer_mismatch", f"this credential is officer {self.officer}'s, not {declared}'s")
        return self.officer

    def ensure_agency(self, agency_code: str, *, unless: Iterable[str] = ()) -> None:
        """Refuse (403 ``other_agency``) a caller of another agency, but for one holding a role in ``unless``."""
        if agency_code != self.agency_code and not self.roles & set(unless):
            raise denied(403, "other_agency", f"this credential is of agency {self.agency_code}, not {agency_code}")


@dataclass(frozen=True)
class Credential:
    key_id: str
    hash: str
    agency_code: str
    roles: frozenset[str]
    officer: str | None
    sender: str | None
    expires_at: datetime | None
    revoked_at: datetime | None


def denied(status: int, code: str, message: str) -> Refusal:
    """A request refused for want of a credential (401, with WWW-Authenticate) or of a right (403)."""
    headers = {"WWW-Authenticate": f'Bearer error="{code}"'} if status == 401 else None
    return Refusal(status, code, message, headers=headers)


def new_key() -> tuple[str, str]:
    """A fresh key id and the whole key, which is shown once and never stored."""
    key_id = secrets.token_hex(6)
    return key_id, f"{PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"


def key_id_of(key: str) -> str | None:
    prefix, _, rest = key.partition("_")
    key_id, _, secret = rest.partition("_")
    return key_id if prefix == PREFIX and key_id and secret else None


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def check(credential: Credential | None, key: str, now: datetime) -> None:
    """Raise :func:`denied` unless ``credential`` is the stored form of ``key`` and still in force at ``now``."""
    if credential is None or not hmac.compare_digest(credential.hash, digest(key)):
        raise denied(401, "invalid_credential", "the bearer key is not one this system issued")
    if credential.revoked_at is not None:
        raise denied(401, "invalid_credential", f"key {credential.key_id} was revoked")
    if credential.expires_at is not None and credential.expires_at <= now:
        raise denied(401, "expired_credential", f"key {credential.key_id} expired at {credential.expires_at}")


def permit(principal: Principal, roles: Iterable[str], method: str) -> None:
    """Refuse (403 ``role_required``) unless the caller holds one of ``roles``; an auditor reads everything."""
    wanted = set(roles)
    if principal.roles & wanted or (method in READS and "auditor" in principal.roles):
        return
    needed = ", ".join(sorted(wanted))
    raise denied(403, "role_required", f"this action requires one of the roles: {needed}")


async def stored_credential(connection: Connection | asyncpg.Pool, key_id: str) -> Credential | None:
    """The stored credential of ``key_id``, revoked or expired ones too (None if there is none)."""
    row = await connection.fetchrow(FIND, key_id)
    return Credential(**{**dict(row), "roles": frozenset(row["roles"])}) if row else None


class KeyCache:
    """Credentials by key id, each kept ``ttl`` seconds: a revocation takes effect within that time."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._entries: dict[str, tuple[float, Credential | None]] = {}

    async def find(self, pool: asyncpg.Pool, key_id: str) -> Credential | None:
        fetched = self._entries.get(key_id)
        if fetched is not None and time.monotonic() - fetched[0] < self.ttl:
            return fetched[1]
        credential = await stored_credential(pool, key_id)
        if len(self._entries) > 10_000:  # unknown key ids must not grow the cache without bound
            self._entries.clear()
        self._entries[key_id] = (time.monotonic(), credential)
        return credential


class TokenIssuer:
    """The one issuer whose JWTs are accepted: its name (``iss``), public key and the audience (``aud``).

    The algorithm follows from the key's type and nothing else: a token cannot choose a weaker one (``none``,
    or HS256 keyed with the public key).
    """

    ALGORITHMS = (
        (ed25519.Ed25519PublicKey, "EdDSA"),
        (ec.EllipticCurvePublicKey, "ES256"),
        (rsa.RSAPublicKey, "RS256"),
    )

    def __init__(self, issuer: str, public_key_pem: str, audience: str) -> None:
        self.issuer, self.audience = issuer, audience
        self.key = load_pem_public_key(public_key_pem.encode())
        found = [alg for kind, alg in self.ALGORITHMS if isinstance(self.key, kind)]
        if not found:
            raise ValueError("the JWT issuer's key must be Ed25519, EC P-256 or RSA")
        self.algorithm = found[0]

    def principal(self, token: str) -> Principal:
        """The principal a valid token names, or :func:`denied` saying what is wrong with it."""
        try:
            claims = jwt.decode(
                token,
                self.key,  # type: ignore[arg-type]
                algorithms=[self.algorithm],
                issuer=self.issuer,
                audience=self.audience,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise denied(401, "expired_credential", "the token has expired") from None
        except jwt.InvalidTokenError as wrong:
            raise denied(401, "invalid_credential", f"the token is not valid: {wrong}") from None
        return _grants(claims)


def _grants(claims: dict[str, Any]) -> Principal:
    agency, roles = claims.get("agency"), claims.get("roles")
    if not (isinstance(agency, str) and len(agency) == 2 and agency.isdigit()):
        raise denied(401, "invalid_credential", "the token names no agency (an 'agency' claim of two digits)")
    if not (isinstance(roles, list) and roles and set(roles) <= set(ROLES)):
        raise denied(401, "invalid_credential", f"the token's 'roles' claim must list some of {', '.join(ROLES)}")
    subject = str(claims["sub"])
    # A token is a person's: its subject is the officer an officer action is attributed to.
    officer = subject if "officer" in roles and OFFICER.match(subject) else None
    sender = claims.get("sender")
    if sender is not None and not (isinstance(sender, str) and SENDER.match(sender)):
        raise denied(401, "invalid_credential", "the token's 'sender' claim is not a producer name")
    return Principal(
        key_id=f"jwt:{subject}", agency_code=agency, roles=frozenset(roles), officer=officer, sender=sender
    )


BEARER = HTTPBearer(
    auto_error=False,
    description="An API key, `Authorization: Bearer lk_<key id>_<secret>`, or a JWT of the configured issuer",
)
Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]


async def authenticate(request: Request, bearer: HTTPAuthorizationCredentials | None) -> Principal:
    """The principal of the request's bearer key, or :func:`denied` saying what is wrong with it."""
    if bearer is None:
        raise denied(401, "missing_credential", "send an API key or a JWT: Authorization: Bearer <credential>")
    runtime = request.app.state.runtime
    if bearer.credentials.count(".") == 2:  # a JWT's three parts; a key has no dot
        if runtime.tokens is None:
            raise denied(401, "invalid_credential", "this service accepts no JWTs: no issuer is configured")
        found: Principal = runtime.tokens.principal(bearer.credentials)
        return found
    key_id = key_id_of(bearer.credentials)
    if key_id is None:
        raise denied(401, "invalid_credential", "the bearer key is not of the form lk_<key id>_<secret>")
    credential = await runtime.keys.find(runtime.pool, key_id)
    check(credential, bearer.credentials, datetime.now(UTC))
    assert credential is not None
    return Principal(
        key_id=key_id,
        agency_code=credential.agency_code,
        roles=credential.roles,
        officer=credential.officer,
        sender=credential.sender,
    )


async def authorize(request: Request, roles: tuple[str, ...]) -> Principal:
    """The caller's principal if it holds one of ``roles`` (auditors: any GET), and is within its rate."""
    found = await authenticate(request, await BEARER(request))
    logs.bind(credential=found.key_id)
    permit(found, roles, request.method)
    limits = request.app.state.runtime.credential_limits
    if limits is not None:
        wait = limits.take(found.key_id)
        if wait > 0:
            raise rate_limited(wait, "credential")
    return found


def require(*roles: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the caller's :class:`Principal` if it holds one of ``roles`` (auditors: any GET).

    ``shared.platform.http.LedgerRoute`` runs the check before it reads the body and keeps the principal on the
    request; the dependency then hands it over (and declares the bearer scheme in the OpenAPI document)."""

    async def principal(request: Request, bearer: Bearer) -> Principal:
        checked: Principal | None = getattr(request.state, "principal", None)
        return checked if checked is not None else await authorize(request, roles)

    setattr(principal, ROLES_ATTRIBUTE, roles)
    return principal


async def create(
    connection: Connection,
    *,
    agency_code: str,
    roles: Iterable[str],
    label: str = "",
    expires_at: datetime | None = None,
    key: str | None = None,
    officer: str | None = None,
    sender: str | None = None,
) -> tuple[str, str]:
    """Store a new credential; return its key id and the key (``key`` given: that one, as tests fix theirs).
    ``officer``: the officer it is issued to, whom its officer actions are attributed to. ``sender``: the intake
    sender it speaks for (an agency's or customs' producer name), whose refused commands it may read."""
    key_id, key = (key_id_of(key), key) if key else new_key()
    if key_id is None:
        raise ValueError("a key reads lk_<key id>_<secret>")
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}; roles are {', '.join(ROLES)}")
    if officer is not None and ("officer" not in roles or not OFFICER.match(officer)):
        raise ValueError("an officer is named only on a key with the officer role, as letters, digits and ._@-")
    if sender is not None and not SENDER.match(sender):
        raise ValueError("a sender is a producer name: lower-case letters, digits and ._- (as keys trust names it)")
    roles = sorted(set(roles))
    await connection.execute(INSERT, key_id, digest(key), agency_code, roles, label, expires_at, officer, sender)
    return key_id, key


async def rotate(connection: Connection, key_id: str, *, grace: timedelta) -> tuple[str, str]:
    """A new key with the old one's grants; the old one keeps working for ``grace``, then expires."""
    row = await connection.fetchrow(GRANTS, key_id)
    if row is None:
        raise LookupError(f"no key {key_id} in force")
    new = await create(
        connection,
        agency_code=row["agency_code"],
        roles=row["roles"],
        label=row["label"] or f"rotated {key_id}",
        officer=row["officer"],
        sender=row["sender"],
    )
    await connection.execute(EXPIRE, key_id, datetime.now(UTC) + grace)
    return new


async def revoke(connection: Connection, key_id: str) -> bool:
    """Revoke a key at once (within each service's cache time); False when there is no such key in force."""
    return str(await connection.execute(REVOKE, key_id)).endswith(" 1")


async def listing(connection: Connection) -> list[dict[str, Any]]:
    """Every credential, without its hash."""
    return [dict(r) for r in await connection.fetch(LIST)]
