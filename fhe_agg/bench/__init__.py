"""The fhe_agg benchmark suite: every figure next to its baseline, measured in the same process.

    fhe-agg bench [--quick | --smoke] [--json] [--out DIR] [--sizes 100000,1000000]
    python benchmarks/run.py ...            (the same command, from a source checkout)

Families (one module each): client encode+encrypt with the proofs and before them (then signed,
:mod:`._before_proof`), sign+hash and bytes on the wire (:mod:`._client_costs`); well-formedness
proof time and bytes next to the encryption they cover (:mod:`._proof_costs`); partial decryption,
combine, key-holder traffic and error (:mod:`._decryption_costs`); the compiled kernels against the
pure-numpy path on the same updates, not in ``--smoke`` (:mod:`._kernel_costs`); aggregator ingest
and peak RSS against the number of clients in fresh processes (:mod:`._aggregator_costs`); whole
rounds with and without dropouts, next to Flower SecAgg+ and NVFlare-style TenSEAL on the same
vectors (:mod:`._rounds`, :mod:`._peers`; the client's cost with and before the proof); the
per-message overhead of the node handlers (load, unseal, save) against their cryptographic work,
and with ``--full`` a two-round deployment run next to the same in-process (:mod:`._node_costs`,
:mod:`._node_figures`); the speed-up from one process to ``--workers`` (:mod:`._scaling`). It lives
inside the package so that ``fhe-agg bench`` works from any install, editable or not, and is
type-checked with the library.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from fhe_agg.bench._harness import Figure, Plan, size_label

__all__ = ["Plan", "default_out_dir", "run", "write_results"]


def default_out_dir() -> Path:
    """``benchmarks/results`` of the source checkout the package runs from, else
    ``./fhe-agg-bench`` in the working directory."""
    checkout = Path(__file__).resolve().parents[2] / "benchmarks"
    return checkout / "results" if checkout.is_dir() else Path.cwd() / "fhe-agg-bench"


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run(plan: Plan, *, log: Callable[[str], None] = _log) -> dict[str, Any]:
    """Run every family of ``plan``; the report as one JSON-ready dict."""
    from fhe_agg.bench._report import machine_info, summary

    start = time.perf_counter()
    machine = machine_info()
    figures: list[Figure] = []

    def step(name: str, fn: Callable[[], list[Figure]]) -> None:
        t0 = time.perf_counter()
        log(f"[{time.perf_counter() - start:6.0f} s] {name} ...")
        figures.extend(fn())
        log(f"[{time.perf_counter() - start:6.0f} s] {name}: {time.perf_counter() - t0:.0f} s")

    _measure(plan, step, log)
    return {
        "schema": 1,
        "mode": plan.mode,
        "plan": dataclasses.asdict(plan),
        "clock": "CPU time of the measuring process (of the worker thread in the aggregator "
        "processes): the cost on one core, robust to other load on a shared machine",
        "machine": machine,
        "load_average_end": list(os.getloadavg()),
        "duration_s": time.perf_counter() - start,
        "summary": summary(figures),
        "figures": figures,
    }


Step = Callable[[str, Callable[[], list[Figure]]], None]


def _workloads(plan: Plan, log: Callable[[str], None]) -> list[tuple[str, Any]]:
    """The vectors of ``plan.sizes`` (seeded), and the small ResNet if asked and torch is there."""
    from fhe_agg.bench._model import resnet_state_dict

    workloads: list[tuple[str, Any]] = [
        (size_label(n), np.random.default_rng(n).uniform(-1.0, 1.0, n)) for n in plan.sizes
    ]
    if plan.resnet:
        state = resnet_state_dict()
        if state is None:
            log("torch is not installed: the ResNet workload is skipped")
        else:
            workloads.append(("small ResNet state_dict", state))
    return workloads


def _measure(plan: Plan, step: Step, log: Callable[[str], None]) -> None:
    """Every family of ``plan``, each measured through ``step`` (which times and logs it)."""
    from fhe_agg.bench._aggregator_costs import ingest_figures
    from fhe_agg.bench._baselines import NvflareCkks
    from fhe_agg.bench._client_costs import client_figures
    from fhe_agg.bench._decryption_costs import decryption_figures
    from fhe_agg.bench._kernel_costs import kernel_figures
    from fhe_agg.bench._node_costs import PARAMS
    from fhe_agg.bench._node_figures import node_figures
    from fhe_agg.bench._proof_costs import proof_figures
    from fhe_agg.bench._rounds import round_figures
    from fhe_agg.bench._scaling import scaling_figures
    from fhe_agg.ckks._packing import Layout

    nvflare = NvflareCkks()
    for label, source in _workloads(plan, log):
        model = not isinstance(source, np.ndarray)
        if model:
            from fhe_agg.torch import flatten_state_dict

            vector, layout = flatten_state_dict(source)
            label = f"{label} ({vector.size:,} params)"
        else:
            vector, layout = source, Layout.for_vector(source.size)
        step(
            f"client costs, {label}",
            partial(client_figures, label, source, vector, layout, plan.repeats, nvflare),
        )
        if not model:
            step(f"proof costs, {label}", partial(proof_figures, label, vector, plan.repeats))
        if plan.resnet_holder_costs or not model:
            step(
                f"key-holder costs, {label}",
                partial(decryption_figures, label, vector, plan.repeats, nvflare),
            )
    if plan.mode != "smoke":
        step("compiled kernels vs pure numpy", lambda: kernel_figures(plan.repeats))
    step(
        f"aggregator ingest and RSS, {size_label(plan.ingest_params)}, clients {plan.ingest_clients}",
        lambda: ingest_figures(plan.ingest_params, plan.ingest_clients),
    )
    step(
        f"rounds and peers (SecAgg+, NVFlare), {size_label(plan.round_params)} x "
        f"{plan.round_clients} clients",
        lambda: round_figures(plan),
    )
    step(
        f"node handlers: per-message overhead, {size_label(PARAMS[plan.mode])}",
        lambda: node_figures(plan),
    )
    if plan.workers > 1:
        step(
            f"scaling 1 -> {plan.workers} processes, {size_label(plan.scaling_params)}",
            lambda: scaling_figures(
                plan.scaling_params, plan.scaling_clients, plan.workers, plan.repeats
            ),
        )


def write_results(report: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """Write ``<date>[-mode].json``, ``.md`` and ``.png`` (if matplotlib is there) to ``out_dir``."""
    from fhe_agg.bench._report import to_markdown, write_plot

    out_dir.mkdir(parents=True, exist_ok=True)
    stem = report["machine"]["date"][:10] + (
        "" if report["mode"] == "full" else f"-{report['mode']}"
    )
    paths = {"json": out_dir / f"{stem}.json", "markdown": out_dir / f"{stem}.md"}
    paths["json"].write_text(json.dumps(report, indent=2) + "\n")
    paths["markdown"].write_text(to_markdown(report))
    if write_plot(report["figures"], out_dir / f"{stem}.png"):
        paths["plot"] = out_dir / f"{stem}.png"
    return paths
