"""The event contract: the envelope every event travels in, and the typed events themselves.

This module is the one home of the contract. Services import these classes; none redefines them.
Events are frozen and past tense. Their wire form is the envelope as JSON, the typed payload under
``payload``; ``type`` and ``schema_version`` say how to read it.
"""

from __future__ import annotations

import unicodedata
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal, Union

import pycountry
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializeAsAny,
    Strict,
    StringConstraints,
    create_model,
    field_validator,
    model_validator,
)

from .upcasters import upcast

EVENT_NAMESPACE = uuid.UUID("5b0d6f1e-3c55-4c8a-9a43-3f1f8f3e2a10")
"""Namespace of every deterministic event id (UUIDv5) in the ledger."""


def derived_event_id(cause: uuid.UUID | str, reaction: str) -> uuid.UUID:
    """The id of the event a service derives from ``cause``: the same cause gives the same id."""
    return uuid.uuid5(EVENT_NAMESPACE, f"{cause}:{reaction}")


class Frozen(BaseModel):
    """Base of every contract model: immutable and strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


# Looked up once: every event read validates its codes, and pycountry's own look-up is slow.
COUNTRIES = frozenset(country.alpha_2 for country in pycountry.countries)
CURRENCIES = frozenset(currency.alpha_3 for currency in pycountry.currencies)


def _is_country(code: str) -> str:
    if code not in COUNTRIES:
        raise ValueError(f"{code!r} is not an ISO 3166-1 alpha-2 country code (regions are not allowed)")
    return code


def _is_currency(code: str) -> str:
    if code not in CURRENCIES:
        raise ValueError(f"{code!r} is not an ISO 4217 currency code")
    return code


USCC = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9A-HJ-NP-RTUW-Y]{2}\d{6}[0-9A-HJ-NP-RTUW-Y]{10}$"),
]
"""An 18-character unified social credit code."""
CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$"), AfterValidator(_is_country)]
CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$"), AfterValidator(_is_currency)]
PortCode = Annotated[str, StringConstraints(pattern=r"^CN[A-Z0-9]{3}$")]
"""A customs port of exit, as its UN/LOCODE (CN + three characters)."""
VIN = Annotated[str, StringConstraints(pattern=r"^[A-HJ-NPR-Z0-9]{17}$")]
LicenseNumber = Annotated[str, StringConstraints(pattern=r"^\d{2}-\d{2}-\d{6}$")]
AgencyCode = Annotated[str, StringConstraints(pattern=r"^\d{2}$")]
CommodityCode = Annotated[str, StringConstraints(pattern=r"^\d{10}$")]


# Characters no text of the ledger may hold, whatever path it comes by (HTTP, intake, an officer's reason):
# control characters (NUL, BEL, ...; PostgreSQL text cannot even hold NUL), format characters (bidirectional
# overrides, zero-width spaces and joiners: they make a contract number read as another), surrogates (not
# encodable as UTF-8), private-use characters, and line or paragraph separators.
_UNCLEAN = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})


def unclean_characters(text: str) -> list[str]:
    """The characters of ``text`` no text field may hold, each spelled ``U+XXXX``, in order of appearance."""
    if text.isprintable():
        return []
    found = [c for c in text if unicodedata.category(c) in _UNCLEAN]
    return list(dict.fromkeys(f"U+{ord(c):04X}" for c in found))


def _clean(text: str) -> str:
    bad = unclean_characters(text)
    if bad:
        raise ValueError(f"text must not contain control, format or separator characters; found {', '.join(bad)}")
    return text


Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), AfterValidator(_clean)]
"""Free text of a person's: one line of printable characters (no control, bidirectional or zero-width ones)."""


def _iso_day(value: Any) -> Any:
    # Lax date parsing takes 0 for 1970-01-01, and a bool for an int: a day is written as a day, or not at all.
    if isinstance(value, date | str):
        return value
    raise ValueError("a date is written as a string, YYYY-MM-DD")


Day = Annotated[date, BeforeValidator(_iso_day)]
"""A calendar day, written ``YYYY-MM-DD`` (never a number)."""
Count = Annotated[int, Strict()]
"""A whole number written as one: not ``true``, not ``5.0``, not ``"5"``."""


class ApplicationStatus(StrEnum):
    """Where an application stands: the one vocabulary of every service, the ledger and the contract."""

    SUBMITTED = "submitted"
    ESCALATED = "escalated"
    APPROVED = "approved"
    REJECTED = "rejected"
    RETURNED = "returned"
    WITHDRAWN = "withdrawn"


class LicenseStatus(StrEnum):
    """Where a license stands: only an active one admits exports."""

    ACTIVE = "active"
    EXHAUSTED = "exhausted"
    EXPIRED = "expired"
    SUSPENDED = "suspended"
    REVOKED = "revoked"
    REPLACED = "replaced"


class Role(StrEnum):
    MANUFACTURER = "manufacturer"
    DISTRIBUTOR = "distributor"


class Condition(StrEnum):
    NEW = "new"
    USED = "used"


class BatchMode(StrEnum):
    """New vehicles: up to 12 declarations. Used vehicles: one batch, one license."""

    MULTI = "multi"
    SINGLE = "single"


class Party(Frozen):
    """An enterprise named in an application."""

    code: USCC
    name: Text


class Applicant(Party):
    role: Role


class UsedVehicle(Frozen):
    """One used vehicle of an application: its VIN and registration history."""

    vin: VIN
    first_registration_date: Day
    registered_owner: USCC
    transfer_date: Day

    @model_validator(mode="after")
    def _transfer_follows_registration(self) -> UsedVehicle:
        if self.transfer_date < self.first_registration_date:
            raise ValueError("transfer_date must not precede first_registration_date")
        return self


class Application(Frozen):
    """What an exporting enterprise applies for: one destination, one port, one contract."""

    agency_code: AgencyCode
    applicant: Applicant
    manufacturer: Party
    commodity_code: CommodityCode
    model_code: Annotated[str, StringConstraints(pattern=r"^[A-Z0-9-]{3,20}$")]
    brand: Text
    condition: Condition
    quantity: Annotated[Count, Field(ge=1, le=100_000)]
    unit_price: Annotated[Decimal, Field(gt=0, max_digits=14, decimal_places=2)]
    currency: CurrencyCode
    destination_country: CountryCode
    trade_mode: Text
    contract_number: Text
    port_of_exit: PortCode
    payment_mode: Text
    transport_mode: Text
    used_vehicles: tuple[UsedVehicle, ...] = ()
    license_year: Annotated[Count, Field(ge=2000, le=2100)] | None = None
    """The year the license is for; None means the year of the decision. Next year's from mid-December."""

    @property
    def total_value(self) -> Decimal:
        return self.unit_price * self.quantity

    @model_validator(mode="after")
    def _used_vehicles_match_condition(self) -> Application:
        if self.condition is Condition.USED:
            if len(self.used_vehicles) != self.quantity:
                raise ValueError(
                    f"a used-vehicle application lists each vehicle: {self.quantity} expected, "
                    f"{len(self.used_vehicles)} given in used_vehicles"
                )
            vins = [v.vin for v in self.used_vehicles]
            if len(set(vins)) != len(vins):
                raise ValueError("used_vehicles lists a VIN twice")
        elif self.used_vehicles:
            raise ValueError("used_vehicles is only for condition 'used'")
        return self


class Reason(Frozen):
    """Why something was refused: a code a machine can act on and a message a person can."""

    code: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$")]
    message: Annotated[str, StringConstraints(max_length=2000), AfterValidator(_clean)]


class Event(Frozen):
    """Base of the typed payloads. ``TYPE`` and ``SCHEMA_VERSION`` name them on the wire."""

    TYPE: ClassVar[str]
    SCHEMA_VERSION: ClassVar[int] = 1


class ApplicationSubmitted(Event):
    """An application was received and passed validation; the case it opens has its id."""

    TYPE: ClassVar[str] = "ApplicationSubmitted"
    SCHEMA_VERSION: ClassVar[int] = 2
    application: Application
    channel: Literal["http", "intake"]


OFFICER_ID = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"
OfficerId = Annotated[str, StringConstraints(pattern=OFFICER_ID)]
"""The review officer who acted, as the agency's directory names them."""


class ApplicationRejected(Event):
    """Review refused the application; every failed rule is listed. ``officer`` is the officer who rejected
    an escalated application; none when the rules rejected it."""

    TYPE: ClassVar[str] = "ApplicationRejected"
    reasons: Annotated[tuple[Reason, ...], Field(min_length=1)]
    officer: OfficerId | None = None


class ApplicationEscalated(Event):
    """The rules cannot decide the application alone; an officer must, by ``due`` (rule 12)."""

    TYPE: ClassVar[str] = "ApplicationEscalated"
    reasons: Annotated[tuple[Reason, ...], Field(min_length=1)]
    due: Day


class LicenseGranted(Event):
    """Review granted a license for the application of the case.

    ``officer`` is the officer who approved an escalated application; none when the rules granted it.
    """

    TYPE: ClassVar[str] = "LicenseGranted"
    license_number: LicenseNumber
    applicant_code: USCC
    valid_from: Day
    valid_to: Day
    quantity: Annotated[Count, Field(ge=1)]
    value: Decimal
    currency: CurrencyCode
    port_of_exit: PortCode
    destination_country: CountryCode
    trade_mode: Text
    batch_mode: BatchMode
    vins: tuple[VIN, ...] = ()
    officer: OfficerId | None = None

    @model_validator(mode="after")
    def _validity_is_ordered(self) -> LicenseGranted:
        if self.valid_to < self.valid_from:
            raise ValueError("valid_to must not precede valid_from")
        return self


class DeclaredExport(Frozen):
    """The terms of an export declaration, as the events that record it carry them."""

    declaration_number: Annotated[str, StringConstraints(pattern=r"^[A-Z0-9]{6,24}$")]
    license_number: LicenseNumber
    port_of_exit: PortCode
    export_date: Day
    # At most what the ledger's int column holds: a larger count passed, was appended, and stalled the fold.
    quantity: Annotated[Count, Field(ge=1, le=2**31 - 1)]
    vins: tuple[VIN, ...] = ()
    value: Annotated[Decimal, Field(ge=0, max_digits=16, decimal_places=2)]
    currency: CurrencyCode


class ExportDeclaration(DeclaredExport):
    """What customs declares: an export of vehicles against one license, at one port, on one day.

    Checked as it comes in (not in the events of a log, which keep what was declared then): the VINs, when
    given, are one per vehicle declared."""

    @model_validator(mode="after")
    def _vins_match_quantity(self) -> ExportDeclaration:
        if self.vins and len(self.vins) != self.quantity:
            raise ValueError(
                f"a declaration that lists VINs lists one per vehicle: {self.quantity} declared, {len(self.vins)} VINs"
            )
        return self


class ExportRecorded(Event, DeclaredExport):
    """Customs declared an export against a license; the ledger's fold admits or refuses it."""

    TYPE: ClassVar[str] = "ExportRecorded"
    SCHEMA_VERSION: ClassVar[int] = 2


class ExportRefused(Event, DeclaredExport):
    """The registry's intake refused a declaration the fold cannot judge alone, kept on record with why.

    Rule 9 (a VIN leaves once, across all licenses) spans cases and so partitions; the intake decides it
    against its VIN claims and appends the verdict, so every reader and every replay folds the same one.
    It shares the declaration's event id with ``ExportRecorded``: one declaration, one verdict in the log.
    """

    TYPE: ClassVar[str] = "ExportRefused"
    reason: Reason


class LicenseExpired(Event):
    """The license's validity has passed (China time); emitted once per license by review's scheduler.

    ``expired_on`` is the first day after ``valid_to``, so a second emission is identical in content too.
    """

    TYPE: ClassVar[str] = "LicenseExpired"
    license_number: LicenseNumber
    expired_on: Day


Reasons = Annotated[tuple[Reason, ...], Field(min_length=1)]


class ApplicationReturned(Event):
    """An officer returned the escalated application for correction; ``reasons`` say what to correct."""

    TYPE: ClassVar[str] = "ApplicationReturned"
    officer: OfficerId
    reasons: Reasons


class ApplicationResubmitted(Event):
    """The applicant corrected a returned application; review decides the corrected one afresh."""

    TYPE: ClassVar[str] = "ApplicationResubmitted"
    application: Application
    returned_event_id: uuid.UUID
    """The ``ApplicationReturned`` this answers (one resubmission per return)."""


class ApplicationWithdrawn(Event):
    """The applicant withdrew the application before it was decided; a decision after it is void."""

    TYPE: ClassVar[str] = "ApplicationWithdrawn"
    reason: Text | None = None


class LicenseSuspended(Event):
    """An officer suspended the license: no export passes on it until it is reinstated."""

    TYPE: ClassVar[str] = "LicenseSuspended"
    license_number: LicenseNumber
    officer: OfficerId
    reason: Reason


class LicenseReinstated(Event):
    """An officer lifted the license's suspension: it is active again on its remaining balance."""

    TYPE: ClassVar[str] = "LicenseReinstated"
    license_number: LicenseNumber
    officer: OfficerId
    note: Text | None = None


class LicenseRevoked(Event):
    """An officer revoked the license for good: no export passes on it again."""

    TYPE: ClassVar[str] = "LicenseRevoked"
    license_number: LicenseNumber
    officer: OfficerId
    reason: Reason


class LicenseReplaced(Event):
    """An officer replaced an active license (rule 10): it ends as replaced, and the successor opens on the
    terms named here with the old license's remaining balance at this point of the stream (or ``quantity``,
    if smaller). The successor keeps the applicant, batch mode and VINs of the old one."""

    TYPE: ClassVar[str] = "LicenseReplaced"
    license_number: LicenseNumber
    successor_license_number: LicenseNumber
    officer: OfficerId
    reason: Reason
    valid_from: Day
    valid_to: Day
    port_of_exit: PortCode
    destination_country: CountryCode
    quantity: Annotated[Count, Field(ge=1)] | None = None
    """A cap on the successor's quantity; None carries the whole remaining balance over."""

    @model_validator(mode="after")
    def _successor_is_another_valid_license(self) -> LicenseReplaced:
        if self.valid_to < self.valid_from:
            raise ValueError("valid_to must not precede valid_from")
        if self.successor_license_number == self.license_number:
            raise ValueError("a license cannot be its own successor")
        return self


EVENT_TYPES: dict[str, type[Event]] = {
    cls.TYPE: cls
    for cls in (
        ApplicationSubmitted,
        ApplicationRejected,
        ApplicationEscalated,
        LicenseGranted,
        ExportRecorded,
        ExportRefused,
        LicenseExpired,
        ApplicationReturned,
        ApplicationResubmitted,
        ApplicationWithdrawn,
        LicenseSuspended,
        LicenseReinstated,
        LicenseRevoked,
        LicenseReplaced,
    )
}


class UnknownEventType(ValueError):
    """The envelope names a type this contract does not define."""


class UnsupportedSchemaVersion(ValueError):
    """The envelope's schema version is newer than this contract, or has no upcaster."""


class Envelope(Frozen):
    """Every event on every topic: identity, causality, time, producer, then the typed payload."""

    event_id: uuid.UUID
    type: str
    schema_version: Annotated[Count, Field(ge=1)]
    case_id: uuid.UUID
    occurred_at: AwareDatetime
    producer: Annotated[str, StringConstraints(min_length=1, max_length=64), AfterValidator(_clean)]
    correlation_id: uuid.UUID
    causation_id: uuid.UUID | None = None
    payload: SerializeAsAny[Event]

    @field_validator("occurred_at")
    @classmethod
    def _in_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    @model_validator(mode="before")
    @classmethod
    def _typed_payload(cls, data: Any) -> Any:
        if not isinstance(data, dict) or isinstance(data.get("payload"), Event):
            return data
        kind = data.get("type")
        event_class = EVENT_TYPES.get(kind) if isinstance(kind, str) else None
        if event_class is None:
            raise UnknownEventType(f"unknown event type {kind!r}")
        version, payload = data.get("schema_version"), data.get("payload")
        current = event_class.SCHEMA_VERSION
        readable = isinstance(version, int) and not isinstance(version, bool) and isinstance(payload, dict)
        upcasted = upcast(event_class.TYPE, version, payload, current) if readable else None  # type: ignore[arg-type]
        if upcasted is None:
            raise UnsupportedSchemaVersion(
                f"{kind} schema_version {version!r} is not supported (this service reads versions 1 to {current})"
            )
        return {**data, "schema_version": current, "payload": event_class.model_validate(upcasted)}

    @classmethod
    def wrap(
        cls,
        event: Event,
        *,
        case_id: uuid.UUID,
        producer: str,
        event_id: uuid.UUID | None = None,
        correlation_id: uuid.UUID | None = None,
        causation: Envelope | None = None,
        occurred_at: datetime | None = None,
    ) -> Envelope:
        """Put ``event`` in an envelope; a derived event names the envelope that caused it."""
        event_id = event_id or uuid.uuid4()
        return cls(
            event_id=event_id,
            type=event.TYPE,
            schema_version=event.SCHEMA_VERSION,
            case_id=case_id,
            occurred_at=occurred_at or datetime.now(UTC),
            producer=producer,
            correlation_id=correlation_id or (causation.correlation_id if causation else event_id),
            causation_id=causation.event_id if causation else None,
            payload=event,
        )

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Envelope:
        return cls.model_validate_json(raw)


LICENSE_STATE_VERSION: Literal[1] = 1
"""The version of the ``LicenseState`` message this contract writes."""


class LicenseState(Frozen):
    """A license as the ledger holds it after a change: the message of ``licensing.license-changes``.

    Keyed by license number on a compacted topic, so the latest state of every license stays readable
    from the start of the topic. ``as_of_event`` names the event that produced this state. ``schema_version``
    says which shape of this message it is: a subscriber refuses a version it does not know.
    """

    schema_version: Literal[1] = LICENSE_STATE_VERSION
    license_number: LicenseNumber
    case_id: uuid.UUID
    status: LicenseStatus
    applicant_code: USCC
    quantity: Count
    balance: Count
    declarations_used: Count
    valid_from: Day
    valid_to: Day
    port_of_exit: PortCode
    destination_country: CountryCode
    batch_mode: BatchMode
    as_of_event: uuid.UUID
    as_of: AwareDatetime


def case_event_schema() -> type[BaseModel]:
    """The envelope with its payload spelled out as each event type, for the AsyncAPI documents."""
    payload: Any = Union[tuple(EVENT_TYPES.values())]  # noqa: UP007 - a union built from the registry of types
    return create_model(
        "CaseEvent",
        __base__=Envelope,
        __doc__="An event of a license case: the envelope and one of the typed payloads.",
        payload=(payload, ...),
    )
