"""The well-formedness proof on real keys and real presets: completeness, crafted cheating
provers, replays under other contexts, tampered encodings and bounded parsing."""

from __future__ import annotations

import math

import numpy as np
import pytest
from zkproof_helpers import Batch, context, forged_proof, make_batch, stack

from fhe_agg import InvalidProof, SeededRandom
from fhe_agg.hazmat.encrypt import fixed_operand
from fhe_agg.hazmat.rlwe import add_polys, mul_fixed, to_ntt
from fhe_agg.hazmat.sampling import KEY_ERROR_TAIL, rounded_gaussian, ternary
from fhe_agg.hazmat.zkparams import PROOF_BATCH, proof_parameters
from fhe_agg.hazmat.zkproof import (
    ProofStatement,
    _decode,
    proof_size_bound,
    prove,
    verify,
    words_digest,
)


@pytest.fixture(scope="module")
def batch() -> Batch:
    return make_batch("precise", 4)


@pytest.fixture(scope="module")
def proof(batch: Batch) -> bytes:
    return prove(batch.statement, batch.c1, batch.witnesses, SeededRandom(21))


def _with_context(batch: Batch, ctx: bytes) -> ProofStatement:
    s = batch.statement
    return ProofStatement(context=ctx, a_ntt=s.a_ntt, primes=s.primes, n=s.n)


def test_honest_batch_verifies_and_has_the_stated_size(batch: Batch, proof: bytes) -> None:
    verify(batch.statement, batch.c1, proof)
    assert len(proof) == proof_size_bound(batch.statement.n, batch.statement.primes)


def test_a_given_c1_digest_binds_the_transcript_like_c1_itself(batch: Batch, proof: bytes) -> None:
    """A caller that hashed ``c1`` already passes its digest: the same verdict for the right
    one, a refusal for the digest of another batch's words."""
    verify(batch.statement, batch.c1, proof, c1_digest=words_digest(batch.c1))
    with pytest.raises(InvalidProof, match="transcript"):
        verify(batch.statement, batch.c1, proof, c1_digest=words_digest(batch.c1[[1, 0, 2, 3]]))


@pytest.mark.parametrize("preset", ["precise", "dp"])
def test_single_chunk_batch_verifies(preset: str) -> None:
    one = make_batch(preset, 1, seed=31)
    verify(one.statement, one.c1, prove(one.statement, one.c1, one.witnesses, SeededRandom(2)))


@pytest.mark.slow
def test_full_batch_verifies_and_one_shifted_chunk_in_it_is_caught() -> None:
    full = make_batch("precise", PROOF_BATCH, seed=41)
    verify(full.statement, full.c1, prove(full.statement, full.c1, full.witnesses, SeededRandom(4)))
    tampered = full.c1.copy()
    k = 77
    for i, q in enumerate(full.statement.primes):  # c1_k + K: K = 2**50 (mod q), a constant
        tampered[k, i] = (tampered[k, i] + np.uint64(2**50 % q)) % np.uint64(q)
    cheat = prove(full.statement, tampered, full.witnesses, SeededRandom(5))
    with pytest.raises(InvalidProof):
        verify(full.statement, tampered, cheat)


def test_constant_c1_cannot_be_proven(batch: Batch) -> None:
    """The key-recovery ciphertext: c1 = K, no short preimage; the prover tries u = e1 = 0."""
    c1 = batch.c1.copy()
    for i, q in enumerate(batch.statement.primes):
        c1[1, i] = np.uint64(2**50 % q)  # NTT of a constant polynomial is constant
    u, e1 = stack(batch.witnesses)
    u[1], e1[1] = 0, 0
    with pytest.raises(InvalidProof):
        verify(batch.statement, c1, forged_proof(batch.statement, c1, u, e1, seed=1))


def test_rerandomised_copy_of_another_clients_c1_is_refused(batch: Batch) -> None:
    """c1' = c1_victim + a*u2 + e2: the copier knows u2, e2, not the victim's u."""
    s, rng = batch.statement, SeededRandom(8)
    u2, e2 = ternary(s.n, rng), rounded_gaussian(s.n, 3.2, rng, tail=KEY_ERROR_TAIL)
    delta = add_polys(
        mul_fixed(to_ntt(u2, s.n, s.primes), fixed_operand(s.a_ntt, s.primes), s.primes),
        to_ntt(e2, s.n, s.primes),
        s.primes,
    )
    c1 = batch.c1.copy()
    c1[2] = add_polys(batch.c1[0], delta, s.primes)
    u, e1 = stack(batch.witnesses)
    u[2], e1[2] = u2, e2
    with pytest.raises(InvalidProof):
        verify(s, c1, forged_proof(s, c1, u, e1, seed=2))
    # the honest prover algorithm with that witness fails the same way
    witnesses = list(batch.witnesses)
    witnesses[2] = type(witnesses[2])(u=u2, e1=e2)
    with pytest.raises(InvalidProof):
        verify(s, c1, prove(s, c1, witnesses, SeededRandom(9)))


def test_a_long_witness_is_refused_by_the_norm_checks(batch: Batch) -> None:
    """c1 = a*u + e1 holds exactly, but e1 is 2**20 in one chunk: the proof cannot be short."""
    s = batch.statement
    u, e1 = stack(batch.witnesses)
    big = np.full(s.n, 2**20, dtype=np.int64)
    c1 = batch.c1.copy()
    c1[3] = add_polys(
        mul_fixed(to_ntt(u[3], s.n, s.primes), fixed_operand(s.a_ntt, s.primes), s.primes),
        to_ntt(big, s.n, s.primes),
        s.primes,
    )
    e1[3] = big
    with pytest.raises(InvalidProof, match=r"too long|out of range"):
        verify(s, c1, forged_proof(s, c1, u, e1, seed=3))


@pytest.mark.parametrize(
    "ctx",
    [
        context(round_id=4),
        context(client="bravo"),
        context(params="p2"),
        context(first=128),
        b"",
    ],
)
def test_proof_replayed_under_another_context_is_refused(
    batch: Batch, proof: bytes, ctx: bytes
) -> None:
    with pytest.raises(InvalidProof, match="transcript"):
        verify(_with_context(batch, ctx), batch.c1, proof)


def test_reordered_or_truncated_batch_is_refused(batch: Batch, proof: bytes) -> None:
    with pytest.raises(InvalidProof):
        verify(batch.statement, batch.c1[[1, 0, 2, 3]], proof)
    with pytest.raises(InvalidProof):
        verify(batch.statement, batch.c1[:3], proof)


def test_every_length_but_the_right_one_is_refused(batch: Batch, proof: bytes) -> None:
    for blob in (proof[:-1], proof + b"\0", b"", proof + bytes(1 << 20), proof[:36]):
        with pytest.raises(InvalidProof, match="bytes"):
            verify(batch.statement, batch.c1, blob)
    with pytest.raises(InvalidProof, match="expected bytes"):
        verify(batch.statement, batch.c1, "proof")  # type: ignore[arg-type]


@pytest.mark.parametrize("where", ["magic", "seed", "z_u", "z_e", "last"])
def test_a_flipped_bit_is_refused(batch: Batch, proof: bytes, where: str) -> None:
    p = proof_parameters(batch.statement.n)
    offset = {
        "magic": 0,
        "seed": 4 + 17,
        "z_u": 36 + 1000,
        "z_e": 36 + p.rows * p.n * p.width_u // 8 + 5,
        "last": len(proof) - 1,
    }[where]
    tampered = bytearray(proof)
    tampered[offset] ^= 0x10
    with pytest.raises(InvalidProof):
        verify(batch.statement, batch.c1, bytes(tampered))


def test_the_excluded_most_negative_code_is_refused(batch: Batch, proof: bytes) -> None:
    """Each width has one code (-2**(w-1)) that no honest response uses: the encoding of a
    response is unique, and the verifier refuses the extra code."""
    tampered = bytearray(proof)
    tampered[36:39] = b"\0\0\0"  # the first z_u coefficient's code becomes 0
    with pytest.raises(InvalidProof, match="out of range"):
        verify(batch.statement, batch.c1, bytes(tampered))


def test_malformed_batches_are_refused(batch: Batch, proof: bytes) -> None:
    s = batch.statement
    unreduced = batch.c1.copy()
    unreduced[0, 0, 0] = np.uint64(s.primes[0])
    too_many = np.concatenate([batch.c1] * (PROOF_BATCH // 4 + 1))
    for c1 in (unreduced, batch.c1[:0], too_many, batch.c1.astype(np.int64), batch.c1[:, :1]):
        with pytest.raises(InvalidProof):
            verify(s, c1, proof)


def test_prove_checks_its_witness_count(batch: Batch) -> None:
    with pytest.raises(ValueError, match="witnesses"):
        prove(batch.statement, batch.c1, batch.witnesses[:3], SeededRandom(1))


def test_production_responses_follow_the_mask_distribution(batch: Batch, proof: bytes) -> None:
    """Responses of a real proof are distributed as the masks: centred, standard deviations
    ``sqrt(sigma^2 + 1/12)`` within 1%, and a one-sample KS test against that normal on 20,000
    coefficients of each part at the 1% level (``D <= 1.63 / sqrt(m)``)."""
    p = proof_parameters(batch.statement.n)
    _, z_u, z_e = _decode(p, proof)
    for z, sigma in ((z_u, p.sigma_u), (z_e, p.sigma_e)):
        spread = math.sqrt(sigma**2 + 1 / 12)
        assert abs(float(np.std(z)) / spread - 1) < 0.01
        assert abs(float(np.mean(z))) < 5 * spread / math.sqrt(z.size)
        sample = np.sort(z.ravel()[:: z.size // 20_000][:20_000] / spread)
        cdf = np.array([0.5 * (1 + math.erf(x / math.sqrt(2))) for x in sample])
        m = sample.size
        d = max(np.max(np.arange(1, m + 1) / m - cdf), np.max(cdf - np.arange(m) / m))
        assert d <= 1.63 / math.sqrt(m)
