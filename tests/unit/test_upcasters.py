import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from shared.contract.events import ApplicationSubmitted, Envelope, ExportRecorded
from shared.contract.upcasters import upcast_application_submitted_v1_v2, upcast_export_recorded_v1_v2

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def _lines(name: str) -> list[bytes]:
    return [line.encode() for line in (FIXTURES / name).read_text().splitlines()]


def test_version_1_submissions_came_from_the_portal() -> None:
    assert upcast_application_submitted_v1_v2({"application": {}}) == {"application": {}, "channel": "http"}


@pytest.mark.parametrize(
    ("vins", "listed"),
    [("", []), ("LA1AB2CD3EF456781", ["LA1AB2CD3EF456781"]), ("A, B,", ["A", "B"]), (["X"], ["X"])],
)
def test_version_1_vins_become_a_list(vins: object, listed: list[str]) -> None:
    assert upcast_export_recorded_v1_v2({"vins": vins})["vins"] == listed


def test_the_version_1_log_reads_as_the_same_events_as_todays() -> None:
    old = [Envelope.from_bytes(line) for line in _lines("history_v1.jsonl")]
    new = [Envelope.from_bytes(line) for line in _lines("history_current.jsonl")]
    assert {json.loads(line)["schema_version"] for line in _lines("history_v1.jsonl")} == {1}
    assert old == new
    assert any(isinstance(e.payload, ExportRecorded) and e.payload.vins for e in old)
    assert all(e.payload.channel == "http" for e in old if isinstance(e.payload, ApplicationSubmitted))


def test_a_version_newer_than_the_reader_is_refused() -> None:
    wire = json.loads(_lines("history_current.jsonl")[0])
    with pytest.raises(ValidationError, match="schema_version 3 is not supported"):
        Envelope.from_bytes(json.dumps({**wire, "schema_version": 3}).encode())
