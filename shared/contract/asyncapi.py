"""The contract as an AsyncAPI 3.0 document: every topic of the ledger, with each message's payload, record
key and headers, the topic's configuration (partitions, cleanup policy, retention) and the broker's security.

Built from the contract's own models and topic specifications, so the document cannot say other than the
code: ``licensectl docs`` writes it (``docs/api/ledger.asyncapi.json``, and each message's JSON Schema under
``docs/api/schemas/``), each service serves the part it reads and writes at ``/asyncapi.json``, and the
test suite validates every document with the AsyncAPI parser and the recorded traffic of the end-to-end
tests against the schemas.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, Field, TypeAdapter, create_model
from pydantic.json_schema import models_json_schema

from .checkpoints import SignedCheckpoint
from .commands import SUPPORTED_SCHEMA_VERSION, IntakeMessage, RecordExport, SubmitApplication
from .dead_letters import HEADERS as DEAD_LETTER_HEADERS
from .events import EVENT_TYPES, Envelope, LicenseState
from .signatures import KEY_ID_HEADER, SIGNATURE_HEADER
from .topics import (
    CASES,
    CHECKPOINTS,
    DEAD_LETTER,
    INTAKE_APPLICATIONS,
    INTAKE_EXPORTS,
    LICENSE_CHANGES,
    SPECS,
    TRUST,
    TopicSpec,
)
from .trust import TrustStatement

ASYNCAPI_VERSION = "3.0.0"
KAFKA_BINDING_VERSION = "0.5.0"
REF = "#/components/schemas/{model}"


def _case_event(event_class: Any) -> Any:
    fields: dict[str, Any] = {"type": (Literal[event_class.TYPE], ...), "payload": (event_class, ...)}
    doc = f"The envelope of a {event_class.TYPE}: {(event_class.__doc__ or '').strip()}"
    return create_model(f"{event_class.TYPE}Event", __base__=Envelope, __doc__=doc, **fields)


CASE_EVENTS = tuple(_case_event(cls) for cls in EVENT_TYPES.values())
CaseEvent: Any = Annotated[Union[CASE_EVENTS], Field(discriminator="type")]  # noqa: UP007 - built from the registry
"""An event of a license case: the envelope, its ``type`` naming which of the typed payloads it carries."""


def _command(command_class: Any, description: str) -> Any:
    fields: dict[str, Any] = {
        "type": (Literal[command_class.TYPE], ...),
        "schema_version": (Literal[SUPPORTED_SCHEMA_VERSION], ...),
        "payload": (command_class, ...),
    }
    return create_model(f"{command_class.TYPE}Command", __base__=IntakeMessage, __doc__=description, **fields)


SubmitApplicationCommand = _command(
    SubmitApplication,
    "An agency backend's application, in the intake wrapper: who sends it (a producer trusted to sign commands "
    "for the application's agency), the command's id (a retry reuses it and appends nothing new), then the "
    "SubmitApplication itself.",
)
RecordExportCommand = _command(
    RecordExport,
    "Customs' export declaration, in the intake wrapper: who sends it (a producer trusted to sign commands, at "
    "the ports its key names), the command's id, then the RecordExport itself.",
)
IntakeCommand: Any = Annotated[Union[SubmitApplicationCommand, RecordExportCommand], Field(discriminator="type")]  # noqa: UP007
"""A command on an intake topic; each topic takes one ``type`` of them (another is refused as ``wrong_topic``)."""


def _text(description: str, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "description": description, **extra}


SIGNATURE = {
    SIGNATURE_HEADER: _text("base64 of the Ed25519 signature over the record value's exact bytes"),
    KEY_ID_HEADER: _text("the SHA-256 of the signer's raw 32-byte public key, hex", pattern="^[0-9a-f]{64}$"),
}
JSON = {"content-type": _text("application/json", const="application/json")}


def _headers(required: Iterable[str], properties: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": list(required), "properties": dict(properties)}


SIGNED = _headers(SIGNATURE, {**SIGNATURE, **JSON})
UUID_KEY = _text("the case id, as text", format="uuid")


@dataclass(frozen=True)
class MessageSpec:
    """One kind of record on a topic: its payload (a contract type), its record key and its headers."""

    name: str
    title: str
    summary: str
    payload: Any  # a type TypeAdapter takes; None for bytes the contract does not shape
    key: dict[str, Any]
    headers: dict[str, Any]
    content_type: str = "application/json"


@dataclass(frozen=True)
class ChannelSpec:
    """One topic: what it is for, and the messages it carries."""

    topic: str
    title: str
    description: str
    messages: tuple[MessageSpec, ...]


CHANNELS: tuple[ChannelSpec, ...] = (
    ChannelSpec(
        CASES,
        "cases",
        "The event store: every event of a license case, keyed by its case id, kept forever. Only the ledger's "
        "services write it. Each record is signed by its producer; the registry folds only events signed by a "
        "key trusted for their producer and type, in the partition the case id's key places them in.",
        (
            MessageSpec(
                "CaseEvent",
                "A case event",
                "An event of a license case, discriminated by its type.",
                CaseEvent,
                UUID_KEY,
                _headers(
                    [*SIGNATURE, "event-type"],
                    {**SIGNATURE, **JSON, "event-type": _text("the envelope's type", enum=sorted(EVENT_TYPES))},
                ),
            ),
        ),
    ),
    ChannelSpec(
        INTAKE_APPLICATIONS,
        "intake-applications",
        "Applications from agency backends, as signed SubmitApplication commands. Key each record by the "
        "application id (the same application, the same partition). What is refused goes to the dead-letter "
        "topic with its reason, and the sender reads it at the registry's GET /refusals.",
        (
            MessageSpec(
                "SubmitApplication",
                "SubmitApplication",
                "An agency backend submits an application on an applicant's behalf.",
                SubmitApplicationCommand,
                _text("the application id, as text", format="uuid"),
                SIGNED,
            ),
        ),
    ),
    ChannelSpec(
        INTAKE_EXPORTS,
        "intake-exports",
        "Export declarations from customs backends, as signed RecordExport commands. Key each record by the "
        "license number: one license's declarations are admitted in the order sent. What is refused goes to the "
        "dead-letter topic with its reason, and the sender reads it at the registry's GET /refusals.",
        (
            MessageSpec(
                "RecordExport",
                "RecordExport",
                "Customs records an export declaration against a license.",
                RecordExportCommand,
                _text("the license number", pattern=r"^\d{2}-\d{2}-\d{6}$"),
                SIGNED,
            ),
        ),
    ),
    ChannelSpec(
        LICENSE_CHANGES,
        "license-changes",
        "Each license's state after each ledger commit, for other services to follow. Compacted and keyed by "
        "license number, so the latest state of every license stays readable from the start of the topic.",
        (
            MessageSpec(
                "LicenseState",
                "A license's state",
                "A license as the ledger holds it after a change, and the event that made it so.",
                LicenseState,
                _text("the license number", pattern=r"^\d{2}-\d{2}-\d{6}$"),
                _headers([], JSON),
            ),
        ),
    ),
    ChannelSpec(
        DEAD_LETTER,
        "dead-letter",
        "Records a service refused (a command, or an event it would not act on): the original value and headers, "
        "byte for byte, plus why, who refused it and where it was read. For operators and auditors; senders read "
        "their own refusals over HTTP (GET /refusals), scoped to themselves.",
        (
            MessageSpec(
                "DeadLetter",
                "A refused record",
                "The original record's value (any bytes, or none) and key, with the dlq.* headers added.",
                None,
                {"description": "the original record's key, unchanged"},
                _headers(DEAD_LETTER_HEADERS, DEAD_LETTER_HEADERS),
                content_type="application/octet-stream",
            ),
        ),
    ),
    ChannelSpec(
        CHECKPOINTS,
        "checkpoints",
        "The registry's signed checkpoints: each partition's hash chain head and offset, and the ledger "
        "checksum there. Kept forever in one partition; an auditor checks them against the log.",
        (
            MessageSpec(
                "SignedCheckpoint",
                "A signed checkpoint",
                "Where the ledger stood, signed with the registry's key over the checkpoint's canonical JSON.",
                SignedCheckpoint,
                _text("the writer", const="registry"),
                _headers([], JSON),
            ),
        ),
    ),
    ChannelSpec(
        TRUST,
        "trust",
        "Who is trusted to sign what: statements signed by an operator's root key, kept forever in one "
        "partition and one order. Services, replays and audits fold them under the pinned root keys.",
        (
            MessageSpec(
                "TrustStatement",
                "A trust statement",
                "Trust a key for one producer and one use, revoke it, or say from which offset a partition is signed.",
                TrustStatement,
                _text("the writer", const="trust"),
                _headers(SIGNATURE, SIGNATURE),
            ),
        ),
    ),
)
BY_TOPIC = {channel.topic: channel for channel in CHANNELS}
SPEC_OF = {spec.name: spec for spec in SPECS}


def message_schemas() -> dict[str, dict[str, Any]]:
    """Each message's payload as a standalone JSON Schema (draft 2020-12), by message name."""
    found: dict[str, dict[str, Any]] = {}
    for channel in CHANNELS:
        for message in channel.messages:
            if message.payload is None:
                continue
            schema = TypeAdapter(message.payload).json_schema()
            found[message.name] = {
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "$id": f"{message.name}.json",
                "title": message.title,
                "description": message.summary,
                **schema,
            }
    return found


def document(
    *,
    title: str,
    description: str,
    version: str,
    receives: Mapping[str, str],
    sends: Mapping[str, str],
    bootstrap: str = "localhost:9092",
) -> dict[str, Any]:
    """An AsyncAPI 3.0 document of the channels a party ``receives`` and ``sends`` (topic base name -> what it
    does with it), with every message's payload, key and headers, and the topics' configuration."""
    topics = [c.topic for c in CHANNELS if c.topic in receives or c.topic in sends]
    channels, messages, operations = {}, {}, {}
    payloads = [m.payload for t in topics for m in BY_TOPIC[t].messages if m.payload is not None]
    schemas = _component_schemas(payloads)
    for topic in topics:
        channel = BY_TOPIC[topic]
        for message in channel.messages:
            messages[message.name] = _message(message)
        channels[channel.title] = {
            "address": topic,
            "title": channel.title,
            "description": channel.description,
            "messages": {m.name: {"$ref": f"#/components/messages/{m.name}"} for m in channel.messages},
            "bindings": {"kafka": _topic_binding(SPEC_OF[topic])},
        }
        for action, roles in (("receive", receives), ("send", sends)):
            if topic in roles:
                operations[f"{action}-{channel.title}"] = {
                    "action": action,
                    "channel": {"$ref": f"#/channels/{channel.title}"},
                    "description": roles[topic],
                    "messages": [{"$ref": f"#/channels/{channel.title}/messages/{m.name}"} for m in channel.messages],
                }
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {"title": title, "version": version, "description": description},
        "defaultContentType": "application/json",
        "servers": {
            "ledger": {
                "host": bootstrap,
                "protocol": "kafka",
                "description": "SASL_PLAINTEXT with SCRAM-SHA-512 (SASL_SSL on a managed cluster); one principal "
                "per party, whose ACLs name what it may read and write (docs/kafka-access.md).",
                "security": [{"$ref": "#/components/securitySchemes/scram"}],
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": messages,
            "schemas": schemas,
            "securitySchemes": {
                "scram": {"type": "scramSha512", "description": "A SCRAM user per party (licensectl kafka setup)."}
            },
        },
    }


def _component_schemas(payloads: list[Any]) -> dict[str, Any]:
    """Every model the payloads use, once, as components; AsyncAPI's discriminator is the property's name."""
    models: list[type[BaseModel]] = []
    for payload in payloads:
        models.extend(CASE_EVENTS if payload is CaseEvent else [payload])
    _, top = models_json_schema([(m, "validation") for m in dict.fromkeys(models)], ref_template=REF)
    schemas: dict[str, Any] = dict(top.get("$defs", {}))
    if CaseEvent in payloads:
        schemas["CaseEvent"] = _oneof("CaseEvent", CASE_EVENTS, "An event of a license case, by its type.")
    fixed: dict[str, Any] = _asyncapi_discriminators(schemas)
    return fixed


def _oneof(name: str, members: Iterable[type[BaseModel]], description: str) -> dict[str, Any]:
    return {
        "title": name,
        "description": description,
        "oneOf": [{"$ref": REF.format(model=m.__name__)} for m in members],
        "discriminator": "type",
    }


def _asyncapi_discriminators(schema: Any) -> Any:
    """pydantic writes OpenAPI's discriminator object; an AsyncAPI Schema Object's is the property's name."""
    if isinstance(schema, dict):
        fixed = {k: _asyncapi_discriminators(v) for k, v in schema.items()}
        if isinstance(fixed.get("discriminator"), dict):
            fixed["discriminator"] = fixed["discriminator"]["propertyName"]
        return fixed
    if isinstance(schema, list):
        return [_asyncapi_discriminators(v) for v in schema]
    return schema


def _message(message: MessageSpec) -> dict[str, Any]:
    if message.payload is None:
        payload = {"description": "the refused record's value as it was read: any bytes, or none"}
    else:
        name = "CaseEvent" if message.payload is CaseEvent else message.payload.__name__
        payload = {"$ref": REF.format(model=name)}
    return {
        "name": message.name,
        "title": message.title,
        "summary": message.summary,
        "contentType": message.content_type,
        "payload": payload,
        "headers": copy.deepcopy(message.headers),
        "bindings": {"kafka": {"key": copy.deepcopy(message.key), "bindingVersion": KAFKA_BINDING_VERSION}},
    }


def _topic_binding(spec: TopicSpec) -> dict[str, Any]:
    config: dict[str, Any] = {"cleanup.policy": [spec.config.get("cleanup.policy", "delete")]}
    for name in ("retention.ms", "retention.bytes"):
        if name in spec.config:
            config[name] = int(spec.config[name])
    return {
        "topic": spec.name,
        "partitions": spec.partitions,
        "topicConfiguration": config,
        "bindingVersion": KAFKA_BINDING_VERSION,
    }
