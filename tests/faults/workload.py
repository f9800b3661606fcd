"""Clients of the ledger under faults: agencies submitting, customs declaring exports, over HTTP and the Kafka
intake; and an independent fold of what they were told was accepted, to hold the ledger against.

A client retries a command until it is acknowledged (HTTP 202; the broker's acknowledgement of an intake
record), always as the same command (the same Idempotency-Key, command id or declaration number), as a real
client must when an answer is lost. A license's declarations are sent one after another, each once the last
was acknowledged: their order in the log is then the order the client knows, and the client can fold them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import uuid
from dataclasses import dataclass, field

import httpx
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

import samples
from shared.contract.topics import Topics
from shared.platform.kafka_access import KafkaConnection
from tests.support import auth, signed

QUANTITY = 10  # each license's quantity (samples.application_data)
MAX_DECLARATIONS = 12  # rule 8


@dataclass
class Command:
    """One command a client sent, and when it was acknowledged (None: never)."""

    kind: str  # submit-http, submit-intake, export-http, export-intake
    key: str  # the application id or the declaration number
    started: float
    acknowledged: float | None = None
    attempts: int = 0

    @property
    def latency(self) -> float:
        assert self.acknowledged is not None
        return self.acknowledged - self.started


@dataclass
class Declared:
    declaration_number: str
    quantity: int


@dataclass
class LicenseSeen:
    """A license as its clients know it: its number and the declarations acknowledged, in order."""

    application_id: str
    license_number: str
    declarations: list[Declared] = field(default_factory=list)

    def folded(self) -> tuple[int, int, dict[str, str]]:
        """Balance, declarations used and each declaration's outcome, as the rules give them (port and dates are
        always valid here): accepted while within the balance and the 12 declarations, else refused."""
        balance, used, outcomes = QUANTITY, 0, {}
        for d in self.declarations:
            if balance > 0 and used < MAX_DECLARATIONS and d.quantity <= balance:
                balance, used = balance - d.quantity, used + 1
                outcomes[d.declaration_number] = "accepted"
            else:
                outcomes[d.declaration_number] = "refused"
        return balance, used, outcomes


class GaveUp(AssertionError):
    """A command was not acknowledged before the run's deadline."""


@dataclass
class Clients:
    """Agencies and customs sending through every door: applications' HTTP API and its intake topic, each
    registry instance's HTTP API, and the exports intake topic."""

    applications: str
    registries: list[str]
    kafka: KafkaConnection  # a principal that may write both intake topics
    topics: Topics
    rng: random.Random
    deadline: float
    commands: list[Command] = field(default_factory=list)
    licenses: list[LicenseSeen] = field(default_factory=list)
    refused_at_http: list[str] = field(default_factory=list)  # 503/5xx answers seen (each retried)
    _http: httpx.AsyncClient | None = None
    _producer: AIOKafkaProducer | None = None

    async def __aenter__(self) -> Clients:
        self._http = httpx.AsyncClient(timeout=20, headers=auth())
        self._producer = AIOKafkaProducer(
            **self.kafka.options(), acks="all", enable_idempotence=True, request_timeout_ms=15000
        )
        await self._producer.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._http is not None and self._producer is not None
        await self._http.aclose()
        await self._producer.stop()

    def acknowledged(self) -> list[Command]:
        return [c for c in self.commands if c.acknowledged is not None]

    async def _post(self, command: Command, url: str, body: dict[str, object], headers: dict[str, str]) -> dict:  # type: ignore[type-arg]
        assert self._http is not None
        while True:
            self._check_deadline(command)
            command.attempts += 1
            try:
                answer = await self._http.post(url, json=body, headers=headers)
            except httpx.HTTPError as failed:
                self.refused_at_http.append(type(failed).__name__)
                await asyncio.sleep(0.3)
                continue
            if answer.status_code == 202:
                command.acknowledged = time.monotonic()
                return dict(answer.json())
            if answer.status_code >= 500 or answer.status_code == 429:
                self.refused_at_http.append(f"{answer.status_code} {_code(answer)}")
                await asyncio.sleep(min(float(answer.headers.get("Retry-After", "1")), 1.0))
                continue
            raise AssertionError(f"{command.kind} {command.key}: {answer.status_code} {answer.text}")

    async def _send(self, command: Command, topic: str, value: bytes, key: bytes) -> None:
        assert self._producer is not None
        while True:
            self._check_deadline(command)
            command.attempts += 1
            try:
                await self._producer.send_and_wait(topic, value, key=key, headers=signed(value))
            except KafkaError:
                await asyncio.sleep(0.3)
                continue
            command.acknowledged = time.monotonic()
            return

    def _check_deadline(self, command: Command) -> None:
        if time.monotonic() > self.deadline:
            raise GaveUp(f"{command.kind} {command.key} not acknowledged after {command.attempts} attempts")

    def _command(self, kind: str, key: str) -> Command:
        command = Command(kind, key, time.monotonic())
        self.commands.append(command)
        return command

    async def submit(self, via: str) -> str:
        """Submit an application; its id once acknowledged."""
        data = samples.application_data()
        if via == "http":
            idempotency_key = f"faults-{uuid.uuid4()}"
            command = self._command("submit-http", idempotency_key)
            answer = await self._post(
                command, f"{self.applications}/applications", data, {"Idempotency-Key": idempotency_key}
            )
            command.key = str(answer["application_id"])
            return command.key
        application_id = str(uuid.uuid4())
        command = self._command("submit-intake", application_id)
        body = _intake("SubmitApplication", "gd-commerce", {"application_id": application_id, "application": data})
        await self._send(command, self.topics.intake_applications, body, b"gd-commerce")
        return application_id

    async def license_of(self, application_id: str) -> str:
        """The license granted on the application, read from any registry instance."""
        assert self._http is not None
        while time.monotonic() < self.deadline:
            url = self.rng.choice(self.registries)
            try:
                answer = await self._http.get(f"{url}/applications/{application_id}")
            except httpx.HTTPError:
                answer = None
            if answer is not None and answer.status_code == 200 and answer.json()["status"] != "submitted":
                body = answer.json()
                assert body["status"] == "approved", body
                return str(body["license_number"])
            await asyncio.sleep(0.2)
        raise GaveUp(f"application {application_id}: no decision in the registry before the deadline")

    async def declare(self, seen: LicenseSeen, declaration_number: str, quantity: int, via: str) -> None:
        """Declare an export against the license through ``via``; once acknowledged it is the license's next."""
        data = samples.declaration_data(seen.license_number, declaration_number, quantity=quantity)
        if via == "http":
            command = self._command("export-http", declaration_number)
            await self._post(command, f"{self.rng.choice(self.registries)}/exports", data, {})
        else:
            command = self._command("export-intake", declaration_number)
            body = _intake("RecordExport", "gac-shenzhen", {"declaration": data})
            await self._send(command, self.topics.intake_exports, body, seen.license_number.encode())
            # Admitted later, by the registry's intake reader: the client learns its place in the license's
            # order from its verdict, before it declares the next export (as customs, who waits for it).
            await self.verdict(declaration_number)
        seen.declarations.append(Declared(declaration_number, quantity))

    async def verdict(self, declaration_number: str) -> None:
        assert self._http is not None
        while time.monotonic() < self.deadline:
            with contextlib.suppress(httpx.HTTPError):
                answer = await self._http.get(f"{self.rng.choice(self.registries)}/exports/{declaration_number}")
                if answer.status_code == 200:
                    return
            await asyncio.sleep(0.2)
        raise GaveUp(f"declaration {declaration_number}: no verdict in the registry before the deadline")

    async def one_case(self, run: str, index: int, declarations: int) -> None:
        """An application, its license, then ``declarations`` exports against it (the later ones refused
        when they pass the balance), through doors chosen at random."""
        application_id = await self.submit(self.rng.choice(("http", "intake")))
        seen = LicenseSeen(application_id, await self.license_of(application_id))
        self.licenses.append(seen)
        for sequence in range(declarations):
            number = f"F{run}{index:05d}{sequence:03d}"
            await self.declare(seen, number, self.rng.randint(1, 4), self.rng.choice(("http", "intake")))

    async def run(self, run: str, *, cases: int, declarations: int, workers: int, until: asyncio.Event) -> None:
        """Cases, ``workers`` at a time, until ``until`` is set and at least ``cases`` were started."""
        started = 0

        async def worker() -> None:
            nonlocal started
            while started < cases or not until.is_set():
                started += 1
                await self.one_case(run, started, declarations)

        async with asyncio.TaskGroup() as group:
            for _ in range(workers):
                group.create_task(worker())


def _code(answer: httpx.Response) -> str:
    """The reason code of an error answer; an answer without our error body (a crash) says so."""
    try:
        return str(answer.json().get("code", ""))
    except ValueError:
        return "(no error body)"


def _intake(kind: str, sender: str, payload: dict[str, object]) -> bytes:
    body = {"command_id": str(uuid.uuid4()), "type": kind, "schema_version": 1, "sender": sender, "payload": payload}
    return json.dumps(body).encode()


def percentile(values: list[float], fraction: float) -> float:
    """The value below which ``fraction`` of ``values`` lie (nearest rank); 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))]
