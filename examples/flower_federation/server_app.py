"""The ServerApp: FedAvg's node sampling, fhe_agg's encrypted aggregation and decryption.

A referee measures the result after each round. It is not part of the protocol: it rebuilds
every partition from the shared seed (possible only because the data are synthetic) to compute
the plaintext FedAvg of the same clipped updates and compare it with the decrypted model.

Settings come from the run's ``run_config`` (``pyproject.toml``, ``flwr run --run-config``).
With ``model-file`` the run starts from the model saved there (if any) and saves its result, and
``first-round`` continues the fhe_agg round ids, so a second ``flwr run`` goes on where the first
stopped, on the same key (the holders report it: no new ceremony). ``summary-file`` receives the
referee's JSON summary. ``record-file`` and ``replay-file`` are a test hook (``replay.py``): record
the requests sent to the key holders, and send recorded ones again before the first round.
"""

from __future__ import annotations

import gc
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import flwr
import numpy as np
import pinning
import replay
import task
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, MetricRecord
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

import fhe_agg
from fhe_agg import FederationConfig
from fhe_agg.flower import SecureAggregation
from fhe_agg.identity import SealingPrivateKey

SECRET_TYPES = (
    fhe_agg.KeyShare,
    fhe_agg.KeyHolder,
    fhe_agg.CeremonyMember,
    fhe_agg.SigningKey,
    SealingPrivateKey,
)


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
    first_round: int = 1  # the fhe_agg round id of this run's round 1

    @property
    def nodes(self) -> int:
        """Pinned, the key holders are nodes of their own; unpinned, clients hold the keys."""
        return self.clients + self.holders if self.pinned else self.clients

    @classmethod
    def from_run_config(cls, config: Any) -> Settings:
        return cls(
            rounds=int(config["num-server-rounds"]),
            clients=int(config["clients"]),
            holders=int(config["holders"]),
            threshold=int(config["threshold"]),
            clip=float(config["clip"]),
            epochs=int(config["epochs"]),
            lr=float(config["lr"]),
            pinned=bool(str(config.get("roster-dir", ""))),
            first_round=int(config["first-round"]),
        )


@dataclass
class Outcome:
    """Filled in by the ServerApp as the rounds go."""

    rounds: list[dict[str, Any]] = field(default_factory=list)
    encrypted_accuracy: float | None = None
    setup_s: float = 0.0
    rounds_s: float = 0.0
    key_reused: bool = False
    holder_nodes: tuple[int, ...] = ()  # Flower node id of key holder 1..n
    replayed: list[dict[str, Any]] = field(default_factory=list)


def _arrays(params: task.Params) -> ArrayRecord:
    return ArrayRecord({k: Array(np.asarray(v)) for k, v in params.items()})


def _params(arrays: ArrayRecord) -> task.Params:
    return {k: v.numpy().astype(np.float64) for k, v in arrays.items()}


def server_secrets() -> int:
    """Objects of secret-holding types alive in this (the ServerApp's) process."""
    gc.collect()
    return sum(isinstance(o, SECRET_TYPES) for o in gc.get_objects())


app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Run the federation with the run's settings; write the summary and model if asked."""
    settings = Settings.from_run_config(context.run_config)
    model_file = str(context.run_config.get("model-file", ""))
    initial = task.initial_model()
    if model_file and Path(model_file).exists():
        with np.load(model_file) as saved:
            initial = {k: saved[k] for k in saved.files}
    outcome = Outcome()
    record_file = str(context.run_config.get("record-file", ""))
    replay_file = str(context.run_config.get("replay-file", ""))
    if record_file:
        grid = recorder = replay.RecordingGrid(
            grid, lambda: settings.first_round + len(outcome.rounds)
        )
    t0 = time.perf_counter()
    final = run_federation(grid, settings, outcome, initial, replay_file=replay_file)
    if record_file:
        recorder.save(Path(record_file), outcome.holder_nodes)
    summary = {
        "flwr": flwr.__version__,
        **asdict(settings),
        "encrypted_accuracy": outcome.encrypted_accuracy,
        "plaintext_accuracy": plaintext_accuracy(
            settings, settings.first_round - 1 + settings.rounds
        ),
        "rounds_decrypted": sum(r["decrypted"] for r in outcome.rounds),
        "per_round": outcome.rounds,
        "server_secret_objects": server_secrets(),
        "key_reused": outcome.key_reused,
        "holder_nodes": list(outcome.holder_nodes),
        "replayed": outcome.replayed,
        "setup_s": round(outcome.setup_s, 2),
        "rounds_s": round(outcome.rounds_s, 2),
        "serverapp_s": round(time.perf_counter() - t0, 2),
    }
    if model_file:
        np.savez(model_file + ".tmp.npz", **final)
        os.replace(model_file + ".tmp.npz", model_file)
    summary_file = str(context.run_config.get("summary-file", ""))
    if summary_file:
        Path(summary_file).write_text(json.dumps(summary))


def run_federation(
    grid: Grid, settings: Settings, outcome: Outcome, initial: task.Params, *, replay_file: str = ""
) -> task.Params:
    """Set up (or reuse) the key, (test hook) replay recorded holder requests, run the rounds;
    return the final model."""
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
        first_round=settings.first_round,
    )
    x_test, y_test = task.test_set()
    previous = {"params": initial}

    def referee(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        params = _params(arrays)
        loss, accuracy = task.evaluate(params, x_test, y_test)
        if server_round > 0:
            report = strategy.history[-1]
            row: dict[str, Any] = {
                "round": strategy.round_id(server_round),
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
    federation = strategy.setup(grid)
    outcome.key_reused, outcome.holder_nodes = federation.key_reused, federation.holders
    outcome.setup_s = time.perf_counter() - t0
    if replay_file:
        outcome.replayed = replay.resend(grid, federation.holders, Path(replay_file), timeout=300.0)
    t0 = time.perf_counter()
    result = strategy.start(
        grid,
        _arrays(initial),
        num_rounds=settings.rounds,
        train_config=ConfigRecord({"epochs": settings.epochs, "lr": settings.lr}),
        evaluate_fn=referee,
    )
    outcome.rounds_s = time.perf_counter() - t0
    return _params(result.arrays)


def plaintext_accuracy(settings: Settings, rounds: int) -> float:
    """The same clipped FedAvg, in plaintext, for ``rounds`` rounds from the initial model."""
    params = task.initial_model()
    for _ in range(rounds):
        params = task.unflat(
            task.clipped_fedavg_step(
                params, settings.clients, epochs=settings.epochs, lr=settings.lr, clip=settings.clip
            )
        )
    x_test, y_test = task.test_set()
    return task.evaluate(params, x_test, y_test)[1]
