"""A case's events as the log holds them, each with who signed it: the evidence an auditor reads.

The ledger knows where each event it applied lies (``applied_events``: partition and offset, from migration
0012); the records are read back from the log itself and judged as the fold judges them, so what is shown is what
was signed, not what the database says was.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Annotated, Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from fastapi import Depends, FastAPI, Request
from pydantic import BaseModel

from services.registry.queries import NOT_FOUND, READER
from shared.contract.events import Envelope
from shared.contract.refusal import Refusal
from shared.contract.signatures import KEY_ID_HEADER
from shared.platform import signing
from shared.platform.http import ErrorBody, router
from shared.platform.kafka_access import KafkaConnection, started_consumer, stop_consumer
from shared.platform.service import Runtime, ServiceRuntime

evidence = router(tags=["queries"])
POSITIONS = 'SELECT partition, "offset" FROM applied_events WHERE case_id = $1 ORDER BY "offset"'
READ_SECONDS = 10.0


class SignedEvent(BaseModel):
    """One event of a case as its record in the log holds it, and whose signature it carries."""

    partition: int
    offset: int
    event_id: uuid.UUID
    type: str
    occurred_at: datetime
    producer: str
    key_id: str | None  # the ``ledger-key-id`` header: the key the record says signed it
    signature: str  # "verified" (a key trusted for the producer signed these bytes), or the reason code why not
    payload: dict[str, Any]


@evidence.get(
    "/cases/{case_id}/events",
    response_model=list[SignedEvent],
    responses={
        **NOT_FOUND,
        410: {"model": ErrorBody, "description": "the log no longer holds a record (record_gone)"},
        503: {"model": ErrorBody, "description": "the log did not give a record in time (log_unavailable)"},
    },
)
async def case_events(
    case_id: uuid.UUID,
    principal: READER,
    runtime: ServiceRuntime,
    log: Annotated[CaseRecords, Depends(case_records)],
) -> list[SignedEvent]:
    """Every event of the case the ledger applied, in stream order, read back from the case stream: its type, time,
    producer, the key that signed it and whether that signature holds under the trust list now. Officers, auditors
    and admins read any case; a submitter its own agency's."""
    positions = [(r["partition"], r["offset"]) for r in await runtime.pool.fetch(POSITIONS, case_id)]
    if not positions:
        raise Refusal(404, "unknown_case", f"no case {case_id} in the ledger, or none applied since its positions kept")
    records = await log.read(positions)
    reading = await runtime.case_reading()
    shown = [_signed(record, reading.trust, reading.partitions) for record in records]
    if any(s.type == "ApplicationSubmitted" for s in shown):
        agency = next(s.payload.get("agency_code") for s in shown if s.type == "ApplicationSubmitted")
        principal.ensure_agency(str(agency), unless=frozenset({"officer", "auditor", "admin"}))
    return shown


def _signed(record: ConsumerRecord[bytes, bytes], trust: signing.TrustList, partitions: int) -> SignedEvent:
    envelope = Envelope.from_bytes(record.value or b"")  # the ledger applied it: it reads
    judged = signing.read_case_event(record, trust, partitions=partitions)
    key_id = signing.header(list(record.headers or ()), KEY_ID_HEADER)
    return SignedEvent(
        partition=record.partition,
        offset=record.offset,
        event_id=envelope.event_id,
        type=envelope.type,
        occurred_at=envelope.occurred_at,
        producer=envelope.producer,
        key_id=key_id.decode(errors="replace") if key_id is not None else None,
        signature="verified" if isinstance(judged, Envelope) else judged.code,
        payload=envelope.payload.model_dump(mode="json"),
    )


class CaseRecords:
    """Reads records of the case stream back at given positions, through one consumer kept for the service's life
    (a consumer made per request paid a login each time: most of a request's time, and seconds on a loaded
    broker). Requests take turns on it; a consumer that failed is closed, and the next request makes another."""

    def __init__(self, kafka: KafkaConnection, topic: str) -> None:
        self._kafka, self._topic = kafka, topic
        self._consumer: AIOKafkaConsumer | None = None
        self._turn = asyncio.Lock()

    async def read(self, positions: list[tuple[int, int]]) -> list[ConsumerRecord[bytes, bytes]]:
        """The records at ``positions`` (partition, offset), in that order; 503 if the log does not give them."""
        async with self._turn:
            consumer = await self._started()
            try:
                return [await self._record(consumer, partition, offset) for partition, offset in positions]
            except Refusal:
                raise
            except BaseException:
                await self.stop()
                raise

    async def stop(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await stop_consumer(consumer)

    async def _started(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            options = {"enable_auto_commit": False, "max_partition_fetch_bytes": 1024 * 1024}
            self._consumer = await started_consumer(self._kafka, **options)
        return self._consumer

    async def _record(self, consumer: AIOKafkaConsumer, partition: int, offset: int) -> ConsumerRecord[bytes, bytes]:
        tp = TopicPartition(self._topic, partition)
        consumer.assign([tp])
        consumer.seek(tp, offset)
        try:
            return await asyncio.wait_for(_record_at(consumer, tp, offset), READ_SECONDS)
        except TimeoutError:
            raise Refusal(
                503,
                "log_unavailable",
                f"{self._topic} did not give partition {partition} offset {offset}",
                headers={"Retry-After": "10"},
            ) from None


async def case_records(request: Request) -> CaseRecords:
    found: CaseRecords = request.app.state.case_records
    return found


def keep_case_records(app: FastAPI, runtime: Runtime) -> None:
    """Give ``app`` the reader of case records its evidence route uses; closed when the service stops."""
    records = CaseRecords(runtime.settings.kafka, runtime.settings.topics.cases)
    app.state.case_records = records

    async def stop(_: Runtime) -> None:
        await records.stop()

    runtime.on_stop.append(stop)


async def _record_at(consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int) -> ConsumerRecord[bytes, bytes]:
    while True:
        batch = await consumer.getmany(tp, timeout_ms=500, max_records=1)
        for record in batch.get(tp, []):
            if record.offset == offset:
                return record
            if record.offset > offset:  # not in the log any more (deleted): say so rather than show another
                gone = f"{tp.topic} no longer holds partition {tp.partition} offset {offset}"
                raise Refusal(410, "record_gone", gone)
