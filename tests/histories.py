"""Event histories for tests: cases as the services would write them, published to a topic."""

from __future__ import annotations

import json
import uuid
from datetime import date
from typing import Any

import asyncpg
from hypothesis import strategies as st

import samples
from services.applications.submission import submitted
from shared.contract.events import Envelope, Event, ExportRecorded, LicenseGranted
from shared.contract.topics import CASES, SPECS
from shared.platform.clock import china_today
from shared.platform.kafka_access import KafkaConnection
from shared.platform.placement import case_partition
from tests.support import producer, signed

CASE_PARTITIONS = next(s.partitions for s in SPECS if s.name == CASES)
TODAY = china_today()  # the regulation counts validity in China's dates, as review and the samples do


def granted(
    number: str,
    quantity: int = 10,
    *,
    valid_from: date = TODAY,
    valid_to: date = TODAY,
    batch_mode: str = "multi",
    vins: tuple[str, ...] = (),
) -> LicenseGranted:
    """A license for Qilin Motor's 10 BEVs to Mexico via Shenzhen, valid today unless told otherwise."""
    return LicenseGranted(
        license_number=number,
        applicant_code=samples.QILIN_MOTOR,
        valid_from=valid_from,
        valid_to=valid_to,
        quantity=quantity,
        value="1470000",
        currency="CNY",
        port_of_exit="CNSZX",
        destination_country="MX",
        trade_mode="general trade",
        batch_mode=batch_mode,
        vins=vins,
    )


def export(number: str, sequence: int, quantity: int, **overrides: object) -> ExportRecorded:
    data = samples.declaration_data(number, f"53162026{sequence:010d}", quantity=quantity)
    data.update(overrides)
    return ExportRecorded.model_validate(data)


def record_export(declaration: dict[str, Any], sender: str = "gac-shenzhen") -> bytes:
    """A customs backend's ``RecordExport`` command of ``declaration`` (``samples.declaration_data``), unsigned."""
    body = {
        "command_id": str(uuid.uuid4()),
        "type": "RecordExport",
        "schema_version": 1,
        "sender": sender,
        "payload": {"declaration": declaration},
    }
    return json.dumps(body).encode()


def case_in(partition: int, partitions: int = CASE_PARTITIONS) -> uuid.UUID:
    """A new case id whose events belong to ``partition`` of the case stream (as producers place them)."""
    while True:
        case_id = uuid.uuid4()
        if case_partition(case_id, partitions) == partition:
            return case_id


def case(number: str, *exports: tuple[int, int], partition: int | None = None) -> list[Envelope]:
    """A granted case with the given (sequence, quantity) exports, as its events in order (in ``partition`` of
    the case stream, if given)."""
    case_id = uuid.uuid4() if partition is None else case_in(partition)
    events: list[Event] = [granted(number), *(export(number, s, q) for s, q in exports)]
    submission = submitted(samples.application(), application_id=case_id, channel="http")
    return [submission, *(Envelope.wrap(e, case_id=case_id, producer="test") for e in events)]


def deliveries(draw: Any, lengths: list[int], *, whole_again: bool = False) -> list[dict[int, tuple[int, int]]]:
    """How a consumer might be handed partition logs of ``lengths``, drawn with Hypothesis's ``draw``: each
    delivery a few records of some partitions (partition -> [start, end)), some delivered again in part; and, with
    ``whole_again``, a batch followed already delivered again whole."""
    found: list[dict[int, tuple[int, int]]] = []
    done = [0] * len(lengths)
    while any(d < length for d, length in zip(done, lengths, strict=True)):
        delivery: dict[int, tuple[int, int]] = {}
        for partition in draw(st.sets(st.integers(0, len(lengths) - 1), min_size=1)):
            if done[partition] == lengths[partition]:
                if whole_again and done[partition] and draw(st.booleans()):
                    delivery[partition] = (draw(st.integers(0, done[partition] - 1)), done[partition])
                continue
            start = done[partition] - draw(st.integers(0, min(2, done[partition])))  # delivered again, in part
            end = draw(st.integers(done[partition] + 1, min(lengths[partition], done[partition] + 5)))
            delivery[partition] = (start, end)
            done[partition] = end
        if delivery:
            found.append(delivery)
    return found


def many_cases(count: int, first_number: int = 1) -> list[Envelope]:
    """``count`` cases, each with a few exports, some of which go past the balance."""
    history: list[Envelope] = []
    for i in range(count):
        n = first_number + i
        history += case(f"26-44-{n:06d}", (n * 10 + 1, 3 + i % 5), (n * 10 + 2, 4), (n * 10 + 3, 2 + i % 4))
    return history


async def applied_offsets(database_url: str, topic: str | None = None) -> int:
    """How many records of the case stream the registry's ledger has applied (its stored offsets)."""
    connection = await asyncpg.connect(database_url)
    try:
        query = (
            "SELECT coalesce(sum(next_offset), 0) FROM registry.partition_offsets WHERE $1::text IS NULL OR topic = $1"
        )
        return int(await connection.fetchval(query, topic))
    finally:
        await connection.close()


async def publish(kafka: KafkaConnection, topic: str, events: list[Envelope]) -> None:
    """Publish ``events`` in order, keyed by case and signed with the trusted test key."""
    async with producer(kafka) as send:
        for envelope in events:
            value = envelope.to_bytes()
            await send.send(topic, value, key=str(envelope.case_id).encode(), headers=signed(value))
        await send.flush()
