"""A roster member colluding with the server to recover the joint secret key (issue "key safety").

The attacker is ``dee``, an enrolled client with its real ML-DSA roster key; its accomplice runs
the aggregation server, so it sees the honest clients' ciphertexts before it submits and talks
to the key holders itself. Decryption is linear: whatever it puts into the aggregate comes back
out of ``c0 + c1 * s``. Its crafts, all real SEAL-format chunks at the data level:

* ``constant``: ``(-sum c0_honest, K_i - sum c1_honest)`` per chunk ``i``, so the aggregate is
  ``(0, K_i)`` and the holders' partials sum to ``K_i * s + E``: rounding by ``K_i`` gives ``s``
  (one shot with a large ``K``; with ``K`` just above the flooding noise, the decoded mean stays
  inside the combiner's release bound and averaging ``release / K_i`` over the chunks gives ``s``);
* ``cancel``: ``-(sum of some honest chunks)``: the release is the other clients' update alone;
* ``copy``: another member's ciphertext plus a fresh encryption of zero (a re-randomised copy).

Recovery is real: the partials (or the released reals) are turned back into coefficients with
SEAL's own inverse NTT, ``s`` is rounded out, and :meth:`Attacker.key_error` checks that
``b + a * s`` under the joint public key is small (it is ``-e``, about ``n * 19`` at most) and
:meth:`Attacker.decrypt` reads a victim's own ciphertext with it.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from unittest import mock

import numpy as np
import tenseal.sealapi as sealapi
import zstandard
from numpy.typing import NDArray

from fhe_agg import (
    Aggregator,
    DecryptionSession,
    EncryptedAggregate,
    EncryptedUpdate,
    FheAggError,
    PartialDecryption,
    PublicKey,
)
from fhe_agg.ckks._seal import SealBackend, backend_for
from fhe_agg.client._client import ProvenChunks
from fhe_agg.hazmat.rlwe import FixedOperand, add_polys, mul_fixed, to_ntt
from fhe_agg.hazmat.rns import U64, add_mod, neg_mod
from fhe_agg.hazmat.seal_format import RawCiphertext, parse_ciphertext
from fhe_agg.protocol._config import FederationConfig

from .conftest import WEIGHTS, AuditTrail, Consortium, state_of

ATTACKER = "dee"
_ZEROS: dict[tuple[int, int], ProvenChunks] = {}
_HEADER = 16
_CT_META = struct.calcsize("<4QB3QdQ")
_PT_META = struct.calcsize("<4QQd")
_DYN = 16 + 8  # a DynArray's own header and its count


def _members(blob: bytes) -> bytes:
    """A SEAL serialization's members, decompressed when its header says zstd."""
    if blob[4] == 0:
        return blob[_HEADER:]
    return zstandard.ZstdDecompressor().decompress(blob[_HEADER:], max_output_size=10**9)


def inverse_ntt(b: SealBackend, ntt_form: U64) -> U64:
    """Coefficients (residues ``[prime, coefficient]``) of a data-level NTT-form polynomial, by
    SEAL's own ``transform_from_ntt`` (fhe_agg has only the forward NTT)."""
    raw = RawCiphertext(b.data_parms_id, 1.0, np.stack([ntt_form, ntt_form]))
    cipher = b.load_ciphertext(b.pack(raw))
    sealapi.Evaluator(b.context).transform_from_ntt_inplace(cipher)
    count = len(b.data_primes) * b.n
    body = _members(b.save(cipher))
    coeffs = np.frombuffer(body, dtype="<u8", count=count, offset=_CT_META + _DYN)
    return coeffs.reshape(len(b.data_primes), b.n).astype(np.uint64)


def centered(b: SealBackend, residues: U64) -> NDArray[np.object_]:
    """Signed coefficients (Python ints, CRT over every data prime, centred mod ``q``)."""
    primes = b.data_primes
    q = math.prod(primes)
    total = np.zeros(b.n, dtype=object)
    for i, p in enumerate(primes):
        rest = q // p
        total = total + residues[i].astype(object) * (rest * pow(rest, -1, p))
    total = total % q
    return np.where(total > q // 2, total - q, total)


def _small(values: NDArray[np.object_]) -> NDArray[np.int64]:
    return np.array([int(v) for v in values], dtype=np.int64)


def encode_integers(b: SealBackend, slots: NDArray[np.complex128]) -> NDArray[np.int64]:
    """``round(inverse canonical embedding(slots))``: SEAL's encoder at scale 1, read back."""
    plain = sealapi.Plaintext()
    b.encoder.encode(slots.tolist(), b.data_parms_id, 1.0, plain)
    count = len(b.data_primes) * b.n
    body = _members(b.save(plain))
    ntt_form = np.frombuffer(body, dtype="<u8", count=count, offset=_PT_META + _DYN)
    return _small(centered(b, inverse_ntt(b, ntt_form.reshape(len(b.data_primes), b.n).copy())))


@dataclass(frozen=True)
class Recovery:
    """What the attacker got: its guess of ``s`` and how well it checks out."""

    secret: NDArray[np.int64]
    key_error: int  # max |b + a*s| over the data level: about n*19 for the right key

    @property
    def is_key(self) -> bool:
        return self.key_error < 2**12


class Attacker:
    """``dee`` and the server it colludes with, in one federation (``fed``)."""

    def __init__(self, fed: Consortium) -> None:
        self.fed = fed
        self.config: FederationConfig = fed.config
        self.b = backend_for(fed.config.preset)
        self.primes = self.b.data_primes

    def plain(self, cid: str) -> NDArray[np.float64]:
        """What ``cid`` really encrypts (its data as the client prepares it: clipped with DP)."""
        vector, _ = self.fed.client(cid).prepare(self.fed.data[cid])
        return vector

    # -- crafting ------------------------------------------------------------------------------

    def _polys(self, update: EncryptedUpdate) -> U64:
        return np.stack([self.b.parse(c, what="chunk").data for c in update.chunks])

    def _sum(self, updates: Sequence[EncryptedUpdate]) -> U64:
        total = self._polys(updates[0])
        for other in updates[1:]:
            total = add_polys(total, self._polys(other), self.primes)
        return total

    def _negated(self, data: U64) -> U64:
        out = np.empty_like(data)
        for i, q in enumerate(self.primes):
            out[..., i, :] = neg_mod(data[..., i, :], q)
        return out

    def _pack(self, data: U64) -> tuple[bytes, ...]:
        return tuple(
            self.b.pack(RawCiphertext(self.b.data_parms_id, self.config.scale, d)) for d in data
        )

    def constant(self, honest: Sequence[EncryptedUpdate], ks: Sequence[int]) -> tuple[bytes, ...]:
        """``(-sum c0, K_i - sum c1)`` per chunk: the aggregate becomes ``(0, K_i)``. A constant
        polynomial ``K`` is ``K`` at every NTT point."""
        crafted = self._negated(self._sum(honest))
        for i, k in enumerate(ks):
            for j, q in enumerate(self.primes):
                crafted[i, 1, j] = add_mod(crafted[i, 1, j], np.uint64(k % q), q)
        return self._pack(crafted)

    def cancel(self, cancelled: Sequence[EncryptedUpdate]) -> tuple[bytes, ...]:
        """``-(sum of cancelled)``: the aggregate keeps only the other clients."""
        return self._pack(self._negated(self._sum(cancelled)))

    def copy(self, victim: EncryptedUpdate, round_id: int) -> tuple[bytes, ...]:
        """The victim's ciphertext plus a fresh encryption of zero (a re-randomised copy)."""
        zero = self.zeros(round_id)
        rerandomised = add_polys(self._polys(victim), self._sum_chunks(zero.chunks), self.primes)
        return self._pack(rerandomised)

    def zeros(self, round_id: int) -> ProvenChunks:
        """dee's honest encryption of zeros for ``round_id``, with its proofs (made once per
        federation and round: proving is the slow part of the suite)."""
        key = (id(self.fed), round_id)
        if key not in _ZEROS:
            client = self.fed.client(ATTACKER)
            _ZEROS[key] = client.encrypt_chunks(np.zeros(self.fed.layout.length), round_id=round_id)
        return _ZEROS[key]

    def _sum_chunks(self, chunks: Sequence[bytes]) -> U64:
        return np.stack([self.b.parse(c, what="chunk").data for c in chunks])

    def sign(
        self, chunks: tuple[bytes, ...], *, round_id: int, weight: float, proof: str = "other"
    ) -> EncryptedUpdate:
        """Sign ``chunks`` as ``dee`` with its real roster key, carrying proof bytes of kind
        ``proof``: ``other`` (the honest prover's proofs of dee's own encryption of zeros, same
        round and indices: valid proofs, of other ciphertexts), ``random`` (bytes of a real
        proof's length) or ``none``."""
        client = self.fed.client(ATTACKER)
        assert proof in PROOFS
        honest = self.zeros(round_id)
        proofs: tuple[bytes, ...] = ()
        if proof == "other":
            proofs = honest.proofs
        elif proof == "random":
            rng = np.random.default_rng(round_id)
            proofs = tuple(rng.bytes(len(p)) for p in honest.proofs)
        return client.sign_update(
            chunks, layout=self.fed.layout, round_id=round_id, weight=weight, proofs=proofs
        )

    # -- recovering ------------------------------------------------------------------------------

    def from_partials(
        self, partials: Mapping[int, PartialDecryption], ks: Sequence[int]
    ) -> Recovery | None:
        """``round(sum of partials / K)`` on the first chunk (None without a full set)."""
        if len(partials) < self.config.threshold:
            return None
        total = None
        for p in partials.values():
            total = p.data[0] if total is None else add_polys(total, p.data[0], self.primes)
        assert total is not None
        coeffs = centered(self.b, inverse_ntt(self.b, total))
        k = ks[0]
        secret = _small((coeffs + k // 2) // k)
        return self._checked(secret)

    def from_release(
        self, mean: NDArray[np.float64], ks: Sequence[int], scale: float
    ) -> Recovery | None:
        """Average ``release_i * scale / K_i`` over the chunks in the slot domain, then one
        inverse embedding rounds to ``s`` (``scale`` is the aggregate's: scale x total weight)."""
        n = self.b.n
        full = min(len(ks), mean.size // n)  # the release drops the last chunk's padding
        slots = np.zeros(n // 2, dtype=np.complex128)
        for i, k in enumerate(ks[:full]):
            reals = mean[i * n : (i + 1) * n]
            slots += (reals[0::2] + 1j * reals[1::2]) * (scale / k)
        return self._checked(encode_integers(self.b, slots / full))

    def _checked(self, secret: NDArray[np.int64]) -> Recovery:
        return Recovery(secret=secret, key_error=self.key_error(secret))

    def key_error(self, secret: NDArray[np.int64]) -> int:
        """``max |b + a * s|`` under the joint public key, at the data level."""
        pk = self.fed.public_key
        b, a = _public_key_arrays(pk, self.b)
        s_ntt = to_ntt(secret, self.b.n, self.primes)
        residual = add_polys(
            b, mul_fixed(a, FixedOperand.of(s_ntt, self.primes), self.primes), self.primes
        )
        return int(max(abs(v) for v in centered(self.b, inverse_ntt(self.b, residual))))

    def decrypt(self, secret: NDArray[np.int64], update: EncryptedUpdate) -> NDArray[np.float64]:
        """The first chunk of ``update`` decrypted with ``secret``: ``c0 + c1 * s``, decoded."""
        raw = self.b.parse(update.chunks[0], what="victim chunk")
        s_ntt = to_ntt(secret, self.b.n, self.primes)
        c1s = mul_fixed(raw.data[1], FixedOperand.of(s_ntt, self.primes), self.primes)
        return self.b.decode(add_polys(raw.data[0], c1s, self.primes), raw.scale)


def _public_key_arrays(pk: PublicKey, b: SealBackend) -> tuple[U64, U64]:
    raw = parse_ciphertext(
        pk.blob, n=b.n, primes=b.key_primes, parms_id=b.key_parms_id, what="public key"
    )
    rows = len(b.data_primes)
    return raw.data[0, :rows].copy(), raw.data[1, :rows].copy()


# -- one attack, end to end ------------------------------------------------------------------------

HONEST = ("ana", "ben", "cy")
PROOFS = ("other", "random", "none")  # the proof bytes a crafted update carries


@dataclass
class Outcome:
    """Everything an attack produced, for the defended assertions (and the report of a leak)."""

    aggregator_error: FheAggError | None
    aggregator_state_kept: bool
    aggregator_events: list[dict[str, Any]]
    holder_errors: dict[int, FheAggError | None]
    holder_state_kept: bool
    holder_events: dict[int, list[dict[str, Any]]]
    partials: dict[int, PartialDecryption]
    recovery: Recovery | None = None
    leaked: str | None = None  # what the attacker learned, in words (None: nothing)

    def describe(self) -> str:
        return (
            f"aggregator: {type(self.aggregator_error).__name__}; holders: "
            f"{ {j: type(e).__name__ for j, e in self.holder_errors.items()} }; "
            f"partials: {sorted(self.partials)}; leaked: {self.leaked}"
        )


@dataclass(frozen=True)
class Variant:
    """One craft of the issue: how ``dee``'s chunks are made and what it then tries to learn."""

    name: str
    weight: float


VARIANTS = {
    "constant": Variant("constant", 1.0),  # K = 2**50 (precise) / 2**55 (dp), one shot
    "averaged": Variant("averaged", 1.0),  # K_i just above the noise, through the release
    "cancel": Variant("cancel", 1.0),  # -(ben + cy): the release is ana's update alone
    "copy": Variant("copy", WEIGHTS["ana"]),  # ana's ciphertext, re-randomised, as dee's own
}


#: the issue's K (2**50 on precise, 2**55 on dp) beat the former, honest-noise flooding; the
#: attacker scales it with the (public) noise: 2**8 times one coefficient's standard deviation
def one_shot_k(config: FederationConfig) -> int:
    noise = math.sqrt(config.threshold) * config.holder_noise_sigma
    return 1 << (math.ceil(math.log2(noise)) + 8)


def _ks(fed: Consortium, variant: str) -> list[int]:
    chunks = fed.layout.chunk_count(fed.config.preset.reals_per_ciphertext)
    if variant == "constant":
        return [one_shot_k(fed.config)] * chunks
    # a few times the released noise of one coefficient: inside the combiner's release bound
    # (on ``dp`` the DP noise is large next to value_bound, so K must stay below it)
    factor = 16.0 if fed.config.dp is None else 0.5
    k0 = int(factor * math.sqrt(fed.config.threshold) * fed.config.holder_noise_sigma)
    return [k0 + i for i in range(chunks)]


def crafted_chunks(
    attacker: Attacker, variant: str, honest: Mapping[str, EncryptedUpdate], round_id: int
) -> tuple[bytes, ...]:
    if variant in ("constant", "averaged"):
        return attacker.constant(list(honest.values()), _ks(attacker.fed, variant))
    if variant == "cancel":
        return attacker.cancel([honest["ben"], honest["cy"]])
    return attacker.copy(honest["ana"], round_id)


def colluding_server(
    fed: Consortium, round_id: int, updates: Sequence[EncryptedUpdate]
) -> Aggregator:
    """The attacker's own server: the real aggregator code with its proof check skipped, so it
    counts every update it is given, its accomplice's too (the key holders are not patched)."""
    server = fed.aggregator(round_id)
    with mock.patch("fhe_agg.server._update_check.check_update_proofs", lambda *_, **__: None):
        for update in updates:
            server.add(update)
    return server


def sets_for(config: FederationConfig) -> dict[int, tuple[int, ...]]:
    """For every holder, a decrypting set of ``threshold`` holders that contains it (the first
    set, ``1..t``, is the one whose partials the attacker combines)."""
    n, t = config.holders, config.threshold
    out = {}
    for j in range(1, n + 1):
        others = [m for m in range(1, n + 1) if m != j]
        out[j] = tuple(sorted([j, *others[: t - 1]])) if j > t else tuple(range(1, t + 1))
    return out


def run_attack(
    fed: Consortium, variant: str, trail: AuditTrail, round_id: int, proof: str = "other"
) -> Outcome:
    """The attack end to end; each refusal is collected, never asserted here."""
    attacker = Attacker(fed)
    agg = fed.aggregator(round_id, audit=trail.log("aggregator"))
    honest = {c: fed.update(c, round_id) for c in HONEST}
    for update in honest.values():
        agg.add(update.to_bytes())
    chunks = crafted_chunks(attacker, variant, honest, round_id)
    update = attacker.sign(chunks, round_id=round_id, weight=VARIANTS[variant].weight, proof=proof)
    snapshot, logged = state_of(aggregator=agg), len(trail.entries("aggregator"))
    before = snapshot()
    agg_error: FheAggError | None = None
    try:
        agg.add(update.to_bytes())
    except FheAggError as exc:
        agg_error = exc
    agg_kept = snapshot() == before
    agg_events = trail.entries("aggregator")[logged:]

    server = colluding_server(fed, round_id, [*honest.values(), update])
    aggregate = server.finalize()
    holders = fed.key_holders(audits=trail.holder_logs(fed.config.holders))
    holder_state = state_of(holders=holders.values())
    before_holders = holder_state()
    logged_h = {j: len(trail.entries(f"holder-{j}")) for j in holders}
    errors: dict[int, FheAggError | None] = {}
    partials: dict[int, PartialDecryption] = {}
    for j, members in sets_for(fed.config).items():
        try:
            p = holders[j].partial_decrypt(
                aggregate,
                server.evidence(holders[j].challenge(aggregate)),
                layout=fed.layout,
                decrypting_set=members,
            )
            errors[j] = None
            if members == tuple(range(1, fed.config.threshold + 1)):
                partials[j] = p
        except FheAggError as exc:
            errors[j] = exc
    outcome = Outcome(
        aggregator_error=agg_error,
        aggregator_state_kept=agg_kept,
        aggregator_events=agg_events,
        holder_errors=errors,
        holder_state_kept=holder_state() == before_holders,
        holder_events={j: trail.entries(f"holder-{j}")[logged_h[j] :] for j in holders},
        partials=partials,
    )
    _exploit(attacker, variant, outcome, aggregate, honest)
    return outcome


def _release(
    attacker: Attacker, outcome: Outcome, aggregate: EncryptedAggregate
) -> NDArray[np.float64] | None:
    fed = attacker.fed
    if len(outcome.partials) < fed.config.threshold:
        return None
    session = DecryptionSession(
        aggregate,
        config=fed.config,
        layout=fed.layout,
        decrypting_set=tuple(outcome.partials),
        accountant=fed.accountant(),
    )
    for p in outcome.partials.values():
        session.add(p)
    try:
        return session.release()
    except FheAggError:
        return None


def _exploit(
    attacker: Attacker,
    variant: str,
    outcome: Outcome,
    aggregate: EncryptedAggregate,
    honest: Mapping[str, EncryptedUpdate],
) -> None:
    """With whatever the holders handed out, try to learn the key or a victim's update."""
    fed, ks = attacker.fed, _ks(attacker.fed, variant)
    if variant == "constant":
        outcome.recovery = attacker.from_partials(outcome.partials, ks)
    mean = _release(attacker, outcome, aggregate)
    if mean is None:
        pass
    elif variant == "averaged":
        outcome.recovery = attacker.from_release(
            mean, ks, fed.config.scale * aggregate.total_weight
        )
    elif variant == "cancel":
        victim = mean * aggregate.total_weight / WEIGHTS["ana"]
        if np.max(np.abs(victim - attacker.plain("ana"))) < fed.tolerance(WEIGHTS["ana"]):
            outcome.leaked = "ana's update, read from the release"
    elif variant == "copy":
        twice = WEIGHTS["ana"] * attacker.plain("ana")
        twice = twice + sum(WEIGHTS[c] * attacker.plain(c) for c in HONEST)
        error = np.max(np.abs(mean - twice / aggregate.total_weight))
        if error < fed.tolerance(aggregate.total_weight):
            outcome.leaked = "ana's update counted twice in the release"
    if outcome.recovery is not None and outcome.recovery.is_key:
        victim = attacker.decrypt(outcome.recovery.secret, honest["ana"])
        read = np.allclose(
            victim / WEIGHTS["ana"], attacker.plain("ana")[: attacker.b.n], atol=1e-6
        )
        outcome.leaked = f"the secret key (max |b + a*s| = {outcome.recovery.key_error})" + (
            "; ana's ciphertext decrypts with it" if read else ""
        )
