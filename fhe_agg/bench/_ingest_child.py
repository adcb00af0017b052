"""One aggregator process for the ingest and load figures: ``python -m fhe_agg.bench._ingest_child``.

Peak RSS (``VmHWM``) only grows within a process, so each client count runs in a fresh
process. The parent streams length-prefixed signed encrypted updates (bytes as from the network)
to this process's stdin; the main thread submits them to an :class:`~fhe_agg.IngestQueue`
bounded to two updates, whose worker verifies and adds them into one
:class:`~fhe_agg.Aggregator`; the round is finalized at the end. Both sides derive the federation
from ``seed`` (keys from seeds), so nothing secret crosses the pipe. Prints one JSON object:
seconds spent adding, the bytes of the updates, peak RSS, RSS before the first update, the queue's bound and peak,
and the CPU seconds of loading the compiled kernels before the stream (as a long-running aggregator does once).
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from typing import Any, BinaryIO

from fhe_agg.bench._harness import warm_kernels
from fhe_agg.bench._proc import peak_rss_mb, read_messages
from fhe_agg.ckks._keys import PublicKey, generate_single_key
from fhe_agg.ckks._packing import Layout
from fhe_agg.protocol._config import FederationConfig
from fhe_agg.protocol._signing import SigningKey
from fhe_agg.server._aggregator import Aggregator
from fhe_agg.server._ingest import IngestQueue

__all__ = ["federation", "main"]


#: Bound of the first message on the pipe: the joint public key (a few MiB at most).
_MAX_KEY_BYTES = 64 << 20


def federation(clients: int, seed: int) -> tuple[FederationConfig, dict[str, SigningKey]]:
    """The same federation on both sides of the pipe (default precise preset, 1-of-1); the
    parent makes the public key (from the OS CSPRNG) and sends it first."""
    config = FederationConfig(
        min_clients=min(3, clients), max_clients=max(clients, 3), max_weight=100.0, value_bound=1.0
    )
    keys = {
        f"client-{i:03d}": SigningKey.from_seed(hashlib.sha256(f"{seed}/{i}".encode()).digest())
        for i in range(clients)
    }
    return config, keys


def public_key_for(config: FederationConfig) -> PublicKey:
    """A fresh 1-of-1 public key for the benchmark (its secret is dropped)."""
    return generate_single_key(config.preset)[0]


class _TimedAggregator(Aggregator):
    """The aggregator, with the time spent in :meth:`add` summed."""

    add_seconds = 0.0

    def add(self, update: Any) -> None:
        t0 = time.thread_time()
        try:
            super().add(update)
        finally:
            self.add_seconds += time.thread_time() - t0


def _run_fhe(params: int, clients: int, seed: int, stream: BinaryIO) -> dict[str, Any]:
    config, keys = federation(clients, seed)
    public_key = PublicKey.from_bytes(config.preset, next(read_messages(stream, _MAX_KEY_BYTES)))
    roster = {cid: key.verify_key for cid, key in keys.items()}
    layout = Layout.for_vector(params)
    with _TimedAggregator(
        config=config, roster=roster, public_key=public_key, round_id=1, layout=layout
    ) as agg:
        bound = 2 * agg.bounds.update_bytes
        t0 = time.process_time()
        warm_kernels()  # once per aggregator process, not per round: kept out of the rate
        kernel_load_s = time.process_time() - t0
        rss_before = peak_rss_mb()
        queue = IngestQueue(agg, max_pending_bytes=bound, max_pending=2)
        ingested = 0
        for message in read_messages(stream, agg.bounds.update_bytes):
            ingested += len(message)
            queue.submit(message)
        queue.close()
        t0 = time.thread_time()
        aggregate = agg.finalize()
        finalize_s = time.thread_time() - t0
        return {
            "accepted": queue.accepted,
            "rejected": len(queue.rejected),
            "add_s": agg.add_seconds + finalize_s,  # type: ignore[attr-defined]
            "kernel_load_s": kernel_load_s,
            "rss_before_mb": rss_before,
            "peak_rss_mb": peak_rss_mb(),
            "queue_bound_bytes": bound,
            "queue_peak_pending_bytes": queue.peak_pending_bytes,
            "chunks": len(aggregate.chunks),
            "bytes": ingested,
        }


def main(argv: list[str]) -> int:
    params, clients, seed = int(argv[0]), int(argv[1]), int(argv[2])
    result = _run_fhe(params, clients, seed, sys.stdin.buffer)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
