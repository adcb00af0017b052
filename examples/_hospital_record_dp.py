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
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from _hospital_data import Data, Site, StateDict, load, new_model
from numpy.typing import NDArray

from fhe_agg import PRESETS, FederationConfig, Layout, ThresholdNotMet
from fhe_agg.opacus import (
    SITE_WEIGHT,
    RecordDpPolicy,
    RecordPrivacyAccountant,
    calibrate_noise_multiplier,
    dp_sgd_update,
    require_sites,
)

NAME = "encrypted+record-DP"


def record_policy(args: argparse.Namespace, sites: int) -> RecordDpPolicy:
    """The policy of ``--record-dp``: ``sigma`` given, or calibrated to ``--target-epsilon``
    after ``--rounds`` rounds; exits if ``--honest-sites`` exceeds the ``sites`` of a round."""
    sigma = args.record_noise_multiplier
    if sigma is None:
        sigma = calibrate_noise_multiplier(
            target_epsilon=args.target_epsilon,
            sample_rate=args.sample_rate,
            rounds=args.rounds,
            delta=args.delta,
            honest_sites=args.honest_sites,
        )
    policy = RecordDpPolicy(
        clip=args.record_clip,
        noise_multiplier=sigma,
        sample_rate=args.sample_rate,
        delta=args.delta,
        honest_sites=args.honest_sites,
    )
    try:
        require_sites(policy, sites)
    except ThresholdNotMet as exc:
        raise SystemExit(f"--honest-sites: {exc}") from exc
    return policy


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


def run(
    args: argparse.Namespace,
    data: Data,
    layout: Layout,
    tick: Callable[[str], None],
    *,
    federation: Any,
    run_variant: Any,
) -> dict[str, Any]:
    """DP-SGD at each hospital, then ``federation`` (the example's ``EncryptedFederation``)
    aggregates without key-holder noise; ``history`` and the record-level JSON fields."""
    sites = len(data.sites)
    policy = record_policy(args, sites)
    lr = site_learning_rate(args, data)
    tick(f"{NAME}: key ceremony")
    fed = federation(
        record_config(args, policy, data, lr, sites), layout, clip=None, seed=args.seed
    )
    accountant = RecordPrivacyAccountant(policy)
    weights = [SITE_WEIGHT] * sites  # equal: the noise shares add up in the sum

    def aggregate(round_id: int, deltas: list[StateDict], _weights: list[float]) -> Any:
        accountant.spend_round(sites=len(deltas))  # refuses fewer sites than honest_sites
        out = fed.aggregate(round_id, deltas, weights)
        out.record_epsilon = accountant.epsilon
        return out

    train = trainer(policy, lr, sites)
    history = run_variant(aggregate, data, weights, args, tick, train=train)
    history["ceremony_s"] = round(fed.ceremony_s, 4)
    return {
        "history": history,
        **summary(policy, accountant, lr),
        "record_dp_accuracy": history["accuracy"][-1],
    }


def add_arguments(parser: argparse.ArgumentParser, *, number: Any, positive: Any) -> None:
    """The ``--record-dp`` flags; ``number``/``positive`` are the example's argument types."""
    add = parser.add_argument
    add("--record-dp", action="store_true", help="add the patient-level DP-SGD variant")
    add("--target-epsilon", type=positive, help="record-level epsilon after --rounds")
    add("--record-noise-multiplier", type=positive, help="record-level sigma (total)")
    add("--record-clip", type=positive, default=1.0, help="per-patient gradient L2 bound")
    add(
        "--sample-rate",
        type=number(
            "1/k for an integer k", lambda v: 0 < v <= 1 and abs(round(1 / v) * v - 1) < 1e-9
        ),
        default=0.5,
        help="Poisson sampling rate of the patients (default 0.5)",
    )
    add(
        "--honest-sites",
        type=number("an integer >= 1", lambda v: v >= 1, int),
        default=3,
        help="hospitals assumed honest; each adds sigma/sqrt(h) of the noise (default 3)",
    )
    add("--record-lr", type=positive, default=5.0, help="server step along the noisy mean gradient")


def check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace, sites: int) -> None:
    """Exactly one of ``--target-epsilon`` and ``--record-noise-multiplier``, only with
    ``--record-dp``, and no more ``--honest-sites`` than the ``sites`` of a round."""
    if args.honest_sites > sites:
        parser.error(f"--honest-sites {args.honest_sites}: a round holds only {sites} hospitals")
    chosen = (args.target_epsilon is not None) + (args.record_noise_multiplier is not None)
    if args.record_dp and chosen != 1:
        parser.error("--record-dp needs one of --target-epsilon, --record-noise-multiplier")
    if not args.record_dp and chosen:
        parser.error("--target-epsilon and --record-noise-multiplier need --record-dp")
