"""The services' contracts as documents, generated from the code: OpenAPI (HTTP), AsyncAPI (Kafka), and the page
of reason codes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from services.applications.app import Settings as ApplicationsSettings
from services.applications.app import create_app as applications_app
from services.registry.app import Settings as RegistrySettings
from services.registry.app import create_app as registry_app
from services.review.app import Settings as ReviewSettings
from services.review.app import create_app as review_app
from shared.contract import asyncapi, reason_codes, topics
from shared.platform.kafka_access import DEFAULT_BOOTSTRAP
from shared.platform.service import VERSION, asyncapi_document

DOCS_DIR = Path(__file__).resolve().parent.parent / "docs" / "api"
REASON_CODES = DOCS_DIR.parent / "reason-codes.md"

# Built with the plain topic names, the default broker address and each service logging in as itself
# (SASL/SCRAM), whatever the environment says: the documents describe production. No password is in them.
PRODUCTION: dict[str, Any] = {"topic_namespace": "", "kafka_bootstrap_servers": DEFAULT_BOOTSTRAP}
APPS: dict[str, Callable[[], FastAPI]] = {
    "applications": lambda: applications_app(ApplicationsSettings(**PRODUCTION, kafka_username="applications")),
    "review": lambda: review_app(ReviewSettings(**PRODUCTION, kafka_username="review")),
    "registry": lambda: registry_app(RegistrySettings(**PRODUCTION, kafka_username="registry")),
}


LEDGER = {
    "receives": {
        topics.INTAKE_APPLICATIONS: "Takes agency backends' signed SubmitApplication commands.",
        topics.INTAKE_EXPORTS: "Takes customs backends' signed RecordExport commands.",
        topics.TRUST: "Reads who is trusted to sign what, under the pinned root keys.",
    },
    "sends": {
        topics.CASES: "Appends every event of every case, signed by the service that decided it.",
        topics.LICENSE_CHANGES: "Publishes each license's state after each change.",
        topics.DEAD_LETTER: "Puts what it refuses here, whole, with the reason.",
        topics.CHECKPOINTS: "Publishes the registry's signed checkpoints.",
    },
}


def documents() -> dict[str, dict[str, Any]]:
    """Each document's file name (under docs/api/) and content."""
    found: dict[str, dict[str, Any]] = {}
    for name, make in APPS.items():
        app = make()
        found[f"{name}.openapi.json"] = app.openapi()
        found[f"{name}.asyncapi.json"] = asyncapi_document(app.state.runtime)
    found["ledger.asyncapi.json"] = asyncapi.document(
        title="The export license ledger",
        description="Every topic of the ledger, as an agency, customs, a subscriber or an auditor meets it: the "
        "commands it takes, the events and states it publishes, what it refuses, its checkpoints and its trust "
        "statements. Generated from the contract (shared/contract/); docs/api/schemas/ has each message's "
        "JSON Schema.",
        version=VERSION,
        bootstrap=DEFAULT_BOOTSTRAP,
        **LEDGER,
    )
    for name, schema in asyncapi.message_schemas().items():
        found[f"schemas/{name}.json"] = schema
    return found


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write(directory: Path = DOCS_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for file, document in documents().items():
        path = directory / file
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(document))
        written.append(path)
    REASON_CODES.write_text(reason_codes.document())
    return [*written, REASON_CODES]


def stale(directory: Path = DOCS_DIR) -> list[str]:
    """The documents whose committed copy differs from what the code generates now."""
    found = [
        file
        for file, document in documents().items()
        if not (directory / file).exists() or (directory / file).read_text() != render(document)
    ]
    if not REASON_CODES.exists() or REASON_CODES.read_text() != reason_codes.document():
        found.append(REASON_CODES.name)
    return found
