"""Run one fuzz target under atheris (libFuzzer): ``python fuzz/fuzz_one.py NAME [libFuzzer args]``.

Only ``fhe_agg`` (and PyYAML, for the inventory) is instrumented for coverage. msgpack and JSON targets get a structure-aware
mutator (``mutators.py``); JSON and text targets also get ``json.dict``. An exception outside
the target's documented errors, a failed invariant, a hang (``-timeout``) or an RSS blow-up
(``-rss_limit_mb``) stops the run with a non-zero exit and writes the input to
``-artifact_prefix``.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import atheris
import mutators

with atheris.instrument_imports(include=["fhe_agg", "yaml"]):
    import targets
    import yaml  # noqa: F401 - imported lazily by load_inventory; instrumented here

HERE = Path(__file__).resolve().parent
_MUTATORS = {"msgpack": mutators.MSGPACK, "json": mutators.JSON, "json-lines": mutators.JSON_LINES}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in targets.TARGETS:
        sys.exit(f"usage: fuzz_one.py {{{','.join(targets.TARGETS)}}} [libFuzzer args]")
    target = targets.TARGETS[sys.argv[1]]
    run, errors = target.build(), target.errors

    def test_one_input(data: bytes) -> None:
        with contextlib.suppress(*errors):
            run(data)

    argv = [sys.argv[0], *sys.argv[2:]]
    if target.format in ("json", "json-lines", "text"):
        argv.insert(1, f"-dict={HERE / 'json.dict'}")
    mutator = _MUTATORS.get(target.format)
    if mutator is None:
        atheris.Setup(argv, test_one_input)
    else:
        atheris.Setup(argv, test_one_input, custom_mutator=mutator)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
