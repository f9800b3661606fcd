"""A failure that is not the record's fault is waited out, not spun on, and shows on /health and /metrics.

The applications service's table of idempotency keys is taken away while an agency's command arrives: every
try fails, for no fault of the command. The reader must wait longer and longer between tries (a handful of
tries in seconds, not thousands), say so on /health (503) and in its metrics, dead-letter nothing, and take
the command once the table is back: its event appended once.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid

import asyncpg
import httpx

import samples
from services.applications.app import Settings, create_app
from shared.contract.topics import Topics
from tests.infra import Infrastructure
from tests.support import eventually, everything_on, producer, read_topic, serving, settings_for, signed


def _failures(metrics: str, kind: str) -> float:
    found = re.search(
        rf'ledger_reader_failures_total{{kind="{kind}",reader="intake-applications"}} ([0-9.e+]+)', metrics
    )
    return float(found.group(1)) if found else 0.0


async def _metrics(client: httpx.AsyncClient) -> str:
    return (await client.get("/metrics")).text


async def test_a_failure_of_the_database_is_waited_out_shown_and_loses_nothing(
    infrastructure: Infrastructure, database_url: str, topics: Topics
) -> None:
    application_id = uuid.uuid4()
    command = {
        "command_id": str(uuid.uuid4()),
        "type": "SubmitApplication",
        "schema_version": 1,
        "sender": "gd-commerce",
        "payload": {"application_id": str(application_id), "application": samples.application_data()},
    }
    value = json.dumps(command).encode()
    connection = await asyncpg.connect(database_url)
    try:
        async with serving(create_app(settings_for(Settings, infrastructure, database_url, topics))) as client:
            await connection.execute("ALTER TABLE applications.idempotency_keys RENAME TO keys_away")
            async with producer(infrastructure.kafka) as send:
                await send.send_and_wait(topics.intake_applications, value, key=b"gd-commerce", headers=signed(value))

            async def failing() -> dict[str, str] | None:
                answer = await client.get("/health")
                body: dict[str, str] = answer.json()
                return body if answer.status_code == 503 and "intake-applications" in body["readers"] else None

            health = await eventually(failing, what="the reader's failure on /health")
            assert "UndefinedTableError" in health["readers"]
            assert 'ledger_reader_failing{reader="intake-applications"} 1.0' in await _metrics(client)
            before = _failures(await _metrics(client), "infrastructure")
            await asyncio.sleep(3)
            during = _failures(await _metrics(client), "infrastructure") - before
            assert 0 < during <= 6, f"{during} tries in 3 s: it must wait between tries, not spin"

            await connection.execute("ALTER TABLE applications.keys_away RENAME TO idempotency_keys")
            records = await read_topic(infrastructure.kafka, topics.cases, until=lambda r: len(r) >= 1, timeout=60)

            async def recovered() -> bool | None:
                answer = await client.get("/health")
                return True if answer.status_code == 200 and answer.json()["readers"] == "ok" else None

            await eventually(recovered, what="the reader healthy again")
            assert 'ledger_reader_failing{reader="intake-applications"} 0.0' in await _metrics(client)
    finally:
        await connection.close()
    assert [r.key for r in records] == [str(application_id).encode()]
    assert len(await everything_on(infrastructure.kafka, topics.cases)) == 1, "appended once, for all the tries"
    assert await everything_on(infrastructure.kafka, topics.dead_letter) == [], "nothing lost to the dead letters"
