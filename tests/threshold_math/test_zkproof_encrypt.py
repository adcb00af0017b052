"""Data-level encryption with the witness kept: decrypts under a real (threshold) key, the
relation c1 = a*u + e1 holds exactly, the witness stays secret."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

from fhe_agg import FederationConfig, SeededRandom, generate_single_key
from fhe_agg.ceremony._local import local_key_ceremony
from fhe_agg.ckks._params import get_preset
from fhe_agg.ckks._seal import backend_for
from fhe_agg.hazmat.encrypt import (
    ChunkWitness,
    encode_plaintext,
    encrypt_chunk,
    encrypt_with_witness,
    fixed_operand,
    public_key_data_level,
)
from fhe_agg.hazmat.rlwe import add_polys, mul_fixed, to_ntt
from fhe_agg.hazmat.seal_format import RawCiphertext, parse_ciphertext
from fhe_agg.hazmat.shamir import lagrange_coefficients

SCALE = 2.0**30


def fresh_noise_std(n: int, holders: int) -> float:
    """Std of one decoded real (before ``/ scale``) of a data-level encryption: the coefficient
    noise ``-u*e + e0 + e1*s`` has variance ``N (2/3) h 3.2^2 + 3.2^2 + N (2h/3) 3.2^2`` (``e``, ``s``
    sums of ``h`` holders' keys), and the canonical embedding gives each of the two reals of a
    slot ``sqrt(N/2)`` times the coefficient std."""
    err = 3.2**2
    variance = n * (2 / 3) * holders * err + err + n * (2 * holders / 3) * err
    return math.sqrt(variance) * math.sqrt(n / 2)


@pytest.mark.parametrize("preset", ["precise", "dp"])
def test_decrypts_to_the_encoded_values_within_the_fresh_noise(preset: str) -> None:
    backend = backend_for(get_preset(preset))
    public_key, share = generate_single_key(get_preset(preset), rng=SeededRandom(5))
    pk0, a = public_key_data_level(public_key)
    values = np.random.default_rng(3).uniform(-1, 1, backend.n)
    plain = encode_plaintext(backend, values, SCALE)
    c0, c1, witness = encrypt_with_witness(plain, pk0, a, backend.data_primes, SeededRandom(6))
    primes = backend.data_primes
    decrypted = add_polys(c0, mul_fixed(c1, share.data_level(), primes), primes)
    out = backend.decode(decrypted, SCALE)
    # the fresh noise -u*e + e0 + e1*s (special_prime=False): one real's std is B/6 * sqrt(N/2)
    std = fresh_noise_std(backend.n, 1)
    error = out - values
    assert 0.85 * std <= float(np.std(error)) * SCALE <= 1.15 * std
    assert float(np.max(np.abs(error))) * SCALE <= 7 * std  # products: tails above Gaussian
    # the relation the proof is about, exactly
    a_u = mul_fixed(to_ntt(witness.u, backend.n, primes), fixed_operand(a, primes), primes)
    assert np.array_equal(add_polys(a_u, to_ntt(witness.e1, backend.n, primes), primes), c1)
    assert set(np.unique(witness.u)) <= {-1, 0, 1}
    assert int(np.max(np.abs(witness.e1))) <= 19


def test_decrypts_under_a_threshold_key_from_the_local_ceremony() -> None:
    preset = get_preset("precise")
    backend = backend_for(preset)
    config = FederationConfig(preset=preset, holders=3, threshold=2)
    public_key, shares = local_key_ceremony(config, SeededRandom(12))
    pk0, a = public_key_data_level(public_key)
    values = np.random.default_rng(4).uniform(-2, 2, backend.n)
    primes = backend.data_primes
    c0, c1, _ = encrypt_with_witness(
        encode_plaintext(backend, values, SCALE), pk0, a, primes, SeededRandom(13)
    )
    decrypted = c0
    for share in (shares[0], shares[2]):
        operand = share.decryption_operand((1, 3))
        decrypted = add_polys(decrypted, mul_fixed(c1, operand, primes), primes)
    std = fresh_noise_std(backend.n, 3)
    error = backend.decode(decrypted, SCALE) - values
    assert 0.85 * std <= float(np.std(error)) * SCALE <= 1.15 * std
    np.testing.assert_allclose(error, 0, rtol=0, atol=7 * std / SCALE)
    assert lagrange_coefficients((1, 3), primes)  # the set is a real 2-of-3 decrypting set


def test_ciphertext_goes_through_the_wire_format_and_seal() -> None:
    backend = backend_for(get_preset("precise"))
    public_key, _ = generate_single_key(get_preset("precise"), rng=SeededRandom(1))
    pk0, a = public_key_data_level(public_key)
    plain = encode_plaintext(backend, np.ones(backend.n), SCALE)
    c0, c1, _ = encrypt_with_witness(plain, pk0, a, backend.data_primes, SeededRandom(2))
    blob = backend.pack(RawCiphertext(backend.data_parms_id, SCALE, np.stack([c0, c1])))
    assert len(blob) == backend.ciphertext_bytes
    parsed = backend.parse(blob, what="chunk")
    assert np.array_equal(parsed.data[1], c1)
    backend.load_ciphertext(blob)  # SEAL accepts it


def test_public_key_data_level_is_the_key_without_the_special_prime() -> None:
    backend = backend_for(get_preset("precise"))
    public_key, _ = generate_single_key(get_preset("precise"), rng=SeededRandom(1))
    raw = parse_ciphertext(
        public_key.blob, n=backend.n, primes=backend.key_primes, parms_id=backend.key_parms_id
    )
    pk0, a = public_key_data_level(public_key)
    assert pk0.shape == a.shape == (2, backend.n)
    assert np.array_equal(pk0, raw.data[0, :2]) and np.array_equal(a, raw.data[1, :2])


def test_witness_is_quiet_and_unpicklable() -> None:
    witness = ChunkWitness(u=np.array([1, -1, 0]), e1=np.array([3, 4, 5]))
    assert repr(witness) == "ChunkWitness(<secret>)" == str(witness)
    with pytest.raises(TypeError):
        pickle.dumps(witness)
    witness.wipe()
    assert not witness.u.any() and not witness.e1.any()


def test_fresh_encryptions_differ_and_shapes_are_checked() -> None:
    backend = backend_for(get_preset("dp"))
    public_key, _ = generate_single_key(get_preset("dp"), rng=SeededRandom(1))
    pk0, a = public_key_data_level(public_key)
    plain = encode_plaintext(backend, np.zeros(backend.n), SCALE)
    rng = SeededRandom(3)
    first = encrypt_with_witness(plain, pk0, a, backend.data_primes, rng)
    second = encrypt_with_witness(plain, pk0, a, backend.data_primes, rng)
    assert not np.array_equal(first[1], second[1])
    with pytest.raises(ValueError, match="shape"):
        encrypt_with_witness(plain[:, :64], pk0, a, backend.data_primes, rng)
    operands = fixed_operand(pk0, backend.data_primes), fixed_operand(a, backend.data_primes)
    with pytest.raises(ValueError, match="shape"):
        encrypt_chunk(plain[:, :64], *operands, backend.data_primes, rng)
    with pytest.raises(ValueError, match="shape"):
        encrypt_chunk(
            plain,
            fixed_operand(pk0[:, :64], backend.data_primes),
            operands[1],
            backend.data_primes,
            rng,
        )


def test_chunk_encryption_under_prepared_operands_is_the_same_as_under_arrays() -> None:
    """What clients run (the key's operands made once) gives the bytes and witness of
    :func:`encrypt_with_witness` for the same randomness."""
    backend = backend_for(get_preset("precise"))
    public_key, _ = generate_single_key(get_preset("precise"), rng=SeededRandom(1))
    pk0, a = public_key_data_level(public_key)
    plain = encode_plaintext(backend, np.linspace(-1, 1, backend.n), SCALE)
    primes = backend.data_primes
    c0, c1, witness = encrypt_with_witness(plain, pk0, a, primes, SeededRandom(9))
    ciphertext, same = encrypt_chunk(
        plain, fixed_operand(pk0, primes), fixed_operand(a, primes), primes, SeededRandom(9)
    )
    assert np.array_equal(ciphertext, np.stack([c0, c1]))
    assert np.array_equal(same.u, witness.u) and np.array_equal(same.e1, witness.e1)
    with pytest.raises(ValueError, match="shape"):
        encode_plaintext(backend, np.zeros(10), SCALE)
