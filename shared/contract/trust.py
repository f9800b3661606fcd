"""Who may sign what, as it crosses the wire: the root-signed statements of ``licensing.trust``.

A statement trusts one key for one producer and one use (:class:`KeyScope`), revokes one, or says from which
offset a partition of the case stream is signed. How the statements are folded into a trust list, and how a
record is judged against it, is the platform's (``shared/platform/trust.py``, ``shared/platform/signing.py``).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from .events import AgencyCode, Frozen, PortCode
from .signatures import key_id, public_key_from

KeyId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
PRODUCER_NAME = r"^[a-z0-9][a-z0-9._-]{0,63}$"
"""A producer's name (our services', an agency's or customs' sender): what a key is trusted for."""
Producer = Annotated[str, StringConstraints(pattern=PRODUCER_NAME)]

Use = Literal["events", "commands"]


class KeyScope(BaseModel):
    """What a trusted key may sign: events (of these types; every type when none are named), or commands (an
    agency's applications for its agency only; customs' exports at its ports only, when it names any)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    use: Use
    event_types: tuple[str, ...] | None = None
    agency_code: AgencyCode | None = None
    ports: tuple[PortCode, ...] | None = None

    @model_validator(mode="after")
    def _fits_its_use(self) -> KeyScope:
        if self.use == "events" and (self.agency_code or self.ports):
            raise ValueError("a key that signs events is scoped by event types, not by agency or ports")
        if self.use == "commands" and self.event_types is not None:
            raise ValueError("a key that signs commands is scoped by agency or ports, not by event types")
        return self


Kind = Literal["trust", "revoke", "signed_from"]


class TrustStatement(Frozen):
    """One change to who is trusted, signed by a root key: trust a key, revoke it, or say from which offset a
    partition of the case stream is signed (a log older than signatures)."""

    statement_id: uuid.UUID
    kind: Kind
    effective_at: AwareDatetime
    issued_at: AwareDatetime
    producer: Producer | None = None
    key_id: KeyId | None = None
    public_key: str | None = None  # base64 of the raw Ed25519 public key (trust)
    scope: KeyScope | None = None  # (trust)
    topic: str | None = None  # (signed_from)
    partition: Annotated[int, Field(ge=0)] | None = None
    first_offset: Annotated[int, Field(ge=0)] | None = None

    @model_validator(mode="after")
    def _complete(self) -> TrustStatement:
        needs = {
            "trust": ("producer", "key_id", "public_key", "scope"),
            "revoke": ("producer", "key_id"),
            "signed_from": ("topic", "partition", "first_offset"),
        }[self.kind]
        missing = [name for name in needs if getattr(self, name) is None]
        if missing:
            raise ValueError(f"a {self.kind} statement names {', '.join(needs)}; missing: {', '.join(missing)}")
        if self.kind == "trust":
            assert self.public_key is not None
            if key_id(public_key_from(self.public_key)) != self.key_id:
                raise ValueError("key_id is not the SHA-256 of public_key")
        return self
