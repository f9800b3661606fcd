"""The layout keeps its direction: the contract stands alone, services never import each other."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONTRACT_MAY_IMPORT = {"pydantic", "pycountry", "cryptography", "nacl", "__future__"}


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            found.append((node.level, node.module or ""))
        elif isinstance(node, ast.Import):
            found.extend((0, alias.name) for alias in node.names)
    return found


def _stdlib(name: str) -> bool:
    import sys

    return name.split(".")[0] in sys.stdlib_module_names


def test_the_contract_imports_only_itself_and_its_three_libraries() -> None:
    for path in sorted((ROOT / "shared" / "contract").glob("*.py")):
        for level, module in _imports(path):
            if level > 0 or _stdlib(module):
                continue
            assert module.split(".")[0] in CONTRACT_MAY_IMPORT, f"{path.name} imports {module}"


def test_services_never_import_each_other_and_shared_imports_no_service() -> None:
    for path in sorted((ROOT / "services").rglob("*.py")):
        own = path.relative_to(ROOT / "services").parts[0]
        for _, module in _imports(path):
            if module.startswith("services."):
                assert module.split(".")[1] == own, f"{path.relative_to(ROOT)} imports {module}"
    for path in sorted((ROOT / "shared").rglob("*.py")):
        for _, module in _imports(path):
            assert not module.startswith("services"), f"{path.relative_to(ROOT)} imports {module}"


def test_the_fold_imports_the_contract_and_not_the_platform() -> None:
    for _, module in _imports(ROOT / "shared" / "fold.py"):
        assert not module.startswith("shared.platform"), module
