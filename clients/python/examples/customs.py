"""Customs' backend: record an export declaration against a license, and read the ledger's verdict.

    LEDGER_KAFKA_BOOTSTRAP=... LEDGER_KAFKA_USERNAME=customs-shenzhen LEDGER_KAFKA_PASSWORD=... \
    LEDGER_SENDER=gac-shenzhen LEDGER_SIGNING_KEY_FILE=gac-shenzhen.key \
    LEDGER_REGISTRY_URL=http://127.0.0.1:8003 LEDGER_API_KEY=lk_... python customs.py 26-44-000001
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from ledger_client import KafkaLogin, Ledger, LedgerError, Sender, Topics
from ledger_client.keys import load_key


async def main(license_number: str) -> None:
    key = load_key(os.environ["LEDGER_SIGNING_KEY_FILE"])
    declaration: dict[str, Any] = {
        "declaration_number": f"5316{uuid.uuid4().int % 10**14:014d}",
        "license_number": license_number,
        "port_of_exit": "CNSZX",
        "export_date": datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat(),  # validity counts in China
        "quantity": 2,
        "value": "294000.00",
        "currency": "CNY",
    }
    sending = Sender(KafkaLogin.from_env(), sender=os.environ["LEDGER_SENDER"], key=key, topics=Topics.from_env())
    async with sending as sender, Ledger.from_env() as ledger:
        sent = await sender.record_export(declaration)
        print(f"declared {declaration['declaration_number']} against {license_number} (command {sent.command_id})")
        for _ in range(240):
            try:
                [verdict] = await ledger.export(declaration["declaration_number"])
            except LedgerError as error:
                if error.code != "unknown_declaration":
                    raise
                await asyncio.sleep(0.25)
                continue
            reason = f" ({verdict['reason']['code']})" if verdict["reason"] else ""
            print(f"export {verdict['outcome']}{reason}")
            return
        for refusal in await ledger.refusals():
            if refusal["command_id"] == str(sent.command_id):
                print(f"refused at intake: {refusal['reason']['code']}: {refusal['reason']['message']}")
                return
        raise TimeoutError("no verdict yet")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
