"""Creating the topics the system needs, idempotently, on whatever broker it is pointed at."""

from __future__ import annotations

import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from shared.topics import Topics

log = logging.getLogger(__name__)


async def ensure_topics(bootstrap_servers: str, topics: Topics, *, replication_factor: int = 1) -> list[str]:
    """Create each missing topic of ``topics``; return the names it created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="ledger-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(s.name, s.partitions, replication_factor, topic_configs=s.config)
            for s in topics.specs()
            if s.name not in existing
        ]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                log.info("another process created the topics first")
        return [t.name for t in missing]
    finally:
        await admin.close()


async def delete_topics(bootstrap_servers: str, topics: Topics) -> None:
    """Delete the topics of ``topics`` that exist (a test namespace, once the test is done)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="ledger-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        doomed = [s.name for s in topics.specs() if s.name in existing]
        if doomed:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()
