"""RNS arithmetic and NTT against exact integers and against SEAL itself."""

from __future__ import annotations

import numpy as np
import pytest
import tenseal.sealapi as sealapi
import zstandard

from fhe_agg import PRESETS, SeededRandom
from fhe_agg.ckks._seal import backend_for
from fhe_agg.hazmat import seal_format
from fhe_agg.hazmat.ntt import ntt_tables
from fhe_agg.hazmat.rns import (
    add_mod,
    mul_shoup,
    mul_shoup_lazy,
    mulhi_lazy,
    neg_mod,
    shoup_quotient,
    split32,
    sub_mod,
)
from fhe_agg.hazmat.sampling import expand_uniform, rounded_gaussian, ternary, uniform_mod

Q = 1152921504606748673  # a 60-bit SEAL prime


def _rand_u64(rng: np.random.Generator, n: int, bound: int) -> np.ndarray:
    return rng.integers(0, bound, size=n, dtype=np.uint64)


def _mulhi(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Reference: the exact high 64 bits of the 128-bit products, from 32-bit limbs."""
    mask, shift = np.uint64(0xFFFFFFFF), np.uint64(32)
    a0, a1 = a & mask, a >> shift
    b0, b1 = b & mask, b >> shift
    p00, p01, p10, p11 = a0 * b0, a0 * b1, a1 * b0, a1 * b1
    mid = (p00 >> shift) + (p01 & mask) + (p10 & mask)
    result: np.ndarray = p11 + (p01 >> shift) + (p10 >> shift) + (mid >> shift)
    return result


def test_mulhi_matches_python_integers() -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 2**64, size=2000, dtype=np.uint64)
    b = rng.integers(0, 2**64, size=2000, dtype=np.uint64)
    edge = np.array([2**64 - 1, 0, 1, 2**32, 2**63], dtype=np.uint64)
    a, b = np.concatenate([a, edge, edge]), np.concatenate([b, edge, edge[::-1]])
    got = _mulhi(a, b)
    assert [int(x) for x in got] == [(int(x) * int(y)) >> 64 for x, y in zip(a, b, strict=True)]


def test_lazy_products_stay_within_their_bounds() -> None:
    """mulhi_lazy falls short of the exact high word by 0..2; the lazy Shoup product is a
    residue in [0, 2q) for any 64-bit input, at the largest primes the module allows."""
    rng = np.random.default_rng(2)
    edge = np.array([2**64 - 1, 0, 1, 2**32 - 1, 2**32, 2**63], dtype=np.uint64)
    a = np.concatenate([rng.integers(0, 2**64, size=3000, dtype=np.uint64), edge, edge])
    b = np.concatenate([rng.integers(0, 2**64, size=3000, dtype=np.uint64), edge, edge[::-1]])
    short = [
        ((int(x) * int(y)) >> 64) - int(h)
        for x, y, h in zip(a, b, mulhi_lazy(a, *split32(b)), strict=True)
    ]
    assert set(short) <= {0, 1, 2} and 0 in short and max(short) >= 1
    for q in (Q, 2**61 - 1):  # 2**61 - 1 is prime
        w = rng.integers(0, q, size=a.size, dtype=np.uint64)
        w[:2] = [q - 1, 0]
        got = mul_shoup_lazy(a, w, *split32(shoup_quotient(w, q)), q)
        assert all(int(r) < 2 * q for r in got)
        assert [int(r) % q for r in got] == [int(x) * int(y) % q for x, y in zip(a, w, strict=True)]


def test_modular_operations_match_python_integers() -> None:
    rng = np.random.default_rng(1)
    a, b = _rand_u64(rng, 3000, Q), _rand_u64(rng, 3000, Q)
    a[:3], b[:3] = [0, Q - 1, Q - 1], [Q - 1, Q - 1, 0]
    assert [int(x) for x in mul_shoup(a, b, shoup_quotient(b, Q), Q)] == [
        int(x) * int(y) % Q for x, y in zip(a, b, strict=True)
    ]
    assert [int(x) for x in add_mod(a, b, Q)] == [
        (int(x) + int(y)) % Q for x, y in zip(a, b, strict=True)
    ]
    assert [int(x) for x in sub_mod(a, b, Q)] == [
        (int(x) - int(y)) % Q for x, y in zip(a, b, strict=True)
    ]
    assert [int(x) for x in neg_mod(a, Q)] == [(-int(x)) % Q for x in a]


@pytest.mark.parametrize("preset", ["compact", "precise"])
def test_ntt_is_bit_identical_to_seal(preset: str) -> None:
    backend = backend_for(PRESETS[preset])
    keygen = sealapi.KeyGenerator(backend.context)
    public_key = sealapi.PublicKey()
    keygen.create_public_key(public_key)
    blob = backend.encrypt(
        backend.encryptor(backend.save(public_key)), np.linspace(-1, 1, backend.n), 2.0**30
    )
    ntt_form = backend.parse(blob, what="ciphertext").data
    cipher = backend.load_ciphertext(blob)
    sealapi.Evaluator(backend.context).transform_from_ntt_inplace(cipher)
    raw = backend.save(cipher)
    body = (
        raw[16:]
        if raw[5] == 0
        else zstandard.ZstdDecompressor().decompress(raw[16:], max_output_size=10**8)
    )
    count = 2 * len(backend.data_primes) * backend.n
    coeffs = np.frombuffer(body, dtype="<u8", count=count, offset=seal_format._CT_META.size + 24)
    coeffs = coeffs.reshape(2, len(backend.data_primes), backend.n)
    for poly in range(2):
        for i, q in enumerate(backend.data_primes):
            assert np.array_equal(
                ntt_tables(backend.n, q).forward(coeffs[poly, i]), ntt_form[poly, i]
            )


def test_samplers_have_the_right_support_and_spread() -> None:
    rng = SeededRandom(3)
    t = ternary(30_000, rng)
    assert set(np.unique(t)) == {-1, 0, 1}
    assert abs(np.mean(t == 0) - 1 / 3) < 0.02
    g = rounded_gaussian(50_000, 3.2, rng)
    assert abs(np.std(g) - 3.2) < 0.1 and np.max(np.abs(g)) <= 19
    big = rounded_gaussian(50_000, 2.0**40, rng)
    assert abs(np.std(big) / 2.0**40 - 1) < 0.02
    u = uniform_mod(50_000, Q, rng)
    assert int(u.max()) < Q and abs(float(np.mean(u)) / Q - 0.5) < 0.01


def test_seeded_random_is_reproducible_and_expand_is_deterministic() -> None:
    assert SeededRandom(1).bytes(32) == SeededRandom(1).bytes(32) != SeededRandom(2).bytes(32)
    assert "1" not in repr(SeededRandom(1))
    a = expand_uniform(b"seed", b"a/0", 8192, Q)
    assert np.array_equal(a, expand_uniform(b"seed", b"a/0", 8192, Q))
    assert not np.array_equal(a, expand_uniform(b"seed", b"a/1", 8192, Q))
