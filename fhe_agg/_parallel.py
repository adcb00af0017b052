"""A ``workers=`` pool for the independent pieces of a round, and per-piece randomness.

Measured on this stack (TenSEAL 0.3.18, numpy 2, 2-core EPYC): two *threads* verifying two
proof batches take as long as one thread verifying both (3.2 s against 3.3 s): the NTTs and
SEAL's encoder run as many short numpy/pybind11 calls that hold the GIL most of the time. So the
pool is one of *processes*, made once per worker count and shared by every role in the process;
``workers=1`` never starts one and runs everything inline. Where the platform forks (Linux) the
workers are forked: ``spawn`` would re-run the caller's main script in each worker, which breaks
every script without an ``if __name__ == "__main__"`` guard. A forked worker shares the memory
image of its parent at the time (secrets included) and nothing else: it writes nothing to disk
and is stopped at exit (:func:`shutdown_pools`).

Results do not depend on ``workers``: tasks are pure functions of their arguments, results are
taken in submission order, and a task that raises raises in the caller as the first failure in
that order (what the serial loop would have raised). Randomness that a task needs is derived
before the split (:func:`derive_seeds`, :class:`DerivedRandom`), so a seeded client makes the same
bytes with one worker or many.
"""

from __future__ import annotations

import atexit
import hashlib
import itertools
import multiprocessing
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, TypeVar

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from fhe_agg.ckks._random import RandomSource

__all__ = [
    "TASK_CPU",
    "DerivedRandom",
    "check_workers",
    "derive_seeds",
    "run_ordered",
    "shutdown_pools",
    "split",
]

T = TypeVar("T")

#: Bytes of a derived seed (an AES-256 key's worth of the parent source's output).
SEED_BYTES = 32

_POOLS: dict[int, ProcessPoolExecutor] = {}


def check_workers(workers: object) -> int:
    """``workers`` as a positive int, or ``ValueError`` naming the argument."""
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"workers: expected a positive integer, got {workers!r}")
    return workers


def _pool(workers: int) -> ProcessPoolExecutor:
    pool = _POOLS.get(workers)
    if pool is None:
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method))
        _POOLS[workers] = pool
    return pool


@atexit.register
def shutdown_pools() -> None:
    """Stop every worker process this process started (also run at exit)."""
    while _POOLS:
        _, pool = _POOLS.popitem()
        pool.shutdown(wait=True, cancel_futures=True)


def run_ordered(fn: Callable[..., T], tasks: Sequence[tuple[Any, ...]], *, workers: int) -> list[T]:
    """``[fn(*t) for t in tasks]``, on ``workers`` processes when ``workers > 1`` and there is
    more than one task. Every task runs; the first exception in task order is raised."""
    if workers == 1 or len(tasks) < 2:
        return [fn(*t) for t in tasks]
    pool = _pool(workers)
    futures: list[Future[tuple[T, float]]] = [pool.submit(_timed, fn, *t) for t in tasks]
    failure: BaseException | None = None
    results: list[T] = []
    for future in futures:
        try:
            out, seconds = future.result()
        except BaseException as exc:  # the first in order wins, as in the serial loop
            if failure is None:
                failure = exc
        else:
            results.append(out)
            TASK_CPU.append(seconds)
    if failure is not None:
        raise failure
    return results


#: CPU seconds of the latest tasks run on a pool in this process (the benchmark's scaling figures
#: clear and read it: a worker's CPU time is not in this process's ``process_time``); bounded,
#: so a long-running server does not grow it.
TASK_CPU: deque[float] = deque(maxlen=4096)


def _timed(fn: Callable[..., T], *args: Any) -> tuple[T, float]:
    t0 = time.thread_time()
    out = fn(*args)
    return out, time.thread_time() - t0


def derive_seeds(rng: RandomSource, count: int) -> list[bytes]:
    """``count`` independent seeds drawn in order from ``rng`` (one per independent piece)."""
    return [rng.bytes(SEED_BYTES) for _ in range(count)]


class DerivedRandom:
    """A CSPRNG for one piece of work: AES-256-CTR keyed by SHA3-256 of a label, a seed drawn
    from the caller's source and a sub-index. With a seed from the OS CSPRNG it is as good a
    source as the OS's for encryption randomness and proof masks (never used for key
    material); it lets a piece run in another process and still draw exactly the bytes it
    would have drawn in this one."""

    def __init__(self, seed: bytes, label: str, index: int = 0) -> None:
        if len(seed) != SEED_BYTES:
            raise ValueError(f"seed: expected {SEED_BYTES} bytes, got {len(seed)}")
        key = hashlib.sha3_256(
            b"fhe_agg/derived-random|"
            + label.encode()
            + b"|"
            + index.to_bytes(8, "little")
            + b"|"
            + seed
        ).digest()
        self._stream = Cipher(algorithms.AES(key), modes.CTR(bytes(16))).encryptor()

    def bytes(self, n: int) -> bytes:
        return self._stream.update(bytes(n))

    def __repr__(self) -> str:
        return "DerivedRandom(<seed hidden>)"


def split(count: int, parts: int) -> list[range]:
    """``range(count)`` cut into at most ``parts`` consecutive, nearly equal, non-empty runs."""
    parts = max(1, min(parts, count))
    bounds = [count * k // parts for k in range(parts + 1)]
    return [range(a, b) for a, b in itertools.pairwise(bounds) if b > a]
