"""One-process simulation of whole rounds with synthetic updates, for demos and measurements.

Every party is real (ML-DSA keys, SEAL encryption, the aggregator's checks, the key holders'
verification); only the network is replaced by function calls. Client vectors are uniform in
[-1, 1] with distinct weights, and the exact numpy weighted mean of the same vectors is computed
in the same run to report the error.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from fhe_agg._aggregator import Aggregator
from fhe_agg._client import Client
from fhe_agg._config import FederationConfig
from fhe_agg._keyholder import KeyHolder
from fhe_agg._keys import generate_single_key
from fhe_agg._packing import Layout
from fhe_agg._params import get_preset
from fhe_agg._random import RandomSource, SeededRandom, default_random
from fhe_agg._signing import SigningKey

__all__ = ["SimulationSpec", "run_simulation"]

Progress = Callable[[str, int], None]


@dataclass(frozen=True, kw_only=True)
class SimulationSpec:
    clients: int = 8
    holders: int = 1
    threshold: int = 1
    params: int = 100_000
    rounds: int = 1
    preset: str = "compact"
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in ("clients", "holders", "threshold", "params", "rounds"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be at least 1")
        if self.threshold > self.holders:
            raise ValueError("threshold: cannot exceed holders")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_simulation(spec: SimulationSpec, *, progress: Progress | None = None) -> dict[str, Any]:
    """Run ``spec.rounds`` rounds and return the measurements of the last one plus totals."""
    if spec.holders != 1 or spec.threshold != 1:
        raise ValueError("holders/threshold: this build supports a single key holder (1-of-1)")
    tick = progress or (lambda _phase, _n: None)
    rng: RandomSource = SeededRandom(spec.seed) if spec.seed is not None else default_random()
    data_rng = np.random.default_rng(spec.seed)  # synthetic model data only, never secrets
    weights = [float(w) for w in data_rng.permutation(np.arange(1, spec.clients + 1)) * 10 + 5]
    config = FederationConfig(
        preset=get_preset(spec.preset),
        min_clients=min(3, spec.clients),
        max_clients=spec.clients,
        max_weight=max(weights),
        value_bound=1.0,
    )
    public_key, share = generate_single_key(config.preset, rng=rng)
    signing = {f"client-{i:03d}": SigningKey.generate() for i in range(spec.clients)}
    roster = {cid: key.verify_key for cid, key in signing.items()}
    clients = [
        Client(client_id=c, signing_key=k, config=config, public_key=public_key)
        for c, k in signing.items()
    ]
    holder = KeyHolder(
        holder_id="holder-1",
        config=config,
        public_key=public_key,
        key_share=share,
        roster=roster,
        rng=rng,
    )
    layout = Layout.for_vector(spec.params)
    result: dict[str, Any] = {}
    for round_id in range(1, spec.rounds + 1):
        result = _run_round(
            spec,
            config,
            clients,
            holder,
            roster,
            public_key,
            layout,
            weights,
            data_rng,
            round_id,
            tick,
        )
    result["peak_rss_mb"] = round(_peak_rss_mb(), 1)
    return result


def _run_round(
    spec: SimulationSpec,
    config: FederationConfig,
    clients: list[Client],
    holder: KeyHolder,
    roster: dict[str, Any],
    public_key: Any,
    layout: Layout,
    weights: list[float],
    data_rng: np.random.Generator,
    round_id: int,
    tick: Progress,
) -> dict[str, Any]:
    encrypt_s = sign_s = aggregate_s = 0.0
    upload_bytes = 0
    expected = np.zeros(spec.params)
    with Aggregator(
        config=config, roster=roster, public_key=public_key, round_id=round_id, layout=layout
    ) as agg:
        for client, weight in zip(clients, weights, strict=True):
            vector = data_rng.uniform(-1.0, 1.0, spec.params)
            expected += weight * vector
            t0 = time.perf_counter()
            prepared, _ = client.prepare(vector)
            chunks = client.encrypt_chunks(prepared * weight)
            t1 = time.perf_counter()
            update = client.sign_update(chunks, layout=layout, round_id=round_id, weight=weight)
            wire = update.to_bytes()
            t2 = time.perf_counter()
            agg.add(wire)
            t3 = time.perf_counter()
            encrypt_s += t1 - t0
            sign_s += t2 - t1
            aggregate_s += t3 - t2
            upload_bytes = len(wire)
            tick("clients", 1)
        t0 = time.perf_counter()
        aggregate = agg.finalize()
        aggregate_s += time.perf_counter() - t0
        t0 = time.perf_counter()
        evidence = agg.evidence(holder.challenge(aggregate))
        mean = holder.decrypt(aggregate, evidence, layout=layout)
        decrypt_s = time.perf_counter() - t0
    expected /= sum(weights)
    tick("rounds", 1)
    return {
        "round": round_id,
        "clients": spec.clients,
        "holders": spec.holders,
        "threshold": spec.threshold,
        "params": spec.params,
        "preset": config.preset.name,
        "scale_bits": config.scale_bits,
        "max_abs_error": float(np.max(np.abs(mean - expected))),
        "bits_per_param_upload": round(8.0 * upload_bytes / spec.params, 2),
        "client_encrypt_s": round(encrypt_s / spec.clients, 4),
        "client_sign_s": round(sign_s / spec.clients, 4),
        "aggregate_s": round(aggregate_s, 4),
        "decrypt_s": round(decrypt_s, 4),
    }
