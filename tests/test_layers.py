"""The layers that hold in today's module layout, checked on every ``make test``.

Imports are read from the source (every ``import``, including those inside functions, which
run later but still bind the layers) and followed transitively inside ``fhe_agg``:

* only the CKKS layer (the SEAL adapter ``_seal`` and ``hazmat``) and the benchmarks' raw
  TenSEAL baselines import SEAL/TenSEAL; everything else goes through the adapter;
* ``identity`` (keys, rosters, sealing, audit) never imports the round;
* ``hazmat`` imports nothing of the round.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import fhe_agg

_ROOT = Path(fhe_agg.__file__).parent
_PACKAGE = "fhe_agg"

# The CKKS layer, allowed to touch SEAL/TenSEAL directly.
_CKKS = ("fhe_agg.ckks", "fhe_agg.hazmat")
# The benchmarks measure raw TenSEAL as a baseline next to fhe_agg: they must import it.
_SEAL_BASELINES = ("fhe_agg.bench",)
_SEAL = ("tenseal", "seal")
# The round: the roles' packages, the round's messages and checks, and the transports.
_ROUND = (
    "fhe_agg.client",
    "fhe_agg.server",
    "fhe_agg.holder",
    "fhe_agg.ceremony",
    "fhe_agg.sim",
    "fhe_agg.cli",
    "fhe_agg.flower",
    "fhe_agg.protocol._checks",
    "fhe_agg.protocol._context",
    "fhe_agg.protocol._evidence",
    "fhe_agg.protocol._messages",
    "fhe_agg.protocol._round_messages",
)
# The package root keeps the facades and a few shared helpers; every role lives in a package.
MAX_ROOT_MODULES = 12


def _modules() -> dict[str, Path]:
    out = {}
    for path in _ROOT.rglob("*.py"):
        parts = path.relative_to(_ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join((_PACKAGE, *parts))] = path
    return out


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@cache
def _imports(module: str) -> frozenset[str]:
    """Every module ``module`` imports directly (resolved to modules where they exist)."""
    modules = _modules()
    tree = ast.parse(modules[module].read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(
                f"{node.module}.{a.name}"
                for a in node.names
                if f"{node.module}.{a.name}" in modules
            )
    return frozenset(found)


def _reach(module: str) -> dict[str, str]:
    """Every module reachable from ``module`` by imports, with the module that imports it."""
    modules, seen, todo = _modules(), {module: ""}, [module]
    while todo:
        current = todo.pop()
        for name in _imports(current):
            target = _owner(name, modules)
            if target not in seen:
                seen[target] = current
                if target in modules:
                    todo.append(target)
    return seen


def _owner(name: str, modules: dict[str, Path]) -> str:
    """The module an imported name lives in: ``name`` itself, or its longest prefix that is a
    module of the package. (The package ``__init__`` that Python also runs re-exports the public
    names; like import-linter, the rules follow what a module names, not that side effect.)"""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        prefix = ".".join(parts[:end])
        if prefix in modules:
            return prefix
    return name


def _chain(reach: dict[str, str], target: str) -> str:
    steps = [target]
    while reach[steps[-1]]:
        steps.append(reach[steps[-1]])
    return " <- ".join(steps)


def _violations(sources: tuple[str, ...], forbidden: tuple[str, ...]) -> list[str]:
    out = []
    for module in sorted(m for m in _modules() if _within(m, sources)):
        reach = _reach(module)
        out += [_chain(reach, t) for t in reach if t != module and _within(t, forbidden)]
    return out


def test_only_the_ckks_layer_imports_seal() -> None:
    above = tuple(m for m in _modules() if not _within(m, _CKKS + _SEAL_BASELINES))
    direct = [f"{m} imports {name}" for m in above for name in _imports(m) if _within(name, _SEAL)]
    assert not direct, direct
    assert any(_within(n, _SEAL) for n in _imports("fhe_agg.ckks._seal"))  # the rule sees imports


def test_identity_never_imports_the_round() -> None:
    assert not _violations(("fhe_agg.identity",), _ROUND)


def test_hazmat_imports_nothing_of_the_round() -> None:
    assert not _violations(("fhe_agg.hazmat",), _ROUND)


def test_the_rules_catch_a_violation() -> None:
    # The round imports identity (for rosters and audit logs): the reverse direction is seen.
    assert _violations(("fhe_agg.server._aggregator",), ("fhe_agg.identity",))
    assert "fhe_agg.server._store" in _reach("fhe_agg.server._aggregator")
    modules = _modules()
    assert all(m in modules for m in _ROUND + _CKKS + _SEAL_BASELINES)  # no stale names


def test_the_package_root_holds_few_modules() -> None:
    root = sorted(p.name for p in _ROOT.iterdir() if p.suffix == ".py" or p.name == "py.typed")
    assert len(root) <= MAX_ROOT_MODULES, root
    packages = {p.name for p in _ROOT.iterdir() if (p / "__init__.py").is_file()}
    assert {"client", "server", "holder", "ceremony", "protocol", "ckks", "cli"} <= packages
