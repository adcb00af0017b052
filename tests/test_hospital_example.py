"""The hospital example end to end, as a user runs it: a subprocess printing one JSON object."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "hospital_federation.py"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

pytestmark = pytest.mark.slow


def run_example(*args: str, cwd: Path) -> tuple[dict[str, Any], str]:
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "--json", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, f"expected one JSON line on stdout, got {len(lines)}"
    return json.loads(lines[0]), done.stderr


def test_two_rounds_encrypted_matches_plaintext_and_dp_is_accounted(tmp_path: Path) -> None:
    plot = tmp_path / "curves" / "accuracy.png"
    result, stderr = run_example("--rounds", "2", "--plot", str(plot), cwd=tmp_path)

    for key in (
        "encrypted_accuracy",
        "plaintext_accuracy",
        "dp_accuracy",
        "epsilon",
        "delta",
        "rounds",
        "clients",
        "holders",
        "threshold",
        "bytes_per_client_per_round",
        "variants",
        "plot",
    ):
        assert key in result, key
    assert (result["rounds"], result["clients"], result["holders"], result["threshold"]) == (
        2,
        5,
        5,
        3,
    )
    assert abs(result["encrypted_accuracy"] - result["plaintext_accuracy"]) <= 0.02
    assert result["max_abs_model_diff_encrypted_vs_plaintext"] < 1e-6
    assert result["plaintext_accuracy"] > 0.85  # the federation learns; chance is ~0.63
    assert result["delta"] == 1e-5
    for site in result["hospitals"]:  # sample counts capped at the default 60 patients
        assert site["weight"] == min(site["samples"], 60)
    assert len({site["samples"] for site in result["hospitals"]}) == 5  # non-IID sizes
    assert math.isfinite(result["epsilon"]) and result["epsilon"] > 0

    variants = result["variants"]
    assert set(variants) == {"plaintext", "encrypted", "encrypted+DP"}
    for name, run in variants.items():
        for key in ("loss", "accuracy", "auc", "epsilon", "bytes_per_client", "decrypt_s"):
            assert len(run[key]) == 2, (name, key)
        assert all(len(sizes) == 5 for sizes in run["bytes_per_client"])
    dp_eps = variants["encrypted+DP"]["epsilon"]
    assert 0 < dp_eps[0] < dp_eps[1] == result["epsilon"]  # composition over rounds
    assert variants["encrypted"]["epsilon"] == [None, None]
    for name in ("encrypted", "encrypted+DP"):
        assert all(len(holders) == 3 for holders in variants[name]["decrypting_set"])
    sizes = result["bytes_per_client_per_round"]
    assert sizes["plaintext"] == 31 * 8  # 31 float64 parameters in the clear
    assert sizes["encrypted"] > sizes["encrypted+DP"] > sizes["plaintext"]

    assert Path(result["plot"]) == plot
    assert plot.read_bytes()[:8] == PNG_MAGIC
    assert "round" not in stderr  # no progress output in JSON mode


def test_no_dp_reports_null_epsilon_and_default_plot_in_out_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # In-process (the libraries are already imported): a subprocess would mostly pay imports.
    monkeypatch.syspath_prepend(str(EXAMPLE.parent))
    spec = importlib.util.spec_from_file_location("hospital_federation", EXAMPLE)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, example)  # dataclasses look their module up
    spec.loader.exec_module(example)
    threads = torch.get_num_threads()
    try:
        example.main(["--rounds", "1", "--no-dp", "--json", "--out", str(tmp_path)])
    finally:
        torch.set_num_threads(threads)
    result = json.loads(capsys.readouterr().out)
    assert result["epsilon"] is None and result["dp_accuracy"] is None
    assert result["noise_multiplier"] is None and result["delta"] is None
    assert set(result["variants"]) == {"plaintext", "encrypted"}
    assert abs(result["encrypted_accuracy"] - result["plaintext_accuracy"]) <= 0.02
    plot = tmp_path / "hospital_federation.png"
    assert Path(result["plot"]) == plot
    assert plot.read_bytes()[:8] == PNG_MAGIC


def test_record_dp_variant_reports_patient_level_epsilon(tmp_path: Path) -> None:
    pytest.importorskip("opacus")
    plot = tmp_path / "record.png"
    result, _ = run_example(
        "--rounds",
        "3",
        "--no-dp",
        "--record-dp",
        "--target-epsilon",
        "3",
        "--plot",
        str(plot),
        cwd=tmp_path,
    )
    assert set(result["variants"]) == {"plaintext", "encrypted", "encrypted+record-DP"}
    run = result["variants"]["encrypted+record-DP"]
    eps = run["record_epsilon"]
    assert len(eps) == 3 and 0 < eps[0] < eps[1] < eps[2] == result["record_epsilon"] <= 3.0
    assert result["record_epsilon"] > 2.9  # calibrated to the target, not far below it
    assert run["epsilon"] == [None] * 3  # no client-level guarantee from the sites' noise
    assert result["epsilon"] is None  # and the key holders' noise was not used
    assert result["record_delta"] == 1e-5
    assert result["record_honest_sites"] == 3
    assert result["record_site_noise_multiplier"] == pytest.approx(
        result["record_noise_multiplier"] / math.sqrt(3), rel=1e-3
    )
    assert result["record_own_noise_epsilon"] > result["record_epsilon"]
    assert result["record_dp_accuracy"] == run["accuracy"][-1] > 0.85
    assert all(len(holders) == 3 for holders in run["decrypting_set"])
    assert plot.read_bytes()[:8] == PNG_MAGIC
