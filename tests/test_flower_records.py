"""The bounded wire formats fhe_agg.flower puts in Flower records: round trips and refusals."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("flwr")

from fhe_agg import (
    AggregateEvidence,
    ChunkEvidence,
    DpPolicy,
    FederationConfig,
    Layout,
    MalformedMessage,
    SigningKey,
    flatten,
)
from fhe_agg.ceremony._ceremony import CeremonySpec, HolderIdentity
from fhe_agg.flower import _records as rec
from fhe_agg.identity import SealingPrivateKey, Suite

CONFIG = FederationConfig(
    min_clients=2, max_clients=4, max_weight=50.0, value_bound=1.0, holders=3, threshold=2
)


def _refused(decode: object, data: bytes) -> None:
    with pytest.raises(MalformedMessage):
        decode(data)  # type: ignore[operator]


def test_config_round_trip_and_refusals() -> None:
    dp = FederationConfig(
        preset=CONFIG.preset,
        max_clients=4,
        max_weight=1.0,
        value_bound=1.0,
        holders=3,
        threshold=2,
        dp=DpPolicy(clip=1.0, noise_multiplier=0.8),
    )
    for config, clip in ((CONFIG, 0.5), (dp, None)):
        back, back_clip = rec.decode_config(rec.encode_config(config, clip=clip))
        assert back.params_id == config.params_id and back_clip == clip
    data = rec.encode_config(CONFIG, clip=0.5)
    for bad in (data[:-1], data + b"\x00", b"", b"\xc1" * 10):
        _refused(rec.decode_config, bad)
    # a structurally valid envelope with an impossible configuration
    bad_threshold = data.replace(b"\xa9threshold\x02", b"\xa9threshold\x07")
    assert bad_threshold != data
    _refused(rec.decode_config, bad_threshold)


def test_the_config_record_carries_the_one_encoding_params_id_hashes() -> None:
    """No second list of fields: the record holds ``FederationConfig.to_bytes()``, so every
    field (and any added later) reaches the node exactly as the clients sign it."""
    import dataclasses

    import msgpack

    from fhe_agg.protocol._wire import pack

    data = rec.encode_config(CONFIG, clip=0.5)
    assert msgpack.unpackb(data)["body"] == {"config": CONFIG.to_bytes(), "clip": 0.5}
    odd = dataclasses.replace(CONFIG, min_weight=2.0, min_clients=3)
    assert rec.decode_config(rec.encode_config(odd, clip=None))[0].params_id == odd.params_id
    # a preset of the right name with other parameters, or an opt-in to exact decryption
    custom = dataclasses.replace(
        CONFIG.preset, special_prime_bits=CONFIG.preset.special_prime_bits - 1
    )
    fields = msgpack.unpackb(CONFIG.to_bytes())["body"]
    fields["preset"]["special_prime_bits"] = custom.special_prime_bits
    forged = pack("federation", {"config": pack("federation-config", fields), "clip": None})
    with pytest.raises(MalformedMessage, match="preset"):
        rec.decode_config(forged)


def test_layout_round_trip_keeps_the_signed_digest() -> None:
    _, layout = flatten({"w": np.zeros((3, 4)), "steps": np.array([1], dtype=np.int64)})
    data = layout.to_bytes()
    assert Layout.from_bytes(data).digest == layout.digest
    for bad in (data[:-3], b"\x00", rec.encode_blobs("layout", [b"x"])):
        _refused(Layout.from_bytes, bad)


def test_spec_round_trip_and_refusals() -> None:
    ids = ("h-1", "h-2", "h-3")
    signing = {h: SigningKey.generate() for h in ids}
    directory = {
        h: HolderIdentity(
            signing[h].verify_key, SealingPrivateKey.generate(Suite.PQ_ONLY).public_key
        )
        for h in ids
    }
    spec = CeremonySpec(consortium="c", epoch=3, preset=CONFIG.preset, holders=ids, threshold=2)
    data = rec.encode_spec(spec, directory)
    back, back_directory = rec.decode_spec(data)
    assert back.ceremony_id == spec.ceremony_id
    assert all(back_directory[h].verify_key == directory[h].verify_key for h in ids)
    for bad in (data[:100], data[:-1]):
        _refused(rec.decode_spec, bad)


def test_evidence_and_blobs_are_bounded() -> None:
    layout = Layout.for_vector(10)
    evidence = AggregateEvidence(
        round_id=4, chunks={0: (ChunkEvidence(client_id="a", chunk=b"\x01" * 64, path=()),)}
    )
    data = evidence.to_bytes()
    back = AggregateEvidence.from_bytes(data, config=CONFIG, layout=layout)
    assert back.round_id == 4 and back.chunks[0][0].chunk == b"\x01" * 64
    too_many = AggregateEvidence(round_id=4, chunks={0: evidence.chunks[0] * 5})  # > max_clients
    wrong_index = AggregateEvidence(round_id=4, chunks={1: evidence.chunks[0]})  # one chunk only
    for bad in (data[:-1], too_many.to_bytes(), wrong_index.to_bytes()):
        with pytest.raises(MalformedMessage):
            AggregateEvidence.from_bytes(bad, config=CONFIG, layout=layout)
    blobs = rec.encode_blobs("relay", [b"a", b"bb"])
    assert rec.decode_blobs(blobs, "relay", max_items=2, max_item=2) == [b"a", b"bb"]
    with pytest.raises(MalformedMessage):
        rec.decode_blobs(blobs, "relay", max_items=1, max_item=2)
    with pytest.raises(MalformedMessage):
        rec.decode_blobs(blobs, "relay", max_items=2, max_item=1)


def test_roster_round_trip_and_refusals() -> None:
    keys = {f"node-{i}": SigningKey.generate().verify_key for i in range(3)}
    data = rec.encode_roster(keys)
    assert rec.decode_roster(data, max_members=3) == keys
    with pytest.raises(MalformedMessage):
        rec.decode_roster(data, max_members=2)
    with pytest.raises(MalformedMessage):
        rec.decode_roster(data[:-5], max_members=3)
