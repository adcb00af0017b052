"""The machine a run happened on, and its results as JSON, a markdown table and a plot."""

from __future__ import annotations

import datetime as dt
import os
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import fhe_agg
from fhe_agg.bench._harness import Figure
from fhe_agg.ckks._seal import seal_version

__all__ = ["machine_info", "summary", "to_markdown", "write_plot"]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def machine_info() -> dict[str, Any]:
    """Cores, CPU model, load, and the versions that decide the numbers."""
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "load_average_start": list(os.getloadavg()),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": _version("numpy"),
        "tenseal": _version("tenseal"),
        "seal": seal_version(),
        "cryptography": _version("cryptography"),
        "torch": _version("torch"),
        "fhe_agg": fhe_agg.__version__,
    }


def summary(figures: list[Figure]) -> dict[str, Any]:
    """How many entries have a target, how many meet it, and which miss."""
    with_target = [f for f in figures if f["target"] is not None]
    missed = [
        f"{f['label']} [{f['workload']}] vs {f['baseline_name']}"
        for f in with_target
        if f["met"] is False
    ]
    return {
        "figures": len(figures),
        "with_target": len(with_target),
        "met": sum(1 for f in with_target if f["met"] is True),
        "missed": missed,
    }


def _num(x: float | None) -> str:
    if x is None:
        return "–"
    if abs(x) >= 1e5:
        return f"{x / 1e6:.3g}M" if abs(x) >= 1e6 else f"{x / 1e3:.3g}k"
    return f"{x:.3g}"


def _target(f: Figure) -> str:
    t = f["target"]
    if t is None:
        return ""
    what = "ratio" if t["on"] == "ratio" else "ours"
    verdict = "met" if f["met"] else ("**missed**" if f["met"] is False else "n/a")
    return f"{what} {t['op']} {t['value']:.3g}: {verdict}"


def to_markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    s = report["summary"]
    lines = [
        f"# fhe_agg benchmarks — {m['date']} ({report['mode']} mode)",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores ({m['cores_usable']} usable), load average at "
        f"start {m['load_average_start'][0]:.2f}, at end {report['load_average_end'][0]:.2f}. "
        f"Python {m['python']}, numpy {m['numpy']}, TenSEAL {m['tenseal']} (SEAL {m['seal']}), "
        f"cryptography {m['cryptography']}, torch {m['torch']}.",
        f"Medians of {report['plan']['repeats']} repetitions; run took {report['duration_s']:.0f} s. "
        f"Targets met: {s['met']} of {s['with_target']}.",
        "",
        "| figure | workload | unit | fhe_agg | baseline | baseline value | ratio | target |",
        "|---|---|---|---:|---|---:|---:|---|",
    ]
    for f in report["figures"]:
        ratio = "–" if f["ratio"] is None else f"{f['ratio']:.3g}x"
        lines.append(
            f"| {f['label']} | {f['workload']} | {f['unit']} | {_num(f['ours'])} | "
            f"{_baseline_name(f)} | {_num(f['baseline'])} | {ratio} | {_target(f)} |"
        )
    if s["missed"]:
        lines += ["", "Missed targets:", ""] + [f"- {x}" for x in s["missed"]]
    return "\n".join(lines) + "\n"


def _baseline_name(f: Figure) -> str:
    """The baseline's name, with the NVFlare figure of a peers row beside it."""
    if "nvflare" in f:
        return f"{f['baseline_name']} (NVFlare-style TenSEAL: {_num(f['nvflare'])})"
    return str(f["baseline_name"])


def _short(name: str) -> str:
    """A legend entry for an encryption baseline."""
    if name.startswith("TenSEAL"):
        return "NVFlare-style TenSEAL CKKSVector"
    suffix = " (2 reals/slot)" if "2 reals" in name else " (1 real/slot)"
    return name.split(",")[0] + ("" if "save" in name else suffix)


def write_plot(figures: list[Figure], path: Path) -> bool:
    """Cost against model size (log-log): encryption time per update, partial decryption per
    holder, upload bytes. False (and no file) without matplotlib or without sized workloads."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    series: dict[tuple[int, str], dict[int, float]] = {}

    def add(panel: int, name: str, params: int, value: float) -> None:
        series.setdefault((panel, name), {})[params] = value

    for f in figures:
        params = f.get("params")
        if not params:
            continue
        if f["figure"] == "client_encrypt" and "dp preset" in f["label"]:
            if "before the proof" in f["label"]:  # its own series; its baselines are drawn once
                add(0, "fhe_agg client before the proof (dp preset)", params, params / f["ours"])
                continue
            add(0, "fhe_agg client (dp preset)", params, params / f["ours"])
            add(0, _short(f["baseline_name"]), params, params / f["baseline"])
        elif f["figure"] == "partial_decrypt" and "spot" in f["label"]:
            add(
                0,
                f"partial decryption, {f['workload'].split(', ')[-1]}",
                params,
                f["ours"] * params / 1e6,
            )
        elif f["figure"] == "upload_bytes":
            add(1, f"fhe_agg {f['label'].split('(')[1].rstrip(')')}", params, f["ours"] * params)
            add(1, f["baseline_name"], params, f["baseline"] * params)
    if not series:
        return False
    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    for (panel, name), points in sorted(series.items()):
        xs = sorted(points)
        axes[panel].plot(xs, [points[x] for x in xs], marker="o", label=name)
    axes[0].set_title("time per update / per holder (s)")
    axes[1].set_title("bytes per update on the wire")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("model parameters")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True
