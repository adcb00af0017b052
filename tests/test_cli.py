from __future__ import annotations

import json
import subprocess
import sys

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


def test_simulate_on_two_worker_processes() -> None:
    """``--workers 2``: clients, aggregator and holders on a pool, the same accuracy."""
    out = _simulate("--clients", "3", "--params", "9000", "--seed", "3", "--workers", "2")
    assert out["clients"] == 3 and out["max_abs_error"] <= 1e-6
    refused = CliRunner().invoke(main, ["simulate", "--workers", "0", "--json"])
    assert refused.exit_code == 2 and "--workers" in refused.output


@pytest.mark.slow
def test_acceptance_eight_clients_one_million_parameters() -> None:
    out = _simulate(
        *("--clients", "8", "--holders", "1", "--threshold", "1", "--params", "1000000"),
        *("--no-dp", "--unsafe-exact"),
    )
    assert out["max_abs_error"] <= 1e-6
    # compact: 60 + 40-bit data primes (200.0) + one 8.65 MB proof per 128 chunks (69.2)
    assert out["bits_per_param_upload"] <= 275


@pytest.mark.slow
def test_acceptance_three_of_five_holders_flood_and_stay_precise() -> None:
    out = _simulate(
        "--clients", "8", "--holders", "5", "--threshold", "3", "--params", "1000000", "--no-dp"
    )
    assert out["preset"] == "precise"
    assert out["max_abs_error"] <= 1e-6
    assert out["flooding_security_bits"] >= 40
    # precise: two 60-bit data primes (240.0) + one 8.65 MB proof per 128 chunks (69.2)
    assert out["bits_per_param_upload"] <= 315
    assert out["decryption_budget_left"] == 2**16 - 123  # 1M params = 123 ciphertexts
    assert out["partial_decrypt_s"] > 0 and out["combine_s"] > 0


@pytest.mark.slow
def test_acceptance_distributed_dp_three_rounds() -> None:
    out = _simulate(
        *("--clients", "8", "--holders", "5", "--threshold", "3", "--params", "100000"),
        *("--dp", "--clip", "1", "--noise-multiplier", "1", "--rounds", "3"),
    )
    assert out["preset"] == "dp"
    assert out["epsilon"] > 0 and out["delta"] == 1e-5
    # 1e5 parameters: 13 chunks of 200 bits per real, and a whole proof (its size is per batch)
    assert out["bits_per_param_upload"] <= 910
    expected = out["noise_std_expected"]
    assert abs(out["noise_std_measured"] - expected) <= 0.1 * expected  # type: ignore[operator]
    assert out["flooding_security_bits"] >= 40


def test_plain_simulate_floods_and_exact_decryption_needs_unsafe_exact() -> None:
    plain = CliRunner().invoke(main, ["simulate", "--clients", "3", "--params", "2000"])
    assert plain.exit_code == 0 and "warning:" not in plain.stderr
    out = _simulate("--clients", "3", "--params", "2000")  # what a new user runs: one holder
    assert out["preset"] == "precise" and out["flooding_security_bits"] >= 40
    assert out["decryption_budget_left"] == 2**16 - 1 and "warnings" not in out
    result = CliRunner().invoke(
        main, ["simulate", "--clients", "3", "--params", "2000", "--unsafe-exact"]
    )
    assert result.exit_code == 0
    assert "warning: --unsafe-exact" in result.stderr and "Li-Micciancio" in result.stderr
    exact = _simulate("--clients", "3", "--params", "2000", "--unsafe-exact")
    assert exact["preset"] == "compact" and exact["flooding_security_bits"] == 0
    for args, fragment in (
        (["--no-flooding"], "--unsafe-exact"),  # no noise at all needs the opt-in
        (["--unsafe-exact", "--holders", "3", "--threshold", "2"], "single key holder"),
        (["--unsafe-exact", "--dp"], "no --dp"),
    ):
        refused = CliRunner().invoke(main, ["simulate", "--params", "2000", *args])
        assert refused.exit_code == 2, refused.output
        assert refused.stderr.startswith("error: ") and fragment in refused.stderr


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


def test_help_lists_every_command_with_a_whole_one_line_purpose() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    listed = result.stdout.split("Commands:")[1].strip().splitlines()
    names = {line.split()[0] for line in listed}
    assert names >= {"simulate", "version", "keys", "roster", "audit", "audit-log"}
    assert names == set(main.commands)
    assert not any(line.rstrip().endswith("...") for line in listed), listed


def test_version_names_every_crypto_backend() -> None:
    result = CliRunner().invoke(main, ["version"])
    assert result.exit_code == 0
    for name in ("fhe-agg", "tenseal", "SEAL", "cryptography", "OpenSSL", "pqcrypto", "numpy"):
        assert name in result.stdout
    assert CliRunner().invoke(main, ["--version"]).stdout.startswith("fhe-agg ")


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (["simulate", "--clients", "0"], 2, "clients: must be at least 1"),
        (["simulate", "--holders", "2", "--threshold", "3"], 2, "threshold: cannot exceed"),
        (["simulate", "--preset", "nonsense"], 2, "nonsense"),
        (["audit-log", "verify", "/nonexistent.jsonl"], 2, "does not exist"),
    ],
)
def test_errors_are_one_line_with_a_nonzero_exit(args: list[str], code: int, fragment: str) -> None:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output and fragment in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--params", "10000000000"], ["--params 10000000000", "decryption budget", "at most"]),
        (["--params", "10000000000", "--unsafe-exact"], ["--params 10000000000", "GiB"]),
        (["--clients", "99999999999999999999"], ["--clients 99999999999999999999", "at most"]),
        (["--clients", "100000"], ["--clients 100000", "at most"]),
        # the modulus or this machine's memory bounds it, whichever is smaller
        (["--clients", "100000", "--unsafe-exact"], ["--clients 100000", "at most"]),
        (["--clients", "20000", "--params", "1000000"], ["--clients 20000", "GiB", "at most"]),
        (["--holders", "99999999999999999999"], ["--holders", "at most 4096"]),
        (["--rounds", "99999999999999999999"], ["--rounds 99999999999999999999", "at most"]),
        (["--rounds", "6000", "--flooding"], ["--rounds 6000", "decryption budget", "at most"]),
        (["--dp", "--clip", "1e300"], ["--clip 1e+300", "at most --clip"]),
        (["--dp", "--noise-multiplier", "1e300"], ["--noise-multiplier 1e+300", "at most"]),
        (["--holders", "4", "--threshold", "2"], ["--threshold", "at least 3"]),
        (["--holders", "3", "--threshold", "2", "--no-flooding"], ["--no-flooding"]),
    ],
)
def test_numeric_options_out_of_bounds_name_the_option_and_limit(
    args: list[str], fragments: list[str]
) -> None:
    """Checked before any key or vector exists: no numpy MemoryError, no "Maximum allowed size",
    no parameter the CLI has no option for (max_weight, value_bound)."""
    result = CliRunner().invoke(main, ["simulate", *args, "--json"])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --"), result.stderr
    assert "Traceback" not in result.output and not result.stdout
    for fragment in [*fragments]:
        assert fragment in lines[0], lines[0]
    assert "max_weight" not in lines[0] and "value_bound" not in lines[0]


def test_memory_estimate_bounds_a_measured_run_from_above() -> None:
    from fhe_agg.cli._simulate import memory_estimate
    from fhe_agg.sim._simulate import SimulationSpec

    spec = SimulationSpec(clients=6, params=200_000, holders=3, threshold=2)
    args = ["--clients", "6", "--params", "200000", "--holders", "3", "--threshold", "2"]
    done = subprocess.run(  # a process of its own: peak RSS is per process
        [sys.executable, "-c", "from fhe_agg.cli import main; main()", "simulate", *args, "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    peak = json.loads(done.stdout)["peak_rss_mb"] * 2**20
    assert peak <= memory_estimate(spec) <= 2 * peak  # from above, and not wildly


def test_progress_goes_to_stderr_and_json_stays_clean() -> None:
    args = ["simulate", "--clients", "3", "--holders", "3", "--threshold", "2"]
    args += ["--params", "3000", "--rounds", "2", "--json"]
    shown = CliRunner().invoke(main, [*args, "--progress"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["round"] == 2  # stdout: one JSON object, nothing else
    lines = shown.stderr.strip().splitlines()
    assert lines[0] == "progress: key ceremony among 3 holder(s) starts"
    assert "progress: round 1/2: 3/3 updates encrypted and aggregated" in lines
    assert lines[-1] == "progress: round 2/2: decrypted and released"
    quiet = CliRunner().invoke(main, [*args, "--no-progress"])
    assert quiet.exit_code == 0 and quiet.stderr == ""
    assert json.loads(quiet.stdout)["round"] == 2
    default = CliRunner().invoke(main, args)  # stderr is no terminal here: quiet by default
    assert default.exit_code == 0 and default.stderr == ""
