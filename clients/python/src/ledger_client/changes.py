"""Following license changes, as another service does: each license's state after each ledger commit, read
from the compacted ``licensing.license-changes`` topic (the latest state of every license stays on it)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiokafka import AIOKafkaConsumer

from ledger_client.connection import KafkaLogin, Topics
from ledger_client.contract.events import LicenseState


async def subscribe_license_changes(
    kafka: KafkaLogin, *, group_id: str, topics: Topics | None = None, from_beginning: bool = True
) -> AsyncIterator[LicenseState]:
    """Each license state as it is published, from the start of the topic (or only new ones). ``group_id``: your
    consumer group, named after your principal (``<principal>-...``: the groups its ACLs allow); its
    offsets are committed as you go, so a restart goes on where it stopped. A state of a schema version this
    client does not know raises a ``pydantic.ValidationError``: upgrade the client."""
    topics = topics or Topics()
    consumer = AIOKafkaConsumer(
        topics.license_changes,
        **kafka.options(),
        group_id=topics.name(group_id),  # under the deployment's namespace, as its ACLs name the groups
        auto_offset_reset="earliest" if from_beginning else "latest",
    )
    await consumer.start()
    try:
        async for record in consumer:
            if record.value is not None:  # a tombstone: nothing to say
                yield LicenseState.model_validate_json(record.value)
    finally:
        await consumer.stop()
