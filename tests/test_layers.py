"""The package's layers (pyproject.toml's import-linter contract) hold, and no import circle exists."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest brings tomli there
    import tomli as tomllib

from lrsc import variables
from lrsc.records import RECORDS

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "lrsc"


def _modules() -> set[str]:
    """Each top-level module or subpackage of lrsc, as ``lrsc.<name>``."""
    return {f"lrsc.{p.stem}" for p in PACKAGE.glob("*.py") if p.stem != "__init__"} | \
        {f"lrsc.{p.parent.name}" for p in PACKAGE.glob("*/__init__.py")}


def _imports() -> dict[str, set[str]]:
    """Which top-level lrsc modules each one imports, counting imports inside functions and
    under ``TYPE_CHECKING``: what a reader of the source sees."""
    modules = _modules()
    edges: dict[str, set[str]] = {m: set() for m in modules}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(ROOT).with_suffix("").parts
        owner = ".".join(rel[:2])
        package = rel[:-1] if path.name != "__init__.py" else rel
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = ".".join(package[:len(package) - node.level + 1]) if node.level else ""
                target = ".".join(p for p in (base, node.module or "") if p)
                names = [target] + [f"{target}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                top = ".".join(name.split(".")[:2])
                if top in modules and top != owner:
                    edges[owner].add(top)
    return edges


def _contract_layers() -> list[str]:
    contract = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"][0]
    return contract["layers"]


def test_the_layers_contract_holds():
    linter = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(linter)], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 kept, 0 broken" in done.stdout


def test_every_module_has_a_layer():
    listed = {m.strip() for layer in _contract_layers() for m in layer.replace("|", ":").split(":")}
    assert _modules() - listed == set(), "give each new module a layer in pyproject.toml's import-linter contract"
    assert listed - _modules() == set()


def test_no_import_circle():
    edges = _imports()
    assert edges["lrsc.sweep"] >= {"lrsc.plan", "lrsc.drive"}  # the scan sees real imports

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(n == goal or (n not in seen and reaches(n, goal, seen | {n})) for n in edges[start])

    circles = sorted(m for m in edges if reaches(m, m, set()))
    assert circles == [], f"modules on an import circle: {circles}"


def test_every_training_record_is_a_declared_variable():
    assert set(RECORDS) <= {v.name for v in variables.declared()}
