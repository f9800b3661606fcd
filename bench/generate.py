"""A realistic case log, generated with a fixed seed and streamed to Kafka without holding it in memory.

Shapes follow docs (DOMAIN.md "Realistic volumes"): fictional exporters and their USCCs, the big destinations
(Mexico, Russia, UAE, UK, Brazil, Saudi Arabia, ...), licenses of 10-600 new vehicles used over 1-12 export
declarations, a few used-vehicle single-batch licenses with their VINs. Of the applications about 8% are
rejected and 5% escalated to an officer (then granted, rejected, returned and resubmitted, or withdrawn);
about 5% of the declarations are refused by the fold (past the balance, wrong port, outside validity); some
licenses are suspended, reinstated, revoked, replaced or expire. Cases are interleaved the way they are in a
real log: a window of open cases, each emitting its next event in turn.

Every event is built with the real contract (the typed event, ``Envelope.wrap``, ``to_bytes``) and appended
to a per-partition ``BatchBuilder`` (partition chosen by the Java client's murmur2 of the case id, as the
services' producers do), so generation runs at tens of thousands of events per second in constant memory.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

import samples
from shared.contract import signatures
from shared.contract.events import (
    Application,
    ApplicationEscalated,
    ApplicationRejected,
    ApplicationResubmitted,
    ApplicationReturned,
    ApplicationSubmitted,
    ApplicationWithdrawn,
    Condition,
    Envelope,
    Event,
    ExportRecorded,
    LicenseExpired,
    LicenseGranted,
    LicenseReinstated,
    LicenseReplaced,
    LicenseRevoked,
    LicenseSuspended,
    Reason,
    UsedVehicle,
    derived_event_id,
)
from shared.platform import signing, trust
from shared.platform.kafka_access import KafkaConnection

SEED = 20260101
OPEN_CASES = 2000
"""How many cases are open at once: the log interleaves their events."""
START = datetime(2026, 1, 5, 1, 0, tzinfo=UTC)

USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
DESTINATIONS = (
    ("MX", 18),
    ("RU", 16),
    ("AE", 12),
    ("GB", 8),
    ("BR", 8),
    ("SA", 7),
    ("BE", 5),
    ("AU", 5),
    ("TR", 4),
    ("KZ", 4),
    ("CL", 3),
    ("TH", 3),
    ("IL", 3),
    ("PH", 2),
    ("NZ", 2),
)
PORTS = ("CNSHA", "CNSZX", "CNTXG", "CNNGB", "CNGZG", "CNDLC", "CNYTN", "CNLYG")
AGENCIES = ("44", "31", "34", "33", "50", "12")
MODELS = ("QI7010BEV", "QS5020PHV", "TL6030BEV", "HX7040ICE", "YF3050BEV", "LM8060PHV")
REJECTION_REASONS = (
    Reason(code="price_below_reference", message="the unit price is below the reference price for the model"),
    Reason(code="no_after_sales_service", message="the manufacturer has no after-sales outlet in the destination"),
    Reason(code="ccc_expired", message="the model's CCC certificate has expired"),
)
ESCALATION_REASONS = (
    Reason(code="new_destination", message="first export of this applicant to the destination: officer review"),
    Reason(code="quantity_above_usual", message="quantity far above the applicant's usual volume"),
)


def _uscc(rng: random.Random) -> str:
    pick = rng.choice
    return (
        "".join(pick(USCC_CHARS) for _ in range(2))
        + f"{rng.randrange(10**6):06d}"
        + "".join(pick(USCC_CHARS) for _ in range(10))
    )


def _vin(rng: random.Random) -> str:
    return "".join(rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ0123456789") for _ in range(17))


@dataclass
class Enterprise:
    code: str
    name: str
    weight: float


@dataclass
class Templates:
    """Validated applications, one per exporter: a case copies one and changes its terms (no revalidation)."""

    enterprises: list[Enterprise]
    applications: list[Application]
    weights: list[float]

    @classmethod
    def build(cls, rng: random.Random, count: int = 40) -> Templates:
        # A few large exporters (Zipf-like shares: the biggest two make a third of the volume), many small ones.
        enterprises = [
            Enterprise(_uscc(rng), f"Enterprise {i:02d} Automobile Co., Ltd.", 1.0 / (i + 1) ** 0.9)
            for i in range(count)
        ]
        applications = [
            samples.application(
                agency_code=rng.choice(AGENCIES),
                applicant={"code": e.code, "name": e.name, "role": "manufacturer"},
                manufacturer={"code": e.code, "name": e.name},
                model_code=rng.choice(MODELS),
                brand=e.name.split(" Automobile")[0],
            )
            for e in enterprises
        ]
        return cls(enterprises, applications, [e.weight for e in enterprises])


@dataclass
class Case:
    """One open case: the events it has still to emit, built when the case opens."""

    case_id: uuid.UUID
    steps: list[tuple[Event, str, uuid.UUID | None]] = field(default_factory=list)
    position: int = 0


class LogGenerator:
    """Yields ``(case_id, envelope bytes)`` for ``total`` events; the same seed gives the same log."""

    def __init__(self, total: int, seed: int = SEED) -> None:
        self.total = total
        self.rng = random.Random(seed)
        self.templates = Templates.build(self.rng)
        self.license_serial = 0
        self.declaration_serial = 0
        self.clock = START
        self.counts: dict[str, int] = {}
        self._destinations = [d for d, _ in DESTINATIONS]
        self._destination_weights = [w for _, w in DESTINATIONS]

    def _uuid(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    def _license_number(self, agency: str) -> str:
        self.license_serial += 1
        return f"26-{agency}-{self.license_serial % 1_000_000:06d}"

    def _declaration_number(self) -> str:
        self.declaration_serial += 1
        return f"5316{self.clock.year}{self.declaration_serial:010d}"

    def _new_case(self) -> Case:
        rng = self.rng
        case = Case(case_id=self._uuid())
        template = rng.choices(self.templates.applications, self.templates.weights)[0]
        used = rng.random() < 0.03
        quantity = rng.randint(1, 4) if used else int(min(600, max(10, rng.lognormvariate(4.3, 0.8))))
        port = rng.choice(PORTS)
        destination = rng.choices(self._destinations, self._destination_weights)[0]
        changes: dict[str, object] = {
            "quantity": quantity,
            "port_of_exit": port,
            "destination_country": destination,
            "contract_number": f"C-{case.case_id.hex[:10].upper()}",
            "unit_price": Decimal(rng.randrange(60_000, 400_000)).quantize(Decimal("0.01")),
        }
        vins: tuple[str, ...] = ()
        if used:
            vins = tuple(_vin(rng) for _ in range(quantity))
            first = date(2024, 1, 1) + timedelta(days=rng.randrange(500))
            code = template.applicant.code
            changes |= {
                "condition": Condition.USED,
                "used_vehicles": tuple(
                    UsedVehicle(
                        vin=v,
                        first_registration_date=first,
                        registered_owner=code,
                        transfer_date=first + timedelta(days=30),
                    )
                    for v in vins
                ),
            }
        application = template.model_copy(update=changes)
        steps = case.steps
        submitted_id = derived_event_id(case.case_id, "submitted")
        steps.append((ApplicationSubmitted(application=application, channel="http"), "applications", submitted_id))
        fate = rng.random()
        if fate < 0.08:
            steps.append((ApplicationRejected(reasons=(rng.choice(REJECTION_REASONS),)), "review", None))
            return case
        if fate < 0.09:
            steps.append((ApplicationWithdrawn(reason="contract cancelled by the buyer"), "applications", None))
            return case
        if fate < 0.14:
            due = (self.clock + timedelta(days=20)).date()
            steps.append((ApplicationEscalated(reasons=(rng.choice(ESCALATION_REASONS),), due=due), "review", None))
            officer = rng.random()
            if officer < 0.2:
                steps.append((ApplicationRejected(reasons=(rng.choice(REJECTION_REASONS),)), "review", None))
                return case
            if officer < 0.25:
                steps.append((ApplicationWithdrawn(reason=None), "applications", None))
                return case
            if officer < 0.40:
                returned = ApplicationReturned(officer="officer.li", reasons=(rng.choice(REJECTION_REASONS),))
                returned_id = self._uuid()
                steps.append((returned, "review", returned_id))
                steps.append(
                    (
                        ApplicationResubmitted(application=application, returned_event_id=returned_id),
                        "applications",
                        None,
                    )
                )
        self._grant_and_export(case, application, vins)
        return case

    def _grant_and_export(self, case: Case, application: Application, vins: tuple[str, ...]) -> None:
        rng, steps = self.rng, case.steps
        number = self._license_number(application.agency_code)
        valid_from = self.clock.date()
        valid_to = valid_from + timedelta(days=180)
        quantity = application.quantity
        grant = LicenseGranted(
            license_number=number,
            applicant_code=application.applicant.code,
            valid_from=valid_from,
            valid_to=valid_to,
            quantity=quantity,
            value=application.total_value,
            currency=application.currency,
            port_of_exit=application.port_of_exit,
            destination_country=application.destination_country,
            trade_mode=application.trade_mode,
            batch_mode="single" if vins else "multi",
            vins=vins,
        )
        steps.append((grant, "review", None))
        unit = application.unit_price
        if vins:
            steps.append(
                (self._export(number, application.port_of_exit, valid_from, quantity, unit, vins), "registry", None)
            )
            return
        declarations = rng.randint(1, 12)
        remaining = quantity
        shares = sorted(rng.sample(range(1, quantity), min(declarations, quantity) - 1)) if quantity > 1 else []
        parts = [b - a for a, b in zip([0, *shares], [*shares, quantity], strict=True)]
        port = application.port_of_exit
        for i, part in enumerate(parts):
            day = valid_from + timedelta(days=min(170, 3 + i * 12))
            roll = rng.random()
            if roll < 0.03:  # past the balance: refused
                steps.append((self._export(number, port, day, remaining + rng.randint(1, 20), unit), "registry", None))
            elif roll < 0.05:  # wrong port: refused
                other = rng.choice([p for p in PORTS if p != port])
                steps.append((self._export(number, other, day, part, unit), "registry", None))
            elif roll < 0.055:  # outside the validity: refused
                late = valid_to + timedelta(days=rng.randint(1, 30))
                steps.append((self._export(number, port, late, part, unit), "registry", None))
            steps.append((self._export(number, port, day, part, unit), "registry", None))
            remaining -= part
            if i == len(parts) // 2 and rng.random() < 0.01:
                steps.append(
                    (
                        LicenseSuspended(
                            license_number=number,
                            officer="officer.wang",
                            reason=Reason(code="audit", message="documents under audit"),
                        ),
                        "review",
                        None,
                    )
                )
                if rng.random() < 0.6:
                    steps.append((LicenseReinstated(license_number=number, officer="officer.wang"), "review", None))
        after = rng.random()
        if after < 0.005:
            steps.append(
                (
                    LicenseRevoked(
                        license_number=number,
                        officer="officer.zhao",
                        reason=Reason(code="fraud", message="forged contract"),
                    ),
                    "review",
                    None,
                )
            )
        elif after < 0.01:
            successor = self._license_number(application.agency_code)
            steps.append(
                (
                    LicenseReplaced(
                        license_number=number,
                        successor_license_number=successor,
                        officer="officer.zhao",
                        reason=Reason(code="port_change", message="new port"),
                        valid_from=valid_from,
                        valid_to=valid_to,
                        port_of_exit=port,
                        destination_country=application.destination_country,
                    ),
                    "review",
                    None,
                )
            )
        elif after < 0.11:
            steps.append(
                (LicenseExpired(license_number=number, expired_on=valid_to + timedelta(days=1)), "review", None)
            )

    def _export(
        self, number: str, port: str, day: date, quantity: int, unit: Decimal, vins: tuple[str, ...] = ()
    ) -> ExportRecorded:
        return ExportRecorded(
            declaration_number=self._declaration_number(),
            license_number=number,
            port_of_exit=port,
            export_date=day,
            quantity=quantity,
            vins=vins,
            value=unit * quantity,
            currency="CNY",
        )

    def __iter__(self) -> Iterator[tuple[uuid.UUID, bytes]]:
        rng = self.rng
        open_cases: list[Case] = [self._new_case() for _ in range(OPEN_CASES)]
        for _ in range(self.total):
            slot = rng.randrange(OPEN_CASES)
            case = open_cases[slot]
            event, producer, event_id = case.steps[case.position]
            case.position += 1
            if case.position == len(case.steps):
                open_cases[slot] = self._new_case()
            self.clock += timedelta(seconds=rng.randint(5, 55))
            self.counts[event.TYPE] = self.counts.get(event.TYPE, 0) + 1
            envelope = Envelope.wrap(
                event,
                case_id=case.case_id,
                producer=producer,
                event_id=event_id or self._uuid(),
                occurred_at=self.clock,
            )
            yield case.case_id, envelope.to_bytes()


BENCH_KEY = signatures.private_key_from("YmVuY2gtc2lnbmluZy1rZXktZm9yLWxvY2FsLXJ1bnM=")
"""The generated log's signing key: trusted for the services' producers on a bench run's own trust topic."""
BENCH_PRODUCERS = ("applications", "review", "registry")
BENCH_ROOT = signatures.private_key_from("YmVuY2gtcm9vdC1rZXktZm9yLWxvY2FsLXJ1bnMhISE=")
"""The operator root key of a bench run: it signs the run's trust statements, and the run pins it alone."""


def trust_bench_key() -> list[trust.TrustStatement]:
    """The statements that trust the generated log's key for the producers its events name, for all time."""
    public = BENCH_KEY.public_key()
    return [trust.trusting(p, public, signing.ANY_EVENT, at=signing.ALWAYS) for p in BENCH_PRODUCERS]


@dataclass
class Generated:
    events: int
    seconds: float
    bytes: int
    counts: dict[str, int]
    end_offsets: dict[int, int]


async def publish(bootstrap: str, topic: str, total: int, seed: int = SEED) -> Generated:
    """Generate ``total`` events into ``topic``, batched per partition; return the partitions' end offsets."""
    started = time.perf_counter()
    producer = AIOKafkaProducer(
        **KafkaConnection(bootstrap_servers=bootstrap).options(),
        acks=1,
        linger_ms=50,
        max_batch_size=1024 * 1024,
        compression_type=None,
        max_request_size=8 * 1024 * 1024,
    )
    await producer.start()
    size = 0
    try:
        partitions = sorted(await producer.partitions_for(topic))
        builders = {p: producer.create_batch() for p in partitions}
        pending = []
        generator = LogGenerator(total, seed)
        partitioner = DefaultPartitioner()
        for case_id, value in generator:
            key = str(case_id).encode()
            p = partitioner(key, partitions, partitions)
            size += len(value)
            headers = signatures.signature_headers(value, BENCH_KEY)  # the registry folds signed events only
            if builders[p].append(key=key, value=value, timestamp=None, headers=headers) is None:
                pending.append(await producer.send_batch(builders[p], topic, partition=p))
                builders[p] = producer.create_batch()
                builders[p].append(key=key, value=value, timestamp=None, headers=headers)
                if len(pending) > 64:
                    await pending.pop(0)
        for p, builder in builders.items():
            if builder.record_count():
                pending.append(await producer.send_batch(builder, topic, partition=p))
        for future in pending:
            await future
        await producer.flush()
    finally:
        await producer.stop()
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(**KafkaConnection(bootstrap_servers=bootstrap).options())
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        ends = {tp.partition: o for tp, o in (await consumer.end_offsets(tps)).items()}
    finally:
        await consumer.stop()
    return Generated(total, time.perf_counter() - started, size, generator.counts, ends)
