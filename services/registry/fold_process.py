"""One process of a parallel fold (``replay.fold_in_processes``): folds its share of the partitions.

It reads what to fold as JSON on stdin, the database URL and the Kafka login from its environment
(never its arguments, which ``ps`` shows), and writes ``progress <events>`` lines, then
``done <events>``, on stdout. It runs on uvloop, as the services do: the fold writes a lot to PostgreSQL, and
uvloop's transports cost less than asyncio's own (a 1M-event fold 3% faster, docs/performance.md).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import uvloop

from services.registry.replay import Vouched, fold_log, open_log
from shared.platform.collector import collect_less
from shared.platform.db import create_pool
from shared.platform.kafka_access import KafkaConnection
from shared.platform.trust import root_keys


async def _fold_share(work: dict[str, Any]) -> int:
    pool = await create_pool(os.environ["DATABASE_URL"], schema=work["schema"], max_size=2)
    try:

        def report(read: int, _: int) -> None:
            print(f"progress {read}", flush=True)

        log = await open_log(
            KafkaConnection(), work["topic"], trust_topic=work["trust_topic"], roots=root_keys(work["roots"])
        )
        return await fold_log(
            pool,
            log,
            start={int(p): o for p, o in work["start"].items()},
            end={int(p): o for p, o in work["end"].items()},
            progress=report,
            vouched=Vouched.from_json(work["vouched"]) if "vouched" in work else None,
        )
    finally:
        await pool.close()


def main() -> None:
    collect_less()
    folded = uvloop.run(_fold_share(json.loads(sys.stdin.read())))
    print(f"done {folded}", flush=True)


if __name__ == "__main__":
    main()
