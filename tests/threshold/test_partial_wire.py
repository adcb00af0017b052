"""The partial-decryption wire format: exact round trip, strict and bounded parsing."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fhe_agg import MalformedMessage, MessageTooLarge, PartialDecryption, combine
from fhe_agg.ckks._seal import backend_for
from fhe_agg.hazmat.packed_format import residues_size
from fhe_agg.protocol._wire import pack, unpack

from .conftest import Federation

MEMBERS = (1, 3, 5)


@pytest.fixture(scope="module")
def released(fed: Federation) -> tuple[object, list[PartialDecryption], np.ndarray]:
    aggregate, evidence, expected = fed.round(round_id=1)
    holders = fed.key_holders(seed=7)
    partials = [fed.partial(holders[j], aggregate, evidence, MEMBERS) for j in MEMBERS]
    return aggregate, partials, expected


def _body(raw: bytes) -> dict[str, object]:
    return dict(unpack(raw, "partial", max_bytes=1 << 24, max_bin=1 << 24, max_array=16).body)


def test_round_trip_is_exact_and_compact(fed: Federation, released: tuple) -> None:
    aggregate, partials, expected = released
    decoded = [
        PartialDecryption.from_bytes(p.to_bytes(fed.config), config=fed.config, layout=fed.layout)
        for p in partials
    ]
    for p, d in zip(partials, decoded, strict=True):
        assert np.array_equal(p.data, d.data)
        assert (d.round_id, d.holder_index, d.decrypting_set, d.aggregate_digest) == (
            p.round_id,
            p.holder_index,
            p.decrypting_set,
            p.aggregate_digest,
        )
    mean = combine(aggregate, decoded, config=fed.config, layout=fed.layout)
    assert np.max(np.abs(mean[: expected.size] - expected)) < 1e-6
    backend = backend_for(fed.config.preset)
    packed = residues_size(partials[0].data.shape[0], backend.n, backend.data_primes)
    assert packed < partials[0].data.nbytes
    assert len(partials[0].to_bytes(fed.config)) <= packed + 200


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("holder", 0),
        ("holder", 6),
        ("holder", 2),  # not in its own set
        ("set", [1, 3]),
        ("set", [3, 1, 5]),
        ("set", [1, 1, 5]),
        ("set", [1, 3, 9]),
        ("chunks", 2),
        ("primes", 3),
        ("digest", b"\x00" * 31),
        ("round_id", -1),
        ("data", b"\x00" * 10),
    ],
)
def test_bad_fields_are_refused(
    fed: Federation, released: tuple, field: str, value: object
) -> None:
    body = _body(released[1][0].to_bytes(fed.config))
    body[field] = value
    with pytest.raises(MalformedMessage):
        PartialDecryption.from_bytes(pack("partial", body), config=fed.config, layout=fed.layout)


def test_unreduced_residue_truncation_and_size_are_refused(
    fed: Federation, released: tuple
) -> None:
    partial = released[1][0]
    q = backend_for(fed.config.preset).data_primes[0]
    data = partial.data.copy()
    data[0, 0, 5] = q  # one residue equal to its prime
    forged = dataclasses.replace(partial, data=data).to_bytes(fed.config)
    with pytest.raises(MalformedMessage, match="not reduced"):
        PartialDecryption.from_bytes(forged, config=fed.config, layout=fed.layout)
    raw = partial.to_bytes(fed.config)
    for cut in (0, 1, len(raw) // 2, len(raw) - 1):
        with pytest.raises(MalformedMessage):
            PartialDecryption.from_bytes(raw[:cut], config=fed.config, layout=fed.layout)
    with pytest.raises(MessageTooLarge):
        PartialDecryption.from_bytes(raw + b"\x00" * 2048, config=fed.config, layout=fed.layout)
    with pytest.raises(MalformedMessage):
        PartialDecryption.from_bytes("text", config=fed.config, layout=fed.layout)  # type: ignore[arg-type]
