"""The export intake admits a partition's batch of ``RecordExport`` commands in one transaction (``admit_all``),
and falls back to one transaction a command when one of them is refused or unreadable. Whichever path a batch
takes, the verdicts and the dead letters are those of admitting each command in order, on its own: checked
against a model of that, over generated bursts of commands (declarations new and sent again, with the same or
other content, VINs shared between declarations, unknown licenses, unsigned and unreadable commands)."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import samples
from services.registry import admission
from services.registry.app import Settings as RegistrySettings
from services.registry.app import create_app as create_registry
from services.registry.replay import replay
from shared.contract import dead_letters
from shared.contract.events import Envelope, ExportRecorded, ExportRefused
from shared.contract.refusal import Refusal
from shared.contract.topics import Topics
from tests.histories import granted, publish, record_export
from tests.infra import Infrastructure
from tests.support import envelopes, eventually, everything_on, producer, serving, settings_for, signed

LICENSES = tuple(f"26-44-0009{i:02d}" for i in range(10))
UNKNOWN = "26-44-000999"
VINS = tuple(f"LKMA7C1B9TS00{i:04d}" for i in range(8))  # few, so declarations share them


@dataclass
class Model:
    """Admitting each command in order, on its own: what the ledger is to hold after them."""

    declared: dict[str, dict[str, Any]] = field(default_factory=dict)  # number: the content admitted first
    verdicts: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # number: (event type, reason)
    held: set[str] = field(default_factory=set)  # VINs of exports recorded
    balance: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LICENSES, 10))
    dead: list[str | None] = field(default_factory=list)  # each dead letter's reason code, in order (None: any)

    def admit(self, declaration: dict[str, Any]) -> None:
        number = declaration["declaration_number"]
        if declaration["license_number"] not in self.balance:
            self.dead.append("unknown_license")
        elif number in self.declared:
            if self.declared[number] != declaration:
                self.dead.append("declaration_conflict")
        else:
            self.declared[number] = declaration
            vins = set(declaration["vins"])
            if vins & self.held:
                self.verdicts[number] = ("ExportRefused", "vin_already_exported")
            else:
                self.held |= vins
                self.balance[declaration["license_number"]] -= declaration["quantity"]
                self.verdicts[number] = ("ExportRecorded", None)


def _burst(rng: random.Random, model: Model, serial: list[int], fault: str | None) -> list[tuple[bytes, bool]]:
    """A burst of commands (each with whether to sign it), the model told of each in order: new declarations
    and ones sent again (often from the same burst), and once, if ``fault`` names one, a command the intake
    refuses: ``conflict`` (a number sent again with other content), ``unknown`` (license), ``junk``, ``unsigned``.
    (An ``ExportRefused`` for a VIN another export holds is a verdict, not a refusal: any burst may hold one.)"""
    out: list[tuple[bytes, bool]] = []
    mine: list[dict[str, Any]] = []
    size = rng.randint(2, 10)
    at = rng.randrange(size) if fault else -1
    for i in range(size):
        kind = fault if i == at else rng.choice(["new", "new", "again"])
        earlier = mine if mine and rng.random() < 0.6 else list(model.declared.values())
        if kind in ("again", "conflict") and earlier:
            declaration = rng.choice(earlier)
            if kind == "conflict":
                declaration = {**declaration, "value": str(int(float(declaration["value"])) + 1)}
        elif kind == "junk":
            out.append((b'{"type": "RecordExport", "payload": [' + bytes([rng.randint(0, 255)]), True))
            model.dead.append(None)
            continue
        else:
            usable = [n for n, left in model.balance.items() if left >= 2]
            if not usable:
                continue
            number = UNKNOWN if kind == "unknown" else rng.choice(usable)
            vins = rng.sample(VINS, rng.randint(0, 2))
            serial[0] += 1
            declaration = samples.declaration_data(
                number, f"5316202600{serial[0]:08d}", quantity=max(len(vins), 1), vins=vins
            )
        if kind == "unsigned":
            out.append((record_export(declaration), False))
            model.dead.append(None)
            continue
        out.append((record_export(declaration), True))
        model.admit(declaration)
        mine.append(declaration)
    return out


async def test_batches_of_commands_are_admitted_as_each_command_on_its_own(
    infrastructure: Infrastructure, database_url: str, topics: Topics, monkeypatch: pytest.MonkeyPatch
) -> None:
    tried: list[tuple[list[str], str]] = []  # each batch admit_all was given: its numbers, and how it ended
    admit_all = admission.admit_all

    async def watched(runtime: Any, declarations: Any) -> None:
        numbers = [d.declaration_number for d in declarations]
        try:
            await admit_all(runtime, declarations)
        except Refusal as refused:
            tried.append((numbers, refused.code))
            raise
        tried.append((numbers, "admitted"))

    monkeypatch.setattr(admission, "admit_all", watched)
    await publish(
        infrastructure.kafka,
        topics.cases,
        [Envelope.wrap(granted(n), case_id=uuid.uuid4(), producer="test") for n in LICENSES],
    )
    rng, model, serial = random.Random(20261203), Model(), [0]
    faults = [None, "conflict", "unknown", "junk", "unsigned"]
    settings = settings_for(RegistrySettings, infrastructure, database_url, topics)
    async with serving(create_registry(settings)) as client, producer(infrastructure.kafka) as send:
        for number in LICENSES:
            await eventually(partial(_answers, client, f"/licenses/{number}"), what=f"license {number}")
        for round_ in range(20):
            for value, sign in _burst(rng, model, serial, faults[round_ % len(faults)]):
                headers = signed(value) if sign else signed(value, Ed25519PrivateKey.generate())
                await send.send(topics.intake_exports, value, key=b"gac-shenzhen", headers=headers)
            await send.flush()
            await eventually(lambda: _caught_up(infrastructure, topics, model), what=f"burst {round_} judged")
        verdicts, dead = await _outcomes(infrastructure, topics)
    assert verdicts == model.verdicts
    assert len(dead) == len(model.dead)
    assert [code for code, expected in zip(dead, model.dead, strict=True) if expected is not None] == [
        code for code in model.dead if code is not None
    ]
    # Both paths were taken: batches admitted together, one with a declaration twice among them, and batches
    # refused together (then taken one by one).
    admitted = [numbers for numbers, ended in tried if ended == "admitted"]
    assert any(len(set(numbers)) < len(numbers) for numbers in admitted), tried
    assert {"declaration_conflict", "unknown_license"} <= {ended for _, ended in tried}, tried
    assert any(code == "vin_already_exported" for _, code in model.verdicts.values())
    result = await replay(database_url=database_url, kafka=infrastructure.kafka, topic=topics.cases)
    assert result.matches, result.differences


async def _answers(client: Any, path: str) -> bool | None:
    return True if (await client.get(path)).status_code == 200 else None


async def _outcomes(
    infrastructure: Infrastructure, topics: Topics
) -> tuple[dict[str, tuple[str, str | None]], list[str]]:
    """The registry's verdicts on the case stream by declaration number, and the dead letters' reason codes."""
    verdicts: dict[str, tuple[str, str | None]] = {}
    for envelope in envelopes(await everything_on(infrastructure.kafka, topics.cases)):
        event = envelope.payload
        if isinstance(event, ExportRecorded | ExportRefused):
            assert event.declaration_number not in verdicts, f"two verdicts on {event.declaration_number}"
            reason = event.reason.code if isinstance(event, ExportRefused) else None
            verdicts[event.declaration_number] = (type(event).__name__, reason)
    # In the order of the commands they were (the dead-letter topic's partitions keep no order between them).
    letters = [dict(r.headers) for r in await everything_on(infrastructure.kafka, topics.dead_letter)]
    letters.sort(key=lambda headers: int(headers[dead_letters.SOURCE].decode().rsplit("/", 1)[1]))
    return verdicts, [headers[dead_letters.REASON_CODE].decode() for headers in letters]


async def _caught_up(infrastructure: Infrastructure, topics: Topics, model: Model) -> bool | None:
    verdicts, dead = await _outcomes(infrastructure, topics)
    return True if len(verdicts) >= len(model.verdicts) and len(dead) >= len(model.dead) else None
