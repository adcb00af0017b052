"""A ``workers=`` pool for the independent pieces of a round, and per-piece randomness.

Two kinds of pool, chosen per call site by measurement (2-core EPYC, TenSEAL 0.3.18, numpy 2,
numba kernels; 1e6 parameters, ``precise``, 4 clients; medians of four interleaved runs on a
quiet machine, ``benchmarks/README.md``, "Both cores"; speed-up = 1 worker / 2 workers, wall):

* **threads** (``threads=True``) for proof verification, the aggregator's
  (:meth:`~fhe_agg.Aggregator.add_many`) and the key holder's: a proof check is the compiled
  kernels (``nogil=True``) and SHA-256 of megabytes (``hashlib`` drops the GIL above 2 KiB), so
  two threads run it on both cores, with nothing pickled or forked and the memo of verified
  proofs the caller's. Key holder's check of 4 updates: **1.27x on two threads** (0.94x on two
  processes); aggregator, 4 updates: 1.08x on threads when only the proofs ran on the pool
  (0.83x on processes), 1.42–1.64x at 2e6 since each update's whole check does
  (:mod:`fhe_agg.server._update_check`);
* **processes** (the default) for the client's encryption: its chunks spend much of their time
  in SEAL's encoder (a pybind11 call that holds the GIL: two threads encoding take as long as
  one) and numpy on 8192-word rows (short calls that mostly hold it), so two threads are slower
  than one (0.90x) while two processes about break even (1.03x). A process pool is forked where
  the platform forks (Linux): ``spawn`` would re-run the caller's main script in each worker,
  which breaks every script without an ``if __name__ == "__main__"`` guard. A forked worker
  shares the memory image of its parent at the time (secrets included) and nothing else: it
  writes nothing to disk and is stopped at exit (:func:`shutdown_pools`). The workers are
  forked once, at a client's first ``workers > 1`` call; a fork while a pool thread of this
  process is inside a task (another thread of the caller checking proofs at that moment) would
  copy the locks that task holds, so start such a client before, or apart from, the checks.

``workers=1`` never starts a pool and runs everything inline; each pool is made once per kind and
worker count and shared by every role in the process. A task running on a pool thread that calls
:func:`run_ordered` again runs those tasks inline (no task waits for a pool it occupies).

Thread safety (what tasks on the thread pool share): tasks are pure functions of their
arguments, and what they reach besides them is safe under concurrent use. The public-key operand
cache (:func:`~fhe_agg.hazmat.encrypt.fixed_operand`) and the first load of the kernels
(:mod:`fhe_agg.hazmat._accel`) take a lock; numba compiles or loads a kernel from its cache under
its own global compiler lock; the ``lru_cache`` tables (NTT roots, proof parameters, SEAL
backends) and an operand's ``cached_property`` of kernel rows are built from their inputs alone,
so two threads building one entry at once make equal values; the memo of verified proofs
(:mod:`fhe_agg.protocol._wellformed`) is read and written only by callers, under a lock; SEAL
objects are not touched by verification tasks (a pybind11 call into SEAL holds the GIL, and
:mod:`fhe_agg.ckks._seal` names its scratch files per thread).

Results do not depend on ``workers`` or the kind of pool: tasks are pure functions of their
arguments, results are taken in submission order, and a task that raises raises in the caller as
the first failure in that order (what the serial loop would have raised), after every task ran.
Randomness that a task needs is derived before the split (:func:`derive_seeds`,
:class:`DerivedRandom`), so a seeded client makes the same bytes with one worker or many.
"""

from __future__ import annotations

import atexit
import hashlib
import itertools
import multiprocessing
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any, TypeVar

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from fhe_agg.ckks._random import RandomSource

__all__ = [
    "TASK_CPU",
    "THREAD_TASK_CPU",
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

_POOLS: dict[tuple[bool, int], Executor] = {}  # (threads?, workers) -> pool
_POOLS_LOCK = threading.Lock()
_IN_TASK = threading.local()  # .active: this thread is running a task of a thread pool


def check_workers(workers: object) -> int:
    """``workers`` as a positive int, or ``ValueError`` naming the argument."""
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"workers: expected a positive integer, got {workers!r}")
    return workers


def _pool(workers: int, threads: bool) -> Executor:
    with _POOLS_LOCK:  # two threads of the caller (an ingest thread, a holder) share one pool
        pool = _POOLS.get((threads, workers))
        if pool is None:
            if threads:
                pool = ThreadPoolExecutor(workers, thread_name_prefix="fhe_agg-worker")
            else:
                method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
                pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method))
            _POOLS[(threads, workers)] = pool
        return pool


@atexit.register
def shutdown_pools() -> None:
    """Stop every worker process and thread this process started (also run at exit)."""
    with _POOLS_LOCK:
        pools = list(_POOLS.values())
        _POOLS.clear()
    for pool in pools:
        pool.shutdown(wait=True, cancel_futures=True)


def run_ordered(
    fn: Callable[..., T], tasks: Sequence[tuple[Any, ...]], *, workers: int, threads: bool = False
) -> list[T]:
    """``[fn(*t) for t in tasks]``, on ``workers`` threads (``threads``) or processes when
    ``workers > 1`` and there is more than one task. Every task runs; the first exception in
    task order is raised."""
    if workers == 1 or len(tasks) < 2 or getattr(_IN_TASK, "active", False):
        return [fn(*t) for t in tasks]
    pool = _pool(workers, threads)
    timed = _timed_in_thread if threads else _timed
    futures: list[Future[tuple[T, float]]] = [pool.submit(timed, fn, *t) for t in tasks]
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
            (THREAD_TASK_CPU if threads else TASK_CPU).append(seconds)
    if failure is not None:
        raise failure
    return results


#: CPU seconds of the latest tasks run on worker *processes* (not in this process's
#: ``process_time``) and on pool *threads* of this process (already in it): the benchmark's
#: scaling figures clear and read them; bounded, so a long-running server does not grow them.
TASK_CPU: deque[float] = deque(maxlen=4096)
THREAD_TASK_CPU: deque[float] = deque(maxlen=4096)


def _timed(fn: Callable[..., T], *args: Any) -> tuple[T, float]:
    t0 = time.thread_time()
    out = fn(*args)
    return out, time.thread_time() - t0


def _timed_in_thread(fn: Callable[..., T], *args: Any) -> tuple[T, float]:
    _IN_TASK.active = True
    try:
        return _timed(fn, *args)
    finally:
        _IN_TASK.active = False


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
