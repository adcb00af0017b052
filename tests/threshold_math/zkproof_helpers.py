"""Shared set-up for the proof tests: real keys, real presets, honest and cheating provers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from fhe_agg import SeededRandom, generate_single_key
from fhe_agg.ckks._params import get_preset
from fhe_agg.ckks._seal import backend_for
from fhe_agg.hazmat.encrypt import (
    ChunkWitness,
    encode_plaintext,
    encrypt_with_witness,
    public_key_data_level,
)
from fhe_agg.hazmat.rns import U64
from fhe_agg.hazmat.zkparams import ProofParameters, proof_parameters
from fhe_agg.hazmat.zkproof import (
    ProofStatement,
    _commit,
    _encode,
    _prefix,
    _seed,
    _small_product,
    challenge_matrix,
)


@dataclass
class Batch:
    """A batch of real encryptions under a real key, with their witnesses."""

    statement: ProofStatement
    pk0: U64
    c0: U64
    c1: U64
    witnesses: list[ChunkWitness]
    share: object


def context(
    *, round_id: int = 3, client: str = "alpha", params: str = "p1", first: int = 0
) -> bytes:
    """A stand-in for the caller's transcript binding (the integration builds the real one)."""
    return f"v1|{params}|pk|{round_id}|{client}|{first}".encode()


def make_batch(preset: str, chunks: int, *, seed: int = 11) -> Batch:
    backend = backend_for(get_preset(preset))
    public_key, share = generate_single_key(get_preset(preset), rng=SeededRandom(seed))
    pk0, a = public_key_data_level(public_key)
    rng = SeededRandom(seed + 1)
    values = np.random.default_rng(seed).uniform(-1, 1, (chunks, backend.n))
    c0s, c1s, witnesses = [], [], []
    for k in range(chunks):
        plain = encode_plaintext(backend, values[k], 2.0**30)
        c0, c1, witness = encrypt_with_witness(plain, pk0, a, backend.data_primes, rng)
        c0s.append(c0)
        c1s.append(c1)
        witnesses.append(witness)
    statement = ProofStatement(context=context(), a_ntt=a, primes=backend.data_primes, n=backend.n)
    return Batch(statement, pk0, np.stack(c0s), np.stack(c1s), witnesses, share)


def forged_proof(
    statement: ProofStatement,
    c1: U64,
    u: NDArray[np.int64],
    e1: NDArray[np.int64],
    seed: int,
    params: ProofParameters | None = None,
) -> bytes:
    """A cheating prover: the honest algorithm with the given (possibly wrong or long) witness,
    no rejection, no norm checks, whatever comes out is encoded (clipped to the widths)."""
    p = params or proof_parameters(statement.n)
    rng = np.random.default_rng(seed)
    y_u = np.rint(rng.normal(0, p.sigma_u, (p.rows, p.n))).astype(np.int64)
    y_e = np.rint(rng.normal(0, p.sigma_e, (p.rows, p.n))).astype(np.int64)
    digest = _seed(_prefix(statement, c1, p.rows), _commit(y_u, y_e, statement))
    w = challenge_matrix(digest, p.rows, c1.shape[0])
    z_u = y_u + _small_product(w, u)
    z_e = y_e + _small_product(w, e1)
    limit_u, limit_e = (1 << (p.width_u - 1)) - 1, (1 << (p.width_e - 1)) - 1
    return _encode(p, digest, np.clip(z_u, -limit_u, limit_u), np.clip(z_e, -limit_e, limit_e))


def stack(witnesses: Sequence[ChunkWitness]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    return np.stack([w.u for w in witnesses]), np.stack([w.e1 for w in witnesses])
