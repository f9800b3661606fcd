"""A subscribing service: follow license changes, and stop once a license's balance has been drawn on.

    LEDGER_KAFKA_BOOTSTRAP=... LEDGER_KAFKA_USERNAME=erp-sync LEDGER_KAFKA_PASSWORD=... \
    python subscriber.py 26-44-000001
"""

from __future__ import annotations

import asyncio
import os
import sys

from ledger_client import KafkaLogin, Topics, subscribe_license_changes


async def main(license_number: str) -> None:
    login = KafkaLogin.from_env()
    group = f"{login.username}-example"  # a subscriber's groups are named after it
    async for state in subscribe_license_changes(login, group_id=group, topics=Topics.from_env()):
        print(f"{state.license_number}: {state.status}, balance {state.balance} of {state.quantity} ({state.as_of})")
        if state.license_number == license_number and state.balance < state.quantity:
            print(f"seen: {license_number} drawn on, balance {state.balance}")
            return


if __name__ == "__main__":
    asyncio.run(asyncio.wait_for(main(sys.argv[1]), timeout=float(os.environ.get("LEDGER_EXAMPLE_SECONDS", "120"))))
