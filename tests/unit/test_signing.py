"""Signing a record's exact bytes, and judging a signature against the trusted keys and their validity."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.contract import signatures
from shared.contract.events import Envelope, Reason
from shared.contract.trust import KeyScope
from shared.platform import signing
from shared.platform.placement import case_partition
from tests.histories import many_cases

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
OTHER = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
NOW = datetime(2026, 6, 1, tzinfo=UTC)
VALUE = b'{"type": "LicenseGranted"}'


def _trust(*, revoked_at: datetime | None = None) -> signing.TrustList:
    public = KEY.public_key()
    return signing.TrustList.of(
        [signing.TrustedKey("review", signatures.key_id(public), public, signing.ALWAYS, revoked_at)]
    )


def _code(value: bytes, headers: signing.Headers, *, producer: str = "review", at: datetime = NOW) -> str | None:
    reason = _trust(revoked_at=NOW).problem(value, headers, producer=producer, at=at, use="events")
    return reason.code if reason else None


def test_a_record_signed_by_a_trusted_key_of_its_producer_verifies() -> None:
    assert _code(VALUE, signatures.signature_headers(VALUE, KEY), at=NOW - timedelta(seconds=1)) is None


def test_each_fault_has_its_reason() -> None:
    before = NOW - timedelta(seconds=1)
    assert _code(VALUE, [], at=before) == "unsigned_event"
    assert _code(VALUE, signatures.signature_headers(VALUE, OTHER), at=before) == "untrusted_key"
    assert _code(VALUE, signatures.signature_headers(VALUE, KEY), producer="registry", at=before) == "untrusted_key"
    assert _code(VALUE + b" ", signatures.signature_headers(VALUE, KEY), at=before) == "bad_signature"
    garbled = [
        (signatures.SIGNATURE_HEADER, b"not base64!"),
        (signatures.KEY_ID_HEADER, signatures.key_id(KEY.public_key()).encode()),
    ]
    assert _code(VALUE, garbled, at=before) == "bad_signature"


def test_a_revoked_key_verifies_what_came_before_its_revocation_only() -> None:
    headers = signatures.signature_headers(VALUE, KEY)
    assert _code(VALUE, headers, at=NOW - timedelta(days=1)) is None
    assert _code(VALUE, headers, at=NOW) == "untrusted_key"


def test_a_generated_key_is_made_once_per_service(tmp_path: Path) -> None:
    first = signing.load_signing_key(key=None, key_file=None, key_dir=str(tmp_path), file_name="review-signing.key")
    again = signing.load_signing_key(key=None, key_file=None, key_dir=str(tmp_path), file_name="review-signing.key")
    assert signatures.key_id(first.public_key()) == signatures.key_id(again.public_key())


def _scoped(scope: KeyScope) -> signing.TrustList:
    public = KEY.public_key()
    return signing.TrustList.of(
        [signing.TrustedKey("gd-commerce", signatures.key_id(public), public, signing.ALWAYS, None, scope)]
    )


def test_a_key_signs_only_what_its_scope_names() -> None:
    headers = signatures.signature_headers(VALUE, KEY)
    commands = _scoped(KeyScope(use="commands", agency_code="44"))
    assert commands.problem(VALUE, headers, producer="gd-commerce", at=NOW, use="commands") is None
    refused = commands.problem(VALUE, headers, producer="gd-commerce", at=NOW, use="events")
    assert refused is not None and refused.code == "untrusted_key" and "commands" in refused.message
    grants_only = _scoped(KeyScope(use="events", event_types=("LicenseGranted",)))
    assert (
        grants_only.problem(VALUE, headers, producer="gd-commerce", at=NOW, use="events", event_type="LicenseGranted")
        is None
    )
    other = grants_only.problem(
        VALUE, headers, producer="gd-commerce", at=NOW, use="events", event_type="ExportRecorded"
    )
    assert other is not None and other.code == "untrusted_key"


def test_a_key_id_header_holding_any_bytes_gives_a_reason_never_an_exception() -> None:
    for junk in (b"\x00", b"\x00" * 70, b"\xff\xfe", "é\u202e".encode(), b""):
        headers = [(signatures.SIGNATURE_HEADER, b"AAAA"), (signatures.KEY_ID_HEADER, junk)]
        reason = _trust().problem(VALUE, headers, producer="review", at=NOW, use="events")
        assert reason is not None and reason.code == "untrusted_key" and "\x00" not in reason.message


@settings(max_examples=300, deadline=None)
@given(junk=st.binary(max_size=200) | st.binary(max_size=120).map(base64.b64encode))
def test_a_signature_header_holding_any_bytes_is_a_bad_signature_never_an_exception(junk: bytes) -> None:
    # Not base64, base64 of the wrong length, or 64 bytes that are no signature: each is refused as the record's
    # own fault, so the reader dead-letters it and goes on.
    headers = [
        (signatures.SIGNATURE_HEADER, junk),
        (signatures.KEY_ID_HEADER, signatures.key_id(KEY.public_key()).encode()),
    ]
    reason = _trust().problem(VALUE, headers, producer="review", at=NOW, use="events")
    assert reason is not None and reason.code == "bad_signature"


def _placed(event: Envelope, partition: int, *, signed: bool = False) -> SimpleNamespace:
    """A record of the case stream holding ``event`` in ``partition``, as a consumer hands it over; signed by
    ``KEY`` if ``signed`` (``_trust_every_producer`` trusts it)."""
    value = event.to_bytes()
    headers = signatures.signature_headers(value, KEY) if signed else []
    return SimpleNamespace(
        value=value, headers=headers, topic="licensing.cases", partition=partition, offset=0, key=None
    )


def _trust_every_producer(events: list[Envelope]) -> signing.TrustList:
    public = KEY.public_key()
    producers = {event.producer for event in events}
    return signing.TrustList.of(
        [signing.TrustedKey(name, signatures.key_id(public), public, signing.ALWAYS, None) for name in producers]
    )


@settings(max_examples=60, deadline=None)
@given(partitions=st.integers(min_value=1, max_value=64), index=st.integers(min_value=0, max_value=5))
def test_an_event_reads_in_its_cases_partition_and_is_misplaced_in_every_other(partitions: int, index: int) -> None:
    events = many_cases(2)
    event, trust = events[index], _trust_every_producer(events)
    home = case_partition(event.case_id, partitions)
    read = signing.read_case_event(_placed(event, home, signed=True), trust, partitions=partitions)
    assert read == event
    for elsewhere in set(range(partitions)) - {home}:
        refused = signing.read_case_event(_placed(event, elsewhere, signed=True), trust, partitions=partitions)
        assert isinstance(refused, Reason) and refused.code == "misplaced_event"


@settings(max_examples=30, deadline=None)
@given(partitions=st.integers(min_value=2, max_value=64), index=st.integers(min_value=0, max_value=5))
def test_a_record_a_checkpoint_vouches_for_is_not_judged_again(partitions: int, index: int) -> None:
    """The live fold judged its placement and signature when it applied it, and refused it if either failed; the
    replay is held to the checkpoint's chain heads, which cover every record's bytes in its partition. So a
    vouched record reads as the event it holds, wherever it sits and unsigned."""
    event = many_cases(2)[index]
    elsewhere = (case_partition(event.case_id, partitions) + 1) % partitions
    read = signing.read_case_event(_placed(event, elsewhere), _trust(), partitions=partitions, verify=False)
    assert read == event


@pytest.mark.parametrize("partitions", [0, -1])
def test_a_partition_count_below_one_is_the_readers_error_and_refuses_no_event(partitions: int) -> None:
    """A count taken from metadata the client lacked (no topic: 0 partitions) must not turn a genuine event
    into a refusal that the fold records and moves past: the reader raises instead, and starts again."""
    event = many_cases(1)[0]
    with pytest.raises(ValueError, match="at least one partition"):
        signing.read_case_event(_placed(event, 0), _trust(), partitions=partitions, verify=False)
    with pytest.raises(ValueError, match="at least one partition"):
        case_partition(event.case_id, partitions)


@settings(max_examples=150, deadline=None)
@given(
    seed=st.binary(min_size=32, max_size=32),
    value=st.binary(max_size=2000),
    flip=st.integers(min_value=0, max_value=10_000),
    cut=st.integers(min_value=0, max_value=70),
)
def test_libsodium_signs_and_checks_exactly_as_openssl_does(seed: bytes, value: bytes, flip: int, cut: int) -> None:
    # The services sign and check through libsodium (signatures.sign, holds), keys and every log written before
    # through OpenSSL (cryptography): the signatures must be the same bytes, and each must accept and refuse the
    # same signatures, whether the value, the signature or its length was changed.
    key = Ed25519PrivateKey.from_private_bytes(seed)
    public = key.public_key()
    signature = signatures.sign(key, value)
    assert signature == key.sign(value)

    def openssl_holds(signature: bytes, value: bytes) -> bool:
        try:
            public.verify(signature, value)
        except InvalidSignature:
            return False
        return True

    tampered_signature = bytearray(signature)
    tampered_signature[flip % len(signature)] ^= 1 << (flip % 8)
    tampered_value = bytearray(value or b"\0")
    tampered_value[flip % len(tampered_value)] ^= 1 << (flip % 8)
    for candidate, over in [
        (signature, value),
        (bytes(tampered_signature), value),
        (signature, bytes(tampered_value)),
        (signature[:cut], value),
        (signature + bytes(cut), value),
        (signatures.sign(OTHER, value), value),
    ]:
        assert signatures.holds(public, candidate, over) is openssl_holds(candidate, over)
    assert signatures.holds(public, signature, value)
    assert not signatures.holds(public, bytes(tampered_signature), value)
