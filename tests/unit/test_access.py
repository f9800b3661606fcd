"""The pure parts of access control: key shape, hashing, expiry and revocation, roles."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared.contract.refusal import Refusal
from shared.platform.access import (
    Credential,
    KeyCache,
    Principal,
    TokenIssuer,
    check,
    digest,
    key_id_of,
    new_key,
    permit,
)
from tests.support import JWT_ISSUER, JWT_PUBLIC_KEY, token

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def _credential(key: str, **changes: object) -> Credential:
    fields: dict[str, object] = {
        "key_id": key_id_of(key),
        "hash": digest(key),
        "agency_code": "44",
        "roles": frozenset({"submitter"}),
        "officer": None,
        "sender": None,
        "expires_at": None,
        "revoked_at": None,
        **changes,
    }
    return Credential(**fields)  # type: ignore[arg-type]


def _code(error: pytest.ExceptionInfo[Refusal]) -> tuple[int, str]:
    return error.value.status, error.value.code


def test_a_new_key_names_its_id_and_is_never_the_same_twice() -> None:
    key_id, key = new_key()
    assert key.startswith(f"lk_{key_id}_") and key_id_of(key) == key_id
    assert new_key()[1] != key


@pytest.mark.parametrize("text", ["", "lk_", "lk_abc", "lk__secret", "xx_abc_secret", "Basic abc"])
def test_text_of_another_shape_is_no_key(text: str) -> None:
    assert key_id_of(text) is None


def test_a_key_in_force_passes_and_the_wrong_secret_does_not() -> None:
    _, key = new_key()
    check(_credential(key), key, NOW)
    with pytest.raises(Refusal) as refused:
        check(_credential(key), key + "x", NOW)
    assert _code(refused) == (401, "invalid_credential")


def test_a_revoked_key_is_invalid_and_an_expired_one_says_expired() -> None:
    _, key = new_key()
    with pytest.raises(Refusal) as refused:
        check(_credential(key, revoked_at=NOW), key, NOW)
    assert _code(refused) == (401, "invalid_credential")
    with pytest.raises(Refusal) as refused:
        check(_credential(key, expires_at=NOW), key, NOW)
    assert _code(refused) == (401, "expired_credential")
    check(_credential(key, expires_at=NOW + timedelta(seconds=1)), key, NOW)  # in its grace period


def test_roles_decide_and_an_auditor_reads_but_never_writes() -> None:
    auditor = Principal("k", "44", frozenset({"auditor"}))
    permit(auditor, ["customs"], "GET")
    with pytest.raises(Refusal) as refused:
        permit(auditor, ["customs"], "POST")
    assert _code(refused) == (403, "role_required") and "customs" in refused.value.message
    permit(Principal("k", "44", frozenset({"customs"})), ["customs", "officer"], "POST")


def test_another_agency_is_refused_unless_a_role_sees_all() -> None:
    officer = Principal("k", "44", frozenset({"officer"}))
    officer.ensure_agency("44")
    with pytest.raises(Refusal) as refused:
        officer.ensure_agency("32")
    assert _code(refused) == (403, "other_agency")
    officer.ensure_agency("32", unless=["officer"])


class _Table:
    """A stand-in for the pool: one credential row, counting the reads."""

    def __init__(self, row: dict[str, object] | None) -> None:
        self.row, self.reads = row, 0

    async def fetchrow(self, _: str, __: str) -> dict[str, object] | None:
        self.reads += 1
        return self.row


async def test_the_cache_reads_a_key_once_per_ttl_so_a_revocation_shows_after_it() -> None:
    _, key = new_key()
    row = {
        "key_id": key_id_of(key),
        "hash": digest(key),
        "agency_code": "44",
        "roles": ["customs"],
        "officer": None,
        "sender": None,
    }
    table = _Table({**row, "expires_at": None, "revoked_at": None})
    cache = KeyCache(ttl=0.2)
    first = await cache.find(table, str(key_id_of(key)))  # type: ignore[arg-type]
    table.row = {**row, "expires_at": None, "revoked_at": NOW}
    assert await cache.find(table, str(key_id_of(key))) == first  # type: ignore[arg-type]
    assert table.reads == 1
    await asyncio.sleep(0.25)
    revoked = await cache.find(table, str(key_id_of(key)))  # type: ignore[arg-type]
    assert revoked is not None and revoked.revoked_at == NOW and table.reads == 2


ISSUER = TokenIssuer(JWT_ISSUER, JWT_PUBLIC_KEY, "export-license-ledger")


def _refused_token(text: str) -> tuple[int, str]:
    with pytest.raises(Refusal) as refused:
        ISSUER.principal(text)
    return _code(refused)


def test_a_jwt_of_the_issuer_names_its_agency_and_roles() -> None:
    principal = ISSUER.principal(token("32", ["officer", "auditor"]))
    assert (principal.key_id, principal.agency_code, principal.roles) == (
        "jwt:portal-user",
        "32",
        frozenset({"officer", "auditor"}),
    )


def test_an_expired_jwt_says_expired() -> None:
    assert _refused_token(token("44", ["customs"], lifetime=-60)) == (401, "expired_credential")


@pytest.mark.parametrize(
    "claims",
    [
        {"iss": "https://elsewhere.test"},
        {"aud": "another-system"},
        {"agency": "4"},
        {"roles": []},
        {"roles": ["superuser"]},
    ],
)
def test_a_jwt_of_another_issuer_audience_or_with_bad_grants_is_invalid(claims: dict[str, object]) -> None:
    assert _refused_token(token("44", ["customs"], claims=claims)) == (401, "invalid_credential")


def test_a_jwt_signed_by_another_key_or_with_no_signature_is_invalid() -> None:
    other = jwt.encode(
        {
            "iss": JWT_ISSUER,
            "aud": "export-license-ledger",
            "sub": "x",
            "exp": 2**31,
            "agency": "44",
            "roles": ["admin"],
        },
        Ed25519PrivateKey.generate(),
        algorithm="EdDSA",
    )
    assert _refused_token(other) == (401, "invalid_credential")
    unsigned = jwt.encode(jwt.decode(other, options={"verify_signature": False}), key=None, algorithm="none")  # type: ignore[arg-type]
    assert _refused_token(unsigned) == (401, "invalid_credential")


def test_an_officer_acts_as_the_officer_the_credential_names_and_no_one_else() -> None:
    officer = ISSUER.principal(token("44", ["officer"], claims={"sub": "officer.li"}))  # a token is a person's
    assert officer.acting_officer() == officer.acting_officer("officer.li") == "officer.li"
    with pytest.raises(Refusal) as mismatch:
        officer.acting_officer("officer.wang")
    assert _code(mismatch) == (403, "officer_mismatch")
    keyed = Principal("k", "44", frozenset({"officer"}), officer="officer.wang")
    assert keyed.acting_officer() == "officer.wang"
    for nobody in (
        Principal("k", "44", frozenset({"officer"})),  # an officer key issued before keys named their officer
        ISSUER.principal(token("44", ["customs"], claims={"sub": "officer.li"})),  # not an officer's token
        ISSUER.principal(token("44", ["officer"], claims={"sub": "not an id!"})),  # no officer id in its subject
    ):
        with pytest.raises(Refusal) as refused:
            nobody.acting_officer("officer.li")
        assert _code(refused) == (403, "officer_identity_required")
