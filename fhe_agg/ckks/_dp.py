"""Distributed differential privacy folded into threshold partial decryptions.

Each of the ``t`` key holders that decrypt an aggregate adds Gaussian coefficient noise to its
partial decryption (threshold-ckks.md §3.7). Trust is split as in Truex et al., "A Hybrid Approach
to Privacy-Preserving Federated Learning" (AISec'19, https://doi.org/10.1145/3338501.3357370):
the noise of any ``h = honest_holders`` of them alone must give the Gaussian mechanism its full
standard deviation ``z * sensitivity``, so each adds ``z * sensitivity / sqrt(h)`` (in slot units)
and ``h = 1`` tolerates ``t - 1`` colluding holders. The same noise serves as LMSS flooding
(:mod:`fhe_agg.ckks._flooding`); whichever requirement is larger sets it, and the accountant records the
noise multiplier actually achieved.

Privacy loss is composed with Rényi DP (Mironov, "Rényi Differential Privacy", CSF'17, Prop. 7 for
the Gaussian mechanism: ``RDP(alpha) = alpha / (2 z**2)``), converted to ``(epsilon, delta)`` by
``dp_accounting``'s RDP accountant (Canonne–Kamath–Steinke / Balle et al. conversion).

Noise is sampled only through :func:`fhe_agg.hazmat.sampling.rounded_gaussian` with a CSPRNG
``RandomSource``, which cuts it at ``NOISE_TAIL`` = 14 standard deviations; what the cut costs is
added to ``delta`` (:func:`truncation_delta`). Not covered here: the extra privacy of discrete or
rounded Gaussians and of encoding rounding (DDGauss, https://arxiv.org/abs/2102.06387), and
floating-point artefacts of the Box-Muller sampler beyond the cut.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from fhe_agg._validate import positive_finite
from fhe_agg.ckks._flooding import slot_noise_std
from fhe_agg.errors import PrivacyBudgetExceeded
from fhe_agg.hazmat.sampling import NOISE_TAIL, tail_mass

__all__ = [
    "MAX_NOISE_DRAWS",
    "Adjacency",
    "DpPolicy",
    "PrivacyAccountant",
    "achieved_noise_multiplier",
    "holder_coefficient_sigma",
    "per_holder_slot_sigma",
    "truncation_delta",
]

#: Most Gaussian coordinates one release samples: every decrypting holder's coefficients plus
#: the central noise (2**50 int64 draws are 8 PiB). :class:`~fhe_agg.DecryptionSession` refuses
#: a release beyond it, so :func:`truncation_delta` bounds every release.
MAX_NOISE_DRAWS = 2**50


def _delta(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"delta: expected a real number, got {type(value).__name__}")
    if not 0.0 < float(value) < 1.0:
        raise ValueError(f"delta: must lie in (0, 1), got {value}")
    return float(value)


class Adjacency(enum.Enum):
    """Which datasets count as neighbours: it fixes the L2 sensitivity of the released sum.

    Participation and weights are public (the manifest lists every client and its weight), so
    neighbouring rounds have the same clients and weights and differ in one client's vector:

    * ``ZERO_OUT``: one client's update is replaced by zeros (Kairouz et al., "Practical and
      Private (Deep) Learning without Sampling or Shuffling", ICML'21, §2). The weighted sum
      moves by at most ``max_weight * clip``.
    * ``REPLACE_ONE``: one client's update is replaced by any other of norm at most ``clip``;
      the sum moves by at most ``2 * max_weight * clip`` (triangle inequality), so the same
      ``noise_multiplier`` means twice the noise.
    """

    ZERO_OUT = "zero-out"
    REPLACE_ONE = "replace-one"

    @property
    def sensitivity_factor(self) -> float:
        """The L2 sensitivity of the weighted sum in units of ``max_weight * clip``."""
        return 2.0 if self is Adjacency.REPLACE_ONE else 1.0


@dataclass(frozen=True, kw_only=True)
class DpPolicy:
    """Client-level DP for the aggregate: clip norm, noise multiplier and trust assumption.

    ``clip`` is the L2 bound each client enforces; ``noise_multiplier`` is ``z``, the Gaussian
    standard deviation in units of the sensitivity; ``delta`` is the target of the
    ``(epsilon, delta)`` report; ``honest_holders`` is how many members of the decrypting set are
    assumed honest (1 tolerates all but one colluding). ``mode`` is ``"distributed"`` (the key
    holders add the noise inside their partial decryptions, so nobody sees the un-noised
    average) or ``"central"`` (whoever combines the partials adds it after decryption and must be
    trusted with the exact average). ``adjacency`` states the neighbouring relation the
    ``(epsilon, delta)`` refers to (:class:`Adjacency`; zero-out by default). ``max_epsilon``
    (``None``: no limit) is enforced by every key holder on its own persisted accountant and by
    the combiner: a release that would push ``epsilon`` above it is refused with
    :class:`~fhe_agg.PrivacyBudgetExceeded`. Raises ``TypeError``/``ValueError`` naming the
    field.
    """

    clip: float
    noise_multiplier: float
    delta: float = 1e-5
    honest_holders: int = 1
    mode: str = "distributed"
    adjacency: Adjacency = Adjacency.ZERO_OUT
    max_epsilon: float | None = None

    def __post_init__(self) -> None:
        positive_finite(self.clip, "clip")
        positive_finite(self.noise_multiplier, "noise_multiplier")
        _delta(self.delta)
        h = self.honest_holders
        if isinstance(h, bool) or not isinstance(h, int):
            raise TypeError(f"honest_holders: expected int, got {type(h).__name__}")
        if h < 1:
            raise ValueError(f"honest_holders: must be at least 1, got {h}")
        if self.mode not in ("distributed", "central"):
            raise ValueError(f"mode: expected 'distributed' or 'central', got {self.mode!r}")
        if not isinstance(self.adjacency, Adjacency):
            raise TypeError(
                f"adjacency: expected an Adjacency (e.g. Adjacency.REPLACE_ONE), got "
                f"{type(self.adjacency).__name__}"
            )
        if self.max_epsilon is not None:
            positive_finite(self.max_epsilon, "max_epsilon")

    @property
    def central(self) -> bool:
        """True when the combiner, not the key holders, adds the DP noise."""
        return self.mode == "central"


def per_holder_slot_sigma(policy: DpPolicy, sensitivity: float) -> float:
    """Slot-domain standard deviation each decrypting holder adds: ``z * sensitivity / sqrt(h)``.

    Any ``h = policy.honest_holders`` holders together then contribute variance
    ``(z * sensitivity)**2``, the Gaussian mechanism's (Truex et al. 2019 trust split;
    threshold-ckks.md §3.7). ``sensitivity`` is the L2 sensitivity of the released sum in model
    units (``clip`` for add/remove-one neighbours of an unweighted sum).
    """
    sens = positive_finite(sensitivity, "sensitivity")
    return policy.noise_multiplier * sens / math.sqrt(policy.honest_holders)


def holder_coefficient_sigma(
    policy: DpPolicy, sensitivity: float, *, n: int, scale: float, flooding_sigma: float
) -> float:
    """Coefficient-domain noise a holder adds: ``max(flooding_sigma, z*C*Delta/(sqrt(N/2)*sqrt(h)))``.

    This is ``sigma_j`` of threshold-ckks.md §3.7: one Gaussian that is both LMSS flooding and the
    holder's part of the DP noise. ``scale`` is the CKKS scale ``Delta``; ``n`` the ring degree.
    """
    scale = positive_finite(scale, "scale")
    flood = positive_finite(flooding_sigma, "flooding_sigma")
    unit = slot_noise_std(1.0, n, 1)  # sqrt(N/2): slot std per unit of coefficient std
    return max(flood, per_holder_slot_sigma(policy, sensitivity) * scale / unit)


def achieved_noise_multiplier(
    coefficient_sigma: float, *, n: int, scale: float, honest_holders: int, sensitivity: float
) -> float:
    """The noise multiplier ``z`` actually obtained when each holder adds ``coefficient_sigma``.

    Counts only the ``honest_holders`` holders' noise: slot std
    ``coefficient_sigma * sqrt(h) * sqrt(N/2) / scale``, divided by ``sensitivity``. Record this
    (not the requested ``z``) with :meth:`PrivacyAccountant.spend`; it is larger when flooding
    dominates.
    """
    scale = positive_finite(scale, "scale")
    sens = positive_finite(sensitivity, "sensitivity")
    return slot_noise_std(coefficient_sigma, n, honest_holders) / scale / sens


def truncation_delta(epsilon: float, releases: int) -> float:
    """``delta`` added by cutting the noise at ``NOISE_TAIL`` sigma, for ``releases`` releases
    accounted at ``epsilon``: ``min(1, (1 + e**epsilon) * eta)``.

    Each coordinate of the cut Gaussian is at total-variation distance
    ``eta_1 = P(|Z| > NOISE_TAIL)`` (1.6e-44) from the uncut one; a release has at most
    :data:`MAX_NOISE_DRAWS` independent coordinates, so ``releases`` of them are within
    ``eta = releases * MAX_NOISE_DRAWS * eta_1`` of the uncut mechanism (a union bound over the
    coordinates of product distributions). If the uncut composition is ``(epsilon, delta)``-DP,
    then for neighbours ``P, Q``, their cut versions ``P', Q'`` and any event ``S``:
    ``P'(S) <= P(S) + eta <= e**epsilon Q(S) + delta + eta <= e**epsilon Q'(S) + delta +
    (1 + e**epsilon) eta``.
    """
    if releases < 0 or not epsilon >= 0.0:
        raise ValueError("releases and epsilon: must be non-negative")
    eta = releases * MAX_NOISE_DRAWS * tail_mass(NOISE_TAIL)
    if epsilon > 700.0:  # e**epsilon overflows a float: no meaningful guarantee anyway
        return 1.0 if releases else 0.0
    return min(1.0, (1.0 + math.exp(epsilon)) * eta)


def _epsilon(releases: Mapping[float, int], delta: float) -> float:
    if not releases:
        return 0.0
    # dp_accounting pulls in scipy (seconds of import time): load it only to account.
    import dp_accounting
    from dp_accounting.rdp import RdpAccountant

    accountant = RdpAccountant()
    for z, count in releases.items():
        accountant.compose(dp_accounting.GaussianDpEvent(z), count)
    return float(accountant.get_epsilon(delta))


class PrivacyAccountant:
    """Composes one Gaussian release per round and reports ``(epsilon, delta)`` (RDP accounting).

    ``spend(z)`` records a release of the Gaussian mechanism with noise multiplier ``z``
    (``dp_accounting.GaussianDpEvent``, add/remove-one neighbours). With ``max_epsilon`` set, a
    release that would push ``epsilon`` above it raises
    :class:`~fhe_agg.errors.PrivacyBudgetExceeded` *before* anything is recorded, so the
    accountant is left unchanged and the aggregate must not be released.
    """

    def __init__(self, *, delta: float, max_epsilon: float | None = None) -> None:
        self._delta = _delta(delta)
        self._max_epsilon = (
            None if max_epsilon is None else positive_finite(max_epsilon, "max_epsilon")
        )
        self._releases: dict[float, int] = {}
        self._epsilon = 0.0

    @classmethod
    def for_policy(cls, policy: DpPolicy, *, max_epsilon: float | None = None) -> PrivacyAccountant:
        """An accountant reporting at ``policy.delta``, limited to ``max_epsilon`` if given,
        else to ``policy.max_epsilon``."""
        limit = policy.max_epsilon if max_epsilon is None else max_epsilon
        return cls(delta=policy.delta, max_epsilon=limit)

    @classmethod
    def restored(
        cls,
        noise_multipliers: Iterable[float],
        *,
        delta: float,
        max_epsilon: float | None = None,
    ) -> PrivacyAccountant:
        """An accountant that has recorded one release per entry of ``noise_multipliers``
        (read back from a store), which are not checked against ``max_epsilon``."""
        accountant = cls(delta=delta, max_epsilon=max_epsilon)
        for z in noise_multipliers:
            z = positive_finite(z, "noise_multiplier")
            accountant._releases[z] = accountant._releases.get(z, 0) + 1
        accountant._epsilon = _epsilon(accountant._releases, accountant._delta)
        return accountant

    @property
    def delta(self) -> float:
        return self._delta

    @property
    def max_epsilon(self) -> float | None:
        return self._max_epsilon

    @property
    def releases(self) -> Mapping[float, int]:
        """Recorded noise multipliers and how many releases used each (read-only view)."""
        return MappingProxyType(self._releases)

    @property
    def rounds(self) -> int:
        """Number of releases recorded."""
        return sum(self._releases.values())

    @property
    def epsilon(self) -> float:
        """``epsilon`` of all recorded releases at :attr:`delta` (0 before the first)."""
        return self._epsilon

    @property
    def truncation_delta(self) -> float:
        """What cutting the sampled noise at 14 sigma adds to :attr:`delta`
        (:func:`truncation_delta`; about 1e-29 per release at small epsilon)."""
        return truncation_delta(self._epsilon, self.rounds)

    @property
    def total_delta(self) -> float:
        """The ``delta`` the releases as sampled meet at :attr:`epsilon`: :attr:`delta` plus
        :attr:`truncation_delta`."""
        return self._delta + self.truncation_delta

    def epsilon_after(self, noise_multiplier: float) -> float:
        """``epsilon`` if one more release with ``noise_multiplier`` were recorded (no change)."""
        z = positive_finite(noise_multiplier, "noise_multiplier")
        candidate = dict(self._releases)
        candidate[z] = candidate.get(z, 0) + 1
        return _epsilon(candidate, self._delta)

    def check(self, noise_multiplier: float) -> float:
        """``epsilon`` after one more release with ``noise_multiplier``, recording nothing.

        Raises ``ValueError`` for a non-positive or non-finite multiplier and
        :class:`PrivacyBudgetExceeded` if the result would exceed ``max_epsilon``; callers check
        before a release is prepared, :meth:`spend` records it.
        """
        new_epsilon = self.epsilon_after(noise_multiplier)
        if self._max_epsilon is not None and new_epsilon > self._max_epsilon:
            raise PrivacyBudgetExceeded(
                f"release would raise epsilon to {new_epsilon:.4g} > max_epsilon "
                f"{self._max_epsilon:.4g} at delta {self._delta:g}"
            )
        return new_epsilon

    def spend(self, noise_multiplier: float) -> float:
        """Record one Gaussian release and return the new ``epsilon``.

        Raises like :meth:`check`, and then nothing is recorded.
        """
        new_epsilon = self.check(noise_multiplier)
        z = float(noise_multiplier)
        self._releases[z] = self._releases.get(z, 0) + 1
        self._epsilon = new_epsilon
        return new_epsilon

    def __repr__(self) -> str:
        return (
            f"PrivacyAccountant(rounds={self.rounds}, epsilon={self._epsilon:.4g}, "
            f"delta={self._delta:g}, max_epsilon={self._max_epsilon})"
        )
