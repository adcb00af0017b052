"""Output of the hospital example: rich tables per variant and the accuracy plot (Agg backend)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

# name: line style; plaintext is drawn thin on top of the thick encrypted curve it matches
CURVES: dict[str, dict[str, Any]] = {
    "encrypted": {"fmt": "-o", "lw": 5, "ms": 11, "alpha": 0.45, "mfc": "none", "mew": 2},
    "plaintext": {"fmt": "--s", "lw": 1.5, "ms": 4},
    "encrypted+DP": {"fmt": "-^", "lw": 1.5, "ms": 6},
    "encrypted+record-DP": {"fmt": "-v", "lw": 1.5, "ms": 6},
}
COLUMNS = (
    ("round", "right"),
    ("loss", "right"),
    ("acc", "right"),
    ("AUC", "right"),
    ("ε", "right"),
    ("kB/client", "right"),
    ("train", "right"),
    ("enc+sign", "right"),
    ("aggregate", "right"),
    ("decrypt", "right"),
    ("decrypted by", "left"),
)


def plot(result: dict[str, Any], path: Path) -> None:
    """Test accuracy per round, one labelled curve per variant; round 0 is the shared start."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, style in CURVES.items():
        run = result["variants"].get(name)
        if run is None:
            continue
        label = name
        if name == "encrypted+DP":
            label += f" (ε = {result['epsilon']:.1f}, δ = {result['delta']:g})"
        if name == "encrypted+record-DP":
            label += (
                f" (patient ε = {result['record_epsilon']:.1f}, δ = {result['record_delta']:g})"
            )
        rounds = range(result["rounds"] + 1)
        options = {k: v for k, v in style.items() if k != "fmt"}
        accuracy = [run["initial"]["accuracy"], *run["accuracy"]]
        ax.plot(rounds, accuracy, style["fmt"], label=label, **options)
    ax.set_xlabel("round")
    ax.set_ylabel("test accuracy")
    ax.set_title(
        f"{result['clients']} hospitals, {result['threshold']}-of-{result['holders']} threshold "
        "CKKS: breast-cancer logistic regression",
        fontsize=10,
    )
    ax.set_xticks(range(result["rounds"] + 1))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def print_tables(result: dict[str, Any]) -> None:
    """One table per variant (times in seconds, summed over the hospitals), then a summary."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = Console() if sys.stdout.isatty() else Console(width=120)
    sites = Table(title="hospitals", box=box.SIMPLE_HEAD)
    for column in ("", "hospital", "patients", "malignant", "weight"):
        sites.add_column(column, justify="left" if column == "hospital" else "right")
    for i, h in enumerate(result["hospitals"], start=1):
        malignant = f"{h['malignant_fraction']:.0%}"
        sites.add_row(str(i), h["name"], str(h["samples"]), malignant, f"{h['weight']:g}")
    sites.caption = f"test set: {result['test_samples']} patients"
    console.print(sites)
    index = {h["name"]: str(i) for i, h in enumerate(result["hospitals"], start=1)}
    for name, run in result["variants"].items():
        title = name
        if "ceremony_s" in run:
            title += f" (dealerless key ceremony {run['ceremony_s']:.2f} s)"
        table = Table(title=title, box=box.SIMPLE_HEAD, caption="times in seconds")
        record = run.get("record_epsilon")  # patient level, next to the client-level ε
        for column, justify in COLUMNS[:5] + (("ε patient", "right"),) * bool(record) + COLUMNS[5:]:
            table.add_column(column, justify=justify)  # type: ignore[arg-type]
        for i in range(result["rounds"]):
            epsilon = run["epsilon"][i]
            table.add_row(
                str(i + 1),
                f"{run['loss'][i]:.3f}",
                f"{run['accuracy'][i]:.3f}",
                f"{run['auc'][i]:.3f}",
                "—" if epsilon is None else f"{epsilon:.2f}",
                *([f"{record[i]:.2f}"] if record else []),
                f"{max(run['bytes_per_client'][i]) / 1000:.1f}",
                f"{run['train_s'][i]:.3f}",
                f"{run['encrypt_sign_s'][i]:.3f}",
                f"{run['aggregate_s'][i]:.3f}",
                f"{run['decrypt_s'][i]:.3f}",
                " ".join(index[h] for h in run["decrypting_set"][i]) or "—",
            )
        console.print(table)
    console.print(
        f"final accuracy: plaintext {result['plaintext_accuracy']:.4f}, "
        f"encrypted {result['encrypted_accuracy']:.4f} (largest parameter difference "
        f"{result['max_abs_model_diff_encrypted_vs_plaintext']:.1e})"
    )
    if result["epsilon"] is not None:
        console.print(
            f"encrypted+DP {result['dp_accuracy']:.4f} at ε = {result['epsilon']:.2f}, "
            f"δ = {result['delta']:g} (client level; z = {result['noise_multiplier_achieved']:.2f}, "
            f"noise std {result['dp_noise_std_on_mean']:.3f} per coordinate of the mean update)"
        )
    if result["record_epsilon"] is not None:
        console.print(
            f"encrypted+record-DP {result['record_dp_accuracy']:.4f} at ε = "
            f"{result['record_epsilon']:.2f}, δ = {result['record_delta']:g} (patient level, "
            f"add/remove one patient; σ = {result['record_noise_multiplier']:.2f} in the sum, "
            f"{result['record_site_noise_multiplier']:.2f} per hospital for "
            f"{result['record_honest_sites']} honest; ε = {result['record_own_noise_epsilon']:.2f} "
            "if only the patient's hospital is honest; no client-level guarantee)"
        )
    console.print(f"plot: {result['plot']}; total {result['elapsed_s']:.1f} s")
