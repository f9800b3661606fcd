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


def test_a_fold_process_imports_no_reader_log_or_metrics_machinery() -> None:
    """A replay starts one fold process per core, and each pays its imports inside the timed fold: the readers'
    machinery, structlog (which brings rich) and the metrics client were 180 of its 660 ms (docs/performance.md)."""
    import subprocess
    import sys

    heavy = ("structlog", "rich", "prometheus_client", "shared.platform.reading", "shared.platform.logs", "fastapi")
    probe = f"import sys, services.registry.fold_process; print(' '.join(m for m in {heavy!r} if m in sys.modules))"
    found = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert found.stdout.split() == []
