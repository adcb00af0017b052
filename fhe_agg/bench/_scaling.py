"""From one core to ``workers``: the same work with ``workers=1`` and ``workers=W``, wall clock.

Three pieces, each checked to give the same result both ways: a client's encrypt + prove of one
update (one proof batch covers 128 chunks = 1,048,576 reals: a smaller update is one batch, its
chunks split across the pool and its proof made by the caller, so at most the encryption
halves); the aggregator taking ``clients`` updates together (:meth:`~fhe_agg.Aggregator.add_many`:
every update's whole check is one task); a key holder verifying the aggregate (every client's
proof batches). The client's pool is of processes, the proof checks' of threads
(:mod:`fhe_agg._parallel`). Wall-clock seconds, medians of the repeats; the pools are started
before the timing. On a shared machine the other load enters the wall-clock figures (and Linux's
autogroup scheduling gives one session one share of the CPU however many processes it runs), so
each piece is also reported on its CPU critical path: the caller's CPU time plus the pool tasks'
CPU time shared over the workers, what the wall time would be with a core per worker; it counts
every overhead of the pool (pickling, redrawn witnesses) but not the contention
of the memory bus or of the GIL.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
from numpy.typing import NDArray

from fhe_agg._parallel import TASK_CPU, THREAD_TASK_CPU, run_ordered
from fhe_agg.bench._harness import Figure, client_vectors, figure, size_label, warm_kernels
from fhe_agg.ckks._keys import KeyShare, PublicKey, generate_single_key
from fhe_agg.ckks._packing import Layout
from fhe_agg.ckks._random import SeededRandom
from fhe_agg.client._client import Client
from fhe_agg.holder._keyholder import KeyHolder
from fhe_agg.protocol._config import FederationConfig
from fhe_agg.protocol._signing import SigningKey
from fhe_agg.protocol._wellformed import forget_verified
from fhe_agg.server._aggregator import Aggregator

__all__ = ["scaling_figures"]


def _wall(fn: Callable[[], object], repeats: int, workers: int) -> tuple[float, float, object]:
    """Median wall seconds, median CPU critical path (the caller's CPU time plus the pool
    tasks' CPU time shared evenly over ``workers``: the wall time if every worker had its own
    core), and the result. A pool thread's CPU time is in this process's ``process_time``; a
    worker process's is not."""
    walls, cpus, out = [], [], None
    for _ in range(repeats):
        forget_verified()
        TASK_CPU.clear()
        THREAD_TASK_CPU.clear()
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - t0)
        pooled = sum(TASK_CPU) + sum(THREAD_TASK_CPU)
        caller = time.process_time() - c0 - sum(THREAD_TASK_CPU)
        cpus.append(caller + pooled / workers)
    return float(statistics.median(walls)), float(statistics.median(cpus)), out


def _warm(workers: int) -> None:
    """Start the pools' processes and threads outside the timing, after loading the compiled
    kernels here: forked workers inherit them (else each loads numba in its first timed task)."""
    warm_kernels()
    for threads in (False, True):
        run_ordered(abs, [(-k,) for k in range(workers)], workers=workers, threads=threads)


Clock = dict[str, dict[int, float]]  # piece -> workers -> seconds


@dataclass(frozen=True)
class _Work:
    """What every piece works on: one federation, its clients' keys and vectors."""

    config: FederationConfig
    public_key: PublicKey
    share: KeyShare
    keys: dict[str, SigningKey]
    layout: Layout
    vectors: list[NDArray[np.float64]]
    weights: list[float]


#: A fresh process measures in at most this many seconds (about 30 at the full run's size).
_CHILD_TIMEOUT = 1200


def scaling_figures(params: int, clients: int, workers: int, repeats: int) -> list[Figure]:
    """Speed-up from 1 to ``workers`` workers of the client, the aggregator and a holder,
    measured in a fresh process, as each role runs in a deployment.

    In the process of a whole ``--full`` run (twenty minutes of work up to 1e7 parameters
    before it), two threads contended where a fresh process scaled: on 2026-12-06 the
    aggregator's 2 threads took 1.56 s against 1.21 s on one (0.78x), the same code in a fresh
    process 1.04 s against 1.65 s (1.59x), with nothing else running on the machine either
    time; the cause was not isolated."""
    if workers < 2:
        return []
    args = [str(params), str(clients), str(workers), str(repeats)]
    proc = subprocess.run(
        [sys.executable, "-m", "fhe_agg.bench._scaling", *args],
        stdout=subprocess.PIPE,
        timeout=_CHILD_TIMEOUT,
        check=True,
    )
    figures: list[Figure] = json.loads(proc.stdout)
    return figures


def _scaling_here(params: int, clients: int, workers: int, repeats: int) -> list[Figure]:
    """:func:`scaling_figures`, measured in this process."""
    _warm(workers)
    config = FederationConfig(
        min_clients=min(3, clients), max_clients=clients, max_weight=100.0, value_bound=1.0
    )
    public_key, share = generate_single_key(config.preset)
    keys = {f"client-{i:03d}": SigningKey.generate() for i in range(clients)}
    layout = Layout.for_vector(params)
    vectors, weights = client_vectors(clients, params, seed=31)
    work = _Work(config, public_key, share, keys, layout, vectors, weights)
    seconds, cpu = _measure(work, workers, repeats)
    return _speedup_figures(seconds, cpu, params=params, clients=clients, workers=workers)


def _measure(work: _Work, workers: int, repeats: int) -> tuple[Clock, Clock]:
    """Wall and CPU-critical-path seconds of each piece with 1 and ``workers`` workers;
    :class:`RuntimeError` if a piece gives another result with the pool."""
    config, public_key, layout = work.config, work.public_key, work.layout
    roster = {c: k.verify_key for c, k in work.keys.items()}
    seconds: Clock = {"client": {}, "aggregator": {}, "holder": {}}
    cpu: Clock = {"client": {}, "aggregator": {}, "holder": {}}
    results: dict[str, dict[int, object]] = {"client": {}, "aggregator": {}, "holder": {}}
    cid, key = next(iter(work.keys.items()))
    rounds = iter(range(1, 10_000))

    def encrypt(w: int) -> object:
        client = Client(
            client_id=cid,
            signing_key=key,
            config=config,
            public_key=public_key,
            rng=SeededRandom(b"scaling"),
            workers=w,
        )
        return client.encrypt_chunks(work.vectors[0], round_id=next(rounds)).chunks[0]

    updates = _updates(work)
    made: list[Aggregator] = []

    def ingest(w: int) -> object:
        agg = Aggregator(
            config=config,
            roster=roster,
            public_key=public_key,
            round_id=1,
            layout=layout,
            workers=w,
        )
        made.append(agg)
        assert agg.add_many(updates) == [None] * len(updates)
        return agg.running_sum()

    for w in (1, workers):
        for part, fn in (("client", encrypt), ("aggregator", ingest)):
            seconds[part][w], cpu[part][w], results[part][w] = _wall(partial(fn, w), repeats, w)
        aggregate = made[-1].finalize()
        evidence = made[-1].evidence(range(len(aggregate.chunks)))
        holder = KeyHolder(
            holder_id="h",
            config=config,
            public_key=public_key,
            key_share=work.share,
            roster=roster,
            workers=w,
        )
        check = partial(holder.verify, aggregate, evidence, layout=layout)
        seconds["holder"][w], cpu["holder"][w], results["holder"][w] = _wall(check, repeats, w)
    for agg in made:
        agg.close()
    _check_same(results, workers)
    return seconds, cpu


def _updates(work: _Work) -> list[bytes]:
    """Every client's update of round 1, on the wire."""
    updates = []
    for (c, k), vector, weight in zip(work.keys.items(), work.vectors, work.weights, strict=True):
        client = Client(client_id=c, signing_key=k, config=work.config, public_key=work.public_key)
        updates.append(client.encrypt_update(vector, round_id=1, weight=weight).to_bytes())
    return updates


def _check_same(results: dict[str, dict[int, object]], workers: int) -> None:
    """Every piece gives the same bytes or sums with one worker and with the pool."""
    for part, got in results.items():
        a, b = got[1], got[workers]
        same = np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b  # type: ignore[arg-type]
        if not same:
            raise RuntimeError(f"scaling: {part} gives another result with workers={workers}")


def _speedup_figures(
    seconds: Clock, cpu: Clock, *, params: int, clients: int, workers: int
) -> list[Figure]:
    """Each piece's speed-up, on the wall clock and on its CPU critical path."""
    load = os.getloadavg()[0]
    size = size_label(params)
    labels = {
        "client": ("client encrypt + prove, one update", size, "processes"),
        "aggregator": ("aggregator verify + parse + add", f"{size}, {clients} clients", "threads"),
        "holder": ("key holder's check of the aggregate", f"{size}, {clients} clients", "threads"),
    }
    out = []
    for part, t in seconds.items():
        cp = cpu[part]
        for clock, ours, detail in (
            ("wall clock", t[1] / t[workers], f"wall s: {t[1]:.3f} -> {t[workers]:.3f}"),
            (
                "CPU critical path",
                cp[1] / cp[workers],
                f"CPU s: {cp[1]:.3f} -> {cp[workers]:.3f} (caller + pool tasks / {workers})",
            ),
        ):
            out.append(
                figure(
                    "scaling",
                    f"{labels[part][0]}: speed-up from 1 to {workers} {labels[part][2]} ({clock})",
                    workload=labels[part][1],
                    unit="x (1 worker / W workers)",
                    ours=ours,
                    baseline=float(workers),
                    baseline_name=f"ideal ({workers} cores)",
                    higher_is_better=True,
                    note=f"{detail}; load average {load:.2f} on {os.cpu_count()} CPUs; "
                    "same bytes/sums both ways",
                    params=params,
                    workers=workers,
                )
            )
    return out


if __name__ == "__main__":  # the fresh process of scaling_figures: figures as JSON on stdout
    json.dump(_scaling_here(*(int(a) for a in sys.argv[1:5])), sys.stdout)
