"""Compiled kernels against the pure-numpy code: the same work on each path, same process.

Ours is the default path (numba kernels, :mod:`fhe_agg.hazmat._accel`), the baseline the same
call under :func:`~fhe_agg.hazmat._accel.pure_numpy`; both give the same bits, so each pair does
identical work. The proof's rejection sampling restarts at random (2.02 attempts expected): each
pair of calls draws from the same :class:`~fhe_agg.SeededRandom` seed, so both paths make the
same attempts. Workloads at the precise preset, 3-of-5 holders: one chunk (8,192 parameters) and
one full proof batch (128 chunks, 1,048,576 parameters): encrypt + prove + sign, the proof's
verification alone (:func:`~fhe_agg.hazmat.zkproof.verify`), the aggregator's ``add`` (signature, parse, proof, sum) and a holder's partial
decryption with every chunk sum recomputed and every proof verified.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from fhe_agg.bench._decryption_costs import _HolderRun
from fhe_agg.bench._harness import Figure, figure, warm_kernels
from fhe_agg.bench._proof_costs import _Update
from fhe_agg.ceremony._local import local_key_ceremony
from fhe_agg.ckks._keys import KeyShare, PublicKey
from fhe_agg.ckks._packing import Layout
from fhe_agg.ckks._random import SeededRandom
from fhe_agg.client._client import Client
from fhe_agg.hazmat import _accel
from fhe_agg.hazmat.zkproof import PROOF_BATCH
from fhe_agg.protocol._config import FederationConfig
from fhe_agg.protocol._signing import SigningKey
from fhe_agg.protocol._wellformed import forget_verified
from fhe_agg.server._aggregator import Aggregator

__all__ = ["kernel_figures"]

_BASELINE = "the same call on the pure-numpy path (FHE_AGG_PURE_NUMPY=1), same run"


def _paired(fn: Callable[[int], object], repeats: int) -> tuple[float, float]:
    """Median CPU seconds of ``fn(repetition)`` compiled and pure, in turn within each
    repetition; a ``fn`` that returns a float reports its own timing (of its core step)."""
    times: dict[bool, list[float]] = {False: [], True: []}
    for rep in range(repeats):
        for forced in (False, True):
            with _accel.pure_numpy() if forced else contextlib.nullcontext():
                t0 = time.process_time()
                result = fn(rep)
                elapsed = time.process_time() - t0
            times[forced].append(result if isinstance(result, float) else elapsed)
    return float(np.median(times[False])), float(np.median(times[True]))


def kernel_figures(repeats: int) -> list[Figure]:
    """Compiled-vs-numpy figures for a 1-chunk and a 128-chunk update (see the module doc)."""
    if not _accel.available():
        return []
    warm_kernels()
    config = FederationConfig(
        min_clients=1, max_clients=16, max_weight=10.0, value_bound=1.0, holders=5, threshold=3
    )
    public_key, shares = local_key_ceremony(config)
    key = SigningKey.generate()
    out: list[Figure] = []
    for chunks in (1, PROOF_BATCH):
        params = chunks * config.preset.poly_modulus_degree
        label = f"{chunks} chunk{'s' if chunks > 1 else ''} ({params:,} params), precise, 3-of-5"
        common: dict[str, Any] = {"workload": label, "params": params}
        timings = _timings(chunks, config, public_key, shares, key, repeats)
        for what, (fast, pure) in timings.items():
            per_m = 1e6 / params if chunks == PROOF_BATCH else 1.0
            out.append(
                figure(
                    "kernels",
                    f"{what}: compiled kernels",
                    unit="s per 1e6 params (1 core)" if chunks == PROOF_BATCH else "s per update",
                    ours=fast * per_m,
                    baseline=pure * per_m,
                    baseline_name=_BASELINE,
                    higher_is_better=False,
                    note=f"speed-up {pure / fast:.2f}x" if fast else "",
                    **common,
                )
            )
    return out


def _timings(
    chunks: int,
    config: FederationConfig,
    public_key: PublicKey,
    shares: list[KeyShare],
    key: SigningKey,
    repeats: int,
) -> dict[str, tuple[float, float]]:
    """Compiled and pure-numpy median seconds of each step on an update of ``chunks`` chunks;
    a holder's partial decryption for the full proof batch only."""
    params = chunks * config.preset.poly_modulus_degree
    vector = np.random.default_rng(params).uniform(-1.0, 1.0, params)
    layout = Layout.for_vector(params)
    roster = {"client-000": key.verify_key}

    def client(seed: int) -> Client:
        return Client(
            client_id="client-000",
            signing_key=key,
            config=config,
            public_key=public_key,
            rng=SeededRandom(seed),
        )

    def encrypt(seed: int) -> bytes:
        return client(seed).encrypt_update(vector, round_id=1, weight=1.0).to_bytes()

    blob = encrypt(0)

    def ingest(_: int) -> None:
        forget_verified()
        agg = Aggregator(
            config=config, roster=roster, public_key=public_key, round_id=1, layout=layout
        )
        with agg:
            agg.add(blob)

    timings = {"encrypt + prove + sign": _paired(encrypt, repeats)}
    update = _Update("precise", vector)
    update.encrypt()
    update.prove()
    timings["verify the proof"] = _paired(functools.partial(_verify, update), repeats)
    timings["aggregator add (verify signature + proof, parse, sum)"] = _paired(ingest, repeats)
    if chunks == PROOF_BATCH:
        agg = Aggregator(
            config=config, roster=roster, public_key=public_key, round_id=1, layout=layout
        )
        with agg:
            agg.add(blob)
            run = _HolderRun(config, public_key, shares, roster, agg, agg.finalize(), layout)
            timings["partial decryption per holder (every chunk sum, every proof)"] = _paired(
                functools.partial(_partial_seconds, run), repeats
            )
    return timings


def _verify(update: _Update, _: int) -> None:
    update.verify()


def _partial_seconds(run: _HolderRun, _: int) -> float:
    return run.timed_partial(None, 1)[0]
