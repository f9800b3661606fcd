"""The system doing its job, as a user sees it: apply, get a license, export against it, be refused."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

import samples


class DemoFailed(RuntimeError):
    pass


async def _poll(client: httpx.AsyncClient, url: str, done: Any, timeout: float = 30) -> Any:
    """The JSON body at ``url`` once it answers 200 and ``done`` holds of it."""
    deadline = time.monotonic() + timeout
    while True:
        answer = await client.get(url)
        if answer.status_code == 200 and done(answer.json()):
            return answer.json()
        if time.monotonic() > deadline:
            raise DemoFailed(f"{url} did not reach the expected state in {timeout}s: {answer.text}")
        await asyncio.sleep(0.2)


def read_keys(file: Path) -> dict[str, str]:
    """The demo's key per role, from ``licensectl keys bootstrap``."""
    try:
        keys: dict[str, str] = json.loads(file.read_text())
    except (OSError, ValueError) as missing:
        raise DemoFailed(f"no demo keys in {file} ({missing}); run licensectl keys bootstrap") from None
    return keys


def _as(keys: dict[str, str], role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {keys[role]}"}


async def run(applications_url: str, registry_url: str, console: Console, keys: dict[str, str]) -> None:
    # The exporter's agency portal submits and follows its application; customs records and reads exports.
    async with (
        httpx.AsyncClient(timeout=10, headers=_as(keys, "submitter")) as client,
        httpx.AsyncClient(timeout=10, headers=_as(keys, "customs")) as customs,
    ):
        application = samples.application_data(quantity=10)
        console.rule("1. An exporter applies (POST /applications)")
        answer = await client.post(
            f"{applications_url}/applications", json=application, headers={"Idempotency-Key": str(uuid.uuid4())}
        )
        answer.raise_for_status()
        application_id = answer.json()["application_id"]
        console.print(
            f"{application['quantity']} new {application['brand']} BEVs to {application['destination_country']}"
            f" via {application['port_of_exit']}: accepted as application [bold]{application_id}[/]"
        )

        console.rule("2. Review decides; the registry's ledger shows it (GET /applications/{id})")
        decided = await _poll(
            client, f"{registry_url}/applications/{application_id}", lambda b: b["status"] != "submitted"
        )
        if decided["status"] != "approved":
            raise DemoFailed(f"the application was not approved: {decided}")
        number = decided["license_number"]
        console.print(f"approved: license [bold green]{number}[/]")
        license_ = await _poll(customs, f"{registry_url}/licenses/{number}", lambda b: True)
        console.print(
            f"license {number}: {license_['status']}, quantity {license_['quantity']}, "
            f"balance {license_['balance']}, valid {license_['valid_from']} to {license_['valid_to']}, "
            f"port {license_['port_of_exit']}, destination {license_['destination_country']}"
        )

        stamp = time.strftime("%y%m%d%H%M%S")
        for step, (quantity, title) in enumerate(
            [(6, "3. Customs records an export of 6"), (5, "4. Customs declares 5 more: past the balance")], start=1
        ):
            console.rule(f"{title} (POST /exports)")
            declaration = samples.declaration_data(number, f"5316{stamp}{step:04d}", quantity=quantity)
            (await customs.post(f"{registry_url}/exports", json=declaration)).raise_for_status()
            judgements: list[dict[str, Any]] = await _poll(
                customs, f"{registry_url}/exports/{declaration['declaration_number']}", lambda b: bool(b)
            )
            judged = judgements[0]
            license_ = await _poll(customs, f"{registry_url}/licenses/{number}", lambda b: True)
            reason = f" - {judged['reason']['code']}: {judged['reason']['message']}" if judged["reason"] else ""
            colour = "green" if judged["outcome"] == "accepted" else "red"
            console.print(f"declaration {declaration['declaration_number']}: [{colour}]{judged['outcome']}[/]{reason}")
            console.print(
                f"license {number}: balance {license_['balance']}, declarations used {license_['declarations_used']}"
            )
        if license_["balance"] != 4 or judged["outcome"] != "refused":
            raise DemoFailed(f"unexpected end state: {license_}, {judged}")
        console.rule("[bold green]done: the ledger admitted 6 and refused the export past the balance")
