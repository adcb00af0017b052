"""The nodes' ClientApp: local training, plus fhe_agg's handlers and encrypting mod.

Every node trains on its partition; ``secure_update_mod`` turns the trained model into a
clipped, encrypted, ML-DSA-signed update before the reply leaves the node. Nodes whose
partition id is below ``FHE_FLOWER_KEY_HOLDERS`` (default 3) volunteer as key holders.
"""

from __future__ import annotations

import os

import numpy as np
import task
from flwr.app import Array, ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from fhe_agg.flower import enable_secure_aggregation, secure_update_mod

KEY_HOLDERS = int(os.environ.get("FHE_FLOWER_KEY_HOLDERS", "3"))

app = ClientApp(mods=[secure_update_mod])
enable_secure_aggregation(
    app, key_holder=lambda context: int(context.node_config["partition-id"]) < KEY_HOLDERS
)


@app.train()
def train(message: Message, context: Context) -> Message:
    """Train on this node's partition from the received global model."""
    index = int(context.node_config["partition-id"])
    count = int(context.node_config["num-partitions"])
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
