"""``SecureAggregation``: any Flower strategy's client selection, fhe_agg's aggregation.

Per round: the inner strategy picks the nodes and builds the train messages; this wrapper adds
the round id and weight key, and the nodes' :func:`secure_update_mod` answers with signed
encrypted updates. The server feeds them to an :class:`~fhe_agg.Aggregator` (signatures, roster,
round, layout, duplicates: a refused update is logged and the round goes on while
``min_clients`` remain), sends the encrypted weighted mean to a decrypting set of ``threshold``
key-holder nodes fixed up front, answers each holder's challenge with the evidence it asks
for, and combines their partial decryptions. The new global model is the old one plus the
decrypted mean of the clipped updates, handed to the inner strategy's own aggregation (so
FedAdam, FedYogi or FedAvgM keep their server optimiser). If a holder of the set refuses or drops, the round is
aborted (never retried with another set) and the model stays as it was.

Every member's challenge is collected before anyone is asked for a partial
(:mod:`fhe_agg.flower._decrypt`): if one does not answer, nobody decrypts, the holder is left out of later sets, and the live holders vote to abort
the round. After every round that released nothing the strategy collects abort votes
(:mod:`fhe_agg.flower._closure`) and sends the certificate with the next train messages, so that
clients whose update did not change may send it again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from flwr.app import (
    Array,
    ArrayRecord,
    ConfigRecord,
    ConfigRecordValues,
    Message,
    MessageType,
    MetricRecord,
    RecordDict,
)
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Result, Strategy
from numpy.typing import NDArray

from fhe_agg._errors import (
    FheAggError,
    PrivacyBudgetExceeded,
    ThresholdNotMet,
    UnsupportedParameters,
)
from fhe_agg._validate import positive_finite
from fhe_agg.ckks._dp import PrivacyAccountant
from fhe_agg.ckks._packing import Layout, unflatten
from fhe_agg.flower._closure import certificates_record, close_round
from fhe_agg.flower._decrypt import decrypt_round
from fhe_agg.flower._mod import arrays_to_vector
from fhe_agg.flower._protocol import ROUND_RECORD
from fhe_agg.flower._records import MAX_HOLDERS
from fhe_agg.flower._relay import Federation, Relay, set_up_federation
from fhe_agg.flower._report import Refusal, RoundReport, round_metrics
from fhe_agg.flower._updates import collect_updates
from fhe_agg.protocol._config import FederationConfig
from fhe_agg.protocol._messages import EncryptedAggregate
from fhe_agg.server._aggregator import Aggregator
from fhe_agg.server._coordinator import RoundCoordinator

__all__ = ["RoundReport", "SecureAggregation"]

log = logging.getLogger("fhe_agg.flower")


@dataclass
class _Round:
    number: int
    arrays: ArrayRecord
    vector: NDArray[np.float64]
    layout: Layout


def _checked_config(config: FederationConfig) -> FederationConfig:
    """A configuration key-holder nodes can run: flooded partials, a relayable ceremony."""
    if not isinstance(config, FederationConfig):
        raise TypeError(f"config: expected FederationConfig, got {type(config).__name__}")
    if config.unsafe_exact_decryption:
        raise UnsupportedParameters(
            "config: unsafe_exact_decryption releases exact decryptions, which give away "
            "the key (Li-Micciancio); key-holder nodes only ever issue flooded partials, so "
            "keep the default FloodingPolicy()"
        )
    if config.holders > MAX_HOLDERS:
        raise ValueError(
            f"config: {config.holders} key holders, a relayed ceremony takes at most {MAX_HOLDERS}"
        )
    return config


def _checked_clip(config: FederationConfig, clip: float | None) -> float | None:
    """The clients' clip norm: positive, finite, and within the DP clip norm (if DP)."""
    if clip is not None:
        clip = positive_finite(clip, "clip")
        if config.dp is not None and clip > config.dp.clip:
            raise ValueError(f"clip: {clip} exceeds the federation's DP clip norm {config.dp.clip}")
    return clip


def _checked_set(config: FederationConfig, decrypting_set: Sequence[int] | None) -> tuple[int, ...]:
    """The decrypting set: ``threshold`` distinct holder indices (default ``1..threshold``)."""
    members = (
        tuple(range(1, config.threshold + 1))
        if decrypting_set is None
        else tuple(sorted(set(decrypting_set)))
    )
    if len(members) != config.threshold or not all(1 <= m <= config.holders for m in members):
        raise ValueError(
            f"decrypting_set: needs {config.threshold} distinct indices in 1..{config.holders}"
        )
    return members


class SecureAggregation(Strategy):
    """Wrap ``strategy`` so that updates travel encrypted and only aggregates are decrypted.

    ``config`` is the federation's public configuration (its ``holders``/``threshold`` say how
    many key-holder nodes run the ceremony and how many decrypt; at most 64 holders); ``clip`` is
    the L2 bound the clients clip their update to (with DP, at most ``config.dp.clip``, which is
    the default); ``weight_key`` names the reply metric that weights each update;
    ``decrypting_set`` picks the holder indices that decrypt (default ``1..threshold``). Key
    holders are the first ``holders`` nodes, by member id, that volunteer
    (``enable_secure_aggregation(..., key_holder=...)`` on the ClientApp).
    With ``config.dp``, :attr:`accountant` composes the releases; ``max_epsilon`` stops
    decrypting (rounds are then not aggregated) before a release would exceed it.
    ``first_round`` is the fhe_agg round id of Flower's round 1: a later ``flwr run`` on the
    same key (the holders report it at hello; no new ceremony) goes on from the last round id,
    since key holders refuse a round id they already decrypted or an older one.
    """

    def __init__(
        self,
        strategy: Strategy,
        *,
        config: FederationConfig,
        clip: float | None = None,
        weight_key: str = "num-examples",
        consortium: str = "flower",
        epoch: int = 1,
        decrypting_set: Sequence[int] | None = None,
        min_nodes: int | None = None,
        max_epsilon: float | None = None,
        timeout: float = 600.0,
        first_round: int = 1,
    ) -> None:
        if not isinstance(strategy, Strategy):
            raise TypeError(f"strategy: expected a flwr Strategy, got {type(strategy).__name__}")
        clip = _checked_clip(_checked_config(config), clip)
        members = _checked_set(config, decrypting_set)
        if max_epsilon is not None and config.dp is None:
            raise ValueError("max_epsilon: the federation has no DP policy (config.dp)")
        if isinstance(first_round, bool) or not isinstance(first_round, int) or first_round < 1:
            raise ValueError(f"first_round: expected a positive integer, got {first_round!r}")
        if not timeout > 0:
            raise ValueError(f"timeout: expected a positive number of seconds, got {timeout!r}")
        self.inner = strategy
        self.config = config
        self.clip = clip
        self.weight_key = weight_key
        self.consortium = consortium
        self.epoch = epoch
        self.decrypting_set = members
        self.min_nodes = (
            min_nodes if min_nodes is not None else max(config.min_clients, config.holders)
        )
        self.timeout = float(timeout)
        self.first_round = first_round
        self.accountant = (
            PrivacyAccountant.for_policy(config.dp, max_epsilon=max_epsilon) if config.dp else None
        )
        self.federation: Federation | None = None
        self.history: list[RoundReport] = []
        self._relay: Relay | None = None
        self._round: _Round | None = None
        self._down: set[int] = set()  # holder indices that missed a challenge: left out of sets
        self._certificates: dict[int, bytes] = {}  # round -> abort certificate

    # -- setup -------------------------------------------------------------------------------

    def setup(self, grid: Grid) -> Federation:
        """Introduce the nodes, run the key ceremony among the holders and hand out the joint
        public key (once; later calls return the same federation)."""
        if self._relay is None or self._relay.grid is not grid:
            self._relay = Relay(grid, timeout=self.timeout)
        if self.federation is None:
            t0 = time.perf_counter()
            self.federation = set_up_federation(
                self._relay,
                self.config,
                clip=self.clip,
                consortium=self.consortium,
                epoch=self.epoch,
                min_nodes=self.min_nodes,
            )
            log.info("fhe_agg setup took %.2f s", time.perf_counter() - t0)
        return self.federation

    def start(
        self,
        grid: Grid,
        initial_arrays: ArrayRecord,
        num_rounds: int = 3,
        timeout: float = 3600,
        train_config: ConfigRecord | None = None,
        evaluate_config: ConfigRecord | None = None,
        evaluate_fn: Callable[[int, ArrayRecord], MetricRecord | None] | None = None,
    ) -> Result:
        """Set the federation up, then run Flower's round loop."""
        self.setup(grid)
        return super().start(
            grid,
            initial_arrays,
            num_rounds=num_rounds,
            timeout=timeout,
            train_config=train_config,
            evaluate_config=evaluate_config,
            evaluate_fn=evaluate_fn,
        )

    def summary(self) -> None:
        log.info(
            "SecureAggregation(%d-of-%d key holders, preset %s) around %s",
            self.config.threshold,
            self.config.holders,
            self.config.preset.name,
            type(self.inner).__name__,
        )
        self.inner.summary()

    # -- train -------------------------------------------------------------------------------

    def round_id(self, server_round: int) -> int:
        """The fhe_agg round of Flower's ``server_round``: rounds go on across runs
        (``first_round``), since a key holder never decrypts a round id twice."""
        return server_round + self.first_round - 1

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """The inner strategy's train messages to federation members, with the fhe_agg round."""
        federation = self.setup(grid)
        vector, layout = arrays_to_vector(arrays)
        self._round = _Round(server_round, arrays, vector, layout)
        members = set(federation.node_of.values())
        out = []
        for message in self.inner.configure_train(server_round, arrays, config, grid):
            if message.metadata.dst_node_id not in members:
                if message.metadata.dst_node_id in federation.holders:
                    continue  # a pinned key holder decrypts and sends no update
                log.warning(
                    "node %d is not in the federation; not sampled", message.metadata.dst_node_id
                )
                continue
            values: dict[str, ConfigRecordValues] = {
                "round": self.round_id(server_round),
                "weight-key": self.weight_key,
            }
            if self._certificates:
                values["abort-certificates"] = certificates_record(self._certificates)
            message.content[ROUND_RECORD] = ConfigRecord(values)
            out.append(message)
        return out

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Aggregate the encrypted updates, have the holders decrypt, return the new model."""
        current, federation = self._round, self.federation
        if current is None or current.number != server_round or federation is None:
            raise RuntimeError("aggregate_train: configure_train of this round did not run")
        report = RoundReport(round=self.round_id(server_round), decrypting_set=self._members())
        self.history.append(report)
        t0 = time.perf_counter()
        with Aggregator(
            config=self.config,
            roster=federation.roster,
            public_key=federation.public_key,
            round_id=self.round_id(server_round),
            layout=current.layout,
        ) as aggregator:
            coordinator = RoundCoordinator(
                aggregator, accountant=self.accountant, holder_keys=federation.holder_keys
            )
            contents = collect_updates(coordinator, replies, report, federation.node_of)
            metrics = round_metrics(contents, self.weight_key, report)
            try:
                coordinator.finalize(report.decrypting_set)
            except (ThresholdNotMet, PrivacyBudgetExceeded) as exc:  # no holder was asked
                report.reason = Refusal.of(exc)
                what = "aggregated" if isinstance(exc, ThresholdNotMet) else "decrypted"
                log.error("round %d not %s: %s", server_round, what, report.reason)
                self._close(report, coordinator)
                return None, metrics
            report.seconds["aggregate"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            assert self._relay is not None
            mean, missed = decrypt_round(
                self._relay, federation, coordinator, current.layout, report
            )
            self._down |= missed
            report.seconds["decrypt"] = time.perf_counter() - t0
        if mean is None:
            self._close(report, coordinator)
            return None, metrics
        report.decrypted = True
        template = {name: array.numpy() for name, array in current.arrays.items()}
        arrays = unflatten(current.vector + mean, current.layout, template=template)
        averaged = ArrayRecord({k: Array(np.asarray(v)) for k, v in arrays.items()})
        return self._inner_aggregate(server_round, averaged, coordinator.aggregate), metrics

    def _inner_aggregate(
        self, server_round: int, averaged: ArrayRecord, aggregate: EncryptedAggregate
    ) -> ArrayRecord:
        """The inner strategy's own aggregation, run on the decrypted mean.

        The mean is presented as the one reply of the round, carrying the aggregate's total
        weight, so a weighted average of it is itself: FedAvg returns it, and FedAdam, FedYogi,
        FedAdagrad or FedAvgM apply their server optimiser to it as they would to the plaintext
        updates (the wrapper post-processes, it does not replace). Robust aggregators (median,
        Krum, trimmed mean) need the individual updates, which nobody decrypts.
        """
        content = RecordDict(
            {
                "arrays": averaged,
                "metrics": MetricRecord({self.weight_key: float(aggregate.total_weight)}),
            }
        )
        reply = Message(content, dst_node_id=0, message_type=MessageType.TRAIN)
        arrays, _ = self.inner.aggregate_train(server_round, [reply])
        if arrays is None:
            raise RuntimeError(
                f"aggregate_train: the inner {type(self.inner).__name__} returned no model for "
                "the decrypted mean"
            )
        return arrays

    def _members(self) -> tuple[int, ...]:
        """The configured decrypting set, or, if a member missed a challenge, the first
        ``threshold`` live holders (the configured members first)."""
        if not self._down & set(self.decrypting_set):
            return self.decrypting_set
        live = [j for j in range(1, self.config.holders + 1) if j not in self._down]
        live.sort(key=lambda j: j not in self.decrypting_set)
        return tuple(sorted(live[: self.config.threshold]))

    def _close(self, report: RoundReport, coordinator: RoundCoordinator) -> None:
        """Have the live holders vote to abort the round; keep the certificate for clients."""
        assert self.federation is not None and self._relay is not None
        down = {self.federation.holders[j - 1] for j in self._down}
        try:
            cert, refused = close_round(self._relay, self.federation, coordinator, skip=down)
        except FheAggError as exc:
            cert, refused = None, {0: Refusal.of(exc)}
        for index, reason in refused.items():
            report.refused[f"holder-{index}-vote"] = reason
        if cert is not None:
            self._certificates[report.round] = cert
            report.closed = True

    # -- evaluate: the inner strategy's, unchanged ---------------------------------------------

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        return self.inner.configure_evaluate(server_round, arrays, config, grid)

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        return self.inner.aggregate_evaluate(server_round, replies)
