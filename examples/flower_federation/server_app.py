"""The ServerApp: FedAvg's node sampling, fhe_agg's encrypted aggregation and decryption.

A referee measures the result after each round. It is not part of the protocol: it rebuilds
every partition from the shared seed (possible only because the data are synthetic) to compute
the plaintext FedAvg of the same clipped updates and compare it with the decrypted model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pinning
import task
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, MetricRecord
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

from fhe_agg import FederationConfig
from fhe_agg.flower import SecureAggregation


@dataclass(frozen=True)
class Settings:
    rounds: int = 3
    clients: int = 5
    holders: int = 3
    threshold: int = 2
    clip: float = 1.0
    epochs: int = 5
    lr: float = 0.5
    pinned: bool = True  # nodes check the server's directory against a signed roster

    @property
    def nodes(self) -> int:
        """Pinned, the key holders are nodes of their own; unpinned, clients hold the keys."""
        return self.clients + self.holders if self.pinned else self.clients


@dataclass
class Outcome:
    """Filled in by the ServerApp; read by run.py once the run is over."""

    rounds: list[dict[str, Any]] = field(default_factory=list)
    encrypted_accuracy: float | None = None
    setup_s: float = 0.0
    rounds_s: float = 0.0


def _arrays(params: task.Params) -> ArrayRecord:
    return ArrayRecord({k: Array(np.asarray(v)) for k, v in params.items()})


def _params(arrays: ArrayRecord) -> task.Params:
    return {k: v.numpy().astype(np.float64) for k, v in arrays.items()}


def build_server_app(settings: Settings, outcome: Outcome) -> ServerApp:
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        config = FederationConfig(
            min_clients=min(3, settings.clients),
            max_clients=settings.clients,
            max_weight=1000.0,
            value_bound=settings.clip,
            holders=settings.holders,
            threshold=settings.threshold,
        )
        strategy = SecureAggregation(
            FedAvg(
                fraction_train=1.0,
                fraction_evaluate=0.0,
                min_train_nodes=settings.clients,
                min_available_nodes=settings.nodes,
            ),
            config=config,
            clip=settings.clip,
            consortium=pinning.CONSORTIUM,
            min_nodes=settings.nodes,
        )
        x_test, y_test = task.test_set()
        previous = {"params": task.initial_model()}

        def referee(server_round: int, arrays: ArrayRecord) -> MetricRecord:
            params = _params(arrays)
            loss, accuracy = task.evaluate(params, x_test, y_test)
            if server_round > 0:
                report = strategy.history[-1]
                row: dict[str, Any] = {
                    "round": server_round,
                    "accepted": len(report.accepted),
                    "refused": dict(report.refused),
                    "decrypted": report.decrypted,
                    "test_accuracy": round(accuracy, 4),
                    "max_abs_error": None,
                }
                if report.decrypted and len(report.accepted) == settings.clients:
                    expected = task.clipped_fedavg_step(
                        previous["params"],
                        settings.clients,
                        epochs=settings.epochs,
                        lr=settings.lr,
                        clip=settings.clip,
                    )
                    row["max_abs_error"] = float(np.max(np.abs(task.flat(params) - expected)))
                outcome.rounds.append(row)
            previous["params"] = params
            outcome.encrypted_accuracy = accuracy
            return MetricRecord({"test-loss": loss, "test-accuracy": accuracy})

        t0 = time.perf_counter()
        strategy.setup(grid)
        outcome.setup_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        strategy.start(
            grid,
            _arrays(task.initial_model()),
            num_rounds=settings.rounds,
            train_config=ConfigRecord({"epochs": settings.epochs, "lr": settings.lr}),
            evaluate_fn=referee,
        )
        outcome.rounds_s = time.perf_counter() - t0

    return app


def plaintext_accuracy(settings: Settings) -> float:
    """The same clipped FedAvg, in plaintext, for the same number of rounds."""
    params = task.initial_model()
    for _ in range(settings.rounds):
        params = task.unflat(
            task.clipped_fedavg_step(
                params, settings.clients, epochs=settings.epochs, lr=settings.lr, clip=settings.clip
            )
        )
    x_test, y_test = task.test_set()
    return task.evaluate(params, x_test, y_test)[1]
