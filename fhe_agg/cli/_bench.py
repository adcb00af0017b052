"""``fhe-agg bench``: the benchmark suite (:mod:`fhe_agg.bench`), every figure next to its baseline.

:func:`register` adds the command to ``fhe_agg.cli.main``. The suite is imported inside the
command so that ``fhe-agg --help`` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from fhe_agg.bench._harness import Mode

__all__ = ["bench", "register"]


def _sizes(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> tuple[int, ...] | None:
    if value is None:
        return None
    try:
        sizes = tuple(int(float(part)) for part in value.split(",") if part.strip())
    except ValueError:
        raise click.BadParameter(
            "expected comma-separated parameter counts, e.g. 1e5,1e6"
        ) from None
    if not sizes or min(sizes) < 1:
        raise click.BadParameter("expected positive parameter counts")
    return sizes


@click.command(short_help="Measure every cost next to its baseline (SEAL, NVFlare, SecAgg+).")
@click.option(
    "--quick", "mode", flag_value="quick", help="Small sizes, under 3 minutes on 2 cores."
)
@click.option("--smoke", "mode", flag_value="smoke", help="Tiny sizes: checks the harness only.")
@click.option("--full", "mode", flag_value="full", default=True, help="Every workload [default].")
@click.option(
    "--sizes",
    callback=_sizes,
    default=None,
    help="Vector sizes of the per-size figures instead of the mode's, e.g. 1e6 or 1e5,1e6.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="The scaling figures measure 1 -> this many workers (1: skip them).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Results folder [default: benchmarks/results of the checkout, else ./fhe-agg-bench].",
)
def bench(
    mode: Mode, sizes: tuple[int, ...] | None, workers: int, as_json: bool, out: Path | None
) -> None:
    """Benchmark fhe_agg against raw SEAL, NVFlare-style TenSEAL, Flower SecAgg+ and plaintext
    FedAvg.

    Writes <date>[-mode].json, .md and .png; progress goes to stderr.
    """
    from fhe_agg.bench import Plan, default_out_dir, run, write_results

    report = run(Plan.for_mode(mode, sizes=sizes, workers=workers))
    paths = write_results(report, out or default_out_dir())
    if as_json:
        click.echo(json.dumps(report))
        return
    click.echo(paths["markdown"].read_text())
    for kind, path in paths.items():
        click.echo(f"{kind}: {path}", err=True)


def register(group: click.Group) -> None:
    """Add ``bench`` to ``group``."""
    group.add_command(bench)
