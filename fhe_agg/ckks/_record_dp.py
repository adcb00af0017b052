"""Record-level (patient-level) DP for DP-SGD at each site, its noise shared under secure aggregation.

**The mechanism.** Every site runs DP-SGD (Abadi et al., "Deep Learning with Differential
Privacy", CCS'16, https://arxiv.org/abs/1607.00133): Poisson sampling of its records at rate
``q``, each per-record gradient clipped to L2 norm ``C`` (``clip``), and Gaussian noise added to
the clipped sum. A site adds only ``sigma / sqrt(h)`` (times ``C``) of the noise, where ``h`` is
the number of sites assumed honest among those whose updates enter the decrypted aggregate.

**What is released, and why ``sigma / sqrt(h)`` per site gives ``sigma``.** Under secure
aggregation only the sum of the sites' updates is decrypted. With one local step per round
(``local_steps=1``), the same learning rate and equal aggregation weights at every site, that sum
is ``-lr/M * sum_i (S_i + N_i)``: ``S_i`` the clipped gradient sum of site ``i`` at the public
global model, ``N_i ~ N(0, (sigma*C)**2 / h)`` its noise. Sites that collude with the server
know their own ``S_j + N_j`` and subtract it; what remains holds the noise of every honest site,
variance ``(#honest / h) * (sigma*C)**2 >= (sigma*C)**2`` when at least ``h`` are honest. Poisson
sampling at rate ``q`` at each site is Poisson sampling at rate ``q`` of the union of the data,
and adding or removing one record at an honest site moves ``sum_i S_i`` by at most ``C``. Each
round is thus one Poisson-subsampled Gaussian mechanism with noise multiplier ``sigma`` on the
union dataset, and rounds compose adaptively (each round's query depends only on the released
model). The key holders' own noise (client-level DP, :mod:`fhe_agg.ckks._dp`) is not counted here.

**Several local steps per round.** Then a site's second step is taken at a point that depends on
its *own* first-step noise, which nobody else sees; the other sites' noise reaches the released
sum but not that trajectory, and no composition theorem lets it count per step. So with
``local_steps > 1`` the accountant counts only the site's own noise, ``sigma / sqrt(h)`` per step,
for every local step of every round (as if each were released): conservative and valid however
many other sites collude.

**Fewer than ``h`` honest sites.** Only the noise of the honest ones protects a record: with
``k < h`` honest sites the multiplier is ``sigma * sqrt(k / h)``, down to ``sigma / sqrt(h)`` when
the record's own site is the only honest one; :attr:`RecordPrivacyAccountant.own_noise_epsilon`
reports that floor. A record at a dishonest site has no protection from anyone.

Adjacency: add/remove one record (``NeighboringRelation.ADD_OR_REMOVE_ONE``); the site sizes and
thus ``q * n_i`` are treated as public, as Opacus does. Composition: Rényi DP of the
Poisson-subsampled Gaussian (Mironov, Talwar, Zhang, "Rényi Differential Privacy of the Sampled
Gaussian Mechanism", 2019, https://arxiv.org/abs/1908.10530) through ``dp_accounting``'s
``RdpAccountant``, converted to ``(epsilon, delta)`` as in :mod:`fhe_agg.ckks._dp`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from fhe_agg._validate import positive_finite, positive_int
from fhe_agg.errors import PrivacyBudgetExceeded, ThresholdNotMet

__all__ = [
    "RecordDpPolicy",
    "RecordPrivacyAccountant",
    "calibrate_noise_multiplier",
    "record_epsilon",
    "require_sites",
]

#: Rényi orders: dp_accounting's defaults from 2 on, in steps of 1/4 to 64. Its series for the
#: subsampled Gaussian at orders in (1, 2) fails to converge at the rates used here (the order
#: is dropped with a log line); they matter only for very small epsilon.
ORDERS: tuple[float, ...] = (
    *(2 + x / 4 for x in range(248)),
    *range(64, 257, 16),
    384.0,
    512.0,
    1024.0,
)


def _unit_interval(value: object, name: str, *, closed: bool) -> float:
    number = positive_finite(value, name)
    if number > 1.0 or (not closed and number == 1.0):
        raise ValueError(f"{name}: must lie in (0, 1{']' if closed else ')'}, got {value}")
    return number


@dataclass(frozen=True, kw_only=True)
class RecordDpPolicy:
    """DP-SGD at every site, for a record-level ``(epsilon, delta)`` guarantee.

    ``clip`` is ``C``, the per-record gradient L2 bound; ``noise_multiplier`` is ``sigma``, the
    noise of the released sum in units of ``C``; ``sample_rate`` is ``q``, the Poisson sampling
    rate, of the form ``1/k`` (Opacus derives it from the length of the data loader);
    ``honest_sites`` is ``h``; ``local_steps`` the DP-SGD steps per site per round; ``delta`` the
    target of the report. Raises ``TypeError``/``ValueError`` naming the field.
    """

    clip: float
    noise_multiplier: float
    sample_rate: float
    delta: float = 1e-5
    honest_sites: int = 1
    local_steps: int = 1

    def __post_init__(self) -> None:
        positive_finite(self.clip, "clip")
        positive_finite(self.noise_multiplier, "noise_multiplier")
        q = _unit_interval(self.sample_rate, "sample_rate", closed=True)
        if abs(round(1 / q) * q - 1) > 1e-9:
            raise ValueError(f"sample_rate: must be 1/k for an integer k, got {q}")
        _unit_interval(self.delta, "delta", closed=False)
        positive_int(self.honest_sites, "honest_sites")
        positive_int(self.local_steps, "local_steps")

    @property
    def batches_per_epoch(self) -> int:
        """``k = 1/q``: the length Opacus's Poisson data loader reports."""
        return round(1 / self.sample_rate)

    @property
    def site_noise_multiplier(self) -> float:
        """``sigma / sqrt(h)``: what each site passes to Opacus as its noise multiplier."""
        return self.noise_multiplier / math.sqrt(self.honest_sites)

    @property
    def accounted_noise_multiplier(self) -> float:
        """The per-step multiplier the guarantee rests on: ``sigma`` when every round is one step
        of every site (the honest sites' noise adds up in the released sum), else the site's own
        ``sigma / sqrt(h)`` (see the module docstring)."""
        return self.noise_multiplier if self.local_steps == 1 else self.site_noise_multiplier


def require_sites(policy: RecordDpPolicy, sites: int) -> int:
    """``sites`` if the round has at least ``policy.honest_sites`` sites; else
    :class:`ThresholdNotMet` (the noise of ``h`` honest sites cannot be in a sum of fewer)."""
    count = positive_int(sites, "sites")
    if count < policy.honest_sites:
        raise ThresholdNotMet(
            f"sites: {count} in the round, fewer than the {policy.honest_sites} honest sites "
            "whose noise the record-level guarantee assumes; lower honest_sites"
        )
    return count


@lru_cache(maxsize=256)
def record_epsilon(
    *, noise_multiplier: float, sample_rate: float, steps: int, delta: float
) -> float:
    """``epsilon`` after ``steps`` Poisson-subsampled Gaussian releases (add/remove one record).

    Each release has sampling rate ``sample_rate`` and noise multiplier ``noise_multiplier``
    (std over sensitivity); RDP composition at :data:`ORDERS`, then ``dp_accounting``'s
    conversion to ``(epsilon, delta)``. 0 for zero steps.
    """
    z = positive_finite(noise_multiplier, "noise_multiplier")
    q = _unit_interval(sample_rate, "sample_rate", closed=True)
    _unit_interval(delta, "delta", closed=False)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps: expected an int >= 0, got {steps!r}")
    if steps == 0:
        return 0.0
    import dp_accounting  # scipy: seconds of import time, paid only to account
    from dp_accounting.rdp import RdpAccountant

    accountant = RdpAccountant(
        orders=list(ORDERS),
        neighboring_relation=dp_accounting.NeighboringRelation.ADD_OR_REMOVE_ONE,
    )
    event = dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(z))
    accountant.compose(event, steps)
    return float(accountant.get_epsilon(delta))


def calibrate_noise_multiplier(
    *,
    target_epsilon: float,
    sample_rate: float,
    rounds: int,
    delta: float = 1e-5,
    honest_sites: int = 1,
    local_steps: int = 1,
) -> float:
    """The smallest ``sigma`` (to 0.1%) whose guarantee after ``rounds`` is ``<= target_epsilon``.

    ``sigma`` is the policy's total multiplier: with ``local_steps > 1`` the guarantee rests on
    ``sigma / sqrt(honest_sites)``, so the result grows with ``honest_sites``. Bisection on
    :func:`record_epsilon`, which decreases in the multiplier.
    """
    target = positive_finite(target_epsilon, "target_epsilon")
    steps = positive_int(rounds, "rounds") * positive_int(local_steps, "local_steps")
    scale = 1.0 if local_steps == 1 else math.sqrt(positive_int(honest_sites, "honest_sites"))

    def eps(z: float) -> float:
        return record_epsilon(noise_multiplier=z, sample_rate=sample_rate, steps=steps, delta=delta)

    low, high = 0.05, 1.0
    while eps(high) > target:
        low, high = high, high * 2
        if high > 1e4:
            raise ValueError(f"target_epsilon: {target} needs a noise multiplier above 1e4")
    while high - low > 1e-3 * high:
        middle = (low + high) / 2
        low, high = (middle, high) if eps(middle) > target else (low, middle)
    return high * scale


class RecordPrivacyAccountant:
    """Record-level ``(epsilon, delta)`` over the rounds of one :class:`RecordDpPolicy`.

    Each round counts ``local_steps`` releases at ``policy.accounted_noise_multiplier``.
    :meth:`spend_round` refuses a round with fewer sites than ``honest_sites``
    (:class:`ThresholdNotMet`) or one that would exceed ``max_epsilon``
    (:class:`PrivacyBudgetExceeded`), recording nothing in either case.
    """

    def __init__(self, policy: RecordDpPolicy, *, max_epsilon: float | None = None) -> None:
        if not isinstance(policy, RecordDpPolicy):
            raise TypeError(f"policy: expected RecordDpPolicy, got {type(policy).__name__}")
        self._policy = policy
        self._max_epsilon = (
            None if max_epsilon is None else positive_finite(max_epsilon, "max_epsilon")
        )
        self._rounds = 0

    @property
    def policy(self) -> RecordDpPolicy:
        return self._policy

    @property
    def delta(self) -> float:
        return self._policy.delta

    @property
    def rounds(self) -> int:
        return self._rounds

    @property
    def steps(self) -> int:
        """Local DP-SGD steps counted as released so far."""
        return self._rounds * self._policy.local_steps

    def epsilon_after(self, rounds: int) -> float:
        """``epsilon`` at :attr:`delta` after ``rounds`` rounds (the accountant is unchanged)."""
        p = self._policy
        return record_epsilon(
            noise_multiplier=p.accounted_noise_multiplier,
            sample_rate=p.sample_rate,
            steps=rounds * p.local_steps,
            delta=p.delta,
        )

    @property
    def epsilon(self) -> float:
        """The guarantee when at least ``honest_sites`` sites of every round are honest."""
        return self.epsilon_after(self._rounds)

    @property
    def own_noise_epsilon(self) -> float:
        """The floor when the record's site is the only honest one: its own noise,
        ``sigma / sqrt(h)`` per step, every local step counted."""
        p = self._policy
        return record_epsilon(
            noise_multiplier=p.site_noise_multiplier,
            sample_rate=p.sample_rate,
            steps=self.steps,
            delta=p.delta,
        )

    def spend_round(self, *, sites: int) -> float:
        """Record one round in which ``sites`` sites trained; returns the new :attr:`epsilon`."""
        require_sites(self._policy, sites)
        new_epsilon = self.epsilon_after(self._rounds + 1)
        if self._max_epsilon is not None and new_epsilon > self._max_epsilon:
            raise PrivacyBudgetExceeded(
                f"round would raise record-level epsilon to {new_epsilon:.4g} > max_epsilon "
                f"{self._max_epsilon:.4g} at delta {self.delta:g}"
            )
        self._rounds += 1
        return new_epsilon

    def __repr__(self) -> str:
        return (
            f"RecordPrivacyAccountant(rounds={self._rounds}, epsilon={self.epsilon:.4g}, "
            f"delta={self.delta:g}, max_epsilon={self._max_epsilon})"
        )
