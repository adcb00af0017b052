"""One round of the in-process simulation (:func:`fhe_agg.sim._simulate.run_simulation`), timed.

A thin transport: clients encrypt and sign, the :class:`~fhe_agg.RoundCoordinator` takes their
updates and issues the decryption's requests, and each request is carried to the named key
holder's :class:`~fhe_agg.HolderRound` in this process. The order of the round lives in the
coordinator; this module only moves messages and measures.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from fhe_agg.errors import Rejected
from fhe_agg.holder._round import HolderRound
from fhe_agg.protocol._round_messages import PartialRequest, Reply, Request
from fhe_agg.server._aggregator import Aggregator
from fhe_agg.server._coordinator import RoundCoordinator

if TYPE_CHECKING:
    from fhe_agg.sim._simulate import Progress, SimulationSpec, _Federation

__all__ = ["run_round"]


@dataclass
class _Uploads:
    """What the clients' side of one round took and sent."""

    expected: NDArray[np.float64]
    encrypt_s: float = 0.0
    sign_s: float = 0.0
    aggregate_s: float = 0.0
    upload_bytes: int = 0
    accepted_weight: float = 0.0
    refused: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Decryption:
    members: list[int]
    mean: NDArray[np.float64]
    partial_s: float
    combine_s: float


def run_round(
    spec: SimulationSpec,
    fed: _Federation,
    data_rng: np.random.Generator,
    round_id: int,
    tick: Progress,
) -> tuple[dict[str, Any], NDArray[np.float64]]:
    """Run round ``round_id``: its row of measurements and the released mean's deviation from
    the plaintext weighted mean."""
    roster = fed.roster(round_id)
    for holder in fed.holders:
        holder.roster = dict(roster)  # holders re-verify the manifest against this round's keys
    with Aggregator(
        config=fed.config,
        roster=roster,
        public_key=fed.public_key,
        round_id=round_id,
        layout=fed.layout,
        audit=fed.audit,
        workers=spec.workers,
    ) as agg:
        coordinator = RoundCoordinator(agg, accountant=fed.accountant, rng=fed.rng)
        uploads = _upload(spec, fed, coordinator, data_rng, round_id, tick)
        decryption = _decrypt(fed, coordinator, uploads)
    _record_release(fed, round_id, decryption.members)
    tick("rounds", 1)
    deviation = decryption.mean - uploads.expected / uploads.accepted_weight
    return _row(spec, fed, round_id, uploads, decryption, deviation), deviation


def _upload(
    spec: SimulationSpec,
    fed: _Federation,
    coordinator: RoundCoordinator,
    data_rng: np.random.Generator,
    round_id: int,
    tick: Progress,
) -> _Uploads:
    """Every client encrypts, signs and sends its update; a refused one is recorded."""
    clip = fed.config.dp.clip if fed.config.dp else None
    out = _Uploads(expected=np.zeros(spec.params))
    for client, weight in zip(fed.clients, fed.weights, strict=True):
        t0 = time.perf_counter()
        prepared, _ = client.prepare(data_rng.uniform(-1.0, 1.0, spec.params), clip=clip)
        chunks = client.encrypt_chunks(prepared, round_id=round_id, weight=weight)
        t1 = time.perf_counter()
        update = client.sign_update(chunks, layout=fed.layout, round_id=round_id, weight=weight)
        wire = update.to_bytes()
        t2 = time.perf_counter()
        try:
            coordinator.add(wire)
        except Rejected as exc:  # e.g. a revoked client: refused, recorded, round goes on
            refused = {"round": round_id, "client": client.client_id, "error": exc.code}
            out.refused.append({**refused, "reason": str(exc)})
        else:
            out.expected += weight * prepared
            out.accepted_weight += weight
        out.encrypt_s += t1 - t0
        out.sign_s += t2 - t1
        out.aggregate_s += time.perf_counter() - t2
        out.upload_bytes = len(wire)
        tick("clients", 1)
    return out


def _decrypt(fed: _Federation, coordinator: RoundCoordinator, uploads: _Uploads) -> _Decryption:
    """Finalize, carry the coordinator's requests to the first ``threshold`` holders, release."""
    machines = {
        h.holder_index: HolderRound(h, layout=fed.layout, decrypts_mean=True) for h in fed.holders
    }
    t0 = time.perf_counter()
    members = [h.holder_index for h in fed.holders[: fed.config.threshold]]
    coordinator.finalize(members)
    uploads.aggregate_s += time.perf_counter() - t0
    partial_s = 0.0

    def deliver(request: Request) -> Reply:
        nonlocal partial_s
        t0 = time.perf_counter()
        reply = machines[request.holder_index].handle(request)
        if isinstance(request, PartialRequest):
            partial_s += time.perf_counter() - t0  # verification + partial decryption
        return reply

    # the coordinator asks every member's challenge before anyone's partial, so a holder that
    # is down shows before any partial exists (all live holders could then vote)
    coordinator.carry(deliver)
    t0 = time.perf_counter()
    mean = coordinator.release()
    combine_s = 0.0 if coordinator.unflooded else time.perf_counter() - t0
    return _Decryption(members, mean, partial_s, combine_s)


def _record_release(fed: _Federation, round_id: int, members: list[int]) -> None:
    if fed.audit is None:
        return
    accountant = fed.accountant
    fed.audit.record(
        "release",
        {
            "round": round_id,
            "decrypting_set": members,
            "epsilon_total": None if accountant is None else accountant.epsilon,
            "delta": None if accountant is None else accountant.delta,
        },
    )


def _row(
    spec: SimulationSpec,
    fed: _Federation,
    round_id: int,
    uploads: _Uploads,
    decryption: _Decryption,
    deviation: NDArray[np.float64],
) -> dict[str, Any]:
    partial_s, combine_s = decryption.partial_s, decryption.combine_s
    return {
        "round": round_id,
        "clients": spec.clients,
        "holders": spec.holders,
        "threshold": spec.threshold,
        "params": spec.params,
        "preset": spec.preset_name,
        "scale_bits": fed.config.scale_bits,
        "max_abs_error": float(np.max(np.abs(deviation))),
        "bits_per_param_upload": round(8.0 * uploads.upload_bytes / spec.params, 2),
        "client_encrypt_s": round(uploads.encrypt_s / spec.clients, 4),
        "client_sign_s": round(uploads.sign_s / spec.clients, 4),
        "aggregate_s": round(uploads.aggregate_s, 4),
        "partial_decrypt_s": round(partial_s / len(decryption.members), 4),
        "combine_s": round(combine_s, 4),
        "decrypt_s": round(partial_s + combine_s, 4),
        "accepted_weight": uploads.accepted_weight,
        "refused": uploads.refused,
    }
