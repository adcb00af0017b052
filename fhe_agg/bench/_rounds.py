"""Whole rounds: end-to-end time against a plaintext FedAvg round, and the same round with
dropouts next to it (clients that never send; a key holder of the decrypting set that is down
when its challenge is collected, before anyone issued a partial: the round is aborted, the live
holders vote to abort it, the clients check the abort certificate and the round is re-run with
the same updates, freshly encrypted, and another set).

Every party is real and runs in this process, one after another; only the network is a function
call, and nobody waits for a deadline. Two times are reported: the sequential CPU time of all
parties, and the critical path when clients encrypt in parallel and key holders decrypt in
parallel (slowest client + aggregator + slowest holder + combiner). Training is excluded.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fhe_agg.bench._baselines import plaintext_round
from fhe_agg.bench._before_proof import before_proof_seconds
from fhe_agg.bench._harness import (
    HOLDER_SETS,
    Figure,
    Plan,
    Target,
    client_vectors,
    figure,
    size_label,
)
from fhe_agg.bench._peers import peer_figures, secaggplus_runs
from fhe_agg.ceremony._local import holder_signing_keys, holder_verify_keys, local_key_ceremony
from fhe_agg.ckks._keys import PublicKey
from fhe_agg.ckks._packing import Layout
from fhe_agg.client._client import Client
from fhe_agg.holder._abort import AbortCertificate, votes_needed
from fhe_agg.holder._keyholder import KeyHolder
from fhe_agg.holder._round import HolderRound
from fhe_agg.protocol._config import FederationConfig
from fhe_agg.protocol._round_messages import PartialRequest, Reply, Request
from fhe_agg.protocol._signing import SigningKey, VerifyKey
from fhe_agg.server._aggregator import Aggregator
from fhe_agg.server._coordinator import RoundCoordinator

__all__ = ["round_figures"]


@dataclass
class _Timing:
    clients: list[float] = field(default_factory=list)
    aggregator: float = 0.0
    holders: list[float] = field(default_factory=list)
    combine: float = 0.0
    votes: float = 0.0
    error: float = float("nan")
    aborted: int | None = None  # the round id, if the round aborted
    upload: list[int] = field(default_factory=list)  # bytes of each client's update

    @property
    def sequential(self) -> float:
        return sum(self.clients) + self.aggregator + sum(self.holders) + self.combine + self.votes

    @property
    def client_max(self) -> float:
        return max(self.clients)

    @property
    def holder_max(self) -> float:
        return max(self.holders, default=0.0)

    @property
    def critical(self) -> float:
        return self.client_max + self.aggregator + self.holder_max + self.combine


class _Federation:
    def __init__(self, holders: int, threshold: int, clients: int, params: int) -> None:
        self.config = FederationConfig(
            min_clients=3,
            max_clients=clients,
            max_weight=float(clients),
            value_bound=1.0,
            holders=holders,
            threshold=threshold,
        )
        self.public_key: PublicKey
        identity = holder_signing_keys(holders)
        self.public_key, shares = local_key_ceremony(self.config, signing_keys=identity)
        keys = {f"client-{i:03d}": SigningKey.generate() for i in range(clients)}
        self.roster: dict[str, VerifyKey] = {c: k.verify_key for c, k in keys.items()}
        holder_keys = holder_verify_keys(identity)
        self.clients = [
            Client(
                client_id=c,
                signing_key=k,
                config=self.config,
                public_key=self.public_key,
                holder_keys=holder_keys,
            )
            for c, k in keys.items()
        ]
        signing = list(identity.values())
        self.holder_keys = holder_keys
        self.layout = Layout.for_vector(params)
        self.holders = {
            s.holder_index: HolderRound(
                KeyHolder(
                    holder_id=f"holder-{s.holder_index}",
                    config=self.config,
                    public_key=self.public_key,
                    key_share=s,
                    roster=self.roster,
                    signing_key=signing[s.holder_index - 1],
                ),
                layout=self.layout,
            )
            for s in shares
        }
        self.next_round = 1
        self._aborted: dict[int, RoundCoordinator] = {}  # aborted rounds waiting for votes

    def round(
        self,
        vectors: list[NDArray[np.float64]],
        weights: list[float],
        *,
        senders: range | list[int],
        decrypting_set: tuple[int, ...],
        dropped_holder: int | None = None,
    ) -> _Timing:
        round_id = self.next_round
        self.next_round += 1
        timing = _Timing()
        with Aggregator(
            config=self.config,
            roster=self.roster,
            public_key=self.public_key,
            round_id=round_id,
            layout=self.layout,
        ) as agg:
            coordinator = RoundCoordinator(agg, holder_keys=self.holder_keys)
            self._send(coordinator, vectors, weights, senders, timing)
            t0 = time.process_time()
            coordinator.finalize(decrypting_set)
            timing.aggregator += time.process_time() - t0

            def deliver(request: Request) -> Reply | None:
                if request.holder_index == dropped_holder:
                    return None  # down: it never answers its challenge
                t0 = time.process_time()
                reply = self.holders[request.holder_index].handle(request)
                if isinstance(request, PartialRequest):
                    timing.holders.append(time.process_time() - t0)
                return reply

            # the coordinator asks every member's challenge before anyone's partial, so the
            # holder that is down shows before any partial exists
            delivered = coordinator.carry(deliver)
            t0 = time.process_time()
            if not delivered:
                coordinator.abort()
                timing.combine = time.process_time() - t0
                timing.aborted = round_id
                self._aborted[round_id] = coordinator
                return timing
            mean = coordinator.release()
            timing.combine = time.process_time() - t0
        picked = list(senders)
        exact = np.average(
            np.stack([vectors[i] for i in picked]), axis=0, weights=[weights[i] for i in picked]
        )
        timing.error = float(np.max(np.abs(mean - exact)))
        return timing

    def _send(
        self,
        coordinator: RoundCoordinator,
        vectors: list[NDArray[np.float64]],
        weights: list[float],
        senders: range | list[int],
        timing: _Timing,
    ) -> None:
        """Each sender encrypts its update and the coordinator adds it, each timed apart."""
        for i in senders:
            t0 = time.process_time()
            wire = (
                self.clients[i]
                .encrypt_update(vectors[i], round_id=coordinator.round_id, weight=weights[i])
                .to_bytes()
            )
            t1 = time.process_time()
            timing.upload.append(len(wire))
            coordinator.add(wire)
            timing.clients.append(t1 - t0)
            timing.aggregator += time.process_time() - t1

    def close_round(self, round_id: int, down: int) -> float:
        """Close the aborted ``round_id`` for good: ``holders - threshold + 1`` live holders (none
        issued a partial) vote, every client checks the certificate. Returns the CPU time."""
        coordinator = self._aborted.pop(round_id)
        t0 = time.process_time()
        live = [r for r in coordinator.requests() if r.holder_index != down]
        for request in live[: votes_needed(self.config)]:
            reply = self.holders[request.holder_index].handle(request)
            assert reply is not None
            coordinator.accept(reply)
        wire = coordinator.certificate().to_bytes()
        for client in self.clients:
            client.accept_abort(AbortCertificate.from_bytes(wire, config=self.config))
        return time.process_time() - t0


def _median(timings: list[_Timing], attr: str) -> float:
    return float(statistics.median(float(getattr(t, attr)) for t in timings))


def round_figures(plan: Plan) -> list[Figure]:
    """No-dropout rounds for every holder set, and the dropout rounds next to the 5-of-3 one."""
    params, clients = plan.round_params, plan.round_clients
    vectors, weights = client_vectors(clients, params, seed=7)
    # clients refuse to send the same update for two rounds: each repeat trains anew
    fresh = [client_vectors(clients, params, seed=8 + k)[0] for k in range(plan.round_repeats)]
    plain = [plaintext_round(vectors, weights) for _ in range(max(plan.repeats, 5))]
    plain_seq = statistics.median(p["clients_s"] + p["server_s"] for p in plain)
    plain_crit = statistics.median(p["client_max_s"] + p["server_s"] for p in plain)
    secagg = secaggplus_runs(fresh[0], weights, max(plan.round_repeats, 3))
    secagg_round = {
        "sequential": statistics.median(sum(r.client_s) + r.server_s for r in secagg),
        "critical": statistics.median(max(r.client_s) + r.server_s for r in secagg),
    }
    out: list[Figure] = []
    size = size_label(params)
    for holders, threshold in HOLDER_SETS:
        fed = _Federation(holders, threshold, clients, params)
        members = tuple(range(1, threshold + 1))
        runs = [
            fed.round(v, weights, senders=range(clients), decrypting_set=members) for v in fresh
        ]
        workload = f"{size}, {clients} clients, {threshold}-of-{holders}"
        error = max(t.error for t in runs)
        phases = {
            "client_max_s": _median(runs, "client_max"),
            "aggregator_s": _median(runs, "aggregator"),
            "holder_max_s": _median(runs, "holder_max"),
            "combine_s": _median(runs, "combine"),
        }
        plain_round = {"sequential": plain_seq, "critical": plain_crit}
        out += _round_figures(workload, runs, phases, error, plain_round, secagg_round)
        if (holders, threshold) == HOLDER_SETS[-1]:
            out += _dropout_figures(plan, fed, fresh, weights, runs, workload)
            ours = {
                "client_s": phases["client_max_s"],
                "client_before_proof_s": before_proof_seconds(fed.clients, fresh, weights),
                "server_s": phases["aggregator_s"],
                "bytes_per_value": max(max(t.upload) for t in runs) / params,
                "error": error,
            }
            out += peer_figures(
                workload=workload, vectors=fresh[0], weights=weights, ours=ours, secagg=secagg
            )
    return out


def _round_figures(
    workload: str,
    runs: list[_Timing],
    phases: dict[str, float],
    error: float,
    plain_round: dict[str, float],
    secagg_round: dict[str, float],
) -> list[Figure]:
    """Sequential and critical-path round time against plaintext FedAvg and Flower SecAgg+."""
    out: list[Figure] = []
    for attr, how in (
        ("sequential", "sequential CPU time of all parties"),
        ("critical", "critical path (clients, holders in parallel)"),
    ):
        out.append(
            figure(
                "round",
                f"end-to-end round, {how}",
                workload=workload,
                unit="s per round",
                ours=_median(runs, attr),
                baseline=plain_round[attr],
                baseline_name="plaintext FedAvg round in numpy (float32 messages): the floor",
                higher_is_better=False,
                note="excluding training; key holders recompute every chunk sum (default)",
                max_abs_error=error,
                phases=phases,
            )
        )
        out.append(
            figure(
                "round_vs_secaggplus",
                f"end-to-end round against Flower SecAgg+, {how}",
                workload=workload,
                unit="s per round",
                ours=_median(runs, attr),
                baseline=secagg_round[attr],
                baseline_name="Flower SecAgg+ round on the same vectors, same run",
                higher_is_better=False,
                target=Target("ratio", "<=", 5.0),
                note="SecAgg+ clients and server in this process, no dropouts",
            )
        )
    return out


def _dropout_figures(
    plan: Plan,
    fed: _Federation,
    fresh: list[list[NDArray[np.float64]]],
    weights: list[float],
    no_dropout: list[_Timing],
    workload: str,
) -> list[Figure]:
    clients, t = plan.round_clients, fed.config.threshold
    members = tuple(range(1, t + 1))
    replacement = (*members[:-1], t + 1)  # the dropped holder's place taken by the next one
    senders = list(range(plan.round_dropped, clients))
    # new updates again (a vector already sent in the no-dropout rounds is refused), scaled
    # so that no repeat sends one twice
    client_drop = [
        fed.round([0.5 * x for x in v], weights, senders=senders, decrypting_set=members)
        for v in fresh
    ]
    holder_drop, errors = _holder_drop_rounds(fed, fresh, weights, members, replacement)
    base = _median(no_dropout, "sequential")
    common: dict[str, Any] = {
        "workload": workload,
        "unit": "s per round",
        "baseline": base,
        "baseline_name": "the same round without dropouts (sequential CPU time)",
        "higher_is_better": False,
    }
    return [
        figure(
            "round_dropout",
            f"round with {plan.round_dropped} of {clients} clients never sending",
            ours=_median(client_drop, "sequential"),
            note=f"completes with {len(senders)} clients (min_clients=3); no deadline wait counted",
            max_abs_error=max(t.error for t in client_drop),
            **common,
        ),
        figure(
            "round_dropout",
            f"round with holder {members[-1]} of the decrypting set dropping",
            ours=statistics.median(holder_drop),
            note=(
                f"holder {members[-1]} is down before any partial: set {members} aborts, "
                f"{votes_needed(fed.config)} live holders vote, the clients re-send the same "
                f"updates with set {replacement}"
            ),
            max_abs_error=max(errors),
            **common,
        ),
    ]


def _holder_drop_rounds(
    fed: _Federation,
    fresh: list[list[NDArray[np.float64]]],
    weights: list[float],
    members: tuple[int, ...],
    replacement: tuple[int, ...],
) -> tuple[list[float], list[float]]:
    """Per repeat: the last member of ``members`` is down, the round aborts and is closed by
    votes, and re-run with ``replacement``; the sequential seconds of both, and the error."""
    clients = len(fed.clients)
    holder_drop: list[float] = []
    errors: list[float] = []
    for v in fresh:
        vectors = [0.25 * x for x in v]
        aborted = fed.round(
            vectors,
            weights,
            senders=range(clients),
            decrypting_set=members,
            dropped_holder=members[-1],
        )
        assert aborted.aborted is not None
        aborted.votes = fed.close_round(aborted.aborted, down=members[-1])
        rerun = fed.round(vectors, weights, senders=range(clients), decrypting_set=replacement)
        holder_drop.append(aborted.sequential + rerun.sequential)
        errors.append(rerun.error)
    return holder_drop, errors
