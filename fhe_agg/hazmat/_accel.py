"""Which kernels run: numba-compiled loops (:mod:`._kernels`) or the pure-numpy code.

The compiled kernels are optional (``pip install 'fhe-agg[fast]'``). They are used when numba
imports and the environment variable :data:`PURE_NUMPY_ENV` is not ``1``; nothing is imported or
compiled until the first call that needs a kernel, so ``import fhe_agg`` costs the same with or
without numba. Loading numba and its compiler costs about 1.4 s once per process (0.5 s import,
0.9 s to set up its target; the kernels themselves then load from the on-disk cache in
milliseconds, or compile in about 4 s the first time on a machine), so calls on fewer than
:data:`LOAD_MIN` values keep to numpy until something larger has loaded the kernels: a key
generation or a small test never pays for it. Both paths give the same bits (``tests/test_kernels.py``), so the choice only
changes speed. :func:`pure_numpy` forces the numpy path for a block (tests, benchmarks).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

__all__ = [
    "LOAD_MIN",
    "PURE_NUMPY_ENV",
    "available",
    "backend",
    "installed",
    "kernels",
    "pure_numpy",
]

#: Set to ``1`` to run the pure-numpy code even where numba is installed.
PURE_NUMPY_ENV = "FHE_AGG_PURE_NUMPY"

#: Calls on fewer values than this run numpy unless the kernels are loaded already (about 15 ms of
#: numpy NTTs, against 1.4 s to load numba).
LOAD_MIN = 1 << 17

_loaded: list[ModuleType | None] = []  # [module or None] once the import was tried
_load_lock = threading.Lock()  # pool threads may make the first kernel call at once
_forced_pure = 0


def _load() -> ModuleType | None:
    if _loaded:
        return _loaded[0]
    with _load_lock:
        if not _loaded:
            module: ModuleType | None = None
            if sys.byteorder == "little":  # the bit packing kernels assume little-endian words
                try:
                    from fhe_agg.hazmat import _kernels

                    module = _kernels
                except ImportError:
                    module = None
            _loaded.append(module)
        return _loaded[0]


def kernels(size: int = LOAD_MIN) -> ModuleType | None:
    """The compiled kernel module for a call on ``size`` values, or ``None`` to run numpy."""
    if _forced_pure or os.environ.get(PURE_NUMPY_ENV) == "1":
        return None
    if not _loaded and size < LOAD_MIN:
        return None
    return _load()


def available() -> bool:
    """Whether the compiled kernels can run here (numba installed and importable)."""
    return _load() is not None


def installed() -> bool:
    """Whether the compiled kernels may run here, without importing numba: it is installed and
    :data:`PURE_NUMPY_ENV` does not turn it off (for estimates made before any kernel runs)."""
    if os.environ.get(PURE_NUMPY_ENV) == "1" or sys.byteorder != "little":
        return False
    return _loaded[0] is not None if _loaded else importlib.util.find_spec("numba") is not None


def backend() -> str:
    """``"numba"`` or ``"numpy"``: what the next kernel call will run."""
    return "numpy" if kernels() is None else "numba"


@contextmanager
def pure_numpy() -> Iterator[None]:
    """Run the pure-numpy code inside the block (not thread-safe: a process-wide switch)."""
    global _forced_pure
    _forced_pure += 1
    try:
        yield
    finally:
        _forced_pure -= 1
