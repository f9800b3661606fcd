"""The one way a service is assembled: a FastAPI app, a faststream Kafka broker, a database pool.

Each service calls :func:`create_service` and adds only its own routes and handlers. Nothing here
connects at import time: the pool and the broker start in the app's lifespan.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, cast

import asyncpg
import uvicorn
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaTimeoutError
from aiokafka.structs import RecordMetadata
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from faststream import AckPolicy, Context
from faststream.kafka import KafkaBroker
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_fastapi_instrumentator import Instrumentator
from prometheus_fastapi_instrumentator import metrics as http_metrics
from pydantic import BaseModel, ConfigDict

from shared.contract import signatures
from shared.contract.asyncapi import document as contract_document
from shared.contract.events import Envelope, Reason
from shared.contract.refusal import Refusal, readable
from shared.platform import logs, signing, stalls
from shared.platform.access import ROLES, KeyCache, Principal, TokenIssuer, authorize, require
from shared.platform.cancelling import cancelled_within
from shared.platform.collector import freeze_startup_objects
from shared.platform.db import create_pool, redact
from shared.platform.docs_ui import serve_docs
from shared.platform.http import AccessLog, ErrorBody, LedgerRoute, add_error_handlers, router
from shared.platform.kafka_access import METADATA_MAX_AGE_MS, started_consumer, stop_consumer
from shared.platform.kafka_admin import ensure_topics
from shared.platform.limits import UNMETERED, BodySizeLimit, NoNulInURL, RateLimit, TokenBuckets
from shared.platform.metrics import Metrics, committed_positions
from shared.platform.placement import case_partition
from shared.platform.reading import Reader, ReaderMetrics, Readers
from shared.platform.records import (
    dead_letter_headers,
    keep_batch_bodies,
    keep_intake_body,
    parse_intake_record,
    parse_record_batch,
)
from shared.platform.settings import ServiceSettings
from shared.platform.trust import TrustLog

log = logging.getLogger(__name__)

Hook = Callable[["Runtime"], Awaitable[None]]
RESTART_SECONDS = 60.0
"""How long the readers' watch waits for a reader to stop, and then to start again (``Runtime._restart``)."""
DEAD_REMEMBERED = 100_000
"""Records remembered as dead-lettered, so that a batch read again does not dead-letter them twice."""


def reader_name(subscriber: Any) -> str:
    """A topic reader as the service names it everywhere: its restart counter's label, ``/health``, the logs."""
    return ", ".join(subscriber.topic_names)


@dataclass
class Runtime:
    """A running service's resources: reached by handlers, made and closed by the lifespan."""

    name: str
    settings: ServiceSettings
    broker: KafkaBroker
    title: str = ""
    description: str = ""
    on_start: list[Hook] = field(default_factory=list)
    on_stop: list[Hook] = field(default_factory=list)
    checks: dict[str, Callable[[], str]] = field(default_factory=dict)  # more /health checks: "ok" or why not
    reads: dict[str, str] = field(default_factory=dict)  # topics read other than by a subscriber: what for
    started: float = field(default_factory=time.monotonic)
    metrics: Metrics = field(init=False)
    keys: KeyCache = field(init=False)
    tokens: TokenIssuer | None = field(init=False)
    # A bucket per credential (shared/platform/limits.py): one key used from many addresses is held to one rate.
    credential_limits: TokenBuckets | None = field(init=False)
    readers: Readers = field(init=False)  # every topic reader's health (shared/platform/reading.py)
    _pool: asyncpg.Pool | None = None
    _raw_producer: AIOKafkaProducer | None = None
    _log: AIOKafkaConsumer | None = None  # no group: asks where partitions end (case_log_end)
    _signing_key: Ed25519PrivateKey | None = None
    _trust_log: TrustLog | None = None
    _background: list[asyncio.Task[None]] = field(default_factory=list)
    # Background work that ended while the service ran (it should run until the service stops): name -> why.
    ended: dict[str, str] = field(default_factory=dict)
    _dead: OrderedDict[tuple[str, int, int], None] = field(default_factory=OrderedDict)  # records dead-lettered
    _stall_watches: list[tuple[Any, stalls.StallWatch]] = field(default_factory=list)  # each subscriber's (stalls.py)
    _unstarted: set[int] = field(default_factory=set)  # the ids of subscribers stopped by the watch, not started again

    def __post_init__(self) -> None:
        self.metrics = Metrics(self.name, self.settings.kafka)
        self.keys = KeyCache(self.settings.access_cache_seconds)
        self.tokens = _token_issuer(self.settings)
        rate, burst = self.settings.rate_limit_per_credential_per_second, self.settings.rate_limit_per_credential_burst
        self.credential_limits = TokenBuckets(rate, burst) if rate > 0 else None
        self.readers = Readers(self.dead_letter, ReaderMetrics(self.metrics.registry))
        self.checks["readers"] = self.readers.health
        self.checks["background"] = self.background_health

    async def start(self) -> None:
        """Make the service's resources (topics, pool, signing key, producer, trust log), start its broker and
        subscribers, then run the start hooks (the service's own background work)."""
        settings = self.settings
        await ensure_topics(settings.kafka, settings.topics, replication_factor=settings.topic_replication_factor)
        self._pool = await create_pool(settings.database_url, schema=self.name)
        await self.load_signing_key()
        self._raw_producer = AIOKafkaProducer(**settings.kafka.options(), acks="all", enable_idempotence=True)
        await self._raw_producer.start()
        self._log = await started_consumer(settings.kafka, enable_auto_commit=False)
        self._trust_log = TrustLog(settings.kafka, settings.topics.trust, settings.trust_roots)
        await self._trust_log.start()
        await self.broker.start()
        for hook in self.on_start:
            await hook(self)
        self.run_in_background(self.keep_readers_consuming(settings.readers_watch_seconds), name="readers-watch")
        freeze_startup_objects()

    async def stop(self) -> None:
        """Stop what :meth:`start` started, the last first; what never started is skipped."""
        await self.stop_background()
        for hook in reversed(self.on_stop):
            await hook(self)
        await self.broker.stop()
        if self._raw_producer is not None:
            await self._raw_producer.stop()
        if self._log is not None:
            await stop_consumer(self._log)
        if self._trust_log is not None:
            await self._trust_log.stop()
        await self.metrics.offsets.stop()
        if self._pool is not None:
            try:  # a connection the database no longer answers on must not hold the shutdown up
                await asyncio.wait_for(self._pool.close(), timeout=10)
            except (TimeoutError, OSError):
                self._pool.terminate()

    def reader(self, name: str) -> Reader:
        """The reader ``name`` of this service: what it cannot handle is dead-lettered, what fails is waited out."""
        return self.readers.reader(name)

    def subscribe(
        self,
        handler: Callable[..., Awaitable[None]],
        *,
        topic: str,
        group: str,
        title: str,
        description: str,
        batch_size: int | None = None,
    ) -> None:
        """Read ``topic`` with ``handler`` as consumer group ``group`` (of this namespace), as every reader here
        reads: from the earliest offset, a record with a binary or null header read rather than dropped, its
        body left to the handler (faststream decodes nothing), no reply ever sent, and the batch read again
        after a handler error. ``batch_size`` reads batches of up to that many records."""
        options: dict[str, Any] = {
            "group_id": self.consumes(self.settings.topics.group(group), topic),
            "group_instance_id": self.settings.instance_id,
            "auto_offset_reset": "earliest",
            "ack_policy": AckPolicy.NACK_ON_ERROR,
            "title": title,
            "description": description,
        }
        if batch_size is None:
            options |= {"parser": parse_intake_record, "decoder": keep_intake_body}
        else:
            options |= {"batch": True, "max_records": batch_size}
            options |= {"parser": parse_record_batch, "decoder": keep_batch_bodies}
        watch = stalls.StallWatch(self.settings.readers_stall_seconds)
        subscriber = self.broker.subscriber(topic, **options)
        subscriber(watch.activity.tracking(handler))
        self._stall_watches.append((subscriber, watch))
        self.metrics.readers_restarted.labels(reader_name(subscriber))  # each reader's series, at 0

    def consumes(self, group: str, topic: str) -> str:
        """Declare that consumer ``group`` reads ``topic``, so that its lag is reported; return the group."""
        self.metrics.watch(group, committed_positions(group, topic))
        return group

    @property
    def raw_producer(self) -> AIOKafkaProducer:
        if self._raw_producer is None:
            raise RuntimeError(f"{self.name}: the producer is used before start-up")
        return self._raw_producer

    @property
    def signing_key(self) -> Ed25519PrivateKey:
        if self._signing_key is None:
            raise RuntimeError(f"{self.name}: the signing key is used before start-up")
        return self._signing_key

    async def load_signing_key(self) -> None:
        """Load (or make, once) the key this service signs with. Trusting it is an operator's statement on the
        trust topic (``licensectl keys trust-own``), never the service's own doing."""
        settings = self.settings
        secret = settings.signing_key.get_secret_value() if settings.signing_key else None
        self._signing_key = signing.load_signing_key(
            key=secret,
            key_file=settings.signing_key_file,
            key_dir=settings.key_dir,
            file_name=f"{self.name}-signing.key",
            setting=f"{self.name.upper()}_SIGNING_KEY",
        )

    @property
    def trust(self) -> TrustLog:
        if self._trust_log is None:
            raise RuntimeError(f"{self.name}: the trust log is read before start-up")
        return self._trust_log

    async def check_signature(self, record: ConsumerRecord[bytes, bytes] | Any, sender: str) -> signing.TrustedKey:
        """The key, trusted now to sign commands for ``sender``, that signed the intake record; else a
        :class:`Refusal`. A statement on the trust topic counts within ``access_cache_seconds``."""
        trust = await self.trust.current(self.settings.access_cache_seconds)
        value = record.value or b""
        found = trust.signer(value, list(record.headers), producer=sender, at=datetime.now(UTC), use="commands")
        if isinstance(found, Reason):
            raise Refusal(403, found.code, found.message)
        return found

    def run_in_background(self, work: Coroutine[Any, Any, None], name: str) -> None:
        """Run ``work`` while the service runs (call it from a start hook); it is cancelled when the service stops.
        Work that ends before then is logged as an error and named on ``/health`` (``background``)."""
        task = asyncio.create_task(work, name=name)
        task.add_done_callback(self._background_ended)
        self._background.append(task)

    def _background_ended(self, task: asyncio.Task[None]) -> None:
        if task not in self._background:
            return  # stopped with the service
        error = None if task.cancelled() else task.exception()
        why = "cancelled" if task.cancelled() else f"{type(error).__name__}: {error}" if error else "returned"
        self.ended[task.get_name()] = readable(why, 300)
        log.error("%s: %s stopped while the service runs (%s)", self.name, task.get_name(), why, exc_info=error)

    def background_health(self) -> str:
        """``ok`` while every background work runs and every subscriber consumes, else which stopped and why."""
        stopped = [f"{name} stopped ({why})" for name, why in self.ended.items()]
        stopped += [f"the reader of {topics} stopped consuming" for topics in self._not_consuming()]
        return "; ".join(stopped) + ": restart the service" if stopped else "ok"

    def _not_consuming(self) -> dict[str, Any]:
        """The subscribers (by their topics) that run, with handlers, but no consume loop that has not ended; and
        those the watch stopped and could not start again."""
        found = {}
        for subscriber in self.broker.subscribers:
            tasks = getattr(subscriber, "tasks", [])
            ended = getattr(subscriber, "running", False) and subscriber.calls and all(task.done() for task in tasks)
            if ended or id(subscriber) in self._unstarted:
                found[reader_name(subscriber)] = subscriber
        return found

    async def keep_readers_consuming(self, every: float) -> None:
        """Every ``every`` seconds, start again each topic reader whose consume loop has ended, and each that has
        stalled (``shared/platform/stalls.py``). faststream restarts a loop that failed, but not one a
        cancellation ended (a client library's, from under it), and a loop can run on without fetching: that
        reader would read nothing more without a word. One that cannot be started again is named on ``/health``."""
        while True:
            await asyncio.sleep(every)
            for topics, subscriber in self._not_consuming().items():
                log.error("%s: the reader of %s stopped consuming; it is started again", self.name, topics)
                await self._restart(subscriber, topics)
            for subscriber, watch in self._stall_watches:
                await self._restart_if_stalled(subscriber, watch)

    async def _restart_if_stalled(self, subscriber: Any, watch: stalls.StallWatch) -> None:
        if not getattr(subscriber, "running", False):
            return
        try:
            fresh, again = await watch.check(subscriber.consumer, self.metrics.offsets.ends)
        except Exception as exc:  # the broker cannot say where the partitions end: the next round asks again
            log.warning("%s: the stall watch could not check its readers (%r)", self.name, exc)
            return
        topics = reader_name(subscriber)
        if again:
            log.error(
                "%s: the reader of %s stalled again where it was started again (%s); it is left as it is",
                self.name,
                topics,
                stalls.describe(again),
            )
        if fresh:
            log.error(
                "%s: the reader of %s has fetched nothing for %.0f s while records wait (%s); it is started again",
                self.name,
                topics,
                watch.stall_seconds,
                stalls.describe(fresh),
            )
            self.metrics.readers_restarted.labels(topics).inc()
            await self._restart(subscriber, topics)

    async def _restart(self, subscriber: Any, topics: str) -> None:
        """Stop ``subscriber`` and start it again, each within ``RESTART_SECONDS``: aiokafka's start waits for the
        group's assignment without bound, and a watch waiting on it would watch nothing more. A start cut short
        leaves the reader stopped, and the next round starts it again."""
        try:
            await asyncio.wait_for(subscriber.stop(), RESTART_SECONDS)
        except asyncio.CancelledError as cancelled:  # its consumer's stop, as aiokafka's can
            if cancelled_within(cancelled) is None:
                raise
        except Exception:  # stopped as far as it goes; starting it again says whether it can
            log.exception("%s: stopping the reader of %s failed", self.name, topics)
        try:
            await asyncio.wait_for(subscriber.start(), RESTART_SECONDS)
        except Exception:  # a timeout too: /health names it until a next round starts it
            log.exception("%s: starting the reader of %s again failed", self.name, topics)
            self._unstarted.add(id(subscriber))
        else:
            self._unstarted.discard(id(subscriber))

    async def stop_background(self) -> None:
        stopping, self._background = self._background, []
        for task in stopping:
            task.cancel()
        await asyncio.gather(*stopping, return_exceptions=True)

    async def case_reading(self) -> CaseReading:
        """How to read the records of a batch of the case stream, as every reader of it reads them: the trust
        list brought up to the end of the trust topic now (after the batch was fetched), and the stream's
        partition count (an event outside its case's partition is refused)."""
        trust = await self.trust.current(0)
        partitions = len(await self.raw_producer.partitions_for(self.settings.topics.cases))
        return CaseReading(trust, partitions)

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError(f"{self.name}: the database pool is used before start-up")
        return self._pool

    async def append(self, envelope: Envelope) -> RecordMetadata:
        """Append an event to the case stream, keyed by its case so the case keeps one order, and signed:
        the registry folds only events signed by a key trusted for their producer. Returns where it lies."""
        [written] = await self.append_all([envelope])
        return written

    async def append_all(self, envelopes: Sequence[Envelope]) -> list[RecordMetadata]:
        """:meth:`append` for each event, in order: all are sent, then all acknowledgements awaited at once
        (one wait, not one an event), within the append timeout. Where each lies."""

        async def acknowledged() -> list[RecordMetadata]:
            sent = [await self.send(envelope) for envelope in envelopes]
            return list(await asyncio.gather(*sent))

        # The send itself waits too (for the partition's leader, for room in the producer's buffer): both count.
        try:
            written = await asyncio.wait_for(asyncio.shield(acknowledged()), self.settings.append_timeout_seconds)
        except TimeoutError:
            # Still queued in the producer, which retries them: they may be written once the cluster takes writes
            # again. The caller's transaction is rolled back; the same requests sent again append the same
            # event ids (derived from the requests), which every reader drops as duplicates.
            raise KafkaTimeoutError(f"no acknowledgement within {self.settings.append_timeout_seconds:g} s") from None
        return written

    async def case_partition(self, case_id: uuid.UUID) -> int:
        """The partition of the case stream that holds ``case_id`` (as the producer places its events)."""
        partitions = await self.raw_producer.partitions_for(self.settings.topics.cases)
        return case_partition(case_id, len(partitions))

    async def case_log_end(self, case_id: uuid.UUID) -> tuple[int, int]:
        """The partition of ``case_id`` and the offset its log ends at now (the next record's offset)."""
        partition = await self.case_partition(case_id)
        tp = TopicPartition(self.settings.topics.cases, partition)
        if self._log is None:
            raise RuntimeError(f"{self.name}: the log is read before start-up")
        ends: dict[TopicPartition, int] = await self._log.end_offsets([tp])
        return partition, ends[tp]

    async def send(self, envelope: Envelope) -> asyncio.Future[Any]:
        """Start appending an event as :meth:`append` does; the future is the broker's acknowledgement.

        A batch handler sends each event as soon as it is made and awaits all the acknowledgements once,
        before its offsets are committed: the producer keeps their order within each case's partition.
        """
        value = envelope.to_bytes()
        signature = {name: header.decode() for name, header in signatures.signature_headers(value, self.signing_key)}
        acknowledged = await self.broker.publish(
            value,
            topic=self.settings.topics.cases,
            key=str(envelope.case_id).encode(),
            headers={"content-type": "application/json", "event-type": envelope.type, **signature},
            no_confirm=True,
        )
        counter = self.metrics.events_appended.labels(envelope.type)
        acknowledged.add_done_callback(lambda done: None if done.cancelled() or done.exception() else counter.inc())
        return acknowledged

    async def dead_letter(self, record: ConsumerRecord[bytes, bytes] | Any, reason: Reason) -> None:
        """Put a refused record on the dead-letter topic whole, with where it came from and why; once, though a
        batch is read again after a failure further on (a record refused again is not sent again)."""
        where = (str(record.topic), int(record.partition), int(record.offset))
        if where in self._dead:
            return
        headers = dead_letter_headers(
            reason,
            service=self.name,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            original=list(record.headers),
        )
        # Sent with aiokafka itself: faststream's headers are text, and the sender must get its bytes back.
        await self.raw_producer.send_and_wait(
            self.settings.topics.dead_letter, value=record.value, key=record.key, headers=headers
        )
        self._dead[where] = None
        if len(self._dead) > DEAD_REMEMBERED:
            self._dead.popitem(last=False)
        self.metrics.dead_letters.labels(reason.code).inc()
        log.warning(
            "dead-lettered %s/%s/%s: %s %s", record.topic, record.partition, record.offset, reason.code, reason.message
        )


async def runtime_of(request: Request) -> Runtime:
    """The running service a request reached: what a route's handlers take their resources from."""
    found: Runtime = request.app.state.runtime
    return found


ServiceRuntime = Annotated[Runtime, Depends(runtime_of)]
"""A route's dependency on the running service (its pool, its broker, its settings)."""

RuntimeContext = Annotated[Runtime, Context("runtime")]
"""A Kafka subscriber's dependency on the running service, from faststream's context."""


@dataclass(frozen=True)
class CaseReading:
    """The trust list and the partition count a batch of the case stream is read against."""

    trust: signing.TrustList
    partitions: int

    def read(self, record: ConsumerRecord[bytes, bytes] | Any) -> Envelope | Reason:
        """The event in a record of the case stream, or why it may not be acted on (``signing.read_case_event``).
        The log lines of the record's handling name the event from here on."""
        read = signing.read_case_event(record, self.trust, partitions=self.partitions)
        if isinstance(read, Envelope):
            name_in_logs(read)
        return read


def name_in_logs(envelope: Envelope) -> None:
    """From here on, the log lines of the handling of ``envelope``'s record name its event."""
    logs.bind(
        case_id=str(envelope.case_id), event_id=str(envelope.event_id), correlation_id=str(envelope.correlation_id)
    )


def _token_issuer(settings: ServiceSettings) -> TokenIssuer | None:
    if settings.jwt_issuer is None and settings.jwt_public_key is None:
        return None
    if settings.jwt_issuer is None or settings.jwt_public_key is None:
        raise ValueError("set both LEDGER_JWT_ISSUER and LEDGER_JWT_PUBLIC_KEY, or neither")
    return TokenIssuer(settings.jwt_issuer, settings.jwt_public_key, settings.jwt_audience)


def serve(name: str, factory: str, settings: ServiceSettings) -> None:
    """Run service ``name`` as ``python -m services.<name>`` does: its logging set up (JSON lines, or text on a
    terminal), then uvicorn, whose own logging and access log give way to ours (``AccessLog``)."""
    json = {"json": True, "text": False}.get(settings.log_format)
    logs.configure(name, settings.log_level, json=json)
    uvicorn.run(factory, factory=True, host=settings.host, port=settings.port, log_config=None, access_log=False)


def _instrument(app: FastAPI, runtime: Runtime) -> None:
    """Request counts and latency by route template, method and status, in the service's own registry. Added
    before the limits, so it wraps them: a request refused for its size or its rate is counted too."""
    registry = runtime.metrics.registry
    instrumentator = Instrumentator(should_group_status_codes=False, excluded_handlers=["/metrics"], registry=registry)
    instrumentator.add(
        http_metrics.requests(registry=registry),
        http_metrics.latency(registry=registry, buckets=LATENCY_BUCKETS),
    )
    instrumentator.instrument(app)


LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, float("inf"))


def _add_limits(app: FastAPI, settings: ServiceSettings) -> None:
    # The last added runs first: a client over its rate is refused before a byte of its body is read.
    app.add_middleware(NoNulInURL)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    if settings.rate_limit_per_second > 0:
        buckets = TokenBuckets(settings.rate_limit_per_second, settings.rate_limit_burst)
        app.add_middleware(RateLimit, buckets=buckets)


def _document_error_answers(app: FastAPI) -> None:
    """Make the OpenAPI document declare the error answers every route gives, as they are given.

    FastAPI documents a 422 in its own shape, not the :class:`ErrorBody` the handlers answer with, and
    knows nothing of the middleware's 413 and 429, nor of the 400 for a body that is not UTF-8.
    """
    build = app.openapi

    def openapi() -> dict[str, Any]:
        fresh = app.openapi_schema is None
        document = build()
        if fresh:
            _declare_error_answers(document)
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def _declare_error_answers(document: dict[str, Any]) -> None:
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    body = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, schema in body.pop("$defs", {}).items():
        schemas.setdefault(name, schema)
    schemas.setdefault("ErrorBody", body)
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            answers = operation.setdefault("responses", {})
            if method in WRITES:
                answers.setdefault("503", BROKER_UNAVAILABLE)
            if _is_fastapi_422(answers.get("422")):
                answers["422"] = _error_answer("The request is not valid: each field and what is wrong with it.")
            if "requestBody" in operation:
                answers.setdefault("400", _error_answer("The request body cannot be read (not UTF-8)."))
                answers.setdefault("413", _error_answer("The request body is larger than the service's limit."))
            if path not in UNMETERED:
                answers.setdefault("429", RATE_LIMITED)
            if operation.get("security"):
                answers.setdefault("401", UNAUTHENTICATED)
                answers.setdefault("403", _error_answer(FORBIDDEN))


def _is_fastapi_422(answer: dict[str, Any] | None) -> bool:
    schema = (answer or {}).get("content", {}).get("application/json", {}).get("schema", {})
    return bool(schema.get("$ref", "").endswith("/HTTPValidationError"))


def _error_answer(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    }


RATE_LIMITED = {
    **_error_answer("Too many requests from this client; Retry-After says in how many seconds to retry."),
    "headers": {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer", "minimum": 1}}},
}


WRITES = frozenset({"post", "put", "patch", "delete"})
BROKER_UNAVAILABLE = {
    **_error_answer(
        "Kafka did not take the write (broker_unavailable: fewer in-sync replicas than min.insync.replicas, no "
        "leader) or the database did not answer (database_unavailable), and nothing was recorded; or the ledger "
        "cannot judge now (ledger_unavailable). Send again after Retry-After seconds."
    ),
    "headers": {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer", "minimum": 1}}},
}

UNAUTHENTICATED = {
    **_error_answer("No credential, or one that is unknown, revoked or expired: the error's code says which."),
    "headers": {"WWW-Authenticate": {"description": "Bearer, with the error code", "schema": {"type": "string"}}},
}
FORBIDDEN = "The credential lacks the role (role_required) or is of another agency (other_agency)."


def create_service(name: str, settings: ServiceSettings, *, title: str, description: str) -> tuple[FastAPI, Runtime]:
    """The app and runtime of service ``name``; the caller adds its routes and subscribers."""
    runtime: Runtime

    @contextlib.asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        quiet = logs.tasks_on_signal()  # kill -USR1: where each task waits, for a service that stopped moving
        try:
            await runtime.start()
            yield
        finally:
            quiet()
            await runtime.stop()  # also after a start that failed half-way: what did start is stopped

    broker = KafkaBroker(
        settings.kafka.servers,
        security=settings.kafka.security(),
        client_id=name,
        acks="all",
        enable_idempotence=True,
        allow_auto_create_topics=False,
        metadata_max_age_ms=METADATA_MAX_AGE_MS,  # a reader's partition whose leader moved is read again soon
        description=description,
        logger=logging.getLogger(f"{name}.broker"),
        log_level=logging.DEBUG,  # its line per message received and processed: at debug, not in every log
    )
    runtime = Runtime(name=name, settings=settings, broker=broker, title=title, description=description)
    broker.context.set_global("runtime", runtime)  # what subscribers take as ``RuntimeContext``
    # Declared for the AsyncAPI document: every service appends to the case stream, may refuse input, and
    # reads who is trusted to sign.
    broker.publisher(settings.topics.cases, title="cases", description="Appends its events, signed with its key.")
    broker.publisher(settings.topics.dead_letter, title="dead-letter", description="Refuses what it cannot take.")
    runtime.reads[settings.topics.trust] = "Reads who is trusted to sign what, under the pinned root keys."
    app = FastAPI(
        title=title, description=description, version=VERSION, lifespan=lifespan, docs_url=None, redoc_url=None
    )
    serve_docs(app, title)  # with our own copies of Swagger UI and ReDoc: no CDN
    app.router.route_class = LedgerRoute  # credentials before the body; the body read strictly
    app.state.authorize = authorize
    add_error_handlers(app)
    _instrument(app, runtime)
    _add_limits(app, settings)
    app.add_middleware(AccessLog)  # the outermost: every request is logged, refused by a limit or not
    _document_error_answers(app)

    app.include_router(operations)
    app.state.runtime = runtime
    return app, runtime


operations = router(tags=["operations"])


class Health(BaseModel):
    """Each check's state: "ok", or what is wrong (the readers', the ledger's and the service's own checks too)."""

    model_config = ConfigDict(extra="allow")
    service: str
    status: Literal["ok", "degraded"]
    broker: str
    database: str


HEALTH_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {"model": Health, "description": "Every check is ok."},
    503: {"model": Health, "description": "A check is not ok: the body names which, and why."},
}


class Alive(BaseModel):
    service: str
    status: Literal["alive"]
    uptime_seconds: float


@operations.get("/health/live", response_model=Alive)
async def live(runtime: ServiceRuntime) -> Alive:
    """Liveness: the process answers. Nothing else is checked: restart the process only if this fails."""
    return Alive(service=runtime.name, status="alive", uptime_seconds=round(time.monotonic() - runtime.started, 3))


@operations.get("/health/ready", response_model=Health, responses=HEALTH_ANSWERS)
async def ready(runtime: ServiceRuntime) -> JSONResponse:
    """Readiness: the service reaches its broker and its database, its readers and the ledger are sound, and its
    consumer groups are within ``ready_max_lag`` records of their topics' ends (``caught_up``). 503 says which
    check is not ok, and why: send it no traffic until it is ready again."""
    checks = {"broker": await _check_broker(runtime.broker), "database": await _check_database(runtime)}
    checks.update({name: check() for name, check in runtime.checks.items()})
    checks["caught_up"] = await _check_caught_up(runtime)
    healthy = all(v == "ok" for v in checks.values())
    return JSONResponse(
        status_code=200 if healthy else 503,
        content={"service": runtime.name, "status": "ok" if healthy else "degraded", **checks},
    )


@operations.get("/health", response_model=Health, responses=HEALTH_ANSWERS)
async def health(runtime: ServiceRuntime) -> JSONResponse:
    """The same as ``/health/ready`` (kept for the clients and scripts that ask it)."""
    return await ready(runtime)


# Operators' numbers, not the public's: Prometheus scrapes with an auditor's key (docs/access.md).
@operations.get("/metrics", response_class=PlainTextResponse, dependencies=[Depends(require("auditor", "admin"))])
async def metrics(runtime: ServiceRuntime) -> PlainTextResponse:
    """Prometheus metrics: events appended and applied, dead letters by reason, consumer lag."""
    body = await runtime.metrics.render()
    return PlainTextResponse(body, media_type=CONTENT_TYPE_LATEST)


class WhoAmI(BaseModel):
    """What a credential is granted: a client (the console) asks it once, to show its user what it may do."""

    key_id: str
    agency_code: str
    roles: list[str]
    officer: str | None = None


@operations.get("/whoami", response_model=WhoAmI)
async def whoami(principal: Annotated[Principal, Depends(require(*ROLES))]) -> WhoAmI:
    """The caller's own credential: its key id, agency, roles and the officer it acts as."""
    roles = sorted(principal.roles)
    return WhoAmI(key_id=principal.key_id, agency_code=principal.agency_code, roles=roles, officer=principal.officer)


@operations.get("/asyncapi.json")
async def asyncapi(runtime: ServiceRuntime) -> JSONResponse:
    """The AsyncAPI document of the topics this service reads and writes, from its code."""
    return JSONResponse(content=asyncapi_document(runtime))


VERSION = "0.1.0"


def asyncapi_document(runtime: Runtime) -> dict[str, Any]:
    """The AsyncAPI document of what this service reads and writes: the topics its broker's subscribers and
    publishers name (and those it reads by other means, ``Runtime.reads``), each described by the contract."""
    topics = runtime.settings.topics
    receives = {topics.base(cast(Any, s).topic_names[0]): _described(s) for s in runtime.broker.subscribers}
    receives |= {topics.base(topic): what for topic, what in runtime.reads.items()}
    sends = {topics.base(cast(Any, p).topic): _described(p) for p in runtime.broker.publishers}
    return contract_document(
        title=runtime.title,
        description=runtime.description,
        version=VERSION,
        receives=receives,
        sends=sends,
        bootstrap=runtime.settings.kafka.bootstrap_servers,
    )


def _described(endpoint: Any) -> str:
    config = endpoint.specification.config
    return str(config.description_ or config.title_ or "")


async def _check_broker(broker: KafkaBroker) -> str:
    try:
        return "ok" if await broker.ping(timeout=2.0) else "unreachable"
    except Exception as exc:  # the health answer reports any failure; it never raises
        return f"error: {exc}"


async def _check_caught_up(runtime: Runtime) -> str:
    try:
        behind = await runtime.metrics.behind()
    except Exception as exc:  # the health answer reports any failure; it never raises
        return f"error: {exc}"
    bound = runtime.settings.ready_max_lag
    late = {group: lag for group, lag in behind.items() if lag > bound}
    return "ok" if not late else "; ".join(f"{g} is {n} records behind (ready within {bound})" for g, n in late.items())


async def _check_database(runtime: Runtime) -> str:
    try:
        async with runtime.pool.acquire(timeout=2.0) as connection:
            await connection.fetchval("SELECT 1")
        return "ok"
    except Exception as exc:  # the health answer reports any failure; it never raises
        return f"error: {redact(str(exc), runtime.settings.database_url)}"
