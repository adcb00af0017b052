"""Known answers for the Fiat–Shamir transcript and the challenge expansion, and the
zero-knowledge property measured: responses do not depend on the witness."""

from __future__ import annotations

import hashlib
import math
import struct

import numpy as np
import pytest

from fhe_agg import SeededRandom
from fhe_agg.ckks._params import get_preset
from fhe_agg.ckks._seal import backend_for
from fhe_agg.hazmat.encrypt import ChunkWitness, encrypt_with_witness
from fhe_agg.hazmat.sampling import uniform_mod
from fhe_agg.hazmat.zkparams import derive_parameters
from fhe_agg.hazmat.zkproof import (
    ProofStatement,
    _combine_mod,
    _decode,
    _small_product,
    challenge_matrix,
    prove,
    transcript_seed,
    verify,
)

PRECISE_PRIMES = (1152921504606830593, 1099510890497)
N_KAT = 64


def _kat_inputs() -> tuple[ProofStatement, np.ndarray, np.ndarray]:
    q = np.array(PRECISE_PRIMES, dtype=np.uint64)[:, None]
    a = (np.arange(2 * N_KAT, dtype=np.uint64).reshape(2, N_KAT) * np.uint64(1000003)) % q
    c1 = (np.arange(3 * 2 * N_KAT, dtype=np.uint64).reshape(3, 2, N_KAT) * np.uint64(7)) % q
    t = (np.arange(5 * 2 * N_KAT, dtype=np.uint64).reshape(5, 2, N_KAT) + np.uint64(11)) % q
    statement = ProofStatement(
        context=b"fhe_agg test context", a_ntt=a, primes=PRECISE_PRIMES, n=N_KAT
    )
    return statement, c1, t


def test_transcript_seed_known_answer() -> None:
    statement, c1, t = _kat_inputs()
    seed = transcript_seed(statement, c1, t)
    assert seed.hex() == KAT_SEED
    # the encoding, written out independently of the implementation
    label = b"fhe_agg/zkproof/v2"
    h = hashlib.shake_256()
    h.update(len(label).to_bytes(4, "little") + label)
    h.update(len(statement.context).to_bytes(8, "little") + statement.context)
    h.update(struct.pack("<IIII", N_KAT, 2, 3, 5))
    h.update(b"".join(q.to_bytes(8, "little") for q in PRECISE_PRIMES))
    for array in (statement.a_ntt, c1, t):  # each array through SHA-256 of its 64-bit words
        words = b"".join(int(v).to_bytes(8, "little") for v in array.ravel())
        h.update(hashlib.sha256(words).digest())
    assert h.digest(32) == seed


def test_transcript_seed_binds_non_contiguous_arrays_by_value() -> None:
    """A strided view of the same residues gives the same seed (the words are hashed in C
    order, whatever the memory layout)."""
    statement, c1, t = _kat_inputs()
    wide = np.zeros((3, 2, 2 * N_KAT), dtype=np.uint64)
    wide[:, :, ::2] = c1
    assert transcript_seed(statement, wide[:, :, ::2], t) == transcript_seed(statement, c1, t)


def test_seed_changes_with_every_input() -> None:
    statement, c1, t = _kat_inputs()
    base = transcript_seed(statement, c1, t)

    def bump(array: np.ndarray) -> np.ndarray:
        out = array.copy()
        out.flat[5] += np.uint64(1)
        return out

    def with_(
        context: bytes = statement.context, a: np.ndarray = statement.a_ntt
    ) -> ProofStatement:
        return ProofStatement(context=context, a_ntt=a, primes=PRECISE_PRIMES, n=N_KAT)

    assert transcript_seed(with_(context=statement.context + b"!"), c1, t) != base
    assert transcript_seed(with_(a=bump(statement.a_ntt)), c1, t) != base
    assert transcript_seed(statement, bump(c1), t) != base
    assert transcript_seed(statement, c1, bump(t)) != base
    assert transcript_seed(statement, c1[:2], t) != base  # the batch size is bound
    assert transcript_seed(statement, c1[[1, 0, 2]], t) != base  # and the order


def test_challenge_matrix_known_answer() -> None:
    statement, c1, t = _kat_inputs()
    w = challenge_matrix(transcript_seed(statement, c1, t), 5, 3)
    assert w.astype(int).tolist() == KAT_W
    stream = hashlib.shake_256(b"fhe_agg/zkproof/challenge|" + bytes(32)).digest(2)
    bits = [(stream[i // 8] >> (i % 8)) & 1 for i in range(16)]  # little-endian bit order
    assert challenge_matrix(bytes(32), 2, 8).astype(int).ravel().tolist() == bits


# --- zero knowledge, measured on a small instance whose masks are narrow enough to see a leak


SMALL = derive_parameters(64, batch=4, rows=8, alpha=1.5, rejection_tail=3.5)
PROOFS = 300


def _small_setup(zero: bool) -> tuple[ProofStatement, np.ndarray, list[ChunkWitness]]:
    primes = backend_for(get_preset("precise")).data_primes
    rng = SeededRandom(77)
    a = np.stack([uniform_mod(64, q, rng) for q in primes])
    pk0 = np.stack([uniform_mod(64, q, rng) for q in primes])
    chunks = [
        encrypt_with_witness(np.zeros((2, 64), np.uint64), pk0, a, primes, rng) for _ in range(4)
    ]
    witnesses = [c[2] for c in chunks]
    c1 = np.stack([c[1] for c in chunks])
    if zero:
        witnesses = [ChunkWitness(u=np.zeros(64, np.int64), e1=np.zeros(64, np.int64))] * 4
        c1 = np.zeros_like(c1)
    return ProofStatement(context=b"zk", a_ntt=a, primes=primes, n=64), c1, witnesses


def _responses(zero: bool) -> tuple[list[float], np.ndarray, list[float]]:
    """For each proof: the normalised correlation ``S = <z, c>_Sigma / ||c||_Sigma`` of the
    response with the witness-determined shift ``c = W w`` (``N(0, 1)`` if ``z`` ignores the
    witness), the pooled ``z_u / sigma_u``, and ``S`` for the unrejected ``y + c``."""
    statement, c1, witnesses = _small_setup(zero)
    u = np.stack([w.u for w in witnesses])
    e1 = np.stack([w.e1 for w in witnesses])
    rng, raw_rng = SeededRandom(5), np.random.default_rng(5)
    stats, raw, pooled = [], [], []
    var_u, var_e = SMALL.sigma_u**2 + 1 / 12, SMALL.sigma_e**2 + 1 / 12
    for _ in range(PROOFS):
        proof = prove(statement, c1, witnesses, rng, params=SMALL)
        verify(statement, c1, proof, params=SMALL)
        seed, z_u, z_e = _decode(SMALL, proof)
        w = challenge_matrix(seed, SMALL.rows, 4)
        c_u, c_e = _small_product(w, u), _small_product(w, e1)
        pooled.append(z_u.ravel() / SMALL.sigma_u)
        norm = math.sqrt(float((c_u**2).sum()) / var_u + float((c_e**2).sum()) / var_e)
        if norm == 0:
            continue
        stats.append((float((z_u * c_u).sum()) / var_u + float((z_e * c_e).sum()) / var_e) / norm)
        y_u = np.rint(raw_rng.normal(0, SMALL.sigma_u, z_u.shape))
        y_e = np.rint(raw_rng.normal(0, SMALL.sigma_e, z_e.shape))
        raw.append(
            (float(((y_u + c_u) * c_u).sum()) / var_u + float(((y_e + c_e) * c_e).sum()) / var_e)
            / norm
        )
    return stats, np.concatenate(pooled), raw


def _ks_statistic(x: np.ndarray, y: np.ndarray) -> float:
    both = np.sort(np.concatenate([x, y]))
    fx = np.searchsorted(np.sort(x), both, side="right") / x.size
    fy = np.searchsorted(np.sort(y), both, side="right") / y.size
    return float(np.max(np.abs(fx - fy)))


@pytest.mark.slow
def test_responses_do_not_depend_on_the_witness() -> None:
    """With rejection sampling the response is uncorrelated with the witness's shift: the mean
    of ``S`` over 300 proofs is within 4 standard errors of 0 (``|mean| <= 4/sqrt(300) = 0.23``),
    while the same statistic without rejection sits near ``||c||_Sigma ~ 1/alpha`` and fails
    it. The pooled responses of an honest witness and of the zero witness agree (two-sample KS
    at the 0.1% level: ``D <= 1.95 sqrt(2/m)``)."""
    stats, honest_pool, raw = _responses(zero=False)
    _, zero_pool, _ = _responses(zero=True)
    bound = 4.0 / math.sqrt(len(stats))
    assert abs(float(np.mean(stats))) <= bound
    assert float(np.mean(raw)) > bound  # the statistic sees a leak when there is one
    assert 0.8 <= float(np.std(stats)) <= 1.2
    m = honest_pool.size
    assert _ks_statistic(honest_pool, zero_pool) <= 1.95 * math.sqrt(2.0 / m)


KAT_SEED = "e954dd689b5c683352daa4ed5c5b0dd07efb7e63bbb6d43a233d04ccd33c8592"
KAT_W = [[0, 1, 0], [0, 1, 1], [1, 1, 0], [0, 1, 1], [1, 0, 0]]


@pytest.mark.parametrize("chunks", [1, 5, 128])
def test_binary_combination_mod_q_is_exact(chunks: int) -> None:
    """The verifier's ``sum_k W_jk c1_k mod q`` (float64 BLAS on limbs) equals Python integers,
    including the worst case: every residue q - 1 and an all-ones row."""
    rng = np.random.default_rng(chunks)
    c1 = np.stack(
        [
            np.stack([rng.integers(0, q, 64, dtype=np.uint64) for q in PRECISE_PRIMES])
            for _ in range(chunks)
        ]
    )
    c1[0] = np.array(PRECISE_PRIMES, dtype=np.uint64)[:, None] - np.uint64(1)
    c1[-1] = c1[0]
    w = challenge_matrix(bytes(32), 7, chunks)
    w[0] = 1
    got = _combine_mod(w, c1, PRECISE_PRIMES)
    for j in range(7):
        for i, q in enumerate(PRECISE_PRIMES):
            sums = [
                sum(int(w[j, k]) * int(c1[k, i, c]) for k in range(chunks)) % q for c in range(64)
            ]
            assert got[j, i].tolist() == sums


@pytest.mark.parametrize("top", [1, 19, 2**24 // 128 - 1, 2**24 // 128, 2**40])
def test_small_product_is_exact_in_float32_and_float64(top: int) -> None:
    """``W @ x`` (float32 BLAS while ``V * max|x| < 2**24``, else float64) equals the int64
    product, at the honest witnesses' bounds, around the switch and far beyond it."""
    rng = np.random.default_rng(top % 1000)
    w = challenge_matrix(bytes(range(32)), 9, 128)
    w[0] = 1  # an all-ones row: the largest partial sums
    x = rng.integers(-top, top + 1, (128, 300), dtype=np.int64)
    x[:, 0] = top
    x[:, 1] = -top
    got = _small_product(w, x)
    assert got.dtype == np.int64
    assert np.array_equal(got, w.astype(np.int64) @ x)
    assert got[0, 0] == 128 * top
    with pytest.raises(ValueError, match="too large"):
        _small_product(w, np.full((128, 2), 2**50, dtype=np.int64))


def test_prover_with_a_long_witness_gives_up_and_an_honest_one_verifies_on_the_small_instance() -> (
    None
):
    statement, c1, witnesses = _small_setup(zero=False)
    verify(
        statement, c1, prove(statement, c1, witnesses, SeededRandom(1), params=SMALL), params=SMALL
    )
    long = [ChunkWitness(u=w.u, e1=w.e1 * 1000) for w in witnesses]
    with pytest.raises(RuntimeError, match="rejection sampling did not accept"):
        prove(statement, c1, long, SeededRandom(2), params=SMALL)
