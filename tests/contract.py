"""Checking records as they were on the wire against the published contract (docs/api/ledger.asyncapi.json and
docs/api/schemas/): each record's value, key and headers, by the channel its topic is."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema_rs

from shared.contract import dead_letters
from shared.contract.topics import Topics
from shared.platform.kafka_access import KafkaConnection
from shared.platform.ranges import read_range
from tests.infra import ROOT

API = ROOT / "docs" / "api"


@cache
def ledger_document() -> dict[str, Any]:
    document: dict[str, Any] = json.loads((API / "ledger.asyncapi.json").read_text())
    return document


@cache
def _validator(path: Path) -> Any:
    return jsonschema_rs.validator_for(json.loads(path.read_text()), validate_formats=True)


def channel_of(topic_base: str) -> dict[str, Any]:
    """The channel of the ledger's document whose address is ``topic_base``."""
    for channel in ledger_document()["channels"].values():
        if channel["address"] == topic_base:
            return dict(channel)
    raise LookupError(f"no channel for {topic_base}")


def problems(topics: Topics, topic: str, record: Any) -> list[str]:
    """What in ``record`` (a consumer record of ``topic``) the contract does not allow; none if it is as published."""
    channel = channel_of(topics.base(topic))
    [reference] = channel["messages"].values()
    message = ledger_document()["components"]["messages"][reference["$ref"].rsplit("/", 1)[-1]]
    where = f"{topic}/{record.partition}/{record.offset}"
    found = _errors(message["headers"], _headers(record.headers), f"{where} headers")
    key = record.key.decode() if record.key is not None else None
    found += _errors(message["bindings"]["kafka"]["key"], key, f"{where} key")
    if message["contentType"] == "application/json":
        schema = API / "schemas" / f"{message['name']}.json"
        try:
            value = json.loads(record.value)
        except (TypeError, ValueError) as exc:
            return [*found, f"{where} value is not JSON: {exc}"]
        found += [
            f"{where} value: {e.message} at {list(e.instance_path)}" for e in _validator(schema).iter_errors(value)
        ]
    return found


async def _read_all(kafka: KafkaConnection, topics: Topics) -> list[tuple[str, Any]]:
    records: list[tuple[str, Any]] = []
    for spec in topics.specs():
        async for _, batch in read_range(kafka, spec.name):
            records.extend((spec.name, record) for record in batch)
    return records


def traffic_problems(kafka: KafkaConnection, topics: Topics) -> tuple[int, list[str]]:
    """Every record on every topic of ``topics`` that no service refused, checked against the contract: how many,
    and what is wrong.
    Run in a thread of its own, so that it may be called from a synchronous fixture while a loop runs."""
    with ThreadPoolExecutor(1) as pool:
        records = pool.submit(asyncio.run, _read_all(kafka, topics)).result(timeout=120)
    # A record the services refused is not held to the contract (it broke it, and was told so): its dead letter is.
    refused = {
        _headers(record.headers).get(dead_letters.SOURCE) for topic, record in records if topic == topics.dead_letter
    }
    held = [(t, r) for t, r in records if f"{t}/{r.partition}/{r.offset}" not in refused]
    return len(held), [p for topic, record in held for p in problems(topics, topic, record)]


def _headers(headers: Any) -> dict[str, str]:
    return {name: (value or b"").decode(errors="replace") for name, value in headers}


def _errors(schema: dict[str, Any], instance: Any, what: str) -> list[str]:
    return [
        f"{what}: {e.message}" for e in jsonschema_rs.validator_for(schema, validate_formats=True).iter_errors(instance)
    ]
