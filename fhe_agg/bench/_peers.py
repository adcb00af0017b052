"""The protocols users would pick instead, on the round's vectors, in the same run: Flower
SecAgg+ (:mod:`._secaggplus`) as the baseline of every row, NVIDIA FLARE-style TenSEAL
(:class:`._baselines.NvflareCkks`) beside it in each row's ``nvflare`` field.

Rows: client cost (ours: encrypt + prove + sign + serialize one update, and the same before the
proof, :mod:`._before_proof`; SecAgg+: its four client stages through ``secaggplus_mod``;
NVFlare: encrypt + serialize), server cost (ours: verify + parse + add every update and
finalize; SecAgg+: routing, summing the masked vectors and unmasking; NVFlare: parse, multiply
by the weight and add), client-to-server bytes per value, and the max abs error of the mean.
CPU seconds on one core, medians over the repeats.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fhe_agg.bench._baselines import NvflareCkks
from fhe_agg.bench._harness import Figure, Target, figure
from fhe_agg.bench._secaggplus import NUM_SHARES, THRESHOLD, SecAggPlusRound, secaggplus_round

__all__ = ["PeerRuns", "peer_figures", "secaggplus_runs"]

_BASE = f"Flower SecAgg+ (flwr secaggplus_mod, {NUM_SHARES} shares, threshold {THRESHOLD})"

PeerRuns = list[SecAggPlusRound]


def secaggplus_runs(
    vectors: list[NDArray[np.float64]], weights: list[float], repeats: int
) -> PeerRuns:
    return [secaggplus_round(vectors, weights, seed=k) for k in range(repeats)]


def _median(values: list[float]) -> float:
    return float(statistics.median(values))


def _nvflare(vectors: list[NDArray[np.float64]], weights: list[float]) -> dict[str, float]:
    """One NVFlare-style round: slowest client, server (parse, weight, add), bytes, error."""
    import tenseal as ts

    he = NvflareCkks()
    client_s, messages = [], []
    for vector in vectors:
        t0 = time.process_time()
        messages.append(he.encrypt_serialize(vector))
        client_s.append(time.process_time() - t0)
    t0 = time.process_time()
    total: list[Any] | None = None
    for blobs, weight in zip(messages, weights, strict=True):
        pieces = [ts.ckks_vector_from(he.context, b) * weight for b in blobs]
        total = pieces if total is None else [a + b for a, b in zip(total, pieces, strict=True)]
    server = time.process_time() - t0
    assert total is not None
    mean = np.concatenate([np.asarray(p.decrypt()) for p in total])[: vectors[0].size]
    exact = np.average(np.stack(vectors), axis=0, weights=weights)
    return {
        "client_s": max(client_s),
        "server_s": server,
        "bytes_per_value": sum(len(b) for b in messages[0]) / vectors[0].size,
        "error": float(np.max(np.abs(mean / sum(weights) - exact))),
    }


def peer_figures(
    *,
    workload: str,
    vectors: list[NDArray[np.float64]],
    weights: list[float],
    ours: dict[str, float],
    secagg: PeerRuns,
) -> list[Figure]:
    """``ours``: ``client_s`` and ``client_before_proof_s`` (slowest client, with and before
    the proof), ``server_s``, ``bytes_per_value``, ``error``."""
    params = vectors[0].size
    exact = np.average(np.stack(vectors), axis=0, weights=weights)
    base = {
        "client_s": _median([max(r.client_s) for r in secagg]),
        "server_s": _median([r.server_s for r in secagg]),
        "bytes_per_value": max(max(r.upload_bytes) for r in secagg) / params,
        "error": max(float(np.max(np.abs(r.mean - exact))) for r in secagg),
    }
    nv = _nvflare(vectors, weights)
    # the peers have no proof: the same client cost faces ours with and before the proof
    base["client_before_proof_s"], nv["client_before_proof_s"] = base["client_s"], nv["client_s"]
    stages = {  # SecAgg+ client CPU seconds by stage (slowest client, median over the runs)
        stage: _median([max(r.stage_s[stage]) for r in secagg]) for stage in secagg[0].stage_s
    }
    vector_bytes = max(max(r.vector_bytes) for r in secagg) / params
    rows = (
        ("client_s", "client cost per update (slowest client)", "s CPU", None,
         "ours: encrypt + prove + sign + serialize; SecAgg+: setup, share keys, mask, unmask"),
        ("client_before_proof_s", "client cost per update before the proof (slowest client)",
         "s CPU", Target("ratio", "<=", 3.0),
         "ours: encrypt + sign + serialize, no proof, no replay-memory hash; SecAgg+: setup, "
         "share keys, mask, unmask"),
        ("server_s", "server cost per round", "s CPU", Target("ratio", "<=", 5.0),
         "ours: verify signatures and every proof, parse, add, finalize; SecAgg+: route shares, "
         "sum masked vectors, rebuild and remove every private mask"),
        ("bytes_per_value", "client-to-server bytes per value", "bytes/value", None,
         f"ours: update (ciphertexts + proof + statement); SecAgg+: all four stages (masked "
         f"vector alone {vector_bytes:.3f})"),
        ("error", "max abs error of the weighted mean", "abs error", None,
         "SecAgg+ quantizes to 2**22 levels over [-8, 8] with stochastic rounding"),
    )  # fmt: skip
    return [
        figure(
            "peers",
            label,
            workload=workload,
            unit=unit,
            ours=ours[key],
            baseline=base[key],
            baseline_name=_BASE,
            higher_is_better=False,
            target=target,
            note=note,
            params=params,
            nvflare=nv[key],
            nvflare_name="NVFlare-style TenSEAL CKKS (N=8192, [60,40,40], 2**40)",
            **({"secaggplus_client_stage_s": stages} if key.startswith("client") else {}),
        )
        for key, label, unit, target, note in rows
    ]
