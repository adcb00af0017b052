"""The nodes' ClientApp: local training, plus fhe_agg's handlers and encrypting mod.

Every client node trains on its partition; ``secure_update_mod`` turns the trained model into a
clipped, encrypted, ML-DSA-signed update before the reply leaves the node. Nodes whose
partition id is below ``FHE_FLOWER_KEY_HOLDERS`` (default 3) are key holders. With
``FHE_FLOWER_ROSTER`` (a directory written by ``pinning.write_consortium``) each node is pinned
to the roster there and plays the member of its partition (key holders then do not train);
without it (development) every node trains and identities are trusted from the server.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pinning
import task
from flwr.app import Array, ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from fhe_agg.flower import enable_secure_aggregation, secure_update_mod

KEY_HOLDERS = int(os.environ.get("FHE_FLOWER_KEY_HOLDERS", "3"))
ROSTER = os.environ.get("FHE_FLOWER_ROSTER")


def _partition(context: Context) -> int:
    return int(context.node_config["partition-id"])


def _pinned(context: Context) -> pinning.PinnedRoster | None:
    if ROSTER is None:
        return None
    return pinning.pinned_files(Path(ROSTER), _partition(context), KEY_HOLDERS)


app = ClientApp(mods=[secure_update_mod])
enable_secure_aggregation(
    app, key_holder=lambda context: _partition(context) < KEY_HOLDERS, pinned=_pinned
)


@app.train()
def train(message: Message, context: Context) -> Message:
    """Train on this node's partition from the received global model."""
    skip = KEY_HOLDERS if ROSTER is not None else 0  # pinned: the holder nodes come first
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
