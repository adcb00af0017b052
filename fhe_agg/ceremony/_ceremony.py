"""Dealerless key ceremony: ``n`` key holders make a joint public key and ``t``-of-``n`` shares.

No party ever holds the joint secret ``s = s_1 + ... + s_n``. Every message is signed with the
sender's ML-DSA key and bound to the ceremony (consortium, epoch, preset, holders, threshold):

1. ``seed-commit``: each holder commits to a random seed (SHA3-256).
2. ``seed-reveal``: once all commitments are in, seeds are revealed and checked. The common
   polynomial ``a`` is expanded with SHAKE-256 from all seeds, uniformly per key-level prime
   (special prime included), so no holder can bias it.
3. ``key-commit``: each holder samples a ternary ``s_j`` and an error ``e_j`` and commits to its
   public-key share ``p_j = -(a*s_j + e_j)``; committing first stops a last mover from choosing
   ``p_j`` to cancel the others' (a rogue key).
4. ``key-reveal``: shares are revealed and checked; ``pk = (sum p_j, a)``.
5. ``confirm``: each holder signs H(transcript, pk) over every commitment it saw and the joint
   key, with the signed commitments as evidence; a holder goes on only if every confirmation
   carries its own digest, and names a holder that equivocated (signed two different
   commitments for different holders, who would derive different keys), see
   :mod:`fhe_agg.ceremony._transcript`.
6. ``share`` (``t < n`` only): each holder Shamir-shares ``s_j`` over the ring and sends
   ``S_j(k)`` to holder ``k`` sealed with HPKE (X-Wing) bound to (consortium, epoch, sender,
   recipient, "key-share/<ceremony id>") and signed; it keeps ``S_j(j)`` and erases ``s_j`` and
   ``S_j``. Holder ``k`` keeps only the sum of what it received. For ``t = n`` the additive
   ``s_j`` is the share.

Public-key shares carry no proof that ``s_j`` and ``e_j`` are short (no lattice proof of
knowledge): a holder may publish a ``p_j`` with a long secret or error. It cannot choose ``p_j``
after seeing the others' (commitments), so it gains no key of its own, but every ciphertext is
then noisier than the bound ``B_ct`` the flooding is sized for: far off, decryptions fail
(:class:`DecryptionFailed`); a moderately long ``e_j`` erodes the flooding margin unseen. Honest
key generation by every holder is assumed, as for the Shamir shares (README, threat model).

A member's methods are the phases, in order; each checks every incoming message before it changes
any state, so a refused message (typed error) leaves the member where it was. Shares are not
verifiable (no lattice VSS): a holder sending a wrong share to a peer is detected only when a
decryption including that peer fails (:class:`~fhe_agg.DecryptionFailed`); the README's threat
model says so. With ``audit`` (an :class:`~fhe_agg.identity.AuditLog` bound to the holder's key),
every refused step is recorded as ``ceremony.rejected`` (step, error class and message).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Concatenate, ParamSpec, TypeVar

import numpy as np

from fhe_agg._errors import CeremonyError, FheAggError, InvalidSignature, MalformedMessage
from fhe_agg.ceremony._transcript import Transcript, check_confirmation, confirmation_bytes
from fhe_agg.ckks._keys import KeyShare, PublicKey, common_polynomial, sample_secret
from fhe_agg.ckks._params import CkksPreset
from fhe_agg.ckks._random import RandomSource, default_random
from fhe_agg.ckks._seal import backend_for
from fhe_agg.hazmat.rlwe import FixedOperand, add_polys
from fhe_agg.hazmat.rns import U64
from fhe_agg.hazmat.shamir import share_polynomial
from fhe_agg.identity._auditlog import AuditLog, require_recorder
from fhe_agg.identity._sealing import (
    MAX_SEALED_PLAINTEXT,
    SealInfo,
    SealingPrivateKey,
    SealingPublicKey,
    open_sealed,
    seal,
)
from fhe_agg.identity._suites import Suite
from fhe_agg.protocol._signing import SigningKey, VerifyKey
from fhe_agg.protocol._wire import pack, unpack

__all__ = [
    "CEREMONY_CONTEXT",
    "CEREMONY_STEPS",
    "CeremonyMember",
    "CeremonyMessage",
    "CeremonySpec",
    "HolderIdentity",
    "run_ceremony",
]

#: ML-DSA context string of ceremony messages.
CEREMONY_CONTEXT = b"fhe_agg/ceremony/v1"
_SEALING_SUITE = Suite.PQ_ONLY
_PHASES = ("seed-commit", "seed-reveal", "key-commit", "key-reveal", "confirm", "share")
#: The member's methods in the order a ceremony calls them (the last one finishes it).
CEREMONY_STEPS = (
    "seed_commitment",
    "reveal_seed",
    "key_commitment",
    "reveal_public_share",
    "confirm",
    "deal",
    "finish",
)
#: Most key holders of one ceremony: a confirmation carries ~6.7 kB of evidence per holder.
MAX_CEREMONY_HOLDERS = 512
_MAX_MESSAGE = 4 * MAX_SEALED_PLAINTEXT
_P = ParamSpec("_P")
_R = TypeVar("_R")


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
        f = unpack(data, "ceremony", max_bytes=_MAX_MESSAGE, max_bin=_MAX_MESSAGE, max_array=0)
        f.expect_keys("id", "phase", "from", "to", "payload", "sig")
        phase = f.text("phase", max_len=16)
        if phase not in _PHASES:
            raise MalformedMessage(f"ceremony.phase: unknown phase {phase!r}")
        return cls(
            ceremony_id=f.blob("id", size=32),
            phase=phase,
            sender=f.integer("from", 1, 2**20),
            recipient=f.integer("to", 0, 2**20),
            payload=f.blob("payload", max_size=_MAX_MESSAGE),
            signature=f.blob("sig", max_size=8192),
        )

    def __repr__(self) -> str:
        return (
            f"CeremonyMessage(phase={self.phase!r}, from={self.sender}, to={self.recipient}, "
            f"{len(self.payload)} bytes)"
        )


def _commitment(spec: CeremonySpec, what: bytes, index: int, value: bytes) -> bytes:
    return hashlib.sha3_256(
        b"fhe_agg/ceremony-commit|" + what + spec.ceremony_id + index.to_bytes(4, "big") + value
    ).digest()


def _poly_bytes(poly: U64) -> bytes:
    return poly.astype("<u8").tobytes()


def _poly_from_bytes(blob: bytes, primes: tuple[int, ...], n: int, what: str) -> U64:
    if len(blob) != 8 * n * len(primes):
        raise MalformedMessage(f"{what}: expected {8 * n * len(primes)} bytes, got {len(blob)}")
    poly = np.frombuffer(blob, dtype="<u8").astype(np.uint64).reshape(len(primes), n)
    for i, q in enumerate(primes):
        if int(poly[i].max()) >= q:
            raise MalformedMessage(f"{what}: row {i} holds a value not reduced mod its prime")
    return poly


def _audited(
    step: Callable[Concatenate[CeremonyMember, _P], _R],
) -> Callable[Concatenate[CeremonyMember, _P], _R]:
    """Record a refused step in the member's audit log (if any), then re-raise."""

    @functools.wraps(step)
    def run(member: CeremonyMember, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return step(member, *args, **kwargs)
        except FheAggError as exc:
            if member._audit is not None:
                member._audit.record(
                    "ceremony.rejected",
                    {
                        "ceremony": member.spec.ceremony_id.hex(),
                        "epoch": member.spec.epoch,
                        "holder": member.holder_id,
                        "step": step.__name__,
                        "error": type(exc).__name__,
                        "reason": str(exc),
                    },
                )
            raise

    return run


class CeremonyMember:
    """One key holder's side of the ceremony. Call the phases in order; see the module doc."""

    def __init__(
        self,
        *,
        spec: CeremonySpec,
        holder_id: str,
        signing_key: SigningKey,
        sealing_key: SealingPrivateKey,
        directory: Mapping[str, HolderIdentity],
        rng: RandomSource | None = None,
        audit: AuditLog | None = None,
    ) -> None:
        missing = set(spec.holders) - set(directory)
        if missing:
            raise ValueError(f"directory: no identity for holders {sorted(missing)}")
        self.spec = spec
        self.holder_id = holder_id
        self.index = spec.index_of(holder_id)
        if directory[holder_id].verify_key != signing_key.verify_key:
            raise ValueError("signing_key: does not match this holder's identity in directory")
        self._audit = None if audit is None else require_recorder(audit)
        self._signing_key = signing_key
        self._sealing_key = sealing_key
        self._directory = {spec.index_of(h): directory[h] for h in spec.holders}
        self._rng = rng or default_random()
        backend = backend_for(spec.preset)
        self._n, self._primes = backend.n, backend.key_primes
        self._phase = 0
        self._seed = self._rng.bytes(32)
        self._seed_commits: dict[int, bytes] = {}
        self._seen: dict[str, dict[int, tuple[bytes, bytes]]] = {}  # phase -> (payload, sig)
        self._transcript: Transcript | None = None
        self._a: U64 | None = None
        self._secret: U64 | None = None
        self._public_share: bytes = b""
        self._key_commits: dict[int, bytes] = {}
        self._public_key: PublicKey | None = None
        self._own_share: U64 | None = None

    @property
    def steps_done(self) -> int:
        """How many of the seven steps this member has completed (a refused step counts none)."""
        return self._phase

    # -- helpers -------------------------------------------------------------------------------

    def _message(self, phase: str, payload: bytes, recipient: int = 0) -> CeremonyMessage:
        unsigned = CeremonyMessage(
            ceremony_id=self.spec.ceremony_id,
            phase=phase,
            sender=self.index,
            recipient=recipient,
            payload=payload,
        )
        signature = self._signing_key.sign(unsigned.signed_bytes(), context=CEREMONY_CONTEXT)
        return CeremonyMessage(
            ceremony_id=unsigned.ceremony_id,
            phase=phase,
            sender=self.index,
            recipient=recipient,
            payload=payload,
            signature=signature,
        )

    def _enter(self, phase: int) -> None:
        if self._phase != phase:
            raise CeremonyError(
                f"holder {self.holder_id!r}: {CEREMONY_STEPS[phase]}() is out of order "
                f"({self._phase} of {len(CEREMONY_STEPS)} steps done)"
            )

    def _collect(
        self, messages: Sequence[CeremonyMessage], phase: str, *, to_me: bool = False
    ) -> dict[int, bytes]:
        """Verify one message of ``phase`` from every holder (every other holder if ``to_me``)."""
        return {j: m.payload for j, m in self._collect_signed(messages, phase, to_me).items()}

    def _signed_by(self, sender: int, phase: str, payload: bytes, signature: bytes) -> bool:
        """Does ``signature`` verify as ``sender``'s broadcast of ``payload`` in ``phase``?"""
        statement = CeremonyMessage(
            ceremony_id=self.spec.ceremony_id,
            phase=phase,
            sender=sender,
            recipient=0,
            payload=payload,
        ).signed_bytes()
        try:
            self._directory[sender].verify_key.verify(
                signature, statement, context=CEREMONY_CONTEXT
            )
        except InvalidSignature:
            return False
        return True

    def _collect_signed(
        self, messages: Sequence[CeremonyMessage], phase: str, to_me: bool = False
    ) -> dict[int, CeremonyMessage]:
        expected = set(self._directory) - ({self.index} if to_me else set())
        payloads: dict[int, CeremonyMessage] = {}
        for m in messages:
            if not isinstance(m, CeremonyMessage):
                raise TypeError("messages: expected CeremonyMessage items")
            if m.ceremony_id != self.spec.ceremony_id:
                raise CeremonyError(f"{phase}: a message belongs to another ceremony")
            if m.phase != phase:
                raise CeremonyError(f"{phase}: got a {m.phase!r} message")
            if m.sender not in expected:
                raise CeremonyError(f"{phase}: unexpected sender {m.sender}")
            if m.sender in payloads:
                raise CeremonyError(f"{phase}: holder {m.sender} sent twice")
            if m.recipient != (self.index if to_me else 0):
                raise CeremonyError(f"{phase}: message of holder {m.sender} is not addressed here")
            try:
                self._directory[m.sender].verify_key.verify(
                    m.signature, m.signed_bytes(), context=CEREMONY_CONTEXT
                )
            except InvalidSignature:
                raise InvalidSignature(
                    f"{phase}: signature of holder {m.sender} does not verify"
                ) from None
            payloads[m.sender] = m
        if set(payloads) != expected:
            raise CeremonyError(f"{phase}: missing holders {sorted(expected - set(payloads))}")
        return payloads

    # -- phases --------------------------------------------------------------------------------

    @_audited
    def seed_commitment(self) -> CeremonyMessage:
        """Phase 1: commit to this holder's seed for the common polynomial ``a``."""
        self._enter(0)
        self._phase = 1
        return self._message("seed-commit", _commitment(self.spec, b"seed", self.index, self._seed))

    @_audited
    def reveal_seed(self, commitments: Sequence[CeremonyMessage]) -> CeremonyMessage:
        """Phase 2: given every holder's seed commitment, reveal the seed."""
        self._enter(1)
        signed = self._collect_signed(commitments, "seed-commit")
        commits = {j: m.payload for j, m in signed.items()}
        if commits[self.index] != _commitment(self.spec, b"seed", self.index, self._seed):
            raise CeremonyError("seed-commit: this holder's own commitment was replaced")
        self._seed_commits = commits
        self._seen["seed-commit"] = {j: (m.payload, m.signature) for j, m in signed.items()}
        self._phase = 2
        return self._message("seed-reveal", self._seed)

    @_audited
    def key_commitment(self, reveals: Sequence[CeremonyMessage]) -> CeremonyMessage:
        """Phase 3: check every seed, expand ``a``, sample ``s_j``/``e_j``; commit to ``p_j``."""
        self._enter(2)
        seeds = self._collect(reveals, "seed-reveal")
        for j, seed in seeds.items():
            if len(seed) != 32 or _commitment(self.spec, b"seed", j, seed) != self._seed_commits[j]:
                raise CeremonyError(f"seed-reveal: holder {j}'s seed does not match its commitment")
        crs = hashlib.sha3_256(
            b"fhe_agg/crs|" + self.spec.ceremony_id + b"".join(seeds[j] for j in sorted(seeds))
        ).digest()
        self._a = common_polynomial(crs, self._n, self._primes)
        secret, share = sample_secret(self._a, self._n, self._primes, self._rng)
        self._secret = secret
        self._public_share = _poly_bytes(share)
        self._phase = 3
        return self._message(
            "key-commit", _commitment(self.spec, b"key", self.index, self._public_share)
        )

    @_audited
    def reveal_public_share(self, commitments: Sequence[CeremonyMessage]) -> CeremonyMessage:
        """Phase 4: given every holder's key commitment, reveal ``p_j``."""
        self._enter(3)
        signed = self._collect_signed(commitments, "key-commit")
        commits = {j: m.payload for j, m in signed.items()}
        if commits[self.index] != _commitment(self.spec, b"key", self.index, self._public_share):
            raise CeremonyError("key-commit: this holder's own commitment was replaced")
        self._key_commits = commits
        self._seen["key-commit"] = {j: (m.payload, m.signature) for j, m in signed.items()}
        self._phase = 4
        return self._message("key-reveal", self._public_share)

    @_audited
    def confirm(self, reveals: Sequence[CeremonyMessage]) -> CeremonyMessage:
        """Phase 5: check every ``p_j``, form the joint public key, and sign H(transcript, pk)
        with the signed commitments as evidence (see :mod:`fhe_agg.ceremony._transcript`)."""
        self._enter(4)
        shares = self._collect(reveals, "key-reveal")
        polys: dict[int, U64] = {}
        for j, blob in shares.items():
            if _commitment(self.spec, b"key", j, blob) != self._key_commits[j]:
                raise CeremonyError(
                    f"key-reveal: holder {j}'s public-key share does not match its commitment"
                )
            polys[j] = _poly_from_bytes(blob, self._primes, self._n, f"key-reveal of holder {j}")
        assert self._a is not None and self._secret is not None
        b = polys[1]
        for j in sorted(polys)[1:]:
            b = add_polys(b, polys[j], self._primes)
        self._public_key = PublicKey.from_arrays(self.spec.preset, b, self._a)
        self._transcript = Transcript(
            entries=dict(self._seen), public_key=hashlib.sha3_256(self._public_key.blob).digest()
        )
        self._phase = 5
        return self._message("confirm", confirmation_bytes(self._transcript, self.spec.ceremony_id))

    @_audited
    def deal(self, confirmations: Sequence[CeremonyMessage]) -> list[CeremonyMessage]:
        """Phase 6: given every holder's confirmation, check that all carry this holder's
        transcript digest (:class:`CeremonyError` naming a holder that equivocated, or a
        confirmation that lies), then (``t < n``) send each other holder its sealed Shamir
        share of ``s_j``. ``s_j`` is erased afterwards."""
        self._enter(5)
        assert self._transcript is not None and self._secret is not None
        for j, payload in sorted(self._collect(confirmations, "confirm").items()):
            check_confirmation(
                self._transcript,
                payload,
                sender=j,
                ceremony_id=self.spec.ceremony_id,
                names=self.spec.holders,
                signed_by=self._signed_by,
            )
        holders, t = len(self.spec.holders), self.spec.threshold
        secret, self._secret = self._secret, None
        out: list[CeremonyMessage] = []
        if t == holders:
            self._own_share = secret
        else:
            dealt = share_polynomial(
                secret, threshold=t, holders=holders, primes=self._primes, rng=self._rng
            )
            secret.fill(0)
            for k in sorted(dealt):
                if k == self.index:
                    self._own_share = dealt[k]
                    continue
                info = self._seal_info(self.index, k)
                sealed = seal(
                    self._directory[k].sealing_key,
                    _poly_bytes(dealt[k]),
                    info=info,
                    suite=_SEALING_SUITE,
                )
                dealt[k].fill(0)
                out.append(self._message("share", sealed, recipient=k))
        self._phase = 6
        return out

    def _seal_info(self, sender: int, recipient: int) -> SealInfo:
        return SealInfo(
            consortium=self.spec.consortium,
            epoch=self.spec.epoch,
            sender=self.spec.holders[sender - 1],
            recipient=self.spec.holders[recipient - 1],
            purpose=f"key-share/{self.spec.ceremony_id.hex()}",  # a share opens in its ceremony only
        )

    @_audited
    def finish(self, shares: Sequence[CeremonyMessage]) -> tuple[PublicKey, KeyShare]:
        """Phase 6: open the shares sent to this holder and keep only their sum.

        Refuses (typed errors, state unchanged) a share that is unsigned, tampered, sealed for
        another holder, epoch or ceremony, or missing.
        """
        self._enter(6)
        assert self._public_key is not None and self._own_share is not None
        t, holders = self.spec.threshold, len(self.spec.holders)
        received: dict[int, U64] = {}
        if t < holders:
            for j, sealed in self._collect(shares, "share", to_me=True).items():
                plain = open_sealed(
                    self._sealing_key,
                    sealed,
                    info=self._seal_info(j, self.index),
                    suite=_SEALING_SUITE,
                )
                received[j] = _poly_from_bytes(plain, self._primes, self._n, f"share of holder {j}")
        elif shares:
            raise CeremonyError("share: an n-of-n ceremony sends no shares")
        total = self._own_share
        for j in sorted(received):
            total = add_polys(total, received[j], self._primes)
            received[j].fill(0)
        if total is not self._own_share:
            self._own_share.fill(0)
        self._own_share = None
        self._phase = 7
        key_share = KeyShare(
            preset=self.spec.preset,
            holder_index=self.index,
            threshold=t,
            holders=holders,
            public_key_fingerprint=self._public_key.fingerprint,
            operand=FixedOperand.of(total, self._primes),
        )
        return self._public_key, key_share

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("CeremonyMember cannot be pickled: it holds secret key material")

    def save(self) -> bytes:
        """This member's state between two steps, sealed at rest to its own sealing key (bound
        to consortium, epoch, holder id and ceremony; see :mod:`fhe_agg.ceremony._state`)."""
        from fhe_agg.ceremony._state import dump_member

        return dump_member(self)

    @classmethod
    def resume(
        cls,
        blob: bytes,
        *,
        spec: CeremonySpec,
        holder_id: str,
        signing_key: SigningKey,
        sealing_key: SealingPrivateKey,
        directory: Mapping[str, HolderIdentity],
        audit: AuditLog | None = None,
    ) -> CeremonyMember:
        """The member :meth:`save` wrote, ready for its next step.
        :class:`~fhe_agg.identity.SealingError` for a blob of another holder, ceremony or key."""
        from fhe_agg.ceremony._state import load_member

        member = cls(
            spec=spec,
            holder_id=holder_id,
            signing_key=signing_key,
            sealing_key=sealing_key,
            directory=directory,
            audit=audit,
        )
        load_member(member, blob)
        return member

    def __repr__(self) -> str:
        return (
            f"CeremonyMember(holder={self.holder_id!r}, index={self.index}, "
            f"phases_done={self._phase}, <secret>)"
        )


def run_ceremony(members: Sequence[CeremonyMember]) -> tuple[PublicKey, list[KeyShare]]:
    """Drive a whole ceremony in one process, passing every message through its wire bytes.

    For simulations and tests; a deployment runs the same phases over its own transport.
    Returns the joint public key (every member must agree on it) and each member's key share.
    """

    def relay(messages: Sequence[CeremonyMessage]) -> list[CeremonyMessage]:
        return [CeremonyMessage.from_bytes(m.to_bytes()) for m in messages]

    commits = relay([m.seed_commitment() for m in members])
    seeds = relay([m.reveal_seed(commits) for m in members])
    key_commits = relay([m.key_commitment(seeds) for m in members])
    key_shares = relay([m.reveal_public_share(key_commits) for m in members])
    confirmations = relay([m.confirm(key_shares) for m in members])
    dealt = relay([msg for m in members for msg in m.deal(confirmations)])
    results = [m.finish([d for d in dealt if d.recipient == m.index]) for m in members]
    public_key = results[0][0]
    if any(pk.blob != public_key.blob for pk, _ in results):
        raise CeremonyError("holders derived different public keys")
    return public_key, [share for _, share in results]
