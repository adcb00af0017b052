"""Which kernels run: numba-compiled loops (:mod:`._kernels`) or the pure-numpy code.

The compiled kernels are optional (``pip install 'fhe-agg[fast]'``). They are used when numba
imports and the environment variable :data:`PURE_NUMPY_ENV` is not ``1``; nothing is imported or
compiled until the first call that needs a kernel, so ``import fhe_agg`` costs the same with or
without numba. Both paths give the same bits (``tests/test_kernels.py``), so the choice only
changes speed. :func:`pure_numpy` forces the numpy path for a block (tests, benchmarks).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

__all__ = ["PURE_NUMPY_ENV", "available", "backend", "kernels", "pure_numpy"]

#: Set to ``1`` to run the pure-numpy code even where numba is installed.
PURE_NUMPY_ENV = "FHE_AGG_PURE_NUMPY"

_loaded: list[ModuleType | None] = []  # [module or None] once the import was tried
_forced_pure = 0


def _load() -> ModuleType | None:
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


def kernels() -> ModuleType | None:
    """The compiled kernel module, or ``None`` to run the pure-numpy code."""
    if _forced_pure or os.environ.get(PURE_NUMPY_ENV) == "1":
        return None
    return _load()


def available() -> bool:
    """Whether the compiled kernels can run here (numba installed and importable)."""
    return _load() is not None


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
