"""Every source path and module the documentation names exists: ``fhe_agg/...py`` paths in the
README, ``docs/*.md`` and the sources, and dotted names ``fhe_agg.<package>._<module>.<name>`` in
docstrings and comments (a package moved by role leaves no pointer to a module that is gone)."""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "fhe_agg"
_PATH = re.compile(r"fhe_agg/[A-Za-z0-9_/]+\.py")
_DOTTED = re.compile(r"(?<![\w/.])fhe_agg(?:\.[A-Za-z_]\w*)+")


def _documents() -> list[Path]:
    return [
        ROOT / "README.md",
        *sorted((ROOT / "docs").glob("*.md")),
        *sorted(PACKAGE.rglob("*.py")),
        *sorted((ROOT / "examples").rglob("*.py")),
        *sorted((ROOT / "benchmarks").rglob("*.py")),
        *sorted((ROOT / "fuzz").rglob("*.py")),
    ]


@cache
def _top_level_names(module: Path) -> frozenset[str]:
    """Names a module defines or imports at its top level (static: nothing is imported)."""
    names: set[str] = set()
    for node in ast.parse(module.read_text()).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.If | ast.Try):  # TYPE_CHECKING imports, optional imports
            names.update(_top_level_names_of(node))
    return frozenset(names)


def _top_level_names_of(node: ast.AST) -> set[str]:
    return {
        (a.asname or a.name).split(".")[0]
        for n in ast.walk(node)
        if isinstance(n, ast.Import | ast.ImportFrom)
        for a in n.names
    }


def _resolves(dotted: str) -> bool:
    """Does ``fhe_agg.a.b.c`` name a package, a module, or a top-level name of a module?"""
    path = PACKAGE
    parts = dotted.split(".")[1:]
    for i, part in enumerate(parts):
        if (path / part).is_dir():
            path = path / part
        elif (path / f"{part}.py").is_file():
            module = path / f"{part}.py"
            rest = parts[i + 1 :]
            return not rest or rest[0] in _top_level_names(module)
        else:  # a name of the package's __init__
            return part in _top_level_names(path / "__init__.py")
    return True


def test_every_named_source_path_exists() -> None:
    missing = {
        f"{doc.relative_to(ROOT)}: {m.group()}"
        for doc in _documents()
        for m in _PATH.finditer(doc.read_text())
        if not (ROOT / m.group()).is_file()
    }
    assert not missing, sorted(missing)


def test_every_named_module_exists() -> None:
    missing = {
        f"{doc.relative_to(ROOT)}: {m.group()}"
        for doc in _documents()
        for m in _DOTTED.finditer(doc.read_text())
        if not _resolves(m.group())
    }
    assert not missing, sorted(missing)


def test_the_check_sees_a_module_that_is_gone() -> None:
    assert _resolves("fhe_agg.ceremony._ceremony.CeremonyMember")
    assert _resolves("fhe_agg.holder")
    assert not _resolves("fhe_agg._simulate")
    assert not _resolves("fhe_agg.holder._keyholder.NoSuchThing")
    assert not (ROOT / "fhe_agg/_checks.py").is_file()
    assert [m.group() for m in _PATH.finditer("see `fhe_agg/_checks.py`.")] == [
        "fhe_agg/_checks.py"
    ]
