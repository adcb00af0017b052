"""A client's encryption and proving, batch by batch, on one process or on a ``workers=`` pool.

Each proof batch (:func:`~fhe_agg.protocol._wellformed.proof_batches`) gets a seed drawn in order from the
client's source; chunk ``i`` of the batch encrypts with ``DerivedRandom(seed, "chunk", i)`` and the
proof draws its masks from ``DerivedRandom(seed, "proof")``. The bytes are then the same whoever
runs which piece:

* ``workers == 1``: every batch here, in order;
* at least as many batches as workers: each batch is one task (encrypt and prove in the same
  worker process; its witnesses never leave it);
* fewer batches than workers (an update of up to ``128 * N`` reals is one batch): the batch's
  chunks are encrypted on the pool in ``workers`` runs, and this process redraws each chunk's
  witness from its seed (:func:`~fhe_agg.hazmat.encrypt.sample_randomness`, no NTT) and proves.

What crosses the pipes to the client's own worker processes is what the client already holds in
memory (the update's values, the seeds), never a file; a :class:`ChunkWitness` is never pickled.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from fhe_agg._parallel import DerivedRandom, derive_seeds, run_ordered, split
from fhe_agg.ckks._params import CkksPreset
from fhe_agg.ckks._random import RandomSource
from fhe_agg.ckks._seal import backend_for
from fhe_agg.hazmat import _accel
from fhe_agg.hazmat.encrypt import (
    ChunkWitness,
    encode_plaintext,
    encrypt_chunk,
    fixed_operand,
    sample_randomness,
)
from fhe_agg.hazmat.rns import U64
from fhe_agg.hazmat.seal_format import RawCiphertext
from fhe_agg.hazmat.zkproof import prove
from fhe_agg.protocol._merkle import leaf_hash
from fhe_agg.protocol._wellformed import (
    DataLevelKey,
    chunks_binding,
    proof_batches,
    proof_statement,
)

__all__ = ["encrypt_and_prove"]

Parts = Sequence[NDArray[np.float64]]


def _encrypt(
    preset: CkksPreset,
    key: DataLevelKey,
    scale: float,
    parts: Parts,
    seed: bytes,
    indices: range,
    keep_witnesses: bool,
) -> tuple[list[bytes], U64, list[ChunkWitness]]:
    """Encrypt ``parts`` (chunks ``indices`` of the batch with ``seed``): their packed bytes, the
    stacked ``c1`` and, with ``keep_witnesses``, the witnesses (else wiped at once)."""
    backend = backend_for(preset)
    # Every batch's proof commits to rows x N x L values (at least 192 x 1024, far above
    # _accel.LOAD_MIN), so proving loads the compiled kernels in any case: load them before the
    # chunks, not after (a process's first 1e6-parameter update: 0.75 s of numpy chunk
    # encryption -> 0.34 s). kernels() with no size loads them unless FHE_AGG_PURE_NUMPY is set.
    _accel.kernels()
    pk0, a = fixed_operand(key.pk0_ntt, key.primes), fixed_operand(key.a_ntt, key.primes)
    blobs, c1s, witnesses = [], [], []
    for index, part in zip(indices, parts, strict=True):
        plain = encode_plaintext(backend, part, scale)
        ciphertext, witness = encrypt_chunk(
            plain, pk0, a, key.primes, DerivedRandom(seed, "chunk", index)
        )
        blobs.append(backend.pack(RawCiphertext(backend.data_parms_id, scale, ciphertext)))
        c1s.append(ciphertext[1])
        if keep_witnesses:
            witnesses.append(witness)
        else:
            witness.wipe()
    return blobs, np.stack(c1s), witnesses


#: A batch's packed chunks, their Merkle leaves and its proof.
Batch = tuple[list[bytes], list[bytes], bytes]


def _prove(
    key: DataLevelKey,
    context: bytes,
    c1: U64,
    witnesses: list[ChunkWitness],
    seed: bytes,
    blobs: list[bytes],
    indices: range,
) -> Batch:
    """The batch's Merkle leaves (which the signed root needs anyway) and its proof, whose
    transcript binds ``c1`` through them (:func:`chunks_binding`); the witnesses wiped."""
    try:
        leaves = [leaf_hash(i, blob) for i, blob in zip(indices, blobs, strict=True)]
        proof = prove(
            proof_statement(key, context),
            c1,
            witnesses,
            DerivedRandom(seed, "proof"),
            c1_digest=chunks_binding(leaves),
        )
        return blobs, leaves, proof
    finally:
        for witness in witnesses:
            witness.wipe()
        witnesses.clear()


def _batch_task(
    preset: CkksPreset,
    key: DataLevelKey,
    scale: float,
    parts: Parts,
    seed: bytes,
    indices: range,
    context: bytes,
) -> Batch:
    """One whole batch: encrypt, prove, drop the witnesses (all in the calling process)."""
    blobs, c1, witnesses = _encrypt(preset, key, scale, parts, seed, indices, True)
    return _prove(key, context, c1, witnesses, seed, blobs, indices)


def _chunks_task(
    preset: CkksPreset, key: DataLevelKey, scale: float, parts: Parts, seed: bytes, indices: range
) -> tuple[list[bytes], U64]:
    blobs, c1, _ = _encrypt(preset, key, scale, parts, seed, indices, False)
    return blobs, c1


def _redraw_witnesses(n: int, seed: bytes, indices: range) -> list[ChunkWitness]:
    out = []
    for index in indices:
        u, e0, e1 = sample_randomness(n, DerivedRandom(seed, "chunk", index))
        e0.fill(0)
        out.append(ChunkWitness(u=u, e1=e1))
    return out


def _split_batch(
    preset: CkksPreset,
    key: DataLevelKey,
    scale: float,
    parts: Parts,
    seed: bytes,
    indices: range,
    context: bytes,
    workers: int,
) -> Batch:
    """One batch with its chunks encrypted on the pool; the proof made here."""
    runs = split(len(indices), workers)
    results = run_ordered(
        _chunks_task,
        [
            (preset, key, scale, parts[r.start : r.stop], seed, indices[r.start : r.stop])
            for r in runs
        ],
        workers=workers,
    )
    blobs = [b for blobs_of_run, _ in results for b in blobs_of_run]
    c1 = np.concatenate([c1_of_run for _, c1_of_run in results])
    witnesses = _redraw_witnesses(key.n, seed, indices)
    return _prove(key, context, c1, witnesses, seed, blobs, indices)


def encrypt_and_prove(
    preset: CkksPreset,
    key: DataLevelKey,
    scale: float,
    parts: Parts,
    contexts: Sequence[bytes],
    rng: RandomSource,
    *,
    workers: int,
) -> tuple[list[bytes], list[bytes], list[bytes]]:
    """Every chunk's packed ciphertext and Merkle leaf, and every batch's proof
    (``contexts[k]`` binds batch ``k``), the same bytes for any ``workers``."""
    batches = proof_batches(len(parts))
    if len(contexts) != len(batches):
        raise ValueError(f"contexts: {len(contexts)} for {len(batches)} proof batches")
    seeds = derive_seeds(rng, len(batches))
    chunks: list[bytes] = []
    leaves: list[bytes] = []
    proofs: list[bytes] = []
    if workers > 1 and len(batches) < workers:
        for indices, seed, context in zip(batches, seeds, contexts, strict=True):
            blobs, batch_leaves, proof = _split_batch(
                preset,
                key,
                scale,
                parts[indices.start : indices.stop],
                seed,
                indices,
                context,
                workers,
            )
            chunks.extend(blobs)
            leaves.extend(batch_leaves)
            proofs.append(proof)
        return chunks, leaves, proofs
    tasks = [
        (preset, key, scale, parts[r.start : r.stop], seed, r, context)
        for r, seed, context in zip(batches, seeds, contexts, strict=True)
    ]
    for blobs, batch_leaves, proof in run_ordered(_batch_task, tasks, workers=workers):
        chunks.extend(blobs)
        leaves.extend(batch_leaves)
        proofs.append(proof)
    return chunks, leaves, proofs
