"""What a key ceremony is and what travels in it: the spec the holders agree on, their public
identities, the signed message, and the checks every incoming batch of messages passes.

A message is signed with the sender's ML-DSA key under :data:`CEREMONY_CONTEXT` over its
canonical statement (ceremony id, phase, sender, recipient, SHA3-256 of the payload); see
:mod:`fhe_agg.ceremony._ceremony` for the phases and what each payload is.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from fhe_agg._errors import CeremonyError, InvalidSignature, MalformedMessage
from fhe_agg.ckks._params import CkksPreset
from fhe_agg.hazmat.rns import U64
from fhe_agg.identity._sealing import MAX_SEALED_PLAINTEXT, SealingPublicKey
from fhe_agg.protocol._signing import SigningKey, VerifyKey
from fhe_agg.protocol._wire import pack, unpack

__all__ = [
    "CEREMONY_CONTEXT",
    "MAX_CEREMONY_HOLDERS",
    "CeremonyMessage",
    "CeremonySpec",
    "HolderIdentity",
    "collect_signed",
    "commitment",
    "poly_bytes",
    "poly_from_bytes",
    "signed_by",
]

#: ML-DSA context string of ceremony messages.
CEREMONY_CONTEXT = b"fhe_agg/ceremony/v1"
PHASES = ("seed-commit", "seed-reveal", "key-commit", "key-reveal", "confirm", "share")
#: Most key holders of one ceremony: a confirmation carries ~6.7 kB of evidence per holder.
MAX_CEREMONY_HOLDERS = 512
MAX_MESSAGE = 4 * MAX_SEALED_PLAINTEXT


@dataclass(frozen=True)
class HolderIdentity:
    """A key holder's public identity: ML-DSA verify key and HPKE sealing key."""

    verify_key: VerifyKey
    sealing_key: SealingPublicKey


@dataclass(frozen=True, kw_only=True)
class CeremonySpec:
    """What the holders agree on before the ceremony; holder ``k`` is ``holders[k - 1]``."""

    consortium: str
    epoch: int
    preset: CkksPreset
    holders: tuple[str, ...]
    threshold: int

    def __post_init__(self) -> None:
        n = len(self.holders)
        if n < 1 or len(set(self.holders)) != n:
            raise ValueError("holders: need at least one holder, each named once")
        if n > MAX_CEREMONY_HOLDERS:
            raise ValueError(f"holders: at most {MAX_CEREMONY_HOLDERS} key holders, got {n}")
        if isinstance(self.threshold, bool) or not 1 <= self.threshold <= n:
            raise ValueError(f"threshold: need 1 <= threshold <= {n}, got {self.threshold!r}")
        if isinstance(self.epoch, bool) or not 0 <= self.epoch < 2**63:
            raise ValueError(f"epoch: expected an integer in 0..2**63-1, got {self.epoch!r}")

    @cached_property
    def ceremony_id(self) -> bytes:
        """SHA3-256 over everything above: messages of another ceremony never verify."""
        text = "\x1f".join([self.consortium, str(self.epoch), *self.holders, str(self.threshold)])
        return hashlib.sha3_256(
            b"fhe_agg/ceremony|" + self.preset.fingerprint + text.encode()
        ).digest()

    def index_of(self, holder_id: str) -> int:
        """1-based index of ``holder_id``; ``CeremonyError`` if it is not a holder."""
        try:
            return self.holders.index(holder_id) + 1
        except ValueError:
            raise CeremonyError(f"{holder_id!r} is not a holder of this ceremony") from None


@dataclass(frozen=True, kw_only=True)
class CeremonyMessage:
    """One signed ceremony message; ``recipient`` is 0 for a broadcast."""

    ceremony_id: bytes
    phase: str
    sender: int
    recipient: int
    payload: bytes
    signature: bytes = field(default=b"", repr=False)

    def signed_bytes(self) -> bytes:
        """The canonical statement the signature covers (payload by its SHA3-256)."""
        return pack(
            "ceremony-statement",
            {
                "id": self.ceremony_id,
                "phase": self.phase,
                "from": self.sender,
                "to": self.recipient,
                "payload": hashlib.sha3_256(self.payload).digest(),
            },
        )

    @classmethod
    def sign(
        cls,
        signing_key: SigningKey,
        *,
        ceremony_id: bytes,
        phase: str,
        sender: int,
        recipient: int,
        payload: bytes,
    ) -> CeremonyMessage:
        """The message signed by ``sender`` with ``signing_key``."""
        unsigned = cls(
            ceremony_id=ceremony_id,
            phase=phase,
            sender=sender,
            recipient=recipient,
            payload=payload,
        )
        signature = signing_key.sign(unsigned.signed_bytes(), context=CEREMONY_CONTEXT)
        return dataclasses.replace(unsigned, signature=signature)

    def to_bytes(self) -> bytes:
        return pack(
            "ceremony",
            {
                "id": self.ceremony_id,
                "phase": self.phase,
                "from": self.sender,
                "to": self.recipient,
                "payload": self.payload,
                "sig": self.signature,
            },
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> CeremonyMessage:
        """Decode a ceremony message (bounded); :class:`MalformedMessage` on anything else."""
        f = unpack(data, "ceremony", max_bytes=MAX_MESSAGE, max_bin=MAX_MESSAGE, max_array=0)
        f.expect_keys("id", "phase", "from", "to", "payload", "sig")
        phase = f.text("phase", max_len=16)
        if phase not in PHASES:
            raise MalformedMessage(f"ceremony.phase: unknown phase {phase!r}")
        return cls(
            ceremony_id=f.blob("id", size=32),
            phase=phase,
            sender=f.integer("from", 1, 2**20),
            recipient=f.integer("to", 0, 2**20),
            payload=f.blob("payload", max_size=MAX_MESSAGE),
            signature=f.blob("sig", max_size=8192),
        )

    def __repr__(self) -> str:
        return (
            f"CeremonyMessage(phase={self.phase!r}, from={self.sender}, to={self.recipient}, "
            f"{len(self.payload)} bytes)"
        )


def commitment(spec: CeremonySpec, what: bytes, index: int, value: bytes) -> bytes:
    return hashlib.sha3_256(
        b"fhe_agg/ceremony-commit|" + what + spec.ceremony_id + index.to_bytes(4, "big") + value
    ).digest()


def poly_bytes(poly: U64) -> bytes:
    return poly.astype("<u8").tobytes()


def poly_from_bytes(blob: bytes, primes: tuple[int, ...], n: int, what: str) -> U64:
    if len(blob) != 8 * n * len(primes):
        raise MalformedMessage(f"{what}: expected {8 * n * len(primes)} bytes, got {len(blob)}")
    poly = np.frombuffer(blob, dtype="<u8").astype(np.uint64).reshape(len(primes), n)
    for i, q in enumerate(primes):
        if int(poly[i].max()) >= q:
            raise MalformedMessage(f"{what}: row {i} holds a value not reduced mod its prime")
    return poly


def signed_by(
    spec: CeremonySpec,
    key: VerifyKey,
    *,
    sender: int,
    phase: str,
    payload: bytes,
    signature: bytes,
) -> bool:
    """Does ``signature`` verify under ``key`` as ``sender``'s broadcast of ``payload`` in
    ``phase`` of this ceremony?"""
    statement = CeremonyMessage(
        ceremony_id=spec.ceremony_id,
        phase=phase,
        sender=sender,
        recipient=0,
        payload=payload,
    ).signed_bytes()
    try:
        key.verify(signature, statement, context=CEREMONY_CONTEXT)
    except InvalidSignature:
        return False
    return True


def collect_signed(
    messages: Sequence[CeremonyMessage],
    phase: str,
    *,
    spec: CeremonySpec,
    keys: Mapping[int, VerifyKey],
    recipient: int = 0,
) -> dict[int, CeremonyMessage]:
    """Exactly one message of ``phase`` from every holder in ``keys`` (but ``recipient``), of
    this ceremony, addressed to ``recipient`` (0: a broadcast), each signature verifying under
    its sender's key; :class:`CeremonyError` or :class:`InvalidSignature` naming the first
    that is not."""
    expected = set(keys) - ({recipient} if recipient else set())
    payloads: dict[int, CeremonyMessage] = {}
    for m in messages:
        if not isinstance(m, CeremonyMessage):
            raise TypeError("messages: expected CeremonyMessage items")
        if m.ceremony_id != spec.ceremony_id:
            raise CeremonyError(f"{phase}: a message belongs to another ceremony")
        if m.phase != phase:
            raise CeremonyError(f"{phase}: got a {m.phase!r} message")
        if m.sender not in expected:
            raise CeremonyError(f"{phase}: unexpected sender {m.sender}")
        if m.sender in payloads:
            raise CeremonyError(f"{phase}: holder {m.sender} sent twice", holder_index=m.sender)
        if m.recipient != recipient:
            raise CeremonyError(
                f"{phase}: message of holder {m.sender} is not addressed here",
                holder_index=m.sender,
            )
        try:
            keys[m.sender].verify(m.signature, m.signed_bytes(), context=CEREMONY_CONTEXT)
        except InvalidSignature:
            raise InvalidSignature(
                f"{phase}: signature of holder {m.sender} does not verify", holder_index=m.sender
            ) from None
        payloads[m.sender] = m
    if set(payloads) != expected:
        raise CeremonyError(f"{phase}: missing holders {sorted(expected - set(payloads))}")
    return payloads
