from __future__ import annotations

import pytest

from fhe_agg import (
    PRESETS,
    CkksPreset,
    DpPolicy,
    FederationConfig,
    UnsupportedParameters,
    get_preset,
)
from fhe_agg.ckks._params import QUANTUM_128_MAX_LOG_Q


@pytest.mark.parametrize("preset", list(PRESETS.values()), ids=list(PRESETS))
def test_presets_are_within_the_quantum_limit(preset: CkksPreset) -> None:
    assert preset.total_bits <= QUANTUM_128_MAX_LOG_Q[preset.poly_modulus_degree]
    assert preset.summary


@pytest.mark.parametrize(
    ("n", "bits", "limit"),
    [(4096, (60, 42), 101), (8192, (60, 60, 60, 23), 202), (16384, (60,) * 6 + (52,), 411)],
)
def test_modulus_above_quantum_limit_is_refused_naming_the_limit(
    n: int, bits: tuple[int, ...], limit: int
) -> None:
    assert sum(bits) == limit + 1
    with pytest.raises(UnsupportedParameters, match=f"limit of {limit} bits"):
        CkksPreset(name="too-big", poly_modulus_degree=n, data_prime_bits=bits)


def test_modulus_exactly_at_the_limit_is_accepted() -> None:
    CkksPreset(name="edge", poly_modulus_degree=4096, data_prime_bits=(60,), special_prime_bits=41)


def test_special_prime_counts_toward_the_limit() -> None:
    with pytest.raises(UnsupportedParameters):
        CkksPreset(name="p", poly_modulus_degree=4096, data_prime_bits=(60,), special_prime_bits=42)


@pytest.mark.parametrize("n", [1000, 3, 65536])
def test_unknown_ring_degree_is_refused(n: int) -> None:
    with pytest.raises(UnsupportedParameters, match="poly_modulus_degree"):
        CkksPreset(name="x", poly_modulus_degree=n, data_prime_bits=(40,))


def test_prime_sizes_are_bounded() -> None:
    with pytest.raises(UnsupportedParameters, match="prime size"):
        CkksPreset(name="x", poly_modulus_degree=8192, data_prime_bits=(61,))


def test_get_preset_lists_known_names() -> None:
    assert get_preset("compact").name == "compact"
    with pytest.raises(ValueError, match="compact"):
        get_preset("nope")


def test_scale_is_derived_from_the_bounds() -> None:
    small = FederationConfig(max_clients=8, max_weight=10.0, value_bound=1.0)
    large = FederationConfig(max_clients=64, max_weight=10.0, value_bound=1.0)
    assert small.scale_bits - large.scale_bits == 3  # 8x more clients: 3 bits less scale
    assert small.params_id != large.params_id


def test_config_refuses_bounds_that_leave_no_precision() -> None:
    with pytest.raises(UnsupportedParameters, match="bits of scale"):
        FederationConfig(max_clients=1024, max_weight=1e6, value_bound=1e21)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_weight": 1.7e308},  # finite, but 4 x 1.7e308 x sqrt(2) is not: was OverflowError
        {"max_weight": 1.0, "dp": DpPolicy(clip=1.0, noise_multiplier=1e308)},
    ],
)
def test_config_refuses_bounds_whose_product_overflows(kwargs: dict[str, object]) -> None:
    with pytest.raises(UnsupportedParameters, match="beyond any float"):
        FederationConfig(max_clients=4, value_bound=1.0, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"min_clients": 0}, "min_clients"),
        ({"min_clients": 9, "max_clients": 8}, "min_clients"),
        ({"max_weight": float("nan")}, "max_weight"),
        ({"value_bound": -1.0}, "value_bound"),
    ],
)
def test_config_validates_arguments(kwargs: dict[str, object], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        FederationConfig(**kwargs)  # type: ignore[arg-type]
