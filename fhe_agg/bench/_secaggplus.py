"""Flower SecAgg+ on the benchmark's vectors: what most Flower users run for secure aggregation.

Client side: flwr's own stage code, the four functions the public ``secaggplus_mod`` dispatches
to (``_setup``, ``_share_keys``, ``_collect_masked_vectors``, ``_unmask`` of
``flwr.client.mod.secure_aggregation.secaggplus_mod``; the module is public, the functions are
private, and the mod itself only adds Message/Context plumbing around them). Server side:
``SecAggPlusWorkflow``'s arithmetic (its stage methods need a live ``Grid``), re-stated line for
line with flwr's public ``flwr.common.secure_aggregation`` functions: the ring of neighbours,
routing the encrypted shares, summing the masked vectors mod ``2**32``, rebuilding every
private mask from its Shamir shares, dequantizing. The workflow then hands the result to
FedAvg, which averages copies of it: the weighted mean is the result itself.

Parameters: flwr's defaults (clipping range 8, quantization range ``2**22``, modulus ``2**32``)
with ``num_shares = 5`` (each client's four nearest neighbours on the ring and itself) and
reconstruction threshold 3; ``max_weight`` is the largest weight of the round (the tightest
bound, the most precise SecAgg+ can be). No client drops out.
"""

from __future__ import annotations

import importlib
import random
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["SecAggPlusRound", "secaggplus_round"]

NUM_SHARES = 5
THRESHOLD = 3
CLIPPING_RANGE = 8.0
QUANTIZATION_RANGE = 1 << 22
MODULUS_RANGE = 1 << 32


@dataclass(frozen=True)
class SecAggPlusRound:
    """One round's costs: CPU seconds per client (all four stages), of the server, the
    client-to-server bytes (all stages; the masked vector alone) and the weighted mean."""

    client_s: list[float]
    server_s: float
    upload_bytes: list[int]
    vector_bytes: list[int]
    mean: NDArray[np.float64]


def _timed(fn: Any, *args: Any) -> tuple[Any, float]:
    t0 = time.process_time()
    out = fn(*args)
    return out, time.process_time() - t0


def secaggplus_round(
    vectors: list[NDArray[np.float64]], weights: list[float], *, seed: int = 0
) -> SecAggPlusRound:
    """Run SecAgg+ over ``vectors`` (integer ``weights`` as ``num_examples``)."""
    # the module, not the function of the same name its package re-exports
    mod = importlib.import_module("flwr.client.mod.secure_aggregation.secaggplus_mod")
    from flwr.common import bytes_to_ndarray, ndarrays_to_parameters
    from flwr.common.secure_aggregation.secaggplus_constants import Key

    count = len(vectors)
    nids = list(range(1, count + 1))
    states = {nid: mod.SecAggPlusState(nid=nid) for nid in nids}
    client_s = dict.fromkeys(nids, 0.0)
    upload = dict.fromkeys(nids, 0)
    setup = {
        Key.SAMPLE_NUMBER: count,
        Key.SHARE_NUMBER: NUM_SHARES,
        Key.THRESHOLD: THRESHOLD,
        Key.CLIPPING_RANGE: CLIPPING_RANGE,
        Key.TARGET_RANGE: QUANTIZATION_RANGE,
        Key.MOD_RANGE: MODULUS_RANGE,
        Key.MAX_WEIGHT: float(max(weights)),
    }
    server = 0.0
    t0 = time.process_time()
    order = list(nids)
    random.Random(seed).shuffle(order)
    half = NUM_SHARES >> 1
    neighbours = {
        nid: {order[(i + k) % count] for k in range(-half, half + 1)} for i, nid in enumerate(order)
    }
    server += time.process_time() - t0
    public: dict[int, tuple[bytes, bytes]] = {}
    for nid in nids:  # stage 0: setup (key pairs)
        reply, dt = _timed(mod._setup, states[nid], setup)
        client_s[nid] += dt
        public[nid] = (reply[Key.PUBLIC_KEY_1], reply[Key.PUBLIC_KEY_2])
        upload[nid] += sum(len(v) for v in public[nid])
    forward: dict[int, tuple[list[int], list[bytes]]] = {nid: ([], []) for nid in nids}
    for nid in nids:  # stage 1: share keys (Shamir shares, encrypted to each neighbour)
        config: dict[str, Any] = {str(n): public[n] for n in neighbours[nid]}
        reply, dt = _timed(mod._share_keys, states[nid], config)
        client_s[nid] += dt
        t0 = time.process_time()
        for dst, blob in zip(reply[Key.DESTINATION_LIST], reply[Key.CIPHERTEXT_LIST], strict=True):
            forward[dst][0].append(nid)
            forward[dst][1].append(blob)
            upload[nid] += len(blob)
        server += time.process_time() - t0
    masked_messages: dict[int, list[bytes]] = {}
    for nid, vector, weight in zip(nids, vectors, weights, strict=True):  # stage 2
        config = {Key.SOURCE_LIST: forward[nid][0], Key.CIPHERTEXT_LIST: forward[nid][1]}
        t0 = time.process_time()
        parameters = ndarrays_to_parameters([vector])
        reply = mod._collect_masked_vectors(states[nid], config, int(weight), parameters)
        client_s[nid] += time.process_time() - t0
        masked_messages[nid] = reply[Key.MASKED_PARAMETERS]
        upload[nid] += sum(len(b) for b in masked_messages[nid])
    t0 = time.process_time()
    masked: list[NDArray[Any]] | None = None
    for nid in nids:
        arrays = [bytes_to_ndarray(b) for b in masked_messages[nid]]
        masked = arrays if masked is None else [a + b for a, b in zip(masked, arrays, strict=True)]
    assert masked is not None
    masked = [a & (MODULUS_RANGE - 1) for a in masked]
    server += time.process_time() - t0
    shares: dict[int, list[bytes]] = {nid: [] for nid in nids}
    for nid in nids:  # stage 3: unmask (every neighbour's private-seed share)
        config = {Key.ACTIVE_NODE_ID_LIST: sorted(neighbours[nid]), Key.DEAD_NODE_ID_LIST: []}
        reply, dt = _timed(mod._unmask, states[nid], config)
        client_s[nid] += dt
        for owner, share in zip(reply[Key.NODE_ID_LIST], reply[Key.SHARE_LIST], strict=True):
            shares[owner].append(share)
            upload[nid] += len(share)
    mean, dt = _timed(_unmask_server, masked, shares, count)
    server += dt
    return SecAggPlusRound(
        client_s=[client_s[n] for n in nids],
        server_s=server,
        upload_bytes=[upload[n] for n in nids],
        vector_bytes=[sum(len(b) for b in masked_messages[n]) for n in nids],
        mean=mean,
    )


def _unmask_server(
    masked: list[NDArray[Any]], shares: dict[int, list[bytes]], active: int
) -> NDArray[np.float64]:
    """``SecAggPlusWorkflow.unmask_stage`` without dropouts: remove every private mask, take
    the factor out, dequantize, shift and rescale."""
    from flwr.common.secure_aggregation.crypto.shamir import combine_shares
    from flwr.common.secure_aggregation.ndarrays_arithmetic import (
        factor_extract,
        get_parameters_shape,
        parameters_mod,
        parameters_subtraction,
    )
    from flwr.common.secure_aggregation.quantization import dequantize
    from flwr.common.secure_aggregation.secaggplus_utils import pseudo_rand_gen

    for share_list in shares.values():
        if len(share_list) < THRESHOLD:
            raise RuntimeError("SecAgg+: not enough shares to unmask")
        secret = combine_shares(share_list)
        private_mask = pseudo_rand_gen(secret, MODULUS_RANGE, get_parameters_shape(masked))
        masked = parameters_subtraction(masked, private_mask)
    recon = parameters_mod(masked, MODULUS_RANGE)
    q_total_ratio, recon = factor_extract(recon)
    inv_dq_total_ratio = QUANTIZATION_RANGE / q_total_ratio
    vectors = dequantize(recon, CLIPPING_RANGE, QUANTIZATION_RANGE)
    offset = -(active - 1) * CLIPPING_RANGE
    out = vectors[0]
    out += offset
    out *= inv_dq_total_ratio
    return np.asarray(out, dtype=np.float64)
