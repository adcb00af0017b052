"""Record-level DP-SGD at each site through Opacus (extra ``fhe-agg[opacus]``).

Each site trains with Opacus's ``PrivacyEngine`` (per-record clipping to ``policy.clip``, Poisson
sampling at ``policy.sample_rate``) but adds only ``sigma / sqrt(h)`` of the Gaussian noise: the
decrypted sum of at least ``h`` honest sites' updates carries the full ``sigma``. The guarantee,
its assumptions and what it does not give are in :mod:`fhe_agg.ckks._record_dp`; in short:

* every site uses the same policy, learning rate and aggregation weight (``SITE_WEIGHT``), a fresh
  plain SGD optimizer per round (:func:`dp_sgd_update` does all of this), and the aggregate must
  contain at least ``h`` honest sites (set ``FederationConfig.min_clients`` accordingly);
* with ``local_steps > 1`` only a site's own noise is counted (no gain from sharing);
* :class:`RecordPrivacyAccountant` reports it. The key holders' client-level noise
  (:class:`fhe_agg.DpPolicy`) is not counted here, nor the sites' noise by the client-level
  :class:`fhe_agg.PrivacyAccountant`: each reports only the guarantee its own noise gives.

Do not read the Opacus engine's own accountant: it sees only the site's share of the noise.
Opacus's ``secure_mode`` needs ``torchcsprng``, which has no build for current torch; noise and
sampling here come from torch generators seeded from a :class:`fhe_agg.RandomSource`
(the OS CSPRNG by default), without protection against floating-point attacks.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from typing import Any

try:
    import torch
    from opacus import PrivacyEngine
    from opacus.data_loader import DPDataLoader
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("fhe_agg.opacus needs Opacus: pip install 'fhe-agg[opacus]'") from exc

from fhe_agg._validate import positive_finite
from fhe_agg.ckks._random import RandomSource, default_random
from fhe_agg.ckks._record_dp import (
    RecordDpPolicy,
    RecordPrivacyAccountant,
    calibrate_noise_multiplier,
    record_epsilon,
    require_sites,
)

__all__ = [
    "SITE_WEIGHT",
    "RecordDpPolicy",
    "RecordPrivacyAccountant",
    "calibrate_noise_multiplier",
    "dp_sgd_update",
    "make_private_site",
    "record_epsilon",
    "require_sites",
]

#: The aggregation weight every site sends with its update: equal weights keep each site's
#: noisy gradient sum at the same scale in the released average, so the noise shares add up.
SITE_WEIGHT = 1.0

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _generator(random: RandomSource) -> torch.Generator:
    return torch.Generator().manual_seed(int.from_bytes(random.bytes(8), "little"))


def make_private_site(
    *,
    module: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    dataset: torch.utils.data.Dataset[Any],
    policy: RecordDpPolicy,
    sites: int,
    random: RandomSource | None = None,
) -> tuple[torch.nn.Module, torch.optim.Optimizer, torch.utils.data.DataLoader[Any]]:
    """Opacus's ``make_private`` with this site's share of the noise, sum loss reduction and
    Poisson sampling at ``policy.sample_rate``; returns the wrapped model, optimizer, loader.

    The loss must be summed over the batch (``reduction="sum"``): the optimizer then steps
    along ``S + N`` (clipped gradient sum plus noise) with no data-dependent rescaling.
    Raises :class:`~fhe_agg.ThresholdNotMet` when ``sites < policy.honest_sites``.
    """
    if not isinstance(policy, RecordDpPolicy):
        raise TypeError(f"policy: expected RecordDpPolicy, got {type(policy).__name__}")
    require_sites(policy, sites)
    source = default_random() if random is None else random
    loader = DPDataLoader(dataset, sample_rate=policy.sample_rate, generator=_generator(source))
    with warnings.catch_warnings():  # the generators are seeded from the CSPRNG (module doc)
        warnings.filterwarnings("ignore", message="Secure RNG turned off")
        engine = PrivacyEngine(accountant="rdp")
    private = engine.make_private(
        module=module,
        optimizer=optimizer,
        data_loader=loader,
        noise_multiplier=policy.site_noise_multiplier,
        max_grad_norm=policy.clip,
        loss_reduction="sum",
        poisson_sampling=True,
        noise_generator=_generator(source),
    )
    model, dp_optimizer, dp_loader = private[0], private[1], private[-1]
    if abs(dp_loader.sample_rate - policy.sample_rate) > 1e-12:  # pragma: no cover - opacus drift
        raise RuntimeError(f"Opacus sampled at {dp_loader.sample_rate}, not {policy.sample_rate}")
    return model, dp_optimizer, dp_loader


def dp_sgd_update(
    model: torch.nn.Module,
    dataset: torch.utils.data.Dataset[Any],
    *,
    policy: RecordDpPolicy,
    sites: int,
    learning_rate: float,
    loss: Loss,
    random: RandomSource | None = None,
) -> dict[str, torch.Tensor]:
    """``policy.local_steps`` DP-SGD steps on a copy of ``model``; returns ``trained - model``.

    Plain SGD at ``learning_rate`` on the summed loss (``loss(output, target)`` must sum over
    the batch), so with one local step the update is ``-learning_rate * (S + N)``. Every site
    uses the same ``learning_rate`` and sends the result with weight :data:`SITE_WEIGHT`; the
    released average is then DP-SGD on the union of the sites' data with noise ``sigma``
    (learning rate ``learning_rate / M`` for ``M`` sites). ``model`` is not modified.
    """
    rate = positive_finite(learning_rate, "learning_rate")
    if getattr(loss, "reduction", "sum") != "sum":
        raise ValueError(f"loss: must sum over the batch (reduction='sum'), got {loss!r}")
    local = copy.deepcopy(model)
    start = {k: v.detach().clone() for k, v in local.state_dict().items()}
    optimizer = torch.optim.SGD(local.parameters(), lr=rate)
    wrapped, dp_optimizer, loader = make_private_site(
        module=local,
        optimizer=optimizer,
        dataset=dataset,
        policy=policy,
        sites=sites,
        random=random,
    )
    steps = 0
    with warnings.catch_warnings():  # Opacus's per-sample hooks fire on a first layer's inputs
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        while steps < policy.local_steps:
            for x, y in loader:
                dp_optimizer.zero_grad()
                torch.autograd.backward(loss(wrapped(x), y))
                dp_optimizer.step()
                steps += 1
                if steps == policy.local_steps:
                    break
    return {k: v.detach() - start[k] for k, v in local.state_dict().items()}


# Users and tracebacks see fhe_agg.opacus.<Name>, not the private module.
RecordDpPolicy.__module__ = RecordPrivacyAccountant.__module__ = __name__
