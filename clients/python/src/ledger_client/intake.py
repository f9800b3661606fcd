"""Sending commands to the ledger, as an agency's or customs' backend: each one wrapped, signed and keyed as
the intake topics take them.

The wrapper names the sender and the command's id (a retry reuses the id, and the ledger appends nothing new);
the value's exact bytes are signed with Ed25519 (``ledger-signature``, ``ledger-key-id`` headers); the record
key keeps one application's commands, or one license's declarations, in one partition and one order.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from aiokafka import AIOKafkaProducer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel

from ledger_client.connection import KafkaLogin, Topics
from ledger_client.contract.commands import SUPPORTED_SCHEMA_VERSION, IntakeMessage, RecordExport, SubmitApplication
from ledger_client.contract.events import Application, ExportDeclaration
from ledger_client.contract.signatures import signature_headers


@dataclass(frozen=True)
class Sent:
    """A command the broker has: its id (what a refusal names), and where it lies."""

    command_id: uuid.UUID
    topic: str
    partition: int
    offset: int


class Sender:
    """A backend's connection to its intake topic: ``async with Sender(...) as sender: await sender.submit...``."""

    def __init__(self, kafka: KafkaLogin, *, sender: str, key: Ed25519PrivateKey, topics: Topics | None = None) -> None:
        self.sender, self.key, self.topics = sender, key, topics or Topics()
        self._producer = AIOKafkaProducer(**kafka.options(), acks="all", enable_idempotence=True)

    async def __aenter__(self) -> Sender:
        await self._producer.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self._producer.stop()

    async def submit_application(
        self,
        application: Application | dict[str, Any],
        *,
        application_id: uuid.UUID | None = None,
        command_id: uuid.UUID | None = None,
    ) -> tuple[uuid.UUID, Sent]:
        """Submit an application (an agency's backend): its id (new unless given) and the command as sent."""
        application_id = application_id or uuid.uuid4()
        command = SubmitApplication(application_id=application_id, application=Application.model_validate(application))
        sent = await self.sign_and_send(
            self.topics.intake_applications, command, key=str(application_id).encode(), command_id=command_id
        )
        return application_id, sent

    async def record_export(
        self, declaration: ExportDeclaration | dict[str, Any], *, command_id: uuid.UUID | None = None
    ) -> Sent:
        """Record an export declaration against its license (customs' backend)."""
        command = RecordExport(declaration=ExportDeclaration.model_validate(declaration))
        key = command.declaration.license_number.encode()
        return await self.sign_and_send(self.topics.intake_exports, command, key=key, command_id=command_id)

    async def sign_and_send(
        self, topic: str, command: BaseModel, *, key: bytes, command_id: uuid.UUID | None = None
    ) -> Sent:
        """Wrap ``command`` (a ``SubmitApplication`` or ``RecordExport``), sign the value's bytes, send it keyed
        by ``key``, and wait for the broker to have it."""
        wrapped = IntakeMessage(
            command_id=command_id or uuid.uuid4(),
            type=type(command).TYPE,  # type: ignore[attr-defined]
            schema_version=SUPPORTED_SCHEMA_VERSION,
            sender=self.sender,
            payload=command.model_dump(mode="json"),
        )
        value = wrapped.model_dump_json().encode()
        headers = [*signature_headers(value, self.key), ("content-type", b"application/json")]
        written = await self._producer.send_and_wait(topic, value, key=key, headers=headers)
        return Sent(wrapped.command_id, topic, written.partition, written.offset)
