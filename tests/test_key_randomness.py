"""Key material comes from the OS CSPRNG: ``SeededRandom`` is refused for it outside tests, and
the sampled secrets and Shamir coefficients are overwritten once used."""

from __future__ import annotations

import numpy as np
import pytest

import fhe_agg.ckks._keys as keys_module
import fhe_agg.hazmat.shamir as shamir_module
from fhe_agg import PRESETS, SeededRandom, SystemRandom, generate_single_key
from fhe_agg.ckks._random import TEST_ONLY_SEEDED_KEYS
from fhe_agg.ckks._seal import backend_for
from fhe_agg.hazmat.sampling import rounded_gaussian
from fhe_agg.hazmat.shamir import lagrange_coefficients, share_polynomial
from fhe_agg.identity import SealingPrivateKey, Suite, SuiteSigningKey

PRESET = PRESETS["compact"]


@pytest.fixture
def outside_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment of a deployment: the test-only flag is not set."""
    monkeypatch.delenv(TEST_ONLY_SEEDED_KEYS, raising=False)


def _secret() -> np.ndarray:
    b = backend_for(PRESET)
    return np.stack([np.arange(b.n, dtype=np.uint64) % q for q in b.key_primes])


@pytest.mark.usefixtures("outside_tests")
def test_seeded_random_is_refused_for_every_kind_of_key_outside_tests() -> None:
    primes = backend_for(PRESET).key_primes
    makers = {
        "CKKS key": lambda: generate_single_key(PRESET, rng=SeededRandom(1)),
        "Shamir": lambda: share_polynomial(
            _secret(), threshold=2, holders=3, primes=primes, rng=SeededRandom(1)
        ),
        "HPKE key": lambda: SealingPrivateKey.generate(Suite.PQ_ONLY, random=SeededRandom(1)),
        "signing key": lambda: SuiteSigningKey.generate(Suite.PQ_ONLY, random=SeededRandom(1)),
    }
    for what, make in makers.items():
        with pytest.raises(ValueError, match="rng: SeededRandom"):
            make()
        assert what
    # the CSPRNG (explicit or default) is fine, and noise may still be seeded
    generate_single_key(PRESET, rng=SystemRandom())
    generate_single_key(PRESET)
    assert rounded_gaussian(8, 3.0, SeededRandom(1)).shape == (8,)


def test_the_test_suite_may_seed_keys_and_gets_the_same_key_twice() -> None:
    one, _ = generate_single_key(PRESET, rng=SeededRandom(5))
    two, _ = generate_single_key(PRESET, rng=SeededRandom(5))
    assert one.blob == two.blob


def test_shamir_coefficients_are_erased_and_the_shares_still_reconstruct(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    drawn: list[np.ndarray] = []
    real = shamir_module.uniform_mod

    def spy(n: int, q: int, rng: object) -> np.ndarray:
        out = real(n, q, rng)  # type: ignore[arg-type]
        drawn.append(out)
        return out

    monkeypatch.setattr(shamir_module, "uniform_mod", spy)
    primes = backend_for(PRESET).key_primes
    secret = _secret()
    shares = share_polynomial(secret, threshold=3, holders=5, primes=primes, rng=SeededRandom(2))
    assert len(drawn) == 2 * len(primes)  # r_1, r_2 per prime
    assert all(not d.any() for d in drawn), "a Shamir coefficient was left in memory"
    lam = lagrange_coefficients((1, 3, 5), primes)
    for i, q in enumerate(primes):
        total = sum(int(lam[j][i]) * shares[j][i].astype(object) for j in (1, 3, 5)) % q
        assert np.array_equal(total.astype(np.uint64), secret[i])


def test_sampled_secret_coefficients_and_error_are_erased(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn: list[np.ndarray] = []
    for name in ("ternary", "rounded_gaussian"):
        real = getattr(keys_module, name)

        def spy(*args: object, _real: object = real, **kwargs: object) -> np.ndarray:
            out = _real(*args, **kwargs)  # type: ignore[operator]
            drawn.append(out)
            return out

        monkeypatch.setattr(keys_module, name, spy)
    generate_single_key(PRESET, rng=SeededRandom(3))
    assert len(drawn) == 2
    assert all(not d.any() for d in drawn), "a sampled secret was left in memory"
