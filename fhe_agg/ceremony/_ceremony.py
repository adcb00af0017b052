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
every refused step is recorded as ``ceremony.rejected`` (step, error code and message, and the
holder it names). The messages and their checks: :mod:`fhe_agg.ceremony._messages`; the share
phase: :mod:`fhe_agg.ceremony._shares`.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import Concatenate, ParamSpec, TypeVar

from fhe_agg._errors import CeremonyError, FheAggError, error_fields
from fhe_agg.ceremony._messages import (
    CEREMONY_CONTEXT,
    CeremonyMessage,
    CeremonySpec,
    HolderIdentity,
    collect_signed,
    commitment,
    poly_bytes,
    poly_from_bytes,
    signed_by,
)
from fhe_agg.ceremony._shares import deal_shares, open_shares
from fhe_agg.ceremony._transcript import Transcript, check_confirmation, confirmation_bytes
from fhe_agg.ckks._keys import KeyShare, PublicKey, common_polynomial, sample_secret
from fhe_agg.ckks._random import RandomSource, default_random
from fhe_agg.ckks._seal import backend_for
from fhe_agg.hazmat.rlwe import add_polys
from fhe_agg.hazmat.rns import U64
from fhe_agg.identity._auditlog import AuditLog, require_recorder
from fhe_agg.identity._sealing import SealingPrivateKey
from fhe_agg.protocol._signing import SigningKey

__all__ = [
    "CEREMONY_CONTEXT",
    "CEREMONY_STEPS",
    "CeremonyMember",
    "CeremonyMessage",
    "CeremonySpec",
    "HolderIdentity",
]

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
_P = ParamSpec("_P")
_R = TypeVar("_R")


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
                        **error_fields(exc),
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
        return CeremonyMessage.sign(
            self._signing_key,
            ceremony_id=self.spec.ceremony_id,
            phase=phase,
            sender=self.index,
            recipient=recipient,
            payload=payload,
        )

    def _enter(self, phase: int) -> None:
        if self._phase != phase:
            raise CeremonyError(
                f"holder {self.holder_id!r}: {CEREMONY_STEPS[phase]}() is out of order "
                f"({self._phase} of {len(CEREMONY_STEPS)} steps done)",
                party=self.holder_id,
                holder_index=self.index,
            )

    def _collect(
        self, messages: Sequence[CeremonyMessage], phase: str, *, to_me: bool = False
    ) -> dict[int, bytes]:
        """Verify one message of ``phase`` from every holder (every other holder if ``to_me``)."""
        return {j: m.payload for j, m in self._collect_signed(messages, phase, to_me).items()}

    def _signed_by(self, sender: int, phase: str, payload: bytes, signature: bytes) -> bool:
        """Does ``signature`` verify as ``sender``'s broadcast of ``payload`` in ``phase``?"""
        key = self._directory[sender].verify_key
        return signed_by(
            self.spec, key, sender=sender, phase=phase, payload=payload, signature=signature
        )

    def _collect_signed(
        self, messages: Sequence[CeremonyMessage], phase: str, to_me: bool = False
    ) -> dict[int, CeremonyMessage]:
        keys = {j: identity.verify_key for j, identity in self._directory.items()}
        recipient = self.index if to_me else 0
        return collect_signed(messages, phase, spec=self.spec, keys=keys, recipient=recipient)

    # -- phases --------------------------------------------------------------------------------

    @_audited
    def seed_commitment(self) -> CeremonyMessage:
        """Phase 1: commit to this holder's seed for the common polynomial ``a``."""
        self._enter(0)
        self._phase = 1
        return self._message("seed-commit", commitment(self.spec, b"seed", self.index, self._seed))

    @_audited
    def reveal_seed(self, commitments: Sequence[CeremonyMessage]) -> CeremonyMessage:
        """Phase 2: given every holder's seed commitment, reveal the seed."""
        self._enter(1)
        signed = self._collect_signed(commitments, "seed-commit")
        commits = {j: m.payload for j, m in signed.items()}
        if commits[self.index] != commitment(self.spec, b"seed", self.index, self._seed):
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
            if len(seed) != 32 or commitment(self.spec, b"seed", j, seed) != self._seed_commits[j]:
                raise CeremonyError(
                    f"seed-reveal: holder {j}'s seed does not match its commitment", holder_index=j
                )
        crs = hashlib.sha3_256(
            b"fhe_agg/crs|" + self.spec.ceremony_id + b"".join(seeds[j] for j in sorted(seeds))
        ).digest()
        self._a = common_polynomial(crs, self._n, self._primes)
        secret, share = sample_secret(self._a, self._n, self._primes, self._rng)
        self._secret = secret
        self._public_share = poly_bytes(share)
        self._phase = 3
        return self._message(
            "key-commit", commitment(self.spec, b"key", self.index, self._public_share)
        )

    @_audited
    def reveal_public_share(self, commitments: Sequence[CeremonyMessage]) -> CeremonyMessage:
        """Phase 4: given every holder's key commitment, reveal ``p_j``."""
        self._enter(3)
        signed = self._collect_signed(commitments, "key-commit")
        commits = {j: m.payload for j, m in signed.items()}
        if commits[self.index] != commitment(self.spec, b"key", self.index, self._public_share):
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
            if commitment(self.spec, b"key", j, blob) != self._key_commits[j]:
                raise CeremonyError(
                    f"key-reveal: holder {j}'s public-key share does not match its commitment",
                    holder_index=j,
                )
            polys[j] = poly_from_bytes(blob, self._primes, self._n, f"key-reveal of holder {j}")
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
        secret, self._secret = self._secret, None
        recipients = {k: identity.sealing_key for k, identity in self._directory.items()}
        self._own_share, sealed = deal_shares(
            secret,
            spec=self.spec,
            index=self.index,
            recipients=recipients,
            primes=self._primes,
            rng=self._rng,
        )
        out = [self._message("share", blob, recipient=k) for k, blob in sealed.items()]
        self._phase = 6
        return out

    @_audited
    def finish(self, shares: Sequence[CeremonyMessage]) -> tuple[PublicKey, KeyShare]:
        """Phase 6: open the shares sent to this holder and keep only their sum.

        Refuses (typed errors, state unchanged) a share that is unsigned, tampered, sealed for
        another holder, epoch or ceremony, or missing.
        """
        self._enter(6)
        assert self._public_key is not None and self._own_share is not None
        t, holders = self.spec.threshold, len(self.spec.holders)
        if t < holders:
            sealed = self._collect(shares, "share", to_me=True)
        elif shares:
            raise CeremonyError("share: an n-of-n ceremony sends no shares")
        else:
            sealed = {}
        total = open_shares(
            sealed,
            self._own_share,
            spec=self.spec,
            index=self.index,
            sealing_key=self._sealing_key,
            primes=self._primes,
            n=self._n,
        )
        self._own_share = None
        self._phase = 7
        key_share = KeyShare(
            preset=self.spec.preset,
            holder_index=self.index,
            threshold=t,
            holders=holders,
            public_key_fingerprint=self._public_key.fingerprint,
            value=total,
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
