"""The fuzz registry covers every declared message: a class of the library that parses bytes
(its own ``from_bytes``, ``from_wire`` or ``decode`` classmethod) has an atheris target, so a
new message cannot escape ``make fuzz``."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import sys
from pathlib import Path

import pytest

import fhe_agg

pytest.importorskip("flwr")  # the registry's flower_records target imports fhe_agg.flower

_FUZZ = Path(__file__).resolve().parents[2] / "fuzz"
_PARSERS = ("from_bytes", "from_wire", "decode")
_OPTIONAL = ("fhe_agg.bench", "fhe_agg.torch", "fhe_agg.opacus")  # extras; they parse nothing


def _declared_messages() -> set[str]:
    found = set()
    for info in pkgutil.walk_packages(fhe_agg.__path__, "fhe_agg."):
        if info.name.startswith(_OPTIONAL):
            continue
        module = importlib.import_module(info.name)
        for obj in vars(module).values():
            if not inspect.isclass(obj) or obj.__module__ != module.__name__:
                continue
            if any(isinstance(vars(obj).get(name), classmethod) for name in _PARSERS):
                found.add(f"{obj.__module__}.{obj.__qualname__}")
    return found


@pytest.fixture(scope="module")
def targets():  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(_FUZZ))
    try:
        yield importlib.import_module("targets")
    finally:
        sys.path.remove(str(_FUZZ))


def test_every_declared_message_has_a_fuzz_target(targets) -> None:  # type: ignore[no-untyped-def]
    declared = _declared_messages()
    assert (
        "fhe_agg.protocol._messages.EncryptedUpdate" in declared
    )  # the enumeration finds messages
    missing = sorted(declared - set(targets.MESSAGES))
    assert not missing, f"declared messages without a fuzz target: {missing}"
    stale = sorted(set(targets.MESSAGES) - declared)
    assert not stale, f"fuzz registry names messages that no longer exist: {stale}"
    for message, name in targets.MESSAGES.items():
        target = targets.TARGETS[name]
        assert message.rsplit(".", 1)[1] in target.parses, (message, name)
