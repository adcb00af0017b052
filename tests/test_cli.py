from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from fhe_agg.cli import main

REQUIRED = {
    "clients",
    "holders",
    "threshold",
    "params",
    "preset",
    "max_abs_error",
    "bits_per_param_upload",
    "client_encrypt_s",
    "client_sign_s",
    "aggregate_s",
    "decrypt_s",
    "peak_rss_mb",
}


def _simulate(*args: str) -> dict[str, object]:
    result = CliRunner().invoke(main, ["simulate", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_simulate_json_is_one_clean_object() -> None:
    out = _simulate("--clients", "4", "--params", "9000", "--rounds", "2", "--seed", "3")
    assert set(out) >= REQUIRED
    assert out["clients"] == 4 and out["round"] == 2
    assert out["max_abs_error"] <= 1e-6


@pytest.mark.slow
def test_acceptance_eight_clients_one_million_parameters() -> None:
    out = _simulate(
        "--clients", "8", "--holders", "1", "--threshold", "1", "--params", "1000000", "--no-dp"
    )
    assert out["max_abs_error"] <= 1e-6
    assert out["bits_per_param_upload"] <= 136


def test_errors_are_one_line_with_nonzero_exit() -> None:
    result = CliRunner().invoke(main, ["simulate", "--clients", "0", "--json"])
    assert result.exit_code != 0
    assert result.stderr.strip().startswith("error:") and "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_help_lists_commands_and_version_prints_backends() -> None:
    help_text = CliRunner().invoke(main, ["--help"]).output
    assert "simulate" in help_text and "version" in help_text
    version = CliRunner().invoke(main, ["version"]).output
    assert "tenseal" in version and "cryptography" in version
