"""Wire formats that travel inside Flower records, each decoded within explicit bounds.

Flower carries them as ``bytes`` values of a ``ConfigRecord``. Every decoder takes its bounds
from the federation (holders, clients) and raises :class:`~fhe_agg.MalformedMessage` or
:class:`~fhe_agg.MessageTooLarge` on anything else, before allocating more than an honest
message would need. Round messages (aggregate, layout, evidence, partials) travel in their own
``to_bytes`` formats.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from fhe_agg._errors import MalformedMessage, UnsupportedParameters
from fhe_agg._validate import positive_finite
from fhe_agg.ceremony._messages import MAX_MESSAGE as CEREMONY_MESSAGE_BYTES
from fhe_agg.ceremony._messages import CeremonySpec, HolderIdentity
from fhe_agg.ckks._keys import PublicKey
from fhe_agg.ckks._params import get_preset
from fhe_agg.identity import SealingPublicKey, Suite
from fhe_agg.protocol._config import FederationConfig
from fhe_agg.protocol._signing import VerifyKey
from fhe_agg.protocol._wire import Fields, pack, unpack

__all__ = [
    "CEREMONY_BLOB_BYTES",
    "ENDORSEMENT_CONTEXT",
    "MAX_HOLDERS",
    "MAX_NODES",
    "decode_blobs",
    "decode_config",
    "decode_roster",
    "decode_spec",
    "encode_blobs",
    "encode_config",
    "encode_roster",
    "encode_spec",
    "endorsement",
]

#: ML-DSA context of a key holder's endorsement of the joint public key.
ENDORSEMENT_CONTEXT = b"fhe_agg/flower/public-key/v1"
#: Most key holders a relayed ceremony may name.
MAX_HOLDERS = 64
#: Most nodes (clients) the roster handed to key holders at setup may list.
MAX_NODES = 4096


def encode_config(config: FederationConfig, *, clip: float | None) -> bytes:
    """The federation's public parameters, in :meth:`FederationConfig.to_bytes`'s one encoding
    (every field, as ``params_id`` hashes them), and the clients' L2 clip bound (``None``: no
    clip)."""
    return pack(
        "federation", {"config": config.to_bytes(), "clip": None if clip is None else float(clip)}
    )


def decode_config(data: bytes) -> tuple[FederationConfig, float | None]:
    """Inverse of :func:`encode_config`. Invalid parameters, a combination the security checks
    of :class:`FederationConfig` refuse (``UnsupportedParameters``), a preset that is not one of
    the named ones, or an opt-in to exact (unflooded) decryption raise
    :class:`MalformedMessage`: the node never runs with parameters it was sent but cannot
    accept."""
    f = unpack(data, "federation", max_bytes=4096, max_bin=4096, max_array=0)
    f.expect_keys("config", "clip")
    raw = f.blob("config", max_size=4096)
    try:
        config = FederationConfig.from_bytes(raw)
        clip = None if f.body["clip"] is None else positive_finite(f.number("clip"), "clip")
        named = get_preset(config.preset.name)
    except (TypeError, ValueError, UnsupportedParameters) as exc:
        raise MalformedMessage(f"federation: invalid parameters ({exc})") from None
    if config.preset != named:
        raise MalformedMessage(f"federation: preset {named.name!r} with other parameters")
    if config.unsafe_exact_decryption:
        raise MalformedMessage(
            "federation: unsafe_exact_decryption=True; a node never decrypts without noise"
        )
    return config, clip


def encode_blobs(kind: str, blobs: Sequence[bytes]) -> bytes:
    """A list of opaque messages (ceremony messages relayed by the server)."""
    return pack(kind, {"items": list(blobs)})


def decode_blobs(data: bytes, kind: str, *, max_items: int, max_item: int) -> list[bytes]:
    """At most ``max_items`` byte strings of at most ``max_item`` bytes each."""
    f = unpack(
        data,
        kind,
        max_bytes=max_items * (max_item + 16) + 64,
        max_bin=max_item,
        max_array=max_items,
    )
    f.expect_keys("items")
    return f.blobs("items", max_items=max_items)


#: Upper bound of one relayed ceremony message.
CEREMONY_BLOB_BYTES = CEREMONY_MESSAGE_BYTES + 1024


def encode_roster(roster: Mapping[str, VerifyKey]) -> bytes:
    """Client ids and their ML-DSA public keys, in a fixed order."""
    ids = sorted(roster)
    return pack("roster", {"ids": ids, "keys": [roster[i].to_bytes() for i in ids]})


def decode_roster(data: bytes, *, max_members: int) -> dict[str, VerifyKey]:
    """Inverse of :func:`encode_roster` for at most ``max_members`` members."""
    f = unpack(
        data, "roster", max_bytes=max_members * 2200 + 256, max_bin=4096, max_array=max_members
    )
    f.expect_keys("ids", "keys")
    ids, keys = _ids(f, "ids", max_items=max_members), f.blobs("keys", max_items=max_members)
    if len(ids) != len(keys):
        raise MalformedMessage("roster: ids and keys differ in number")
    return {cid: VerifyKey.from_bytes(key) for cid, key in zip(ids, keys, strict=True)}


def _ids(f: Fields, key: str, *, max_items: int) -> list[str]:
    """A list of at most ``max_items`` distinct printable ids of 1..128 characters."""
    ids = [Fields(f.kind, {key: v}).text(key) for v in f.items(key, max_len=max_items)]
    if len(set(ids)) != len(ids):
        raise MalformedMessage(f"{f.kind}.{key}: an id repeats")
    return ids


def endorsement(ceremony_id: bytes, public_key: PublicKey) -> bytes:
    """What each key holder signs to vouch for the joint public key of its ceremony."""
    return b"fhe_agg/flower/endorse|" + ceremony_id + public_key.fingerprint


def encode_spec(spec: CeremonySpec, directory: Mapping[str, HolderIdentity]) -> bytes:
    """The ceremony's agreed parameters and every holder's public identity."""
    return pack(
        "ceremony-spec",
        {
            "consortium": spec.consortium,
            "epoch": spec.epoch,
            "preset": spec.preset.name,
            "holders": list(spec.holders),
            "threshold": spec.threshold,
            "verify_keys": [directory[h].verify_key.to_bytes() for h in spec.holders],
            "sealing_keys": [directory[h].sealing_key.to_bytes() for h in spec.holders],
        },
    )


def decode_spec(data: bytes) -> tuple[CeremonySpec, dict[str, HolderIdentity]]:
    """Inverse of :func:`encode_spec` for at most :data:`MAX_HOLDERS` holders."""
    f = unpack(
        data,
        "ceremony-spec",
        max_bytes=MAX_HOLDERS * 4096 + 1024,
        max_bin=4096,
        max_array=MAX_HOLDERS,
    )
    f.expect_keys(
        "consortium", "epoch", "preset", "holders", "threshold", "verify_keys", "sealing_keys"
    )
    holders = _ids(f, "holders", max_items=MAX_HOLDERS)
    verify = f.blobs("verify_keys", max_items=MAX_HOLDERS)
    sealing = f.blobs("sealing_keys", max_items=MAX_HOLDERS)
    if not len(holders) == len(verify) == len(sealing):
        raise MalformedMessage("ceremony-spec: holders and their keys do not line up")
    try:
        spec = CeremonySpec(
            consortium=f.text("consortium"),
            epoch=f.integer("epoch"),
            preset=get_preset(f.text("preset", max_len=32)),
            holders=tuple(holders),
            threshold=f.integer("threshold", 1, MAX_HOLDERS),
        )
    except ValueError as exc:
        raise MalformedMessage(f"ceremony-spec: {exc}") from None
    directory = {
        h: HolderIdentity(VerifyKey.from_bytes(v), SealingPublicKey.from_bytes(Suite.PQ_ONLY, s))
        for h, v, s in zip(holders, verify, sealing, strict=True)
    }
    return spec, directory
