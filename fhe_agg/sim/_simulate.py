"""One-process simulation of whole rounds with synthetic updates, for demos and measurements.

Every party is real: a dealerless key ceremony among the key holders (ML-DSA signed, shares
sealed with X-Wing HPKE), clients that clip, encrypt and sign, the aggregator's checks, the key
holders' verification and flooded partial decryptions, and the combiner. Only the network is
replaced by function calls. Client vectors are uniform in [-1, 1] with distinct weights; the exact
numpy weighted mean of the same (clipped) vectors is computed in the same run to report the error
and, with DP, the measured noise.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fhe_agg.ceremony._local import local_key_ceremony
from fhe_agg.ckks._dp import Adjacency, DpPolicy, PrivacyAccountant
from fhe_agg.ckks._flooding import FloodingPolicy
from fhe_agg.ckks._keys import PublicKey
from fhe_agg.ckks._packing import Layout
from fhe_agg.ckks._params import get_preset
from fhe_agg.ckks._random import RandomSource, SeededRandom, default_random
from fhe_agg.client._client import Client
from fhe_agg.holder._keyholder import KeyHolder
from fhe_agg.identity import AuditLog
from fhe_agg.protocol._config import FederationConfig
from fhe_agg.protocol._signing import SigningKey, VerifyKey
from fhe_agg.sim._deployment import Deployment
from fhe_agg.sim._round import run_round

__all__ = ["SimulationSpec", "max_weight", "run_simulation"]

#: ``progress(phase, n)``: ``("ceremony", 0)`` before the key ceremony, ``("ceremony", 1)``
#: after it, ``("clients", 1)`` per update aggregated, ``("rounds", 1)`` per round released.
Progress = Callable[[str, int], None]

_UNFLOODED_WARNING = (
    "--unsafe-exact: a single key holder releasing exact decryptions (no noise flooding): "
    "whoever sees the ciphertexts and the released mean can recover the key (Li-Micciancio); "
    "drop --unsafe-exact for 40-bit flooding"
)


@dataclass(frozen=True, kw_only=True)
class SimulationSpec:
    """What to simulate. Decryptions are always noised (40-bit flooding, or DP noise with
    ``flooding=False``) unless ``unsafe_exact`` opts a single key holder into exact, key-revealing
    decryption. ``preset="auto"`` picks ``dp`` with DP, ``precise`` when flooding, and ``compact``
    only under ``unsafe_exact``. ``adjacency`` is the DP neighbouring relation."""

    clients: int = 8
    holders: int = 1
    threshold: int = 1
    params: int = 100_000
    rounds: int = 1
    preset: str = "auto"
    flooding: bool | None = None
    dp: bool = False
    clip: float = 1.0
    noise_multiplier: float = 1.0
    adjacency: Adjacency = Adjacency.ZERO_OUT
    unsafe_exact: bool = False
    seed: int | None = None
    workers: int = 1

    def __post_init__(self) -> None:
        for name in ("clients", "holders", "threshold", "params", "rounds", "workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be at least 1")
        if self.threshold > self.holders:
            raise ValueError("threshold: cannot exceed holders")
        if self.unsafe_exact:
            if self.dp or self.flooding:
                raise ValueError("--unsafe-exact: exact decryption has no --dp and no --flooding")
            if self.holders > 1:
                raise ValueError(
                    f"--unsafe-exact: only for a single key holder, not {self.holders}; an "
                    "unflooded partial decryption reveals the holder's key share"
                )
        elif self.flooding is False and not self.dp:
            raise ValueError(
                "--no-flooding: without --dp every decryption would be exact and give away the "
                "key (Li-Micciancio); keep flooding, or pass --unsafe-exact (single key holder)"
            )

    @property
    def floods(self) -> bool:
        if self.flooding is not None:
            return self.flooding
        return not self.unsafe_exact

    @property
    def preset_name(self) -> str:
        if self.preset != "auto":
            return self.preset
        if self.dp:
            return "dp"
        return "precise" if self.floods else "compact"


@dataclass
class _Federation:
    config: FederationConfig
    public_key: PublicKey
    clients: list[Client]
    weights: list[float]
    roster: Callable[[int], dict[str, VerifyKey]]  # round -> client keys
    holders: list[KeyHolder]
    accountant: PrivacyAccountant | None
    layout: Layout
    rng: RandomSource
    audit: AuditLog | None = None


def max_weight(clients: int) -> float:
    """The largest client weight of a run with ``clients`` clients (weights ``10 * k + 5``)."""
    return 10.0 * clients + 5.0


def _peak_rss_mb() -> float:
    """Peak RSS of this process image: Linux's VmHWM (``ru_maxrss`` survives ``exec``, so a
    simulation started by a large parent would report the parent's peak), else ``ru_maxrss``."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _configure(
    spec: SimulationSpec, weights: list[float], min_clients: int | None = None
) -> FederationConfig:
    dp = None
    if spec.dp:
        dp = DpPolicy(
            clip=spec.clip, noise_multiplier=spec.noise_multiplier, adjacency=spec.adjacency
        )
    return FederationConfig(
        preset=get_preset(spec.preset_name),
        min_clients=min(3, spec.clients) if min_clients is None else min_clients,
        max_clients=spec.clients,
        max_weight=max(weights),
        value_bound=spec.clip if spec.dp else 1.0,
        holders=spec.holders,
        threshold=spec.threshold,
        flooding=FloodingPolicy() if spec.floods else None,
        dp=dp,
        unsafe_exact_decryption=spec.unsafe_exact,
    )


def _federation(
    spec: SimulationSpec,
    data_rng: np.random.Generator,
    deployment: Deployment | None,
    audit_path: Path | None,
) -> _Federation:
    rng: RandomSource = SeededRandom(spec.seed) if spec.seed is not None else default_random()
    # 10 * k + 5 for k = 1..clients, shuffled: max_weight(clients) is the largest
    weights = [float(w) for w in data_rng.permutation(np.arange(1, spec.clients + 1)) * 10 + 5]
    audit = None
    if deployment is None:
        config = _configure(spec, weights)
        public_key, shares = local_key_ceremony(config)  # keys: OS CSPRNG, never the seed
        signing = {f"client-{i:03d}": SigningKey.generate() for i in range(spec.clients)}
        fixed = {cid: key.verify_key for cid, key in signing.items()}
        holder_ids = [f"holder-{s.holder_index}" for s in shares]
        roster: Callable[[int], dict[str, VerifyKey]] = lambda _round: fixed  # noqa: E731
    else:
        r = deployment.roster
        config = _configure(spec, weights, min_clients=r.min_clients)
        if audit_path is not None:
            audit = _open_audit(deployment, audit_path)
        public_key, shares = local_key_ceremony(
            config, identities=deployment.holders, consortium=r.consortium, epoch=r.key_epoch
        )
        if audit is not None:
            _record_ceremony(audit, deployment, config, public_key)
        signing = dict(deployment.clients)
        holder_ids = list(deployment.holders)
        roster = r.client_keys
    clients = [
        Client(
            client_id=c, signing_key=k, config=config, public_key=public_key, workers=spec.workers
        )
        for c, k in signing.items()
    ]
    holders = [
        KeyHolder(
            holder_id=holder_ids[share.holder_index - 1],
            config=config,
            public_key=public_key,
            key_share=share,
            roster=roster(1),
            rng=rng,
            audit=_holder_audit(deployment, holder_ids[share.holder_index - 1], audit),
            workers=spec.workers,
        )
        for share in shares
    ]
    accountant = PrivacyAccountant.for_policy(config.dp) if config.dp else None
    layout = Layout.for_vector(spec.params)
    return _Federation(
        config, public_key, clients, weights, roster, holders, accountant, layout, rng, audit
    )


def _record_ceremony(
    audit: AuditLog, deployment: Deployment, config: FederationConfig, public_key: PublicKey
) -> None:
    audit.record(
        "ceremony.completed",
        {
            "epoch": deployment.roster.key_epoch,
            "holders": list(deployment.holders),
            "threshold": config.threshold,
            "public_key_sha3": public_key.fingerprint.hex(),
        },
    )


def _holder_audit(
    deployment: Deployment | None, holder_id: str, shared: AuditLog | None
) -> AuditLog | None:
    """The holder's own writer of the shared log: it signs its partials with its identity."""
    if deployment is None or shared is None:
        return None
    return AuditLog(shared.path, key=deployment.holders[holder_id].signing_key, actor=holder_id)


def _open_audit(deployment: Deployment, path: Path) -> AuditLog:
    if deployment.aggregator is None:
        raise ValueError(
            f"--audit-log: roster {deployment.roster.consortium!r} has no aggregator member to "
            "sign the log; add one (fhe-agg keys new --role aggregator --id aggregator, then "
            "fhe-agg roster add ROSTER --member keys/aggregator.pub.json --from-round 1 --admin ...)"
        )
    agg = deployment.aggregator
    return AuditLog(path, key=agg.signing_key, actor=agg.id)


def run_simulation(
    spec: SimulationSpec,
    *,
    progress: Progress | None = None,
    deployment: Deployment | None = None,
    audit_log: str | Path | None = None,
) -> dict[str, Any]:
    """Run ``spec.rounds`` rounds and return the measurements of the last one plus totals.

    With ``deployment`` (a verified roster and its members' key files) the parties use those
    identities, the roster's preset, ``min_clients`` and threshold, and each round's client keys
    (so a revoked client's update is refused and listed under ``refused``); ``audit_log`` then
    records the ceremony, every accepted or refused update, each aggregate and each release,
    signed by the roster's aggregator.
    """
    if audit_log is not None and deployment is None:
        raise ValueError("audit_log: needs a deployment (the roster's aggregator signs the log)")
    tick = progress or (lambda _phase, _n: None)
    data_rng = np.random.default_rng(spec.seed)  # synthetic model data only, never secrets
    t0 = time.perf_counter()
    tick("ceremony", 0)
    fed = _federation(spec, data_rng, deployment, None if audit_log is None else Path(audit_log))
    ceremony_s = time.perf_counter() - t0
    tick("ceremony", 1)
    result: dict[str, Any] = {}
    deviations: list[NDArray[np.float64]] = []
    refused: list[dict[str, Any]] = []
    for round_id in range(1, spec.rounds + 1):
        result, deviation = run_round(spec, fed, data_rng, round_id, tick)
        refused += result.pop("refused")
        deviations.append(deviation)
    config = fed.config
    result["ceremony_s"] = round(ceremony_s, 4)
    result["flooding_security_bits"] = round(config.flooding_security_bits, 2)
    budget = config.decryption_budget
    result["decryption_budget_left"] = (
        None if budget is None else min(h.budget_left or 0 for h in fed.holders)
    )
    if deployment is not None:
        result["consortium"] = deployment.roster.consortium
        result["refused"] = refused
    if fed.audit is not None:
        result["audit_log"] = str(fed.audit.path)
        result["audit_log_head"] = fed.audit.head
    if fed.accountant is not None:
        total_weight = result.pop("accepted_weight")
        result["epsilon"] = round(fed.accountant.epsilon, 4)
        result["delta"] = fed.accountant.delta
        result["delta_truncation"] = fed.accountant.truncation_delta  # the 14-sigma noise cut
        result["noise_multiplier"] = round(config.noise_multiplier or 0.0, 4)
        assert config.dp is not None
        result["dp_adjacency"] = config.dp.adjacency.value
        result["dp_sensitivity"] = config.dp_sensitivity
        result["noise_std_expected"] = config.released_noise_std / total_weight
        result["noise_std_measured"] = float(np.std(np.concatenate(deviations)))
    if config.flooding_security_bits == 0:
        result["warnings"] = [_UNFLOODED_WARNING]
    result.pop("accepted_weight", None)
    result["peak_rss_mb"] = round(_peak_rss_mb(), 1)
    return result
