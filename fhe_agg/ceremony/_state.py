"""A ceremony member's state between steps, sealed at rest (:meth:`CeremonyMember.save`).

A node that runs each ceremony message in a fresh process keeps the member between steps on
disk. The state holds secrets (the seed before it is revealed, ``s_j`` until it is dealt, the
own Shamir share until the others arrive), so it is written only sealed to the member's own
sealing key (:mod:`fhe_agg.identity._at_rest`), bound to (consortium, epoch, holder id,
``ceremony-state/<ceremony id>``). Resuming checks that the blob is this member's, of this
ceremony, and decodes every field within the preset's sizes.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import numpy as np

from fhe_agg._errors import CeremonyError, MalformedMessage
from fhe_agg.ceremony._transcript import Transcript
from fhe_agg.ckks._keys import PublicKey
from fhe_agg.hazmat.rns import U64
from fhe_agg.identity._at_rest import MAX_AT_REST_BYTES, open_at_rest, seal_at_rest
from fhe_agg.identity._sealing import SealInfo
from fhe_agg.protocol._wire import Fields, pack, unpack

if TYPE_CHECKING:
    from fhe_agg.ceremony._ceremony import CeremonyMember

__all__ = ["dump_member", "load_member", "state_info"]

_KIND = "ceremony-member"
_SEEN = ("seed-commit", "key-commit")


def state_info(member: CeremonyMember) -> SealInfo:
    """What a member's saved state is bound to."""
    spec = member.spec
    return SealInfo(
        consortium=spec.consortium,
        epoch=spec.epoch,
        sender=member.holder_id,
        recipient=member.holder_id,
        purpose=f"ceremony-state/{spec.ceremony_id.hex()}",
    )


def _poly(value: U64 | None) -> bytes:
    return b"" if value is None else np.ascontiguousarray(value, dtype=np.uint64).tobytes()


def _pairs(mapping: dict[int, bytes]) -> list[list[Any]]:
    return [[j, v] for j, v in sorted(mapping.items())]


def dump_member(member: CeremonyMember) -> bytes:
    """The member's state sealed to its own sealing key."""
    m = member
    body = {
        "ceremony": m.spec.ceremony_id,
        "holder": m.holder_id,
        "phase": m._phase,
        "seed": m._seed,
        "seed_commits": _pairs(m._seed_commits),
        "seen": [
            [phase, [[j, p, s] for j, (p, s) in sorted(m._seen.get(phase, {}).items())]]
            for phase in _SEEN
            if phase in m._seen
        ],
        "a": _poly(m._a),
        "secret": _poly(m._secret),
        "public_share": m._public_share,
        "key_commits": _pairs(m._key_commits),
        "public_key": b"" if m._public_key is None else m._public_key.blob,
        "own_share": _poly(m._own_share),
    }
    return seal_at_rest(m._sealing_key, pack(_KIND, body), info=state_info(m))


def load_member(member: CeremonyMember, blob: bytes) -> None:
    """Fill a freshly made ``member`` with the state :func:`dump_member` wrote."""
    plain = open_at_rest(member._sealing_key, blob, info=state_info(member))
    f = unpack(plain, _KIND, max_bytes=MAX_AT_REST_BYTES, max_bin=MAX_AT_REST_BYTES, max_array=1024)
    if f.blob("ceremony") != member.spec.ceremony_id or f.text("holder") != member.holder_id:
        raise CeremonyError("the saved ceremony state is of another ceremony or holder")
    holders = len(member.spec.holders)
    member._phase = f.integer("phase", 0, 7)
    member._seed = f.blob("seed", size=32)
    member._seed_commits = _read_pairs(f, "seed_commits", holders)
    member._seen = _read_seen(f, holders)
    member._a = _read_poly(f, "a", member)
    member._secret = _read_poly(f, "secret", member)
    member._public_share = f.blob("public_share")
    member._key_commits = _read_pairs(f, "key_commits", holders)
    pk = f.blob("public_key")
    member._public_key = PublicKey.from_bytes(member.spec.preset, pk) if pk else None
    member._own_share = _read_poly(f, "own_share", member)
    if member._public_key is not None:
        member._transcript = Transcript(
            entries=dict(member._seen),
            public_key=hashlib.sha3_256(member._public_key.blob).digest(),
        )


def _read_pairs(f: Fields, key: str, holders: int) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    for item in f.items(key, max_len=holders):
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[1], bytes)):
            raise MalformedMessage(f"ceremony state: {key} holds a bad entry")
        j = item[0]
        if not isinstance(j, int) or not 1 <= j <= holders:
            raise MalformedMessage(f"ceremony state: {key} names holder {j!r}")
        out[j] = item[1]
    return out


def _read_seen(f: Fields, holders: int) -> dict[str, dict[int, tuple[bytes, bytes]]]:
    seen: dict[str, dict[int, tuple[bytes, bytes]]] = {}
    for item in f.items("seen", max_len=len(_SEEN)):
        if not (isinstance(item, list) and len(item) == 2 and item[0] in _SEEN):
            raise MalformedMessage("ceremony state: seen holds a bad phase")
        rows: dict[int, tuple[bytes, bytes]] = {}
        for row in item[1] if isinstance(item[1], list) else [None]:
            if not (isinstance(row, list) and len(row) == 3 and isinstance(row[0], int)):
                raise MalformedMessage("ceremony state: seen holds a bad entry")
            j, payload, signature = row
            if not (
                1 <= j <= holders and isinstance(payload, bytes) and isinstance(signature, bytes)
            ):
                raise MalformedMessage("ceremony state: seen holds a bad entry")
            rows[j] = (payload, signature)
        seen[str(item[0])] = rows
    return seen


def _read_poly(f: Fields, key: str, member: CeremonyMember) -> U64 | None:
    n, rows = member._n, len(member._primes)
    raw = f.blob(key)
    if not raw:
        return None
    if len(raw) != rows * n * 8:
        raise MalformedMessage(f"ceremony state: {key} is not a key-level polynomial")
    poly = np.frombuffer(raw, dtype=np.uint64).reshape(rows, n).copy()
    for i, q in enumerate(member._primes):
        if int(poly[i].max()) >= q:
            raise MalformedMessage(f"ceremony state: {key} holds a value not reduced mod q")
    return poly
