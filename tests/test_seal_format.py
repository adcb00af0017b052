"""Strict, bounded parsing of SEAL serializations: tampered, truncated, +-1 length.

Updates travel in the packed format (tests/test_packed_format.py); SEAL's own serialization is
still parsed for public keys and built for everything handed to SEAL.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest

from fhe_agg import MalformedMessage, MessageTooLarge, ParameterMismatch
from fhe_agg.ckks._seal import backend_for
from fhe_agg.hazmat.seal_format import RawCiphertext, build_ciphertext, parse_ciphertext


@pytest.fixture(scope="module")
def setup(updates, config):
    backend = backend_for(config.preset)
    blob = build_ciphertext(backend.parse(updates["alpha"].chunks[0], what="chunk"))

    def parse(data: bytes, **kw: object) -> RawCiphertext:
        args = {
            "n": backend.n,
            "primes": backend.data_primes,
            "parms_id": backend.data_parms_id,
            **kw,
        }
        return parse_ciphertext(data, **args)  # type: ignore[arg-type]

    return backend, blob, parse


def test_seal_output_parses_and_rebuilds_to_something_seal_loads(setup) -> None:
    backend, blob, parse = setup
    raw = parse(blob)
    assert raw.data.shape == (2, len(backend.data_primes), backend.n)
    for compress in (False, True):
        rebuilt = build_ciphertext(raw, compress=compress)
        assert np.array_equal(parse(rebuilt).data, raw.data)
        backend.load_ciphertext(backend.pack(parse(rebuilt)))  # SEAL's own validation accepts it


@pytest.mark.parametrize("cut", [0, 1, 15, 16, 17, 100, -1])
def test_truncated_bytes_are_refused(setup, cut: int) -> None:
    _, blob, parse = setup
    with pytest.raises(MalformedMessage):
        parse(blob[:cut])


def test_one_byte_too_many_is_refused(setup) -> None:
    _, blob, parse = setup
    with pytest.raises(MalformedMessage):
        parse(blob + b"\x00")


def test_oversized_input_is_refused_before_parsing(setup) -> None:
    _, blob, parse = setup
    with pytest.raises(MessageTooLarge):
        parse(blob, max_bytes=len(blob) - 1)


@pytest.mark.parametrize("offset", [0, 2, 3, 4, 5, 6])
def test_header_tampering_is_refused(setup, offset: int) -> None:
    _, blob, parse = setup
    bad = bytearray(blob)
    bad[offset] ^= 0x5A
    with pytest.raises(MalformedMessage):
        parse(bytes(bad))


def test_unreduced_coefficient_and_transparent_ciphertext_are_refused(setup) -> None:
    backend, blob, parse = setup
    raw = parse(blob)
    data = raw.data.copy()
    data[0, 0, 5] = backend.data_primes[0]
    with pytest.raises(MalformedMessage, match="reduced"):
        parse(build_ciphertext(RawCiphertext(raw.parms_id, raw.scale, data)))
    data = raw.data.copy()
    data[1] = 0
    with pytest.raises(MalformedMessage, match="transparent"):
        parse(build_ciphertext(RawCiphertext(raw.parms_id, raw.scale, data)))


def test_other_parameter_level_is_a_parameter_mismatch(setup) -> None:
    _, blob, parse = setup
    with pytest.raises(ParameterMismatch):
        parse(blob, parms_id=(1, 2, 3, 4))


@pytest.mark.parametrize("scale", [float("nan"), float("inf"), 0.5, -4.0])
def test_bad_scale_is_refused(setup, scale: float) -> None:
    _, blob, parse = setup
    raw = parse(blob)
    good = build_ciphertext(raw)
    meta_offset = 16 + 32 + 1 + 24
    bad = good[:meta_offset] + struct.pack("<d", scale) + good[meta_offset + 8 :]
    with pytest.raises(MalformedMessage, match="scale"):
        parse(bad)


def test_random_bytes_are_refused(setup) -> None:
    _, _, parse = setup
    rng = np.random.default_rng(5)
    for size in (0, 16, 64, 4096):
        with pytest.raises(MalformedMessage):
            parse(rng.bytes(size))
