"""Aggregator figures: ingest throughput (verify + deserialize + add) and peak RSS against the
number of clients, each count in a fresh aggregator process fed through a pipe (the load test).

The producer (this process) has every client encrypt, prove and sign the same vector: the
aggregator's work per update (ML-DSA verification, Merkle root, strict parsing, every
well-formedness proof, modular addition, spooling to disk) does not depend on the values, but the
proofs are bound to their client, so each client encrypts its own copy. The child times only its
own work (thread time in ``add``), so the producer's speed does not enter the figures.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from fhe_agg.bench._harness import Figure, Target, figure, size_label
from fhe_agg.bench._ingest_child import federation, public_key_for
from fhe_agg.bench._proc import write_message
from fhe_agg.ckks._packing import Layout
from fhe_agg.client._client import Client

__all__ = ["ingest_figures"]

_SEED = 2024


_PLAIN_CHILD = Path(__file__).with_name("_plain_child.py")


def _child(mode: str, params: int, clients: int, messages: Any) -> dict[str, Any]:
    if mode == "fhe":
        args = ["-m", "fhe_agg.bench._ingest_child", str(params), str(clients), str(_SEED)]
    else:  # by path: the plaintext server imports numpy only
        args = [str(_PLAIN_CHILD), str(params)]
    proc = subprocess.Popen(
        [sys.executable, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        for message in messages:
            write_message(proc.stdin, message)
        proc.stdin.close()
        out = proc.stdout.read()
    finally:
        code = proc.wait()
    if code != 0:
        raise RuntimeError(f"ingest child ({mode}, {clients} clients) exited with {code}")
    result: dict[str, Any] = json.loads(out)
    if result["accepted"] != clients:
        raise RuntimeError(f"ingest child accepted {result['accepted']} of {clients} updates")
    return result


def _fhe_messages(params: int, clients: int) -> Any:
    config, keys = federation(clients, _SEED)
    public_key = public_key_for(config)
    yield public_key.blob  # the child reads the key first
    layout = Layout.for_vector(params)
    senders = [
        Client(client_id=cid, signing_key=key, config=config, public_key=public_key)
        for cid, key in keys.items()
    ]
    vector = np.random.default_rng(0).uniform(-1.0, 1.0, params)
    for i, client in enumerate(senders):
        chunks = client.encrypt_chunks(vector, round_id=1)
        update = client.sign_update(chunks, layout=layout, round_id=1, weight=1.0 + i)
        yield update.to_bytes()


def _numpy_messages(params: int, clients: int) -> Any:
    values = np.random.default_rng(0).uniform(-1.0, 1.0, params).astype(np.float32).tobytes()
    for i in range(clients):
        yield np.float64(1.0 + i).tobytes() + values


def ingest_figures(params: int, client_counts: tuple[int, ...]) -> list[Figure]:
    """Throughput and peak RSS per client count, and the RSS growth from 10 to 50 clients."""
    runs = {
        k: (
            _child("fhe", params, k, _fhe_messages(params, k)),
            _child("numpy", params, k, _numpy_messages(params, k)),
        )
        for k in client_counts
    }
    size = size_label(params)
    out = [
        f for k, (ours, base) in runs.items() for f in _count_figures(size, params, k, ours, base)
    ]
    return out + _growth_figures(size, runs)


def _count_figures(
    size: str, params: int, k: int, ours: dict[str, Any], base: dict[str, Any]
) -> list[Figure]:
    """Throughput in parameters and bytes, and peak RSS, for ``k`` clients."""
    workload = f"{size}, {k} clients"
    return [
        figure(
            "aggregator_ingest",
            "aggregator ingest (verify + deserialize + add, finalize)",
            workload=workload,
            unit="params/s (1 core)",
            ours=k * params / ours["add_s"],
            baseline=k * params / base["add_s"],
            baseline_name="plaintext numpy weighted mean (float32 messages)",
            higher_is_better=True,
            note="updates streamed through an IngestQueue bounded to two updates",
        ),
        figure(
            "aggregator_ingest_bytes",
            "aggregator ingest rate in bytes of updates (verify + parse + add, finalize)",
            workload=workload,
            unit="bytes/s (1 core)",
            ours=ours["bytes"] / ours["add_s"],
            baseline=k * params * 4 / base["add_s"],
            baseline_name="plaintext numpy weighted mean (float32 messages)",
            higher_is_better=True,
            target=Target("ours", ">=", 1e9),
            note=(
                f"{ours['bytes'] / (k * params):.2f} bytes per parameter on the wire; the "
                f"compiled kernels loaded before the stream ({ours['kernel_load_s']:.2f} s "
                "CPU, once per process), not in the rate"
            ),
        ),
        figure(
            "aggregator_rss",
            "aggregator peak RSS (fresh process)",
            workload=workload,
            unit="MiB",
            ours=ours["peak_rss_mb"],
            baseline=base["peak_rss_mb"],
            baseline_name="plaintext numpy weighted mean process",
            higher_is_better=False,
            note=f"RSS before the first update: ours {ours['rss_before_mb']:.0f}, numpy {base['rss_before_mb']:.0f}",
            queue_bound_bytes=ours["queue_bound_bytes"],
            queue_peak_pending_bytes=ours["queue_peak_pending_bytes"],
        ),
    ]


def _growth_figures(
    size: str, runs: dict[int, tuple[dict[str, Any], dict[str, Any]]]
) -> list[Figure]:
    """Peak RSS growth from the smallest count of at least 10 clients to the largest."""
    out: list[Figure] = []
    low = min((k for k in runs if k >= 10), default=min(runs))
    high = max(runs)
    if high > low:
        out.append(
            figure(
                "aggregator_rss_growth",
                f"aggregator peak RSS growth, {low} -> {high} clients",
                workload=f"{size}, {low} vs {high} clients",
                unit="x (peak RSS ratio)",
                ours=runs[high][0]["peak_rss_mb"] / runs[low][0]["peak_rss_mb"],
                baseline=runs[high][1]["peak_rss_mb"] / runs[low][1]["peak_rss_mb"],
                baseline_name="plaintext numpy weighted mean process",
                higher_is_better=False,
                target=Target("ours", "<=", 1.10),
            )
        )
    return out
