"""The published AsyncAPI documents pass the AsyncAPI initiative's own parser, and it is a real check: a document
with a wrong binding, a dangling reference or an OpenAPI-style discriminator fails it."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.infra import ROOT

VALIDATE = ROOT / "tools" / "asyncapi" / "validate.mjs"
DOCUMENTS = sorted((ROOT / "docs" / "api").glob("*.asyncapi.json"))


def _validate(*paths: Path) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    installed = (ROOT / "tools" / "asyncapi" / "node_modules" / "@asyncapi" / "parser").is_dir()
    if node is None or not installed:
        pytest.fail("the AsyncAPI parser is not installed: run ./scripts/test (scripts/lib.sh ensure_node_tools)")
    return subprocess.run([node, str(VALIDATE), *map(str, paths)], capture_output=True, text=True, timeout=120)


def test_every_published_asyncapi_document_is_valid() -> None:
    assert {p.name for p in DOCUMENTS} >= {"ledger.asyncapi.json", "registry.asyncapi.json"}
    checked = _validate(*DOCUMENTS)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count("valid AsyncAPI 3.0.0") == len(DOCUMENTS)


def _broken(tmp_path: Path, name: str, change: Any) -> Path:
    document = copy.deepcopy(json.loads((ROOT / "docs" / "api" / "ledger.asyncapi.json").read_text()))
    change(document)
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(document))
    return path


@pytest.mark.parametrize(
    ("name", "change", "complaint"),
    [
        ("partitions", lambda d: d["channels"]["cases"]["bindings"]["kafka"].update(partitions="six"), "integer"),
        ("dangling", lambda d: d["operations"]["receive-intake-applications"].update(channel={"$ref": "#/x"}), "$ref"),
        (
            "discriminator",
            lambda d: d["components"]["schemas"]["CaseEvent"].update(discriminator={"propertyName": "type"}),
            "discriminator",
        ),
    ],
)
def test_the_validator_refuses_a_broken_document(tmp_path: Path, name: str, change: Any, complaint: str) -> None:
    checked = _validate(_broken(tmp_path, name, change))
    assert checked.returncode == 1 and complaint in checked.stdout, checked.stdout
