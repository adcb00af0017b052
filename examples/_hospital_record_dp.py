"""Patient-level DP for the hospital example: DP-SGD at each hospital through Opacus.

Each round every hospital takes one DP-SGD step (:func:`fhe_agg.opacus.dp_sgd_update`): Poisson
sampling of its patients at ``--sample-rate``, each patient's gradient clipped to
``--record-clip``, and ``sigma / sqrt(h)`` of the Gaussian noise, ``h = --honest-sites``. The
updates are then encrypted, summed and threshold-decrypted exactly as in the ``encrypted``
variant, but with no key-holder noise: only the sum is ever decrypted, so at least ``h`` honest
hospitals' noise shares add up to ``sigma`` in it, and the released model is DP-SGD on the union
of the hospitals' patients. The :class:`fhe_agg.opacus.RecordPrivacyAccountant` reports the
record-level ``(epsilon, delta)`` (add/remove one patient); there is no client-level guarantee
in this variant (a whole hospital is not hidden).
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
import torch
from _hospital_data import Data, Site, StateDict, load, new_model
from numpy.typing import NDArray

from fhe_agg import PRESETS, FederationConfig, Layout
from fhe_agg.opacus import (
    RecordDpPolicy,
    RecordPrivacyAccountant,
    calibrate_noise_multiplier,
    dp_sgd_update,
)

NAME = "encrypted+record-DP"


def record_policy(args: argparse.Namespace, honest_floor: int) -> RecordDpPolicy:
    """The policy of ``--record-dp``: ``sigma`` given, or calibrated to ``--target-epsilon``
    after ``--rounds`` rounds. ``honest_floor`` is the fewest sites a round may hold."""
    sigma = args.record_noise_multiplier
    if sigma is None:
        sigma = calibrate_noise_multiplier(
            target_epsilon=args.target_epsilon,
            sample_rate=args.sample_rate,
            rounds=args.rounds,
            delta=args.delta,
            honest_sites=args.honest_sites,
        )
    if args.honest_sites > honest_floor:
        raise SystemExit(
            f"--honest-sites {args.honest_sites}: a round may hold only {honest_floor} hospitals"
        )
    return RecordDpPolicy(
        clip=args.record_clip,
        noise_multiplier=sigma,
        sample_rate=args.sample_rate,
        delta=args.delta,
        honest_sites=args.honest_sites,
    )


def site_learning_rate(args: argparse.Namespace, data: Data) -> float:
    """The step each hospital takes along its noisy gradient sum: ``--record-lr * M / (q * N)``,
    so the average of the ``M`` updates is ``--record-lr`` times the noisy mean gradient of the
    expected ``q * N`` sampled patients."""
    total = sum(len(y) for _, y in data.sites)
    return float(args.record_lr) * len(data.sites) / (args.sample_rate * total)


def record_config(
    args: argparse.Namespace, policy: RecordDpPolicy, data: Data, lr: float, clients: int
) -> FederationConfig:
    """Equal weights (1.0) and a bound on every coordinate of an update: ``lr * (n * C)`` for the
    clipped sum of at most ``n`` patients, plus 12 standard deviations of the site's noise."""
    largest = max(len(y) for _, y in data.sites)
    bound = lr * policy.clip * (largest + 12 * policy.site_noise_multiplier)
    return FederationConfig(
        preset=PRESETS["precise"],
        min_clients=max(args.honest_sites, 3),
        max_clients=clients,
        max_weight=1.0,
        value_bound=bound,
        holders=clients,
        threshold=3,
    )


def trainer(policy: RecordDpPolicy, lr: float, sites: int) -> Any:
    """``train(vector, layout, site, seed)`` for :func:`run_variant`: one DP-SGD update; the
    noise and sampling come from the OS CSPRNG (``seed`` fixes only the plaintext variants)."""

    def train(vector: NDArray[np.float64], layout: Layout, site: Site, _seed: int) -> StateDict:
        model = new_model()
        load(model, vector, layout)
        x = torch.tensor(site[0], dtype=torch.float32)
        y = torch.tensor(site[1], dtype=torch.float32)
        return dp_sgd_update(
            model,
            torch.utils.data.TensorDataset(x, y),
            policy=policy,
            sites=sites,
            learning_rate=lr,
            loss=_summed_bce,
        )

    return train


def _summed_bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.binary_cross_entropy_with_logits(
        logits.squeeze(1), target, reduction="sum"
    )


def summary(policy: RecordDpPolicy, acc: RecordPrivacyAccountant, lr: float) -> dict[str, Any]:
    """The JSON fields of the record-level guarantee (``record_epsilon`` etc.)."""
    return {
        "record_epsilon": round(acc.epsilon, 4),
        "record_delta": policy.delta,
        "record_noise_multiplier": round(policy.noise_multiplier, 4),
        "record_site_noise_multiplier": round(policy.site_noise_multiplier, 4),
        "record_own_noise_epsilon": round(acc.own_noise_epsilon, 4),
        "record_clip": policy.clip,
        "record_sample_rate": policy.sample_rate,
        "record_honest_sites": policy.honest_sites,
        "record_site_learning_rate": round(lr, 6),
    }
