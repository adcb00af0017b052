"""The nodes' ClientApp: local training, plus fhe_agg's handlers and encrypting mod.

Every client node trains on its partition; ``secure_update_mod`` turns the trained model into a
clipped, encrypted, ML-DSA-signed update before the reply leaves the node. Nodes whose
partition id is below the run's ``holders`` are key holders. With a ``roster-dir`` (the node's
``node_config``, else the run's ``run_config``; written by ``pinning.py``) each node is pinned
to the roster there and plays the member of its partition (key holders then do not train);
without one (development) every node trains and identities are trusted from the server.

Nothing is kept in memory between messages: every node keeps its state in its state folder
(``node_config["fhe-state-dir"]`` on a SuperNode, ``<fhe-state-root>/partition-<id>`` on the
Simulation Engine), so this App runs unchanged on both (``flwr run .``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pinning
import task
from flwr.app import Array, ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from fhe_agg.flower import enable_secure_aggregation, secure_update_mod


def _partition(context: Context) -> int:
    return int(context.node_config["partition-id"])


def _holders(context: Context) -> int:
    return int(context.run_config["holders"])


def _roster(context: Context) -> str:
    return str(context.node_config.get("roster-dir") or context.run_config.get("roster-dir", ""))


def _pinned(context: Context) -> pinning.PinnedRoster | None:
    roster = _roster(context)
    if not roster:
        return None
    return pinning.pinned_files(Path(roster), _partition(context), _holders(context))


app = ClientApp(mods=[secure_update_mod])
enable_secure_aggregation(
    app, key_holder=lambda context: _partition(context) < _holders(context), pinned=_pinned
)


@app.train()
def train(message: Message, context: Context) -> Message:
    """Train on this node's partition from the received global model."""
    skip = _holders(context) if _roster(context) else 0  # pinned: the holder nodes come first
    index = _partition(context) - skip
    count = int(context.node_config["num-partitions"]) - skip
    x, y = task.partition(index, count)
    settings = message.content["config"]
    params = {name: array.numpy() for name, array in message.content["arrays"].items()}
    trained = task.train(params, x, y, epochs=int(settings["epochs"]), lr=float(settings["lr"]))
    loss, accuracy = task.evaluate(trained, x, y)
    return Message(
        RecordDict(
            {
                "arrays": ArrayRecord({k: Array(np.asarray(v)) for k, v in trained.items()}),
                "metrics": MetricRecord(
                    {"train-loss": loss, "train-accuracy": accuracy, "num-examples": len(y)}
                ),
            }
        ),
        reply_to=message,
    )
