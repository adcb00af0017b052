"""The client's update before the well-formedness proof: the figure the issue's "client encrypt
+ sign" target is about, measured next to the whole client (encrypt + prove + sign).

It runs the client's own code, minus the proof: :meth:`~fhe_agg.Client.prepare` (flatten,
range check), the weight, :func:`~fhe_agg.ckks._packing.chunk`, one seed per proof batch drawn
as :func:`~fhe_agg.client._batches.encrypt_and_prove` draws them, and per batch
:func:`~fhe_agg.client._batches._chunks_task` (SEAL's encoder, the data-level ``encrypt_chunk``
with the key's fixed operands and ``DerivedRandom(seed, "chunk", i)``, the packed serialization;
the witnesses wiped at once, the stacked ``c1`` built and dropped), then
:meth:`~fhe_agg.Client.sign_update` over the raw chunks with no proofs (the SHA-256 Merkle
root, the digest of an empty proof list, the statement, ML-DSA-65), and ``to_bytes``.

Left out: the replay memory's SHA-256 of the vector (:meth:`Client.encrypt_chunks` claims it,
about 5 ms per 1e6 values), which would refuse the same vector for another round. Such an update
has no proofs, so an aggregator rejects it: it is a measurement, never sent.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fhe_agg._parallel import derive_seeds
from fhe_agg.ckks._packing import chunk
from fhe_agg.ckks._random import RandomSource, default_random
from fhe_agg.client._batches import _chunks_task
from fhe_agg.client._client import Client
from fhe_agg.protocol._messages import EncryptedUpdate
from fhe_agg.protocol._wellformed import DataLevelKey, data_level_key, proof_batches

__all__ = ["BEFORE_PROOF_NOTE", "before_proof_seconds", "before_proof_update"]

BEFORE_PROOF_NOTE = (
    "before the proof: the client's flatten/check, weight, chunking, per-batch seeds, "
    "SEAL encode + data-level encrypt (DerivedRandom per chunk) + packed serialization, "
    "then the SHA-256 Merkle root and ML-DSA-65 signature of the statement (empty proof "
    "list), serialized; not the replay memory's SHA-256 of the vector"
)


def before_proof_update(
    client: Client,
    key: DataLevelKey,
    source: NDArray[np.float64] | Mapping[str, Any],
    *,
    round_id: int,
    weight: float,
    rng: RandomSource,
) -> EncryptedUpdate:
    """``weight * source`` encrypted and signed as ``client`` does, without proving (``key``:
    :func:`data_level_key` of the client's public key, made once as the client does)."""
    vector, layout = client.prepare(source)
    weighted = vector * float(weight) if weight != 1.0 else vector
    config = client.config
    parts = chunk(weighted, config.preset.reals_per_ciphertext)
    batches = proof_batches(len(parts))
    blobs: list[bytes] = []
    for indices, seed in zip(batches, derive_seeds(rng, len(batches)), strict=True):
        batch, _ = _chunks_task(
            config.preset, key, config.scale, parts[indices.start : indices.stop], seed, indices
        )
        blobs.extend(batch)
    return client.sign_update(tuple(blobs), layout=layout, round_id=round_id, weight=weight)


def before_proof_seconds(
    clients: Sequence[Client],
    runs: Sequence[Sequence[NDArray[np.float64]]],
    weights: Sequence[float],
) -> float:
    """CPU seconds of the slowest client's update before the proof (serialized), median over
    ``runs`` (one vector per client each): what the round times for ``encrypt_update`` +
    ``to_bytes``, minus the proof."""
    rng = default_random()
    keys = [data_level_key(c.public_key) for c in clients]
    slowest = []
    for vectors in runs:
        seconds = []
        for client, key, vector, weight in zip(clients, keys, vectors, weights, strict=True):
            t0 = time.process_time()
            before_proof_update(client, key, vector, round_id=1, weight=weight, rng=rng).to_bytes()
            seconds.append(time.process_time() - t0)
        slowest.append(max(seconds))
    return float(statistics.median(slowest))
