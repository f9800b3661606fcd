"""The page of reason codes lists every code the services give, and no code they do not give."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from shared.contract.reason_codes import CATALOG
from shared.platform.http import STATUS_CODES

ROOT = Path(__file__).resolve().parents[2]
# Each function that makes a refusal or a reason, and which positional argument is its code.
MAKERS = {"Refusal": 1, "denied": 1, "conflict": 0, "refusal": 1, "_reason": 0, "unreadable": 1}


def _given() -> tuple[set[str], set[str]]:
    """Every code written as text in the source, and every pattern of a code built from a value (f-strings)."""
    codes, patterns = set(STATUS_CODES.values()), set()
    for path in [*ROOT.glob("shared/**/*.py"), *ROOT.glob("services/**/*.py"), *ROOT.glob("licensectl/**/*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
            code = next((k.value for k in node.keywords if k.arg == "code"), None)
            if code is None and name in MAKERS and len(node.args) > MAKERS[name]:
                code = node.args[MAKERS[name]]
            if isinstance(code, ast.Constant) and isinstance(code.value, str):
                codes.add(code.value)
            elif isinstance(code, ast.JoinedStr):
                parts = [re.escape(str(p.value)) if isinstance(p, ast.Constant) else "[a-z_]+" for p in code.values]
                patterns.add("^" + "".join(parts) + "$")
    return codes, patterns


def test_every_code_the_services_give_is_listed() -> None:
    codes, patterns = _given()
    assert sorted(codes - set(CATALOG)) == []
    assert [p for p in patterns if not any(re.match(p, c) for c in CATALOG)] == []


def test_every_listed_code_is_one_the_services_give() -> None:
    codes, patterns = _given()
    unused = [c for c in CATALOG if c not in codes and not any(re.match(p, c) for p in patterns)]
    assert unused == []
