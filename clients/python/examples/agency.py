"""An agency's backend: submit an application and wait for the ledger's decision; then submit one for another
agency, which the ledger refuses, and read why.

    LEDGER_KAFKA_BOOTSTRAP=127.0.0.1:9092 LEDGER_KAFKA_USERNAME=agency-44 LEDGER_KAFKA_PASSWORD=... \
    LEDGER_SENDER=gd-commerce LEDGER_SIGNING_KEY_FILE=gd-commerce.key \
    LEDGER_REGISTRY_URL=http://127.0.0.1:8003 LEDGER_API_KEY=lk_... python agency.py
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ledger_client import KafkaLogin, Ledger, LedgerError, Sender, Topics
from ledger_client.keys import load_key

T = TypeVar("T")
# Ten new Qilin BEVs from Qilin Motor to Mexico through Shenzhen (fictional; the ledger's demo reference data).
APPLICATION: dict[str, Any] = {
    "agency_code": "44",
    "applicant": {"code": "91488787CL5R13E3HD", "name": "Qilin Motor Co., Ltd.", "role": "manufacturer"},
    "manufacturer": {"code": "91488787CL5R13E3HD", "name": "Qilin Motor Co., Ltd."},
    "commodity_code": "8703801090",
    "model_code": "QI7010BEV",
    "brand": "Qilin",
    "condition": "new",
    "quantity": 10,
    "unit_price": "147000.00",
    "currency": "CNY",
    "destination_country": "MX",
    "trade_mode": "general trade",
    "contract_number": "QM-2026-MX-0042",
    "port_of_exit": "CNSZX",
    "payment_mode": "letter of credit",
    "transport_mode": "ro-ro vessel",
}


async def until(found: Callable[[], Awaitable[T | None]], seconds: float = 60) -> T:
    for _ in range(int(seconds * 4)):
        if (value := await found()) is not None:
            return value
        await asyncio.sleep(0.25)
    raise TimeoutError("the ledger did not answer in time")


async def main() -> None:
    key = load_key(os.environ["LEDGER_SIGNING_KEY_FILE"])
    sending = Sender(KafkaLogin.from_env(), sender=os.environ["LEDGER_SENDER"], key=key, topics=Topics.from_env())
    async with sending as sender, Ledger.from_env() as ledger:
        application_id, sent = await sender.submit_application(APPLICATION)
        print(f"submitted application {application_id} (command {sent.command_id})")

        async def decided() -> dict[str, Any] | None:
            try:
                found = await ledger.application(application_id)
            except LedgerError as error:
                if error.code == "unknown_application":
                    return None  # not in the ledger yet
                raise
            return found if found["status"] not in ("submitted", "escalated") else None

        decision = await until(decided)
        print(f"decided: {decision['status']}, license {decision['license_number']}")

        other_id, refused_command = await sender.submit_application({**APPLICATION, "agency_code": "31"})
        print(f"submitted application {other_id} for agency 31 (command {refused_command.command_id})")

        async def refusal() -> dict[str, Any] | None:
            mine = [r for r in await ledger.refusals() if r["command_id"] == str(refused_command.command_id)]
            return mine[0] if mine else None

        refused = await until(refusal)
        print(f"refused: {refused['reason']['code']}: {refused['reason']['message']}")
        try:
            await ledger.application(other_id)
        except LedgerError as error:
            print(f"GET /applications/{other_id}: {error.code} ({error.errors[0]['code']})")


if __name__ == "__main__":
    asyncio.run(main())
