"""Ed25519 keys and signed records: one implementation for the registry's checkpoints, every event, every
command, and the trust statements.

A producer signs a record's value exactly as published (the canonical bytes are the bytes on the wire:
nothing is re-serialised before verifying). The signature and the signer's key id travel in the
record's headers, so the value, and with it the hash chain and every reader, stays as it was.

Who may sign what is a :class:`TrustList`, folded from the signed statements of the trust topic
(``shared/platform/trust.py``): a producer (an envelope's ``producer``, a command's ``sender``), its public keys,
each valid from ``added_at`` up to ``revoked_at`` (judged by the record's own time, an event's
``occurred_at``, so that a replay decides as the live reader did), and what each may sign
(:class:`KeyScope`). docs/signing.md has the whole design.
"""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from pydantic import ValidationError

from shared.contract import signatures
from shared.contract.commands import describe
from shared.contract.events import Envelope, Reason
from shared.contract.refusal import readable
from shared.contract.signatures import KEY_ID_HEADER, SIGNATURE_HEADER, key_id, private_key_from, public_b64
from shared.contract.trust import KeyScope, Use
from shared.platform.placement import case_partition
from shared.platform.vouched import read_vouched

log = logging.getLogger(__name__)

ALWAYS = datetime(1970, 1, 1, tzinfo=UTC)
"""A validity start before any record: for keys trusted for all time (tests, development)."""
Headers = Sequence[tuple[str, bytes | None]]


# Keys.


def load_signing_key(
    *,
    key: str | None,
    key_file: str | None,
    key_dir: str,
    file_name: str = "registry-signing.key",
    generate: bool = True,
    setting: str = "REGISTRY_SIGNING_KEY",
) -> Ed25519PrivateKey:
    """A service's signing key: given (base64 of the raw key), in ``key_file``, or made once in ``key_dir``.

    ``setting`` names the variable that gives it, for the warning when a key is generated.
    """
    if key:
        return private_key_from(key)
    if key_file:  # named explicitly: a missing file is an error, never silently a new identity
        return _read_key(Path(key_file).expanduser())
    path = Path(key_dir).expanduser() / file_name
    if not path.exists() and generate:
        _generate_key(path, setting)
    return _read_key(path)


def _read_key(path: Path) -> Ed25519PrivateKey:
    return private_key_from(path.read_text())


def _generate_key(path: Path, setting: str) -> None:
    generated = Ed25519PrivateKey.generate()
    raw = generated.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        # O_EXCL: two instances starting together keep one key (the loser reads the winner's).
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "w") as file:
        file.write(base64.b64encode(raw).decode() + "\n")
    log.warning(
        "generated a new signing key at %s (key id %s, public key %s). In production set %s or %s_FILE "
        "and give the public key out of band (auditors, licensectl keys trust).",
        path,
        key_id(generated.public_key()),
        public_b64(generated.public_key()),
        setting,
        setting,
    )


ANY_EVENT = KeyScope(use="events")


@dataclass(frozen=True)
class TrustedKey:
    """A public key trusted to sign for ``producer`` within ``scope``, for records of its validity."""

    producer: str
    key_id: str
    public_key: Ed25519PublicKey
    added_at: datetime
    revoked_at: datetime | None = None
    scope: KeyScope = ANY_EVENT

    def revoked(self, at: datetime) -> TrustedKey:
        return replace(self, revoked_at=at)

    def valid_at(self, moment: datetime) -> bool:
        if moment.tzinfo is None:  # an event's time without a zone is UTC (shared/contract/events.py)
            moment = moment.replace(tzinfo=UTC)
        return self.added_at <= moment and (self.revoked_at is None or moment < self.revoked_at)


@dataclass
class TrustList:
    """The trusted keys, by key id; what a reader verifies signatures against."""

    keys: dict[str, list[TrustedKey]] = field(default_factory=dict)
    # (topic, partition) -> the first offset that must be signed: a log older than signatures is not.
    signed_from: dict[tuple[str, int], int] = field(default_factory=dict)

    def predates_signatures(self, topic: str, partition: int, offset: int) -> bool:
        """Whether the record was written before its log's records were signed (folded unverified)."""
        return offset < self.signed_from.get((topic, partition), 0)

    @classmethod
    def of(cls, keys: Iterable[TrustedKey]) -> TrustList:
        trust = cls()
        for k in keys:
            trust.keys.setdefault(k.key_id, []).append(k)
        return trust

    def problem(
        self, value: bytes, headers: Headers, *, producer: str, at: datetime, use: Use, event_type: str | None = None
    ) -> Reason | None:
        """Why ``value`` is not signed by a key trusted for ``producer`` at ``at`` (None if it is)."""
        found = self.signer(value, headers, producer=producer, at=at, use=use, event_type=event_type)
        return found if isinstance(found, Reason) else None

    def signer(
        self, value: bytes, headers: Headers, *, producer: str, at: datetime, use: Use, event_type: str | None = None
    ) -> TrustedKey | Reason:
        """The key trusted for ``producer`` at ``at``, for ``use`` (and ``event_type``), that signed ``value``; or
        why there is none.

        ``unsigned_event``: no signature; ``untrusted_key``: the key is unknown, is another producer's, was not
        valid at ``at``, or is not trusted to sign this (commands with a key for events, an event type its
        producer does not append); ``bad_signature``: the signature does not hold over these bytes.
        """
        signature, signer = header(headers, SIGNATURE_HEADER), header(headers, KEY_ID_HEADER)
        if signature is None or signer is None:
            return Reason(code="unsigned_event", message=f"no {SIGNATURE_HEADER} and {KEY_ID_HEADER} headers")
        named = readable(signer.decode(errors="replace"), 64)
        candidates = self.keys.get(named, [])
        if not candidates:
            return Reason(code="untrusted_key", message=f"signed by key {named[:16]}…, which is not a trusted key")
        mine = [k for k in candidates if k.producer == producer]
        if not mine:
            owners = ", ".join(sorted({k.producer for k in candidates}))
            return Reason(
                code="untrusted_key", message=f"signed by a key of {owners}, not of {producer!r} as the record claims"
            )
        valid = [k for k in mine if k.valid_at(at)]
        if not valid:
            return Reason(
                code="untrusted_key", message=f"key {named[:16]}… of {producer!r} was not valid at {at.isoformat()}"
            )
        key = valid[0]
        if key.scope.use != use:
            return Reason(
                code="untrusted_key", message=f"key {named[:16]}… of {producer!r} is trusted to sign {key.scope.use}"
            )
        if event_type is not None and key.scope.event_types is not None and event_type not in key.scope.event_types:
            return Reason(
                code="untrusted_key",
                message=f"key {named[:16]}… of {producer!r} is not trusted to sign {readable(event_type, 64)!r}",
            )
        try:
            holds = signatures.holds(key.public_key, base64.b64decode(signature, validate=True), value)
        except ValueError:  # not base64
            holds = False
        if not holds:
            return Reason(code="bad_signature", message=f"the signature by key {named[:16]}… does not hold")
        return key


def header(headers: Headers, name: str) -> bytes | None:
    """The value of the first header called ``name`` (None if there is none): the one every reader takes."""
    for key, value in headers:
        if key == name:
            return value
    return None


def read_case_event(
    record: Any, trust: TrustList, *, partitions: int | None = None, verify: bool = True
) -> Envelope | Reason:
    """The event in a record of the case stream, or why no reader may act on it: it cannot be read, it sits
    in a partition that is not its case's (``partitions``: how many the stream has), or it is not signed by a
    key ``trust`` holds for its producer, for its type, at the time it occurred; never an exception, whatever
    the record's bytes and headers. The registry's fold (live and in replay, and in an audit), review and
    the applications service all read the stream through this.

    ``verify=False`` skips what the live fold checked of the record when it applied it, its signature and its
    placement, and reads it without validating it again when it can (``shared/platform/vouched.py``): only for a
    record a trusted checkpoint already vouches for (``services/registry/replay.py``: the checkpoint's chain heads
    cover the records' bytes and partitions, and the records the live fold refused are not vouched for).

    A ``partitions`` below 1 is the reader's own error (a partition count taken from metadata the client
    did not have), not the record's: it raises ValueError, so that no genuine event is refused for it."""
    if partitions is not None and partitions < 1:
        raise ValueError(f"a case stream has at least one partition, not {partitions}: the reader's count is wrong")
    try:
        return _read_case_event(record, trust, partitions, verify=verify)
    except Exception as exc:  # whatever the record holds, the reader is told why and moves on
        return unreadable(exc, "unreadable_event")


def unreadable(error: BaseException, code: str = "unreadable_record") -> Reason:
    """The reason of a record whose reading raised what no check anticipated: named, never raised again."""
    return Reason(code=code, message=readable(f"the record cannot be read: {type(error).__name__}: {error}", 1000))


def _read_case_event(record: Any, trust: TrustList, partitions: int | None, *, verify: bool) -> Envelope | Reason:
    value = record.value or b""
    # A record a checkpoint vouches for was validated when the live fold applied it: read it the fast way.
    envelope = read_vouched(value) if not verify else None
    if envelope is None:
        try:
            envelope = Envelope.from_bytes(value)
        except ValidationError as exc:
            return Reason(code="unreadable_event", message=describe(exc))
    if not verify:
        return envelope
    if partitions is not None and (home := case_partition(envelope.case_id, partitions)) != record.partition:
        # A copy of a genuine record, or an event sent with another partitioner: its case lives elsewhere.
        return Reason(
            code="misplaced_event",
            message=f"case {envelope.case_id} lives in partition {home}, not {record.partition}: every event of a "
            "case is appended to its case's partition (keyed by its case id), and only there",
        )
    if trust.predates_signatures(record.topic, record.partition, record.offset):
        return envelope
    headers = list(record.headers or ())
    found = trust.problem(
        value, headers, producer=envelope.producer, at=envelope.occurred_at, use="events", event_type=envelope.type
    )
    return found or envelope
