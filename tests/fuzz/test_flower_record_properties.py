"""Property tests of the formats fhe_agg.flower carries in Flower records: damaged bytes are
refused with :class:`MalformedMessage` (incl. ``MessageTooLarge``, ``WrongSuite``) or parse to a
message that round-trips. The atheris harness ``flower_records`` runs the long campaign."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

pytest.importorskip("flwr")

from fhe_agg import DpPolicy, FederationConfig, MalformedMessage, SigningKey
from fhe_agg.ceremony._ceremony import CeremonySpec, HolderIdentity
from fhe_agg.flower import _records as rec
from fhe_agg.identity import SealingPrivateKey, Suite

from .mutations import PARSER_SETTINGS, damaged, refuse_or_parse

CONFIG = FederationConfig(
    min_clients=2, max_clients=4, max_weight=50.0, value_bound=1.0, holders=3, threshold=2
)
HOLDERS = ("h-1", "h-2", "h-3")
SIGNING = {h: SigningKey.from_seed(bytes([i]) * 32) for i, h in enumerate(HOLDERS)}
DIRECTORY = {
    h: HolderIdentity(SIGNING[h].verify_key, SealingPrivateKey.generate(Suite.PQ_ONLY).public_key)
    for h in HOLDERS
}
SPEC = CeremonySpec(consortium="c", epoch=2, preset=CONFIG.preset, holders=HOLDERS, threshold=2)
DP = FederationConfig(
    preset=CONFIG.preset,
    max_clients=4,
    max_weight=1.0,
    value_bound=1.0,
    holders=3,
    threshold=2,
    dp=DpPolicy(clip=1.0, noise_multiplier=0.8),
)


def _config(data: bytes) -> None:
    decoded = rec.decode_config(data)
    assert rec.decode_config(rec.encode_config(decoded[0], clip=decoded[1])) == decoded


def _blobs(data: bytes) -> None:
    got = rec.decode_blobs(data, "relay", max_items=3, max_item=rec.CEREMONY_BLOB_BYTES)
    assert len(got) <= 3 and all(len(b) <= rec.CEREMONY_BLOB_BYTES for b in got)
    again = rec.encode_blobs("relay", got)
    assert rec.decode_blobs(again, "relay", max_items=3, max_item=rec.CEREMONY_BLOB_BYTES) == got


def _roster(data: bytes) -> None:
    got = rec.decode_roster(data, max_members=8)
    assert rec.decode_roster(rec.encode_roster(got), max_members=8) == got


def _spec(data: bytes) -> None:
    spec, directory = rec.decode_spec(data)
    again, again_directory = rec.decode_spec(rec.encode_spec(spec, directory))
    assert again == spec and list(again_directory) == list(directory) == list(spec.holders)


SEEDS: dict[str, tuple[bytes, Callable[[bytes], None]]] = {
    "config": (rec.encode_config(CONFIG, clip=0.5), _config),
    "config-dp": (rec.encode_config(DP, clip=None), _config),
    "relay": (rec.encode_blobs("relay", [b"\x01" * 40, b"\x02" * 3]), _blobs),
    "roster": (rec.encode_roster({h: SIGNING[h].verify_key for h in HOLDERS}), _roster),
    "spec": (rec.encode_spec(SPEC, DIRECTORY), _spec),
}


@pytest.mark.parametrize("name", sorted(SEEDS))
@PARSER_SETTINGS
@given(data=st.data())
def test_damaged_flower_record_is_refused_or_round_trips(name: str, data: st.DataObject) -> None:
    seed, check = SEEDS[name]
    check(seed)  # the undamaged message parses and round-trips
    refuse_or_parse(check, data.draw(damaged(seed, "msgpack")), (MalformedMessage,))
