"""Wire formats that travel inside Flower records, each decoded within explicit bounds.

Flower carries them as ``bytes`` values of a ``ConfigRecord``. Every decoder takes its bounds
from the federation (holders, clients, layout) and raises :class:`~fhe_agg.MalformedMessage` or
:class:`~fhe_agg.MessageTooLarge` on anything else, before allocating more than an honest
message would need.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from fhe_agg._ceremony import _MAX_MESSAGE as CEREMONY_MESSAGE_BYTES
from fhe_agg._ceremony import CeremonySpec, HolderIdentity
from fhe_agg._config import FederationConfig
from fhe_agg._dp import DpPolicy
from fhe_agg._errors import MalformedMessage
from fhe_agg._evidence import AggregateEvidence, ChunkEvidence
from fhe_agg._flooding import FloodingPolicy
from fhe_agg._keys import PublicKey
from fhe_agg._messages import MessageBounds
from fhe_agg._packing import Layout, LayoutEntry
from fhe_agg._params import get_preset
from fhe_agg._signing import VerifyKey
from fhe_agg._wire import Fields, pack, unpack
from fhe_agg.identity import SealingPublicKey, Suite

__all__ = [
    "CEREMONY_BLOB_BYTES",
    "ENDORSEMENT_CONTEXT",
    "MAX_HOLDERS",
    "decode_blobs",
    "decode_config",
    "decode_evidence",
    "decode_layout",
    "decode_roster",
    "decode_spec",
    "encode_blobs",
    "encode_config",
    "encode_evidence",
    "encode_layout",
    "encode_roster",
    "encode_spec",
    "endorsement",
]

#: ML-DSA context of a key holder's endorsement of the joint public key.
ENDORSEMENT_CONTEXT = b"fhe_agg/flower/public-key/v1"
_DIGEST = 32
_MAX_ID = 128
#: Most key holders a relayed ceremony may name.
MAX_HOLDERS = 64
_MAX_LAYOUT_ENTRIES = 4096


def encode_config(config: FederationConfig, *, clip: float | None) -> bytes:
    """The federation's public parameters and the clients' L2 clip bound (``None``: no clip)."""
    flood, dp = config.flooding, config.dp
    return pack(
        "federation",
        {
            "preset": config.preset.name,
            "min_clients": config.min_clients,
            "max_clients": config.max_clients,
            "max_weight": float(config.max_weight),
            "value_bound": float(config.value_bound),
            "holders": config.holders,
            "threshold": config.threshold,
            "flooding": None if flood is None else [flood.statistical_bits, flood.budget],
            "dp": None
            if dp is None
            else [
                float(dp.clip),
                float(dp.noise_multiplier),
                float(dp.delta),
                dp.honest_holders,
                dp.mode,
            ],
            "clip": None if clip is None else float(clip),
        },
    )


def decode_config(data: bytes) -> tuple[FederationConfig, float | None]:
    """Inverse of :func:`encode_config`; invalid parameters raise :class:`MalformedMessage`."""
    f = unpack(data, "federation", max_bytes=4096, max_bin=0, max_array=8)
    f.expect_keys(
        "preset",
        "min_clients",
        "max_clients",
        "max_weight",
        "value_bound",
        "holders",
        "threshold",
        "flooding",
        "dp",
        "clip",
    )
    flood_raw, dp_raw, clip_raw = f.body["flooding"], f.body["dp"], f.body["clip"]
    try:
        flooding = None
        if flood_raw is not None:
            g = Fields("federation.flooding", dict(zip(("bits", "budget"), flood_raw, strict=True)))
            flooding = FloodingPolicy(
                statistical_bits=g.integer("bits", 1, 512), budget=g.integer("budget", 1)
            )
        dp = None
        if dp_raw is not None:
            keys = ("clip", "z", "delta", "honest", "mode")
            g = Fields("federation.dp", dict(zip(keys, dp_raw, strict=True)))
            dp = DpPolicy(
                clip=g.number("clip"),
                noise_multiplier=g.number("z"),
                delta=g.number("delta"),
                honest_holders=g.integer("honest", 1, 2**20),
                mode=g.text("mode", max_len=16),
            )
        config = FederationConfig(
            preset=get_preset(f.text("preset", max_len=32)),
            min_clients=f.integer("min_clients", 1, 2**20),
            max_clients=f.integer("max_clients", 1, 2**20),
            max_weight=f.number("max_weight"),
            value_bound=f.number("value_bound"),
            holders=f.integer("holders", 1, 2**20),
            threshold=f.integer("threshold", 1, 2**20),
            flooding=flooding,
            dp=dp,
        )
    except (TypeError, ValueError) as exc:  # zip(strict=True) or a constructor's check
        raise MalformedMessage(f"federation: invalid parameters ({exc})") from None
    clip = None
    if clip_raw is not None:
        if not isinstance(clip_raw, float) or not (math.isfinite(clip_raw) and clip_raw > 0):
            raise MalformedMessage("federation.clip: expected a positive finite float")
        clip = clip_raw
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
    items = f.items("items", max_len=max_items)
    if not all(isinstance(b, bytes) for b in items):
        raise MalformedMessage(f"{kind}.items: every item must be bytes")
    return items


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
    ids, keys = f.items("ids", max_len=max_members), f.items("keys", max_len=max_members)
    if len(ids) != len(keys) or len(set(map(str, ids))) != len(ids):
        raise MalformedMessage("roster: ids and keys differ in number or an id repeats")
    out: dict[str, VerifyKey] = {}
    for cid, key in zip(ids, keys, strict=True):
        if not isinstance(cid, str) or not 0 < len(cid) <= _MAX_ID or not cid.isprintable():
            raise MalformedMessage("roster.ids: expected printable strings of 1..128 characters")
        if not isinstance(key, bytes):
            raise MalformedMessage("roster.keys: expected bytes")
        out[cid] = VerifyKey.from_bytes(key)
    return out


def encode_evidence(evidence: AggregateEvidence) -> bytes:
    """The aggregator's answer to a holder's challenge: per index, every client's chunk."""
    return pack(
        "evidence",
        {
            "round_id": evidence.round_id,
            "indices": sorted(evidence.chunks),
            "items": [
                [[e.client_id, e.chunk, list(e.path)] for e in evidence.chunks[i]]
                for i in sorted(evidence.chunks)
            ],
        },
    )


def decode_evidence(data: bytes, *, config: FederationConfig, layout: Layout) -> AggregateEvidence:
    """Inverse of :func:`encode_evidence`, bounded by the round's chunk count and clients."""
    bounds = MessageBounds.for_round(config, layout)
    count, clients = bounds.chunk_count, config.max_clients
    depth = max(1, math.ceil(math.log2(count))) + 1
    per_item = bounds.chunk_bytes + depth * (_DIGEST + 2) + _MAX_ID + 32
    f = unpack(
        data,
        "evidence",
        max_bytes=count * clients * per_item + 1024,
        max_bin=bounds.chunk_bytes,
        max_array=max(count, clients, depth, 3),
    )
    f.expect_keys("round_id", "indices", "items")
    indices = f.items("indices", max_len=count)
    rows = f.items("items", max_len=count)
    if (
        len(rows) != len(indices)
        or not all(isinstance(i, int) and 0 <= i < count for i in indices)
        or indices != sorted(set(indices))
    ):
        raise MalformedMessage(f"evidence.indices: expected distinct increasing indices < {count}")
    chunks: dict[int, tuple[ChunkEvidence, ...]] = {}
    for index, row in zip(indices, rows, strict=True):
        if not isinstance(row, list) or not 0 < len(row) <= clients:
            raise MalformedMessage(f"evidence.items[{index}]: expected 1..{clients} entries")
        chunks[index] = tuple(_chunk_evidence(item, depth, index) for item in row)
    return AggregateEvidence(round_id=f.integer("round_id"), chunks=chunks)


def _chunk_evidence(item: object, depth: int, index: int) -> ChunkEvidence:
    where = f"evidence.items[{index}]"
    if not isinstance(item, list) or len(item) != 3:
        raise MalformedMessage(f"{where}: expected [client_id, chunk, path]")
    cid, chunk, path = item
    if not isinstance(cid, str) or not 0 < len(cid) <= _MAX_ID:
        raise MalformedMessage(f"{where}: bad client id")
    if not isinstance(chunk, bytes):
        raise MalformedMessage(f"{where}: chunk must be bytes")
    if (
        not isinstance(path, list)
        or len(path) > depth
        or not all(isinstance(p, bytes) and len(p) == _DIGEST for p in path)
    ):
        raise MalformedMessage(f"{where}: path must be at most {depth} digests")
    return ChunkEvidence(client_id=cid, chunk=chunk, path=tuple(path))


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
    holders = f.items("holders", max_len=MAX_HOLDERS)
    verify = f.items("verify_keys", max_len=MAX_HOLDERS)
    sealing = f.items("sealing_keys", max_len=MAX_HOLDERS)
    if not (len(holders) == len(verify) == len(sealing)) or not all(
        isinstance(h, str) and 0 < len(h) <= _MAX_ID and h.isprintable() for h in holders
    ):
        raise MalformedMessage("ceremony-spec: holders and their keys do not line up")
    if not all(isinstance(k, bytes) for k in (*verify, *sealing)):
        raise MalformedMessage("ceremony-spec: keys must be bytes")
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


def encode_layout(layout: Layout) -> bytes:
    """The round's model layout (names, shapes, dtypes, offsets); clients sign its digest."""
    return pack(
        "layout",
        {
            "entries": [
                [e.name, list(e.shape), e.dtype, e.offset, e.encrypted] for e in layout.entries
            ]
        },
    )


def decode_layout(data: bytes) -> Layout:
    """Inverse of :func:`encode_layout` for at most 4096 tensors."""
    f = unpack(
        data,
        "layout",
        max_bytes=_MAX_LAYOUT_ENTRIES * 512,
        max_bin=0,
        max_array=_MAX_LAYOUT_ENTRIES,
    )
    f.expect_keys("entries")
    entries = []
    for raw in f.items("entries", max_len=_MAX_LAYOUT_ENTRIES):
        if not isinstance(raw, list) or len(raw) != 5:
            raise MalformedMessage("layout.entries: expected [name, shape, dtype, offset, enc]")
        name, shape, dtype, offset, encrypted = raw
        if (
            not isinstance(name, str)
            or not isinstance(dtype, str)
            or not isinstance(shape, list)
            or len(shape) > 32
            or not all(isinstance(d, int) and 0 <= d < 2**40 for d in shape)
            or not isinstance(offset, int)
            or not 0 <= offset < 2**40
            or not isinstance(encrypted, bool)
        ):
            raise MalformedMessage(f"layout.entries: malformed entry {name!r:.40}")
        entries.append(LayoutEntry(name, tuple(shape), dtype, offset, encrypted))
    return Layout(tuple(entries))
