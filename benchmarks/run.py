"""Run the fhe_agg benchmark suite from a source checkout: the same as ``fhe-agg bench``.

    python benchmarks/run.py [--quick | --smoke | --full] [--json] [--out DIR] [--sizes 1e6]

The suite lives in the package (``fhe_agg.bench``) so that the installed command works too;
results go to ``benchmarks/results/<date>[-mode].json`` / ``.md`` / ``.png`` (not in git).
"""

from __future__ import annotations

from fhe_agg.cli._bench import bench

if __name__ == "__main__":
    bench.main(prog_name="benchmarks/run.py")
