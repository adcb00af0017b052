"""The public configuration every party of a federation shares, and what follows from it."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from functools import cached_property

from fhe_agg._validate import positive_finite, positive_int
from fhe_agg.ckks._dp import DpPolicy, achieved_noise_multiplier, per_holder_slot_sigma
from fhe_agg.ckks._flooding import (
    FloodingPolicy,
    flooding_security_bits,
    flooding_sigma,
    gaussian_tail_sigmas,
    proven_noise_l2,
    releases_per_epoch,
    slot_noise_std,
)
from fhe_agg.ckks._params import PRESETS, CkksPreset
from fhe_agg.ckks._seal import backend_for
from fhe_agg.errors import UnsupportedParameters
from fhe_agg.hazmat.zkproof import extraction_bounds
from fhe_agg.protocol._config_codec import decode_dataclass, encode_dataclass
from fhe_agg.protocol._wire import pack, unpack

__all__ = ["PROTOCOL_VERSION", "FederationConfig"]

#: Version of every signed and hashed format of a round (signed in each update, hashed into
#: ``params_id``). 4: a proof's transcript binds its batch's ``c1`` through the chunks' Merkle
#: leaves (``protocol._wellformed.chunks_binding``) instead of a digest of ``c1``'s words. 3: the
#: Merkle tree, the proofs' digest and the proof transcript hash their bulk bytes with SHA-256
#: (SHA3-256 / SHAKE-256 in 2).
PROTOCOL_VERSION = 4
_MIN_SCALE_BITS = 20
_HEADROOM_BITS = 3  # room for encryption noise on top of the largest sum
_NOISE_TAILS = 8.0  # DP noise in the largest sum: this many standard deviations (slot domain)
_WRAP_FAILURE_BITS = 40  # no released coefficient wraps mod q, but with probability 2**-40


@dataclass(frozen=True, kw_only=True)
class FederationConfig:
    """Public parameters of a federation: preset, bounds, key holders, flooding and DP.

    * ``holders``/``threshold``: ``threshold`` of the ``holders`` key holders decrypt together.
      ``threshold`` must exceed ``holders / 2``: each holder refuses a second decryption of a
      round, and only a majority threshold makes every two decrypting sets share a holder.
    * ``flooding``: the noise-flooding target (statistical bits ``s``, per-holder decryption
      budget ``tau``) every partial decryption meets, sized from the *proven* bounds of the
      clients' ciphertexts (:mod:`fhe_agg.ckks._flooding`). ``None`` with distributed ``dp``: the DP
      noise alone must give ``FloodingPolicy()``'s ``s`` (else :class:`UnsupportedParameters`)
      and its budget applies. Without it (and without distributed DP noise) a decryption is
      exact, and one exact release with its ciphertext gives away the key (Li–Micciancio,
      EUROCRYPT'21): that needs ``unsafe_exact_decryption=True`` and a single key holder, else
      :class:`UnsupportedParameters`.
    * ``dp``: client-level differential privacy; each decrypting holder adds its part of the
      Gaussian noise, and the larger of that and the flooding noise is what it adds.
    * ``min_weight``/``max_weight``: the range of a signed update weight (its sample count).
      ``min_weight`` is the federation-wide minimum number of samples behind one update: an
      update of a site with only a handful of records nearly identifies them, so the aggregator
      and every key holder refuse a weight below it (:class:`~fhe_agg.InvalidWeight`). The
      default 1 only refuses fractional weights below one sample; a deployment sets its own
      floor (e.g. 20 patients).

    The CKKS scale is derived, not chosen: the largest power of two such that ``max_clients``
    updates, each weighted by at most ``max_weight`` and with every coordinate within
    ``value_bound``, plus the DP noise, still sum below ``q / 2**3``. The constructor raises
    :class:`UnsupportedParameters` if fewer than 20 bits of scale remain or the flooding noise
    does not fit the modulus.
    """

    preset: CkksPreset = field(default_factory=lambda: PRESETS["precise"])
    min_clients: int = 3
    max_clients: int = 64
    max_weight: float = 10_000.0
    min_weight: float = 1.0
    value_bound: float = 16.0
    holders: int = 1
    threshold: int = 1
    flooding: FloodingPolicy | None = field(default_factory=FloodingPolicy)
    dp: DpPolicy | None = None
    unsafe_exact_decryption: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.preset, CkksPreset):
            raise TypeError(f"preset: expected CkksPreset, got {type(self.preset).__name__}")
        for name in ("min_clients", "max_clients", "holders", "threshold"):
            positive_int(getattr(self, name), name)
        if self.min_clients > self.max_clients:
            raise ValueError(
                f"min_clients: {self.min_clients} exceeds max_clients {self.max_clients}"
            )
        if self.threshold > self.holders:
            raise ValueError(f"threshold: {self.threshold} exceeds holders {self.holders}")
        if 2 * self.threshold <= self.holders:
            raise UnsupportedParameters(
                f"threshold: {self.threshold} of {self.holders} holders lets two disjoint sets "
                "each decrypt a different aggregate of the same round, and their difference is "
                f"one client's update; use threshold > holders / 2 (here at least "
                f"{self.holders // 2 + 1})"
            )
        if self.holders >= min(backend_for(self.preset).data_primes):
            raise ValueError("holders: must be below the smallest prime")
        positive_finite(self.max_weight, "max_weight")
        positive_finite(self.min_weight, "min_weight")
        if self.min_weight > self.max_weight:
            raise ValueError(
                f"min_weight: {self.min_weight} exceeds max_weight {self.max_weight} (a weight "
                "counts the samples behind an update, at least min_weight; for fractional "
                "weights lower min_weight too)"
            )
        positive_finite(self.value_bound, "value_bound")
        if self.flooding is not None and not isinstance(self.flooding, FloodingPolicy):
            raise TypeError("flooding: expected FloodingPolicy or None")
        if self.dp is not None and not isinstance(self.dp, DpPolicy):
            raise TypeError("dp: expected DpPolicy or None")
        self._check_exact_decryption()
        if self.dp is not None and self.dp.honest_holders > self.threshold:
            raise ValueError(
                f"dp.honest_holders: {self.dp.honest_holders} exceeds threshold {self.threshold}"
            )
        self._check_noise_fits()

    def _check_noise_fits(self) -> None:
        """The data and the holders' noise fit the modulus, and the noise hides the key."""
        if self.scale_bits < _MIN_SCALE_BITS:
            raise UnsupportedParameters(
                f"preset {self.preset.name}: only {self.scale_bits} bits of scale remain for "
                f"max_clients={self.max_clients}, max_weight={self.max_weight}, "
                f"value_bound={self.value_bound}; lower them or use a preset with a larger modulus"
            )
        policy = self.flooding_policy
        if policy is not None and self.flooding_security_bits < policy.statistical_bits:
            source = "flooding" if self.flooding is not None else "dp (without flooding)"
            raise UnsupportedParameters(
                f"{source}: the holders' noise gives {self.flooding_security_bits:.1f} bits of "
                f"flooding security over {self.releases_per_epoch} releases, below the "
                f"{policy.statistical_bits} bits required to hide the key; set flooding= (the "
                "holders then add max(flooding, DP) noise), raise the DP noise, lower the "
                "budget or the statistical bits (the sampler reaches about 60)"
            )
        top = self._noise_tail * math.sqrt(self.threshold) * max(self.holder_noise_sigma, 1.0)
        if math.log2(top) > self._log_q - _HEADROOM_BITS:
            raise UnsupportedParameters(
                f"preset {self.preset.name}: the flooding noise (2^{math.log2(top):.1f} at "
                f"{self._noise_tail:.2f} sigma) does not fit its {self._log_q:.0f}-bit modulus; "
                "use a larger preset, fewer max_clients or a smaller decryption budget"
            )

    def _check_exact_decryption(self) -> None:
        """Exact (unnoised) decryption only by explicit opt-in, and only for one holder."""
        if not isinstance(self.unsafe_exact_decryption, bool):
            raise TypeError("unsafe_exact_decryption: expected bool")
        holders_add_noise = self.flooding is not None or (
            self.dp is not None and not self.dp.central
        )
        if holders_add_noise:
            if self.unsafe_exact_decryption:
                raise ValueError(
                    "unsafe_exact_decryption: the holders add noise (flooding or distributed DP) "
                    "here, so decryption is not exact; drop the opt-in"
                )
            return
        if self.holders > 1:
            raise UnsupportedParameters(
                "flooding: a threshold key needs noise flooding (or distributed DP noise); an "
                "unflooded partial decryption reveals the holder's key share"
            )
        if not self.unsafe_exact_decryption:
            raise UnsupportedParameters(
                "flooding: None makes every decryption exact, and one exact release with its "
                "ciphertext gives away the key (Li-Micciancio); keep the default FloodingPolicy(), "
                "or opt in with unsafe_exact_decryption=True (single key holder only)"
            )

    @property
    def _n(self) -> int:
        return self.preset.poly_modulus_degree

    @cached_property
    def _log_q(self) -> float:
        return math.log2(math.prod(backend_for(self.preset).data_primes))

    @property
    def _distributed_dp(self) -> bool:
        return self.dp is not None and not self.dp.central

    @property
    def flooding_policy(self) -> FloodingPolicy | None:
        """The flooding target the holders' noise must meet: ``flooding``, or for distributed
        DP without it the default policy (its ``s`` and budget); None for exact decryption."""
        if self.flooding is not None:
            return self.flooding
        return FloodingPolicy() if self._distributed_dp else None

    @property
    def releases_per_epoch(self) -> int:
        """Ciphertexts released under one key at most: ``floor(holders * tau / threshold)``."""
        budget = self.decryption_budget or FloodingPolicy().budget
        return releases_per_epoch(budget, self.holders, self.threshold)

    @cached_property
    def _noise_tail(self) -> float:
        """Standard deviations the released noise stays within, over every coefficient of the
        epoch, but with probability ``2**-40``."""
        return gaussian_tail_sigmas(self._n * self.releases_per_epoch, _WRAP_FAILURE_BITS)

    @property
    def dp_sensitivity(self) -> float:
        """L2 sensitivity of the weighted sum to one client (0 without DP): ``max_weight * clip``
        for zero-out adjacency, twice that for replace-one (:class:`~fhe_agg.Adjacency`)."""
        if self.dp is None:
            return 0.0
        return self.dp.adjacency.sensitivity_factor * float(self.max_weight) * self.dp.clip

    @cached_property
    def scale_bits(self) -> int:
        """log2 of the CKKS scale."""
        largest = self.max_clients * self.max_weight * self.value_bound * math.sqrt(2)
        if self.dp is not None and not self.dp.central:  # central noise is added after decoding
            released = self.dp.noise_multiplier * self.dp_sensitivity
            spread = math.sqrt(self.threshold / self.dp.honest_holders)
            largest += _NOISE_TAILS * released * spread
        if not math.isfinite(largest):  # checked in __post_init__: never raised afterwards
            raise UnsupportedParameters(
                f"preset {self.preset.name}: max_clients={self.max_clients}, max_weight="
                f"{self.max_weight}, value_bound={self.value_bound} (with DP noise, if any) bound "
                "a sum beyond any float, let alone a CKKS modulus; lower them"
            )
        return math.floor(self._log_q - _HEADROOM_BITS - math.log2(largest))

    @property
    def scale(self) -> float:
        """The CKKS scale every client encodes at."""
        return float(2**self.scale_bits)

    @cached_property
    def proven_noise_l2(self) -> float:
        """``B2``: ℓ2 bound of the key-dependent noise of an aggregate of ``max_clients`` chunks
        whose proofs verified (:func:`fhe_agg.ckks._flooding.proven_noise_l2` with the extraction
        bounds of :func:`fhe_agg.hazmat.zkproof.extraction_bounds`)."""
        bounds = extraction_bounds(self._n)
        return proven_noise_l2(self._n, self.holders, self.max_clients, bounds.u_l2, bounds.e1_l2)

    @cached_property
    def _flooding_sigma(self) -> float:
        if self.flooding is None:
            return 0.0
        return flooding_sigma(
            self.flooding, self.proven_noise_l2, self.releases_per_epoch, n=self._n
        )

    @cached_property
    def holder_noise_sigma(self) -> float:
        """Coefficient-domain standard deviation each decrypting holder adds (0: none).

        ``max(flooding sigma, DP share)``: one Gaussian serves as LMSS flooding and as the
        holder's part of the DP noise (threshold-ckks.md §3.7).
        """
        sigma = self._flooding_sigma
        if self.dp is not None and not self.dp.central:
            unit = slot_noise_std(1.0, self._n, 1)  # sqrt(N/2)
            dp_sigma = per_holder_slot_sigma(self.dp, self.dp_sensitivity) * self.scale / unit
            sigma = max(sigma, dp_sigma)
        return sigma

    @property
    def decryption_budget(self) -> int | None:
        """Ciphertexts each holder may partially decrypt under one key (``tau``; None: no limit,
        only for exact single-holder decryption)."""
        policy = self.flooding_policy
        return None if policy is None else policy.budget

    @cached_property
    def flooding_security_bits(self) -> float:
        """``s = -log2 KL`` the holders' noise gives over every release of the key epoch, against
        the proven noise bound (0: no noise); see :mod:`fhe_agg.ckks._flooding`."""
        if self.holder_noise_sigma == 0.0:
            return 0.0
        return flooding_security_bits(
            self.holder_noise_sigma, self.proven_noise_l2, self.releases_per_epoch, n=self._n
        )

    @cached_property
    def released_noise_std(self) -> float:
        """Standard deviation of the noise on each released real of the weighted *sum*.

        Model units; divide by the round's total weight for the mean. Counts the added noise of
        all ``threshold`` decrypting holders, not the much smaller encryption noise.
        """
        holders = 0.0
        if self.holder_noise_sigma > 0.0:
            holders = slot_noise_std(self.holder_noise_sigma, self._n, self.threshold) / self.scale
        return math.hypot(holders, self.central_noise_std)

    @property
    def central_noise_std(self) -> float:
        """Noise the combiner adds to each real of the weighted sum in central DP mode (else 0)."""
        if self.dp is None or not self.dp.central:
            return 0.0
        return self.dp.noise_multiplier * self.dp_sensitivity

    @cached_property
    def noise_multiplier(self) -> float | None:
        """DP noise multiplier achieved by the ``honest_holders``' noise alone (None without DP)."""
        if self.dp is None:
            return None
        if self.dp.central:
            return self.dp.noise_multiplier
        return achieved_noise_multiplier(
            self.holder_noise_sigma,
            n=self._n,
            scale=self.scale,
            honest_holders=self.dp.honest_holders,
            sensitivity=self.dp_sensitivity,
        )

    @cached_property
    def params_id(self) -> bytes:
        """SHA3-256 of the protocol version and :meth:`to_bytes`: every field (preset, bounds,
        holders, flooding, DP, and any field added later); signed with each update."""
        version = PROTOCOL_VERSION.to_bytes(4, "little")
        return hashlib.sha3_256(b"fhe_agg/params|" + version + self.to_bytes()).digest()

    def to_bytes(self) -> bytes:
        """The one canonical encoding of this configuration (:mod:`fhe_agg.protocol._config_codec`),
        derived from the dataclass declaration; ``params_id`` hashes it."""
        return pack("federation-config", encode_dataclass(self))

    @classmethod
    def from_bytes(cls, data: bytes) -> FederationConfig:
        """Parse :meth:`to_bytes` (at most 4 KiB), or raise :class:`MalformedMessage` /
        :class:`UnsupportedParameters` (what the constructor refuses)."""
        f = unpack(data, "federation-config", max_bytes=4096, max_bin=0, max_array=64)
        return decode_dataclass(cls, f.body, "federation-config")
