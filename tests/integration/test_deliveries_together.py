"""A delivery that holds records of several partitions is taken in one transaction, by review on the case stream
and by the registry on the export intake; one record at fault anywhere in it sends each partition down its own
path (then each record), so that it alone is dead-lettered and every other record is taken once."""

from __future__ import annotations

import json
import uuid
from collections import Counter, defaultdict
from functools import partial
from typing import Any

import pytest

import samples
from services.applications.submission import submitted
from services.registry import admission
from services.registry.app import Settings as RegistrySettings
from services.registry.app import create_app as create_registry
from services.review import reviewing
from services.review.app import Settings as ReviewSettings
from services.review.app import create_app as create_review
from shared.contract import dead_letters
from shared.contract.events import Envelope, ExportRecorded, LicenseGranted
from shared.contract.topics import Topics
from tests.histories import granted, publish, record_export
from tests.infra import Infrastructure
from tests.support import envelopes, eventually, everything_on, producer, read_topic, send_signed, serving, settings_for

AGENCIES = ("44", "11", "31")


def _watch_review(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, bool]]:
    """Each time review tried records together: of how many partitions, and whether they were taken so."""
    tried: list[tuple[int, bool]] = []
    together = reviewing._decide_together

    async def watched(connection: Any, reader: Any, reading: Any, partitions: list[list[Any]], data: Any) -> Any:
        answer = await together(connection, reader, reading, partitions, data)
        tried.append((len(partitions), answer is not None))
        return answer

    monkeypatch.setattr(reviewing, "_decide_together", watched)
    return tried


async def _submit_all(infrastructure: Infrastructure, topics: Topics, count: int) -> list[Envelope]:
    submissions = [
        submitted(samples.application(agency_code=AGENCIES[i % 3]), application_id=uuid.uuid4(), channel="http")
        for i in range(count)
    ]
    async with producer(infrastructure.kafka) as send:
        for submission in submissions:
            await send_signed(send, topics.cases, submission.to_bytes(), key=str(submission.case_id).encode())
    return submissions


async def test_review_decides_a_delivery_of_several_partitions_together_and_a_forged_record_alone(
    infrastructure: Infrastructure, database_url: str, topics: Topics, monkeypatch: pytest.MonkeyPatch
) -> None:
    tried = _watch_review(monkeypatch)
    settings = settings_for(ReviewSettings, infrastructure, database_url, topics)
    # All sent before review starts, so that its first delivery holds them all: genuine submissions of three
    # agencies over the partitions, and a forged one (unsigned) among them.
    first = await _submit_all(infrastructure, topics, 24)
    forged = submitted(samples.application(), application_id=uuid.uuid4(), channel="http")
    async with producer(infrastructure.kafka) as send:
        await send.send_and_wait(topics.cases, forged.to_bytes(), key=str(forged.case_id).encode())
    async with serving(create_review(settings)):
        await read_topic(infrastructure.kafka, topics.cases, until=lambda r: len(_decisions(r)) >= len(first))
        dead = await read_topic(infrastructure.kafka, topics.dead_letter, until=lambda r: len(r) >= 1)
    # Then more, while review is away: its next delivery holds them all, none at fault.
    second = await _submit_all(infrastructure, topics, 18)
    async with serving(create_review(settings)):
        await read_topic(
            infrastructure.kafka, topics.cases, until=lambda r: len(_decisions(r)) >= len(first) + len(second)
        )
    records = await everything_on(infrastructure.kafka, topics.cases)
    assert len({r.partition for r in records}) > 1  # the deliveries did span partitions
    decisions = _decisions(records)
    by_submission = Counter(d.causation_id for d in decisions)
    assert by_submission == Counter({s.event_id: 1 for s in first + second})  # each decided once, the forged never
    assert [dict(r.headers)[dead_letters.REASON_CODE] for r in dead] == [b"unsigned_event"]
    # The license numbers of each agency's sequence: one each, none skipped, whatever path a submission took.
    numbers: dict[str, list[int]] = defaultdict(list)
    for decision in decisions:
        if isinstance(decision.payload, LicenseGranted):
            _, agency, sequence = decision.payload.license_number.split("-")
            numbers[agency].append(int(sequence))
    assert numbers and all(sorted(n) == list(range(1, len(n) + 1)) for n in numbers.values()), numbers
    # The first delivery was tried whole and refused for the forged record; then each of its partitions on its
    # own, all taken together but the forged record's. The second delivery was taken whole.
    whole, taken = tried[0]
    assert whole > 1 and not taken, tried
    alone = tried[1 : 1 + whole]
    assert [partitions for partitions, _ in alone] == [1] * whole and [t for _, t in alone].count(False) == 1, tried
    assert any(partitions > 1 and taken for partitions, taken in tried[1:]), tried


def _decisions(records: list[Any]) -> list[Envelope]:
    return [e for e in envelopes(records) if e.producer == "review"]


async def test_the_export_intake_admits_a_delivery_of_several_partitions_together_and_a_refused_command_alone(
    infrastructure: Infrastructure, database_url: str, topics: Topics, monkeypatch: pytest.MonkeyPatch
) -> None:
    tried: list[tuple[list[str], bool]] = []  # each batch admit_all was given: its numbers, and whether admitted
    admit_all = admission.admit_all

    async def watched(runtime: Any, declarations: Any) -> None:
        numbers = [d.declaration_number for d in declarations]
        try:
            await admit_all(runtime, declarations)
        except Exception:
            tried.append((numbers, False))
            raise
        tried.append((numbers, True))

    monkeypatch.setattr(admission, "admit_all", watched)
    licenses = [f"26-44-0007{i:02d}" for i in range(12)]
    await publish(
        infrastructure.kafka,
        topics.cases,
        [Envelope.wrap(granted(n), case_id=uuid.uuid4(), producer="test") for n in licenses],
    )
    commands = [record_export(samples.declaration_data(n, f"5316202600000{i:05d}")) for i, n in enumerate(licenses)]
    unknown = record_export(samples.declaration_data("26-44-000799", "531620260000009999"))
    settings = settings_for(RegistrySettings, infrastructure, database_url, topics)
    async with serving(create_registry(settings)) as client:  # the ledger holds the licenses first
        for number in licenses:
            await eventually(partial(_answers, client, f"/licenses/{number}"), what=f"license {number}")
    sent: list[Any] = []
    async with producer(infrastructure.kafka) as send:
        # Keyed by license, as customs key them: over the partitions, the unknown license's among them.
        for command in [*commands[:6], unknown, *commands[6:]]:
            sent.append(await send_signed(send, topics.intake_exports, command, key=_license(command)))
    async with serving(create_registry(settings)):
        await eventually(
            lambda: _verdicts(infrastructure, topics, len(commands)), timeout=60, what="a verdict on each command"
        )
        dead = await read_topic(infrastructure.kafka, topics.dead_letter, until=lambda r: len(r) >= 1)
    verdicts = await _verdicts(infrastructure, topics, len(commands))
    assert verdicts is not None and sorted(verdicts) == sorted(_number(c) for c in commands)
    assert [dict(r.headers)[dead_letters.REASON_CODE] for r in dead] == [b"unknown_license"]
    assert len({r.partition for r in sent}) > 1
    # Tried whole first (all thirteen, over the partitions), refused, then partition by partition.
    assert tried and len(tried[0][0]) == len(commands) + 1 and not tried[0][1], tried


async def _answers(client: Any, path: str) -> bool | None:
    return True if (await client.get(path)).status_code == 200 else None


def _license(command: bytes) -> bytes:
    return str(json.loads(command)["payload"]["declaration"]["license_number"]).encode()


def _number(command: bytes) -> str:
    return str(json.loads(command)["payload"]["declaration"]["declaration_number"])


async def _verdicts(infrastructure: Infrastructure, topics: Topics, count: int) -> list[str] | None:
    numbers = [
        e.payload.declaration_number
        for e in envelopes(await everything_on(infrastructure.kafka, topics.cases))
        if isinstance(e.payload, ExportRecorded)
    ]
    return numbers if len(numbers) >= count else None
