"""The packed ciphertext wire format: exact round trip, and strict refusal of anything else."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from fhe_agg import MalformedMessage, MessageTooLarge, ParameterMismatch
from fhe_agg.ckks._params import PRESETS
from fhe_agg.ckks._seal import backend_for
from fhe_agg.hazmat.packed_format import pack_ciphertext, packed_size, unpack_ciphertext
from fhe_agg.hazmat.seal_format import RawCiphertext

_SCALE_OFFSET = 4 + 1 + 1 + 4 + 32


@pytest.fixture(scope="module")
def setup(updates, config):
    backend = backend_for(config.preset)
    return backend, updates["alpha"].chunks[0]


@pytest.mark.parametrize("preset", ["compact", "precise"])
def test_round_trip_is_exact_and_costs_the_prime_sizes(preset: str) -> None:
    backend = backend_for(PRESETS[preset])
    rng = np.random.default_rng(5)
    data = np.stack(
        [np.stack([rng.integers(0, q, backend.n, dtype=np.uint64) for q in backend.data_primes])]
        * 2
    )
    raw = RawCiphertext(backend.data_parms_id, 2.0**40, data)
    blob = pack_ciphertext(raw, backend.data_primes)
    assert len(blob) == packed_size(backend.n, backend.data_primes)
    bits_per_real = 8 * len(blob) / backend.n
    assert bits_per_real < 2 * sum(q.bit_length() for q in backend.data_primes) + 0.1
    back = backend.parse(blob, what="chunk")
    assert np.array_equal(back.data, data) and back.scale == 2.0**40
    # the extremes of every prime survive packing
    data[:, :, 0] = np.array(backend.data_primes, dtype=np.uint64) - np.uint64(1)
    data[:, :, 1] = 0
    assert np.array_equal(backend.parse(backend.pack(raw), what="chunk").data, data)


@pytest.mark.parametrize("preset", ["compact", "precise"])
def test_parse_into_a_slice_of_a_larger_array(preset: str) -> None:
    """What the aggregator does: every chunk parsed straight into its slot of one array, on the
    compiled path and on numpy's, with the same residues as a parse of its own."""
    from contextlib import nullcontext

    from fhe_agg.hazmat import _accel

    _accel.kernels(1 << 30)  # loaded where numba is installed (the chunks alone are too small)
    backend = backend_for(PRESETS[preset])
    rng = np.random.default_rng(6)
    primes = np.array(backend.data_primes, dtype=np.uint64)[:, None]
    data = rng.integers(0, 2**62, (3, 2, len(backend.data_primes), backend.n), dtype=np.uint64)
    data %= primes
    blobs = [backend.pack(RawCiphertext(backend.data_parms_id, 2.0**40, d)) for d in data]
    for pure in (False, True):
        out = np.full_like(data, 7)
        with _accel.pure_numpy() if pure else nullcontext():
            for k, blob in enumerate(blobs):
                raw = backend.parse(blob, what="chunk", out=out[k])
                assert np.shares_memory(raw.data, out[k])
        assert np.array_equal(out, data)
    with pytest.raises(ValueError, match="out"):
        backend.parse(blobs[0], what="chunk", out=np.empty((2, 1, backend.n), dtype=np.uint64))
    with pytest.raises(MalformedMessage):  # the residue checks still run into a given array
        bad = bytearray(blobs[0])
        bad[-8:] = b"\xff" * 8
        backend.parse(bytes(bad), what="chunk", out=np.empty_like(data[0]))


def test_client_chunks_load_into_seal(setup) -> None:
    backend, blob = setup
    backend.load_ciphertext(blob)


@pytest.mark.parametrize("cut", [0, 1, 20, 50, 51, -1])
def test_truncated_bytes_are_refused(setup, cut: int) -> None:
    backend, blob = setup
    with pytest.raises(MalformedMessage):
        backend.parse(blob[:cut], what="chunk")


def test_one_byte_too_many_is_refused(setup) -> None:
    backend, blob = setup
    with pytest.raises(MalformedMessage):
        backend.parse(blob + b"\x00", what="chunk")


def test_oversized_input_is_refused_before_parsing(setup) -> None:
    backend, blob = setup
    with pytest.raises(MessageTooLarge):
        backend.parse(blob, what="chunk", max_bytes=len(blob) - 1)


@pytest.mark.parametrize(
    ("offset", "error"),
    [(0, MalformedMessage), (4, ParameterMismatch), (5, ParameterMismatch), (6, ParameterMismatch)],
)
def test_header_tampering_is_refused(setup, offset: int, error: type[Exception]) -> None:
    backend, blob = setup
    bad = bytearray(blob)
    bad[offset] ^= 0x5A
    with pytest.raises(error):
        backend.parse(bytes(bad), what="chunk")


def test_other_parameter_level_is_a_parameter_mismatch(setup) -> None:
    backend, blob = setup
    with pytest.raises(ParameterMismatch, match="parms_id"):
        unpack_ciphertext(blob, n=backend.n, primes=backend.data_primes, parms_id=(1, 2, 3, 4))


def test_unreduced_residue_and_transparent_ciphertext_are_refused(setup) -> None:
    backend, blob = setup
    raw = backend.parse(blob, what="chunk")
    width = backend.data_primes[0].bit_length()
    data = raw.data.copy()
    data[0, 0, 5] = np.uint64((1 << width) - 1)  # fits the field, but is >= q
    with pytest.raises(MalformedMessage, match="reduced"):
        backend.parse(backend.pack(RawCiphertext(raw.parms_id, raw.scale, data)), what="chunk")
    data = raw.data.copy()
    data[1] = 0
    with pytest.raises(MalformedMessage, match="transparent"):
        backend.parse(backend.pack(RawCiphertext(raw.parms_id, raw.scale, data)), what="chunk")


@pytest.mark.parametrize("scale", [float("nan"), float("inf"), 0.5, -4.0])
def test_bad_scale_is_refused(setup, scale: float) -> None:
    backend, blob = setup
    bad = blob[:_SCALE_OFFSET] + struct.pack("<d", scale) + blob[_SCALE_OFFSET + 8 :]
    with pytest.raises(MalformedMessage, match="scale"):
        backend.parse(bad, what="chunk")


def test_random_bytes_are_refused(setup) -> None:
    backend, blob = setup
    rng = np.random.default_rng(9)
    for size in (0, 10, len(blob)):
        with pytest.raises(MalformedMessage):
            backend.parse(rng.bytes(size), what="chunk")


@pytest.mark.parametrize("width", [20, 30, 37, 40, 45, 52, 59, 60])
def test_rows_are_one_little_endian_bit_stream(width: int) -> None:
    """The layout is pinned: residue k of a row sits at bits [k*w, (k+1)*w) of one little-endian
    stream, whatever the (un)packing strategy; checked against Python integers."""
    from fhe_agg.hazmat.packed_format import _pack_rows, _unpack_rows

    rng = np.random.default_rng(width)
    rows = rng.integers(0, 1 << width, size=(2, 256), dtype=np.uint64)
    rows[0, :2] = [0, (1 << width) - 1]
    stream = 0
    for k, value in enumerate(rows.ravel().tolist()):
        stream |= value << (k * width)
    expected = stream.to_bytes(rows.size * width // 8, "little")
    assert _pack_rows(rows, width) == expected
    assert np.array_equal(_unpack_rows(expected, 2, 256, width), rows)
