"""Key-holder figures: partial decryption and combine per million parameters, key-holder traffic,
and the error of the released mean, for each holder/threshold workload.

Every holder set runs its own dealerless ceremony; three clients with distinct vectors and
weights make the aggregate at the precise preset with 40-bit flooding (the default federation).
A fresh :class:`~fhe_agg.KeyHolder` is made for each repetition: a holder decrypts a ciphertext
once, ever.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fhe_agg.bench._baselines import NvflareCkks, RawSeal
from fhe_agg.bench._harness import (
    HOLDER_SETS,
    Figure,
    Target,
    aggregate_of,
    client_vectors,
    figure,
    median_seconds,
)
from fhe_agg.ceremony._local import local_key_ceremony
from fhe_agg.ckks._keys import KeyShare, PublicKey
from fhe_agg.ckks._packing import Layout
from fhe_agg.holder._keyholder import KeyHolder
from fhe_agg.holder._partial import PartialDecryption
from fhe_agg.holder._round import HolderRound
from fhe_agg.protocol._config import FederationConfig
from fhe_agg.protocol._messages import EncryptedAggregate
from fhe_agg.protocol._round_messages import Reply, Request
from fhe_agg.protocol._signing import VerifyKey
from fhe_agg.protocol._wellformed import forget_verified
from fhe_agg.server._aggregator import Aggregator
from fhe_agg.server._coordinator import RoundCoordinator

__all__ = ["decryption_figures"]

_CLIENTS = 3


def decryption_figures(
    workload: str, vector: NDArray[np.float64], repeats: int, nvflare: NvflareCkks
) -> list[Figure]:
    """Every key-holder figure for one workload of ``vector.size`` parameters."""
    params = vector.size
    vectors, weights = client_vectors(_CLIENTS, params, seed=params)
    vectors[0] = np.clip(vector, -1.0, 1.0)  # the workload's own values (a model's, if any)
    exact = np.average(np.stack(vectors), axis=0, weights=weights)
    nvflare_mean, nvflare_download = nvflare.weighted_mean(vectors, weights)
    nvflare_error = float(np.max(np.abs(nvflare_mean - exact)))
    configs = [
        FederationConfig(
            min_clients=_CLIENTS,
            max_clients=16,
            max_weight=10.0,
            value_bound=1.0,
            holders=holders,
            threshold=threshold,
        )
        for holders, threshold in HOLDER_SETS
    ]
    seal_s = _seal_decrypt_seconds(configs[0], exact, repeats)  # the same for every holder set
    out: list[Figure] = []
    for config in configs:
        public_key, shares = local_key_ceremony(config)
        agg, aggregate, roster = aggregate_of(config, public_key, vectors, weights)
        with agg:
            run = _HolderRun(
                config, public_key, shares, roster, agg, aggregate, Layout.for_vector(params)
            )
            label = f"{workload}, {config.threshold}-of-{config.holders}"
            out += run.figures(
                label, repeats, exact, seal_s, nvflare_error, nvflare_download / params
            )
    return out


def _seal_decrypt_seconds(
    config: FederationConfig, vector: NDArray[np.float64], repeats: int
) -> float:
    """Median seconds of single-key SEAL decrypt + decode of ``vector`` at ``config``'s preset."""
    raw = RawSeal(config.preset, config.scale)
    ciphers = raw.encrypt(vector, packed=True)
    return median_seconds(lambda: raw.decrypt_decode(ciphers), repeats)


def _deliver(machines: Mapping[int, HolderRound], request: Request) -> Reply:
    return machines[request.holder_index].handle(request)


class _HolderRun:
    """One aggregate and the holders able to decrypt it."""

    def __init__(
        self,
        config: FederationConfig,
        public_key: PublicKey,
        shares: list[KeyShare],
        roster: Mapping[str, VerifyKey],
        agg: Aggregator,
        aggregate: EncryptedAggregate,
        layout: Layout,
    ) -> None:
        self.config, self.public_key, self.shares, self.roster = config, public_key, shares, roster
        self.agg, self.aggregate, self.layout = agg, aggregate, layout
        self.members = tuple(range(1, config.threshold + 1))

    def holder(self, index: int, spot_check: int | None) -> KeyHolder:
        return KeyHolder(
            holder_id=f"holder-{index}",
            config=self.config,
            public_key=self.public_key,
            key_share=self.shares[index - 1],
            roster=self.roster,
            spot_check=spot_check,
        )

    def timed_partial(
        self, spot_check: int | None, repeats: int
    ) -> tuple[float, PartialDecryption]:
        """Median seconds of holder 1's partial decryption, and the last partial."""
        times = []
        for _ in range(repeats):
            h = self.holder(1, spot_check)
            evidence = self.agg.evidence(h.challenge(self.aggregate))  # the aggregator's work
            forget_verified()  # a holder verifies every proof itself, in its own process
            t0 = time.process_time()
            partial = h.partial_decrypt(
                self.aggregate, evidence, layout=self.layout, decrypting_set=self.members
            )
            times.append(time.process_time() - t0)
        return float(np.median(times)), partial

    def timed_release(self, repeats: int) -> tuple[float, NDArray[np.float64]]:
        """Median seconds of the combiner's release, each time a whole decryption of the same
        aggregate by fresh holders (fresh decryption logs), in the coordinator's order."""
        times, mean = [], np.empty(0)
        for _ in range(repeats):
            coordinator = RoundCoordinator(self.agg)  # the aggregate is fixed already
            coordinator.finalize(self.members)
            machines = {j: HolderRound(self.holder(j, 1), layout=self.layout) for j in self.members}
            coordinator.carry(functools.partial(_deliver, machines))
            t0 = time.process_time()
            mean = coordinator.release()
            times.append(time.process_time() - t0)
        return float(np.median(times)), mean

    def traffic(self, partial: PartialDecryption) -> tuple[int, int, int, int]:
        """Bytes a holder downloads (aggregate; spot-check and full evidence) and uploads."""
        aggregate_bytes = len(self.aggregate.to_bytes())

        def evidence_bytes(indices: tuple[int, ...]) -> int:
            ev = self.agg.evidence(indices)
            return sum(
                len(e.chunk) + 32 * len(e.path) for items in ev.chunks.values() for e in items
            ) + sum(len(p) for proofs in ev.proofs.values() for p in proofs)

        return (
            aggregate_bytes,
            evidence_bytes((0,)),
            evidence_bytes(tuple(range(len(self.aggregate.chunks)))),
            len(partial.to_bytes(self.config)),
        )

    def figures(
        self,
        label: str,
        repeats: int,
        exact: NDArray[np.float64],
        seal_s: float,
        nvflare_error: float,
        nvflare_download: float,
    ) -> list[Figure]:
        """Every figure of this holder set; ``seal_s`` is the SEAL baseline's median seconds."""
        params = self.layout.length
        per_m = 1e6 / params
        spot_s, partial = self.timed_partial(1, repeats)
        full_s = self.timed_partial(None, repeats)[0]
        combine_s, mean = self.timed_release(repeats)
        return [
            *self._time_figures(
                label, spot_s * per_m, full_s * per_m, combine_s * per_m, seal_s * per_m
            ),
            *self._traffic_figures(label, partial, nvflare_download),
            figure(
                "max_abs_error",
                "max abs error of the released weighted mean vs numpy",
                workload=label,
                params=params,
                unit="abs error",
                ours=float(np.max(np.abs(mean - exact))),
                baseline=nvflare_error,
                baseline_name="NVFlare-style CKKSVector (sum of w_i * Enc(x_i), decrypt, / sum w)",
                higher_is_better=False,
                note="ours with 40-bit noise flooding in every partial",
            ),
        ]

    def _time_figures(
        self, label: str, spot: float, full: float, combine: float, seal: float
    ) -> list[Figure]:
        """Partial decryption (spot check, every chunk) and combine, in s per 1M parameters."""
        base = "single-key SEAL decrypt + decode (same preset, same ciphertext count)"
        timing: dict[str, Any] = {
            "workload": label,
            "params": self.layout.length,
            "unit": "s per 1M params",
            "higher_is_better": False,
        }
        return [
            figure(
                "partial_decrypt",
                "partial decryption per holder (spot_check=1; every chunk's proof still verified)",
                ours=spot,
                baseline=seal,
                baseline_name=base,
                target=Target("ours", "<=", 0.5),
                **timing,
            ),
            figure(
                "partial_decrypt",
                "partial decryption per holder (every chunk sum recomputed, every proof verified)",
                ours=full,
                baseline=seal,
                baseline_name=base,
                note="the default KeyHolder (spot_check=None)",
                **timing,
            ),
            figure(
                "combine",
                f"combine {self.config.threshold} partials + decode",
                ours=combine,
                baseline=seal,
                baseline_name=base,
                **timing,
            ),
        ]

    def _traffic_figures(
        self, label: str, partial: PartialDecryption, nvflare_download: float
    ) -> list[Figure]:
        """A holder's bytes per parameter, with 1-chunk and with full evidence."""
        params = self.layout.length
        agg_b, spot_b, full_b, partial_b = self.traffic(partial)
        traffic: dict[str, Any] = {
            "workload": label,
            "params": params,
            "unit": "bytes/param",
            "higher_is_better": False,
            "baseline": nvflare_download,
            "baseline_name": "NVFlare-style: each client downloads the encrypted sum",
        }
        return [
            figure(
                "holder_traffic",
                "key-holder traffic: aggregate + 1-chunk evidence down, partial up",
                ours=(agg_b + spot_b + partial_b) / params,
                note=f"down {(agg_b + spot_b) / params:.2f}, up {partial_b / params:.2f}",
                **traffic,
            ),
            figure(
                "holder_traffic",
                "key-holder traffic: aggregate + every chunk of every client down, partial up",
                ours=(agg_b + full_b + partial_b) / params,
                note=f"{_CLIENTS} clients",
                **traffic,
            ),
        ]
