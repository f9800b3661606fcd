"""The committed API documents are what the code generates: CI fails when they are out of date."""

from licensectl import docs


def test_the_committed_openapi_and_asyncapi_documents_match_the_code() -> None:
    assert docs.stale() == [], "run `licensectl docs` and commit docs/api/"


def test_the_asyncapi_documents_describe_the_topics_and_the_event_contract() -> None:
    generated = docs.documents()
    registry = generated["registry.asyncapi.json"]
    addresses = {channel["address"] for channel in registry["channels"].values()}
    assert addresses == {
        "licensing.cases",
        "licensing.license-changes",
        "licensing.intake.exports",
        "licensing.dead-letter",
        "licensing.checkpoints",
        "licensing.trust",
    }
    schemas = set(registry["components"]["schemas"])
    assert {"CaseEvent", "LicenseState", "LicenseGranted", "ExportRecorded", "ApplicationSubmitted"} <= schemas
