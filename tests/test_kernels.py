"""The compiled kernels give the pure-numpy code's bits, and the numpy path stays selectable.

Every kernel runs on random inputs at every preset's primes next to the numpy code under
:func:`fhe_agg.hazmat._accel.pure_numpy`; an end-to-end proof made on each path must be the same
bytes. The numpy path itself is checked against SEAL and exact integers in ``test_hazmat.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fhe_agg import SeededRandom
from fhe_agg.ckks._params import PRESETS
from fhe_agg.ckks._seal import backend_for
from fhe_agg.hazmat import _accel
from fhe_agg.hazmat.ntt import kernel_twiddle_order, ntt_tables
from fhe_agg.hazmat.packed_format import _pack_rows, _unpack_rows, pack_residues, unpack_residues
from fhe_agg.hazmat.rlwe import (
    FixedOperand,
    add_polys,
    encrypt_ntt,
    mul_fixed,
    ntt_mul_add,
    to_ntt_batch,
    wide_to_ntt_batch,
)
from fhe_agg.hazmat.rns import mul_shoup, shoup_quotient
from fhe_agg.hazmat.sampling import (
    EXPAND_MIN,
    KEY_ERROR_TAIL,
    MAX_RADIUS,
    NOISE_TAIL,
    flooding_gaussian,
    rounded_gaussian,
)
from fhe_agg.hazmat.zkparams import proof_parameters
from fhe_agg.hazmat.zkproof import (
    _combine_mod,
    _small_product,
    _SmallOperand,
    challenge_matrix,
    prove,
    verify,
)

pytest.importorskip("numba")

PRESET_NAMES = sorted({p.name for p in PRESETS.values()})
REPO = Path(__file__).resolve().parents[1]


def _both(fn: Callable[[], Any]) -> tuple[Any, Any]:
    """``fn()`` on the compiled path, then on the pure-numpy one."""
    assert _accel.backend() == "numba"
    compiled = fn()
    with _accel.pure_numpy():
        assert _accel.backend() == "numpy"
        pure = fn()
    return compiled, pure


def _primes(name: str) -> tuple[int, ...]:
    return backend_for(PRESETS[name]).key_primes


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_ntt_of_residues_and_of_signed_polynomials(preset: str) -> None:
    n, primes = backend_for(PRESETS[preset]).n, _primes(preset)
    g = np.random.default_rng(1)
    for q in primes:
        residues = g.integers(0, q, (3, n), dtype=np.uint64)
        residues[0, :4] = (0, q - 1, 1, q - 2)
        compiled, pure = _both(lambda q=q, r=residues: ntt_tables(n, q).forward(r))
        assert np.array_equal(compiled, pure)
        assert compiled.dtype == np.uint64 and int(compiled.max()) < q
    for bound in (1, 2**20, 2**62):
        signed = g.integers(-bound, bound, (5, n), dtype=np.int64)
        compiled, pure = _both(lambda s=signed: to_ntt_batch(s, n, primes))
        assert np.array_equal(compiled, pure)
    extreme = np.array([[-(2**63)] * (n // 2) + [2**63 - 1] * (n // 2)], dtype=np.int64)
    compiled, pure = _both(lambda: to_ntt_batch(extreme, n, primes))
    assert np.array_equal(compiled, pure)
    fixed = FixedOperand.of(to_ntt_batch(signed[:1], n, primes)[0], primes)
    compiled, pure = _both(lambda: ntt_mul_add(signed, fixed, signed[::-1], n, primes))
    assert np.array_equal(compiled, pure)
    wide = flooding_gaussian(2 * n, 2.0**60, SeededRandom(5)).reshape(2, n)  # step > 1
    compiled, pure = _both(lambda: wide_to_ntt_batch(wide, n, primes))
    assert np.array_equal(compiled, pure)


@pytest.mark.parametrize("n", [2, 4, 8, 16, 32, 1024])
def test_ntt_at_small_ring_degrees(n: int) -> None:
    """The transposed last stages (n >= 8) and the plain loop below 8 give numpy's bits."""
    q = _primes("precise")[0]  # 1 mod 2 * 8192, so an NTT prime for every n here
    order = kernel_twiddle_order(n)
    assert sorted(order.tolist()) == list(range(n))  # a permutation of the table
    residues = np.random.default_rng(n).integers(0, q, (4, n), dtype=np.uint64)
    compiled, pure = _both(lambda: ntt_tables(n, q).forward(residues))
    assert np.array_equal(compiled, pure)


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_shoup_products_and_sums(preset: str) -> None:
    n, primes = backend_for(PRESETS[preset]).n, _primes(preset)
    g = np.random.default_rng(2)
    top = np.array(primes, dtype=np.uint64)[:, None]
    x = (g.integers(0, 2**63, (4, len(primes), n), dtype=np.uint64) % top).astype(np.uint64)
    y = (g.integers(0, 2**63, (4, len(primes), n), dtype=np.uint64) % top).astype(np.uint64)
    x[0, :, 0], y[0, :, 0] = top[:, 0] - 1, top[:, 0] - 1
    fixed = FixedOperand.of(y[1], primes)
    compiled, pure = _both(lambda: mul_fixed(x, fixed, primes))
    assert np.array_equal(compiled, pure)
    compiled, pure = _both(lambda: mul_fixed(x[2, :1], fixed.rows(1), primes[:1]))
    assert np.array_equal(compiled, pure)
    compiled, pure = _both(lambda: add_polys(x, y, primes))
    assert np.array_equal(compiled, pure)
    # in place (a running sum): the same bits on both paths, into the first operand itself
    in_place = _both(lambda: add_polys(acc := x.copy(), y, primes, out=acc))
    assert all(np.array_equal(got, compiled) for got in in_place)
    with pytest.raises(ValueError, match="C-contiguous"):
        add_polys(x, y, primes, out=np.empty((*x.shape[:-1], 2 * n), np.uint64)[..., ::2])
    for i, q in enumerate(primes):
        full = g.integers(0, 2**64 - 1, (3, n), dtype=np.uint64)  # any x < 2**64
        for w in (y[0, i], y[0, i, :1], np.array([q - 1], dtype=np.uint64)):
            operand = np.broadcast_to(w, full.shape) if w.size > 1 else w
            got, want = _both(
                lambda o=operand, q=q, f=full: mul_shoup(f, o, shoup_quotient(o, q), q)
            )
            assert np.array_equal(got, want)
    exact = [
        [(int(a) * int(b)) % q for a, b in zip(x[3, i, :64], y[1, i, :64], strict=True)]
        for i, q in enumerate(primes)
    ]
    assert compiled.dtype == np.uint64
    assert mul_fixed(x, fixed, primes)[3, :, :64].tolist() == exact


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_public_key_encryption_of_a_chunk(preset: str) -> None:
    """The fused encryption kernel against NTT, products and sums composed in numpy, at the
    data primes (as clients encrypt) and at every key prime, for honest and extreme inputs."""
    backend = backend_for(PRESETS[preset])
    n = backend.n
    g = np.random.default_rng(4)
    for primes in (backend.data_primes, _primes(preset)):
        top = np.array(primes, dtype=np.uint64)[:, None]
        pk0, a, plain = (
            (g.integers(0, 2**63, (len(primes), n), dtype=np.uint64) % top).astype(np.uint64)
            for _ in range(3)
        )
        plain[:, 0], pk0[:, 0], a[:, 0] = top[:, 0] - 1, top[:, 0] - 1, top[:, 0] - 1
        key = (FixedOperand.of(pk0, primes), FixedOperand.of(a, primes))
        for bound in (2, 20, 2**62):
            u, e0, e1 = (g.integers(-bound, bound, n, dtype=np.int64) for _ in range(3))
            compiled, pure = _both(partial(encrypt_ntt, u, e0, e1, plain, *key, primes))
            assert np.array_equal(compiled, pure)
            assert compiled.shape == (2, len(primes), n) and compiled.dtype == np.uint64
            assert all(int(compiled[:, i].max()) < q for i, q in enumerate(primes))
        u_ntt, e1_ntt = to_ntt_batch(np.stack([u, e1]), n, primes)
        c1 = add_polys(mul_fixed(u_ntt, key[1], primes), e1_ntt, primes)
        assert np.array_equal(compiled[1], c1)


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_bit_packing_at_the_preset_and_proof_widths(preset: str) -> None:
    n, primes = backend_for(PRESETS[preset]).n, _primes(preset)
    p = proof_parameters(n)
    g = np.random.default_rng(3)
    widths = sorted({q.bit_length() for q in primes} | {p.width_u, p.width_e, 1, 7, 63, 64})
    for width in widths:
        rows = g.integers(0, 2**62, (3, n), dtype=np.uint64) * np.uint64(4) + np.uint64(3)
        rows >>= np.uint64(64 - width)
        rows[0, :2] = (0, (1 << width) - 1)
        compiled, pure = _both(lambda r=rows, w=width: _pack_rows(r, w))
        assert compiled == pure and len(compiled) == 3 * n * width // 8
        # unaligned buffer, as inside a proof (after its magic and seed)
        view = memoryview(b"\x00" * 5 + compiled)[5:]
        back, back_pure = _both(lambda v=view, w=width: _unpack_rows(v, 3, n, w))
        assert np.array_equal(back, back_pure) and np.array_equal(back, rows)
    residues = (g.integers(0, 2**63, (2, len(primes), n), dtype=np.uint64)) % np.array(
        primes, dtype=np.uint64
    )[:, None].astype(np.uint64)
    blob, blob_pure = _both(lambda: pack_residues(residues, primes))
    assert blob == blob_pure
    back, _ = _both(lambda: unpack_residues(blob, rows=2, n=n, primes=primes))
    assert np.array_equal(back, residues)


@pytest.mark.parametrize(
    ("sigma", "tail"),
    [(3.2, KEY_ERROR_TAIL), (1.0, NOISE_TAIL), (2.0**20, NOISE_TAIL), (2.0**40, MAX_RADIUS)],
)
def test_gaussian_sampler_draws_the_same_integers(sigma: float, tail: float) -> None:
    for n in (1, EXPAND_MIN - 1, EXPAND_MIN, 300_001):
        compiled, pure = _both(lambda n=n: rounded_gaussian(n, sigma, SeededRandom(n), tail=tail))
        assert compiled.shape == (n,) and np.array_equal(compiled, pure)
    assert np.all(np.abs(compiled) <= tail * sigma + 0.5)
    wide, wide_pure = _both(lambda: flooding_gaussian(4096, 2.0**60, SeededRandom(4)))
    assert np.array_equal(wide.high, wide_pure.high) and np.array_equal(wide.low, wide_pure.low)


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_challenge_combination_of_a_batch(preset: str) -> None:
    backend = backend_for(PRESETS[preset])
    n, primes = backend.n, backend.data_primes
    g = np.random.default_rng(6)
    top = np.array(primes, dtype=np.uint64)[:, None]
    for chunks in (1, 5, 128):
        c1 = (g.integers(0, 2**63, (chunks, len(primes), n), dtype=np.uint64) % top).astype(
            np.uint64
        )
        c1[0, :, :3] = top - np.uint64(1)
        w = challenge_matrix(bytes([chunks]) * 32, 24, chunks)
        w[0] = 1.0  # a row adding every chunk, each at q - 1 in its first coefficients
        compiled, pure = _both(lambda w=w, c1=c1: _combine_mod(w, c1, primes))
        assert np.array_equal(compiled, pure)
        # the verifier's form, t - W c1 in place (t with zeros and q - 1 at the edges)
        t = (g.integers(0, 2**63, (24, len(primes), n), dtype=np.uint64) % top).astype(np.uint64)
        t[0, :, :2], t[1, :, :2] = 0, top - np.uint64(1)
        diff, diff_pure = _both(lambda w=w, c1=c1, t=t: _combine_mod(w, c1, primes, t.copy()))
        assert np.array_equal(diff, diff_pure)
        for i, q in enumerate(primes):
            assert np.array_equal(
                diff[:, i], (t[:, i] + (np.uint64(q) - pure[:, i])) % np.uint64(q)
            )


@pytest.mark.parametrize("chunks", [1, 5, 123, 128])
def test_challenge_products_of_the_witnesses(chunks: int) -> None:
    """The prover's ``W @ x`` (int32 subset sums compiled, float32 or float64 BLAS in numpy)
    is the exact integer product, at the honest bounds and at each switch of method."""
    g = np.random.default_rng(chunks)
    w = challenge_matrix(bytes([chunks]) * 32, 192, chunks)
    w[0] = 1.0  # an all-ones row: the largest sums
    for top, n in ((1, 8192), (19, 300), (2**24 // chunks, 8192), (2**31 // chunks, 64)):
        x = g.integers(-top, top + 1, (chunks, n), dtype=np.int64)
        x[:, 0], x[:, 1] = top, -top
        compiled, pure = _both(lambda x=x: _small_product(w, x))
        assert compiled.dtype == pure.dtype == np.int64
        assert np.array_equal(compiled, pure)
        assert np.array_equal(compiled, w.astype(np.int64) @ x)
        assert compiled[0, 0] == chunks * top


def test_a_kept_operand_serves_several_challenges_and_wipes_its_copy() -> None:
    """The prover's witnesses are prepared once for all its attempts: each product with a new
    ``W`` is still exact, and the int32 copy is zero after :meth:`_SmallOperand.wipe`."""
    g = np.random.default_rng(7)
    x = g.integers(-19, 20, (128, 8192), dtype=np.int64)
    operand = _SmallOperand(x)
    for seed in (b"a", b"b"):
        w = challenge_matrix(seed * 32, 192, 128)
        bits = np.ascontiguousarray(w != 0, dtype=np.uint8)
        assert np.array_equal(operand.times(w, bits), w.astype(np.int64) @ x)
        assert np.array_equal(operand.times(w), _small_product(w, x))
    copy = operand._small
    assert copy is not None and copy.any()
    operand.wipe()
    assert not copy.any()


@pytest.mark.slow
@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_a_proof_is_the_same_bytes_on_both_paths(preset: str) -> None:
    from tests.threshold_math.zkproof_helpers import make_batch

    batch = make_batch(preset, 2)
    compiled, pure = _both(
        lambda: prove(batch.statement, batch.c1, batch.witnesses, SeededRandom(9))
    )
    assert compiled == pure
    verify(batch.statement, batch.c1, compiled)
    with _accel.pure_numpy():
        verify(batch.statement, batch.c1, compiled)


def test_the_environment_variable_selects_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(_accel.PURE_NUMPY_ENV, "1")
    assert _accel.kernels() is None and _accel.backend() == "numpy"
    assert _accel.available()
    monkeypatch.setenv(_accel.PURE_NUMPY_ENV, "0")
    assert _accel.backend() == "numba"


def _python(code: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop(_accel.PURE_NUMPY_ENV, None)
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_import_does_not_load_numba_and_numba_absent_falls_back_to_numpy() -> None:
    assert _python("import sys, fhe_agg; print('numba' in sys.modules)") == "False"
    out = _python(
        "import sys; sys.modules['numba'] = None\n"
        "import numpy as np\n"
        "from fhe_agg.hazmat import _accel\n"
        "from fhe_agg.hazmat.rlwe import to_ntt_batch\n"
        "x = to_ntt_batch(np.arange(64, dtype=np.int64)[None], 64, (257,))\n"
        "print(_accel.available(), _accel.backend(), x.shape)"
    )
    assert out == "False numpy (1, 1, 64)"


def test_small_calls_do_not_load_numba_and_large_ones_do() -> None:
    out = _python(
        "import sys\n"
        "import numpy as np\n"
        "from fhe_agg.hazmat.rlwe import to_ntt_batch\n"
        "to_ntt_batch(np.ones((1, 64), dtype=np.int64), 64, (257,))\n"
        "small = 'numba' in sys.modules\n"
        "to_ntt_batch(np.ones((1024, 256), dtype=np.int64), 256, (7681,))\n"
        "print(small, 'numba' in sys.modules)"
    )
    assert out == "False True"


def test_installed_answers_without_importing_numba(monkeypatch: pytest.MonkeyPatch) -> None:
    # the CLI's memory estimate asks before any kernel runs; it must not pay numba's import
    code = "import sys; from fhe_agg.hazmat import _accel; print(_accel.installed(), 'numba' in sys.modules)"
    assert _python(code) == "True False"
    monkeypatch.setenv(_accel.PURE_NUMPY_ENV, "1")
    assert not _accel.installed()
