"""The DP neighbouring relation is explicit: zero-out (default) or replace-one (2x sensitivity)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from fhe_agg import PRESETS, Adjacency, DpPolicy, FederationConfig
from fhe_agg.cli import main

BOUNDS = {"preset": PRESETS["dp"], "max_clients": 8, "max_weight": 50.0, "value_bound": 1.0}
# A large z, so the DP share (not the flooding) sets each holder's noise.
Z = 40.0


def _config(adjacency: Adjacency, **dp: object) -> FederationConfig:
    policy = DpPolicy(clip=1.0, noise_multiplier=Z, adjacency=adjacency, **dp)  # type: ignore[arg-type]
    return FederationConfig(**BOUNDS, holders=3, threshold=2, dp=policy)  # type: ignore[arg-type]


def test_zero_out_is_the_default_and_its_sensitivity_is_max_weight_times_clip() -> None:
    assert DpPolicy(clip=1.0, noise_multiplier=1.0).adjacency is Adjacency.ZERO_OUT
    assert _config(Adjacency.ZERO_OUT).dp_sensitivity == 50.0
    assert Adjacency("replace-one") is Adjacency.REPLACE_ONE


def test_replace_one_doubles_the_sensitivity_and_the_noise() -> None:
    zero, replace = _config(Adjacency.ZERO_OUT), _config(Adjacency.REPLACE_ONE)
    assert replace.dp_sensitivity == 2 * zero.dp_sensitivity == 100.0
    # the same z: each holder's Gaussian in model units (coefficient sigma / scale), and so
    # the released noise, doubles (DP dominates the flooding here)
    assert zero.holder_noise_sigma > zero._flooding_sigma
    per_holder = replace.holder_noise_sigma / replace.scale
    assert per_holder == pytest.approx(2 * zero.holder_noise_sigma / zero.scale, rel=1e-9)
    assert replace.released_noise_std == pytest.approx(2 * zero.released_noise_std, rel=1e-9)
    # and the z it achieves against its own sensitivity is the requested one in both
    assert zero.noise_multiplier == pytest.approx(Z) and replace.noise_multiplier == pytest.approx(
        Z
    )
    central = _config(Adjacency.REPLACE_ONE, mode="central")
    assert central.central_noise_std == pytest.approx(Z * 100.0)
    assert replace.params_id != zero.params_id


def test_adjacency_and_max_epsilon_are_in_params_id() -> None:
    base = _config(Adjacency.ZERO_OUT)
    assert _config(Adjacency.ZERO_OUT).params_id == base.params_id
    assert _config(Adjacency.ZERO_OUT, max_epsilon=3.0).params_id != base.params_id
    assert (
        _config(Adjacency.ZERO_OUT, max_epsilon=3.0).params_id
        != _config(Adjacency.ZERO_OUT, max_epsilon=4.0).params_id
    )


def test_policy_refuses_a_string_adjacency_and_a_bad_max_epsilon() -> None:
    with pytest.raises(TypeError, match="adjacency"):
        DpPolicy(clip=1.0, noise_multiplier=1.0, adjacency="replace-one")  # type: ignore[arg-type]
    for bad in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="max_epsilon"):
            DpPolicy(clip=1.0, noise_multiplier=1.0, max_epsilon=bad)


def test_flower_records_carry_the_adjacency() -> None:
    pytest.importorskip("flwr")
    from fhe_agg.flower._records import decode_config, encode_config

    for adjacency in Adjacency:
        config = _config(adjacency, max_epsilon=5.0)
        back, _ = decode_config(encode_config(config, clip=None))
        assert back.dp is not None and back.dp.adjacency is adjacency
        assert back.dp.max_epsilon == 5.0 and back.params_id == config.params_id


@pytest.mark.parametrize("adjacency", ["zero-out", "replace-one"])
def test_simulate_states_the_adjacency_in_its_json(adjacency: str) -> None:
    args = ["simulate", "--clients", "3", "--params", "2000", "--dp", "--seed", "1", "--json"]
    result = CliRunner().invoke(main, [*args, "--adjacency", adjacency])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["dp_adjacency"] == adjacency
    factor = 2.0 if adjacency == "replace-one" else 1.0
    assert out["dp_sensitivity"] == factor * 1.0 * 35.0  # clip 1, largest weight 3 * 10 + 5
