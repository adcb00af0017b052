"""fhe_agg.flower end to end: a real Flower federation, and the extra's import guard.

The federation runs ``examples/flower_federation/run.py --mode simulation`` in a subprocess: the
example Flower App submitted with ``flwr run`` to a ``flower-superlink --simulation`` (Flower's
Simulation Engine, Ray backend), every node pinned to an admin-signed roster written first and
keeping its state in its own folder, a dealerless 2-of-3 key ceremony among the three key-holder
nodes, encrypted and signed updates of the five client nodes, and partial decryptions made on the
key-holder nodes. tests/test_flower_deployment.py runs the same App on SuperNode processes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("flwr")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "flower_federation" / "run.py"


def test_import_without_flwr_names_the_extra() -> None:
    hide = "import sys; sys.modules['flwr'] = None; import fhe_agg.flower"
    done = subprocess.run(
        [sys.executable, "-c", hide], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert done.returncode != 0
    assert "ImportError" in done.stderr
    assert "pip install 'fhe-agg[flower]'" in done.stderr


def test_public_names() -> None:
    import fhe_agg.flower as flower

    assert set(flower.__all__) == {
        "Federation",
        "PinnedRoster",
        "RoundReport",
        "SecureAggregation",
        "enable_secure_aggregation",
        "secure_update_mod",
    }
    for name in flower.__all__:
        assert getattr(flower, name) is not None
    with pytest.raises(AttributeError):
        _ = flower.NoSuchName  # type: ignore[attr-defined]


@pytest.mark.slow
def test_two_round_pinned_federation_decrypts_on_holder_nodes() -> None:
    env = dict(os.environ, FLWR_TELEMETRY_ENABLED="0")
    t0 = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "--mode", "simulation", "--rounds", "2", "--json"],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
        env=env,
    )
    elapsed = time.monotonic() - t0
    assert done.returncode == 0, done.stderr[-4000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert (summary["rounds"], summary["clients"], summary["holders"], summary["threshold"]) == (
        2,
        5,
        3,
        2,
    )
    assert summary["pinned"] is True
    assert summary["rounds_decrypted"] == 2
    for row in summary["per_round"]:
        assert row["decrypted"] and row["accepted"] == 5 and row["refused"] == {}
        # the decrypted global model is the plaintext FedAvg of the same clipped updates
        assert row["max_abs_error"] is not None and row["max_abs_error"] < 1e-4
    # the model learned something, as much as the plaintext run of the same clipped FedAvg
    assert summary["encrypted_accuracy"] > 0.75
    assert abs(summary["encrypted_accuracy"] - summary["plaintext_accuracy"]) <= 0.01
    # no key share, key holder, ceremony member or private key is alive in the ServerApp
    assert summary["server_secret_objects"] == 0
    assert summary["mode"] == "simulation" and summary["flwr"].startswith("1.42")
    print(f"flower federation: 2 rounds in {elapsed:.1f} s (setup {summary['setup_s']} s)")
