"""Flower SecAgg+ on the benchmark's vectors: what most Flower users run for secure aggregation.

Client side: flwr's public mod ``flwr.client.mod.secaggplus_mod``, called as Flower calls a mod,
``secaggplus_mod(message, context, call_next)``, once per stage (setup, share keys, collect
masked vectors, unmask) on a ``Message`` carrying the ``ConfigRecord`` that
``SecAggPlusWorkflow`` (flwr 1.42) sends at that stage, delivered as a SuperNode delivers it
(``flwr.app.Metadata``: a message id, the SuperLink as source, type ``train``, the round as
group id). Each node keeps its own ``Context``, whose state carries the mod's SecAgg+ state from
stage to stage. ``call_next`` is a ``ClientApp`` around a ``NumPyClient`` whose ``fit`` returns
the node's vector and weight: the collect stage masks a training reply as in a Flower App. The
instruction of that stage carries the legacy ``fitins.*`` records (empty parameters) beside the
stage's config, as the workflow's ``configure_fit`` content does.

Server side: ``SecAggPlusWorkflow``'s arithmetic (its stage methods need a live ``Grid`` and a
legacy ``Strategy``), re-stated line for line with the same public functions of
``flwr.common.secure_aggregation`` it calls: the ring of neighbours, the stage messages, routing
the encrypted shares, summing the masked vectors mod ``2**32``, rebuilding every private mask
from its Shamir shares, dequantizing. The workflow then hands the result to FedAvg, which
averages copies of it: the weighted mean is the result itself.

Parameters: flwr's defaults (clipping range 8, quantization range ``2**22``, modulus ``2**32``)
with ``num_shares = 5`` (each client's four nearest neighbours on the ring and itself) and
reconstruction threshold 3; ``max_weight`` is the largest weight of the round (the tightest
bound, the most precise SecAgg+ can be). No client drops out. Bytes on the wire are the reply
``ConfigRecord``'s size as Flower counts it (``ConfigRecord.count_bytes``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fhe_agg.bench._harness import delivered_message

__all__ = ["SecAggPlusRound", "secaggplus_round"]

NUM_SHARES = 5
THRESHOLD = 3
CLIPPING_RANGE = 8.0
QUANTIZATION_RANGE = 1 << 22
MODULUS_RANGE = 1 << 32
_ROUND = 1


@dataclass(frozen=True)
class SecAggPlusRound:
    """One round's costs: CPU seconds per client (all four stages, and by stage), of the
    server, the client-to-server bytes (all stages; the masked vector alone) and the weighted
    mean."""

    client_s: list[float]
    stage_s: dict[str, list[float]]
    server_s: float
    upload_bytes: list[int]
    vector_bytes: list[int]
    mean: NDArray[np.float64]


class _Nodes:
    """The SuperNodes: one ``Context`` each, the mod in front of a ``NumPyClient`` App."""

    def __init__(self, vectors: dict[int, NDArray[np.float64]], weights: dict[int, int]) -> None:
        from flwr.app import Context, RecordDict
        from flwr.client import NumPyClient
        from flwr.clientapp import ClientApp

        class Trainer(NumPyClient):
            """The node's training: its vector of the round and its weight."""

            def __init__(self, nid: int) -> None:
                self.nid = nid

            def fit(self, parameters: Any, config: Any) -> tuple[list[Any], int, dict[str, Any]]:
                return [vectors[self.nid]], weights[self.nid], {}

        def client_fn(context: Context) -> Any:
            return Trainer(context.node_id).to_client()

        self.app = ClientApp(client_fn=client_fn)
        self.contexts = {
            nid: Context(
                run_id=_ROUND, node_id=nid, node_config={}, state=RecordDict(), run_config={}
            )
            for nid in vectors
        }
        self.client_s = dict.fromkeys(vectors, 0.0)
        self.stage_s: dict[str, dict[int, float]] = {}
        self.upload = dict.fromkeys(vectors, 0)

    def deliver(self, nid: int, content: Any) -> dict[str, Any]:
        """Run ``secaggplus_mod`` on one stage instruction; the reply's SecAgg+ record."""
        from flwr.app import MessageType
        from flwr.client.mod import secaggplus_mod
        from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key

        stage = str(content[RECORD_KEY_CONFIGS][Key.STAGE])
        message = delivered_message(
            content, node=nid, action=MessageType.TRAIN, run_id=_ROUND, group_id=str(_ROUND)
        )
        t0 = time.process_time()
        reply = secaggplus_mod(message, self.contexts[nid], self.app)
        spent = time.process_time() - t0
        self.client_s[nid] += spent
        self.stage_s.setdefault(stage, {})[nid] = spent
        if reply.has_error():
            raise RuntimeError(f"SecAgg+ node {nid}: {reply.error.reason}")
        record = reply.content.config_records[RECORD_KEY_CONFIGS]
        self.upload[nid] += record.count_bytes()
        return dict(record)


def _instruction(values: dict[str, Any], *, fitins: bool = False) -> Any:
    """A stage's content: its ``ConfigRecord`` (and the legacy fit instruction for stage 2)."""
    from flwr.app import ArrayRecord, ConfigRecord, RecordDict
    from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS

    content = RecordDict({RECORD_KEY_CONFIGS: ConfigRecord(values)})
    if fitins:
        content["fitins.parameters"] = ArrayRecord()
        content["fitins.config"] = ConfigRecord()
    return content


def _ring(nids: list[int], seed: int) -> dict[int, set[int]]:
    """``setup_stage``'s neighbour relation: a shuffled ring, ``NUM_SHARES`` nodes around each."""
    order = list(nids)
    random.Random(seed).shuffle(order)
    half, count = NUM_SHARES >> 1, len(order)
    return {
        nid: {order[(i + k) % count] for k in range(-half, half + 1)} for i, nid in enumerate(order)
    }


class _Clock:
    """CPU seconds spent on the server's side of the protocol."""

    def __init__(self) -> None:
        self.seconds = 0.0

    @contextmanager
    def __call__(self) -> Iterator[None]:
        t0 = time.process_time()
        try:
            yield
        finally:
            self.seconds += time.process_time() - t0


def _setup_config(count: int, max_weight: float) -> dict[str, Any]:
    """``setup_stage``'s configuration of the round."""
    from flwr.common.secure_aggregation.secaggplus_constants import Key, Stage

    return {
        Key.STAGE: Stage.SETUP,
        Key.SAMPLE_NUMBER: count,
        Key.SHARE_NUMBER: NUM_SHARES,
        Key.THRESHOLD: THRESHOLD,
        Key.CLIPPING_RANGE: CLIPPING_RANGE,
        Key.TARGET_RANGE: QUANTIZATION_RANGE,
        Key.MOD_RANGE: MODULUS_RANGE,
        Key.MAX_WEIGHT: max_weight,
    }


def secaggplus_round(
    vectors: list[NDArray[np.float64]], weights: list[float], *, seed: int = 0
) -> SecAggPlusRound:
    """Run SecAgg+ over ``vectors`` (integer ``weights`` as ``num_examples``)."""
    ids = random.Random(seed)
    nids = [ids.getrandbits(63) | 1 for _ in vectors]  # Flower's node ids are random
    assert len(set(nids)) == len(nids)
    nodes = _Nodes(
        dict(zip(nids, vectors, strict=True)),
        {n: int(w) for n, w in zip(nids, weights, strict=True)},
    )
    server = _Clock()
    with server():
        neighbours = _ring(nids, seed)
        setup = _setup_config(len(nids), float(max(weights)))
    public = _setup_stage(nodes, nids, setup, server)
    forward = _share_keys_stage(nodes, nids, neighbours, public, server)
    masked = _masked_stage(nodes, nids, forward, server)
    with server():
        total = _sum_masked(masked)
    shares = _unmask_stage(nodes, nids, neighbours, server)
    with server():
        mean = _unmask_server(total, shares, len(nids))
    return SecAggPlusRound(
        client_s=[nodes.client_s[n] for n in nids],
        stage_s={stage: [by[n] for n in nids] for stage, by in nodes.stage_s.items()},
        server_s=server.seconds,
        upload_bytes=[nodes.upload[n] for n in nids],
        vector_bytes=[sum(len(b) for b in masked[n]) for n in nids],
        mean=mean,
    )


def _setup_stage(
    nodes: _Nodes, nids: list[int], setup: dict[str, Any], server: _Clock
) -> dict[int, list[bytes]]:
    """Stage 0, setup: every node's two public keys."""
    from flwr.common.secure_aggregation.secaggplus_constants import Key

    public: dict[int, list[bytes]] = {}
    for nid in nids:
        with server():
            content = _instruction(setup)
        reply = nodes.deliver(nid, content)
        public[nid] = [reply[Key.PUBLIC_KEY_1], reply[Key.PUBLIC_KEY_2]]
    return public


def _share_keys_stage(
    nodes: _Nodes,
    nids: list[int],
    neighbours: dict[int, set[int]],
    public: dict[int, list[bytes]],
    server: _Clock,
) -> dict[int, tuple[list[int], list[bytes]]]:
    """Stage 1, share keys: Shamir shares encrypted to each neighbour, routed by the server."""
    from flwr.common.secure_aggregation.secaggplus_constants import Key, Stage

    forward: dict[int, tuple[list[int], list[bytes]]] = {nid: ([], []) for nid in nids}
    for nid in nids:
        with server():
            keys: dict[str, Any] = {str(n): public[n] for n in neighbours[nid]}
            content = _instruction({**keys, Key.STAGE: Stage.SHARE_KEYS})
        reply = nodes.deliver(nid, content)
        with server():
            _route(forward, nid, reply[Key.DESTINATION_LIST], reply[Key.CIPHERTEXT_LIST])
    return forward


def _masked_stage(
    nodes: _Nodes,
    nids: list[int],
    forward: dict[int, tuple[list[int], list[bytes]]],
    server: _Clock,
) -> dict[int, list[bytes]]:
    """Stage 2, collect masked vectors (the mod wraps the App's fit reply)."""
    from flwr.common.secure_aggregation.secaggplus_constants import Key, Stage

    masked: dict[int, list[bytes]] = {}
    for nid in nids:
        with server():
            srcs, blobs = forward[nid]
            content = _instruction(
                {
                    Key.STAGE: Stage.COLLECT_MASKED_VECTORS,
                    Key.CIPHERTEXT_LIST: blobs,
                    Key.SOURCE_LIST: srcs,
                },
                fitins=True,
            )
        masked[nid] = nodes.deliver(nid, content)[Key.MASKED_PARAMETERS]
    return masked


def _unmask_stage(
    nodes: _Nodes, nids: list[int], neighbours: dict[int, set[int]], server: _Clock
) -> dict[int, list[bytes]]:
    """Stage 3, unmask: every neighbour's private-seed share, gathered by owner."""
    from flwr.common.secure_aggregation.secaggplus_constants import Key, Stage

    shares: dict[int, list[bytes]] = {nid: [] for nid in nids}
    for nid in nids:
        with server():
            content = _instruction(
                {
                    Key.STAGE: Stage.UNMASK,
                    Key.ACTIVE_NODE_ID_LIST: sorted(neighbours[nid]),
                    Key.DEAD_NODE_ID_LIST: [],
                }
            )
        reply = nodes.deliver(nid, content)
        with server():
            for owner, share in zip(reply[Key.NODE_ID_LIST], reply[Key.SHARE_LIST], strict=True):
                shares[owner].append(share)
    return shares


def _route(
    forward: dict[int, tuple[list[int], list[bytes]]],
    src: int,
    dsts: list[int],
    ciphertexts: list[bytes],
) -> None:
    """``share_keys_stage``: forward each encrypted share to its destination node."""
    for dst, blob in zip(dsts, ciphertexts, strict=True):
        if dst in forward:
            forward[dst][0].append(src)
            forward[dst][1].append(blob)


def _sum_masked(masked_messages: dict[int, list[bytes]]) -> list[NDArray[Any]]:
    """``collect_masked_vectors_stage``: parse and add the masked vectors mod the modulus."""
    from flwr.common import bytes_to_ndarray
    from flwr.common.secure_aggregation.ndarrays_arithmetic import (
        parameters_addition,
        parameters_mod,
    )

    masked: list[NDArray[Any]] | None = None
    for blobs in masked_messages.values():
        arrays = [bytes_to_ndarray(b) for b in blobs]
        masked = arrays if masked is None else parameters_addition(masked, arrays)
    assert masked is not None
    return list(parameters_mod(masked, MODULUS_RANGE))


def _unmask_server(
    masked: list[NDArray[Any]], shares: dict[int, list[bytes]], active: int
) -> NDArray[np.float64]:
    """``unmask_stage`` without dropouts: remove every private mask, take the factor out,
    dequantize, shift and rescale."""
    from flwr.common.secure_aggregation.crypto.shamir import combine_shares
    from flwr.common.secure_aggregation.ndarrays_arithmetic import (
        factor_extract,
        get_parameters_shape,
        parameters_mod,
        parameters_subtraction,
    )
    from flwr.common.secure_aggregation.quantization import dequantize
    from flwr.common.secure_aggregation.secaggplus_utils import pseudo_rand_gen

    for share_list in shares.values():
        if len(share_list) < THRESHOLD:
            raise RuntimeError("SecAgg+: not enough shares to unmask")
        secret = combine_shares(share_list)
        private_mask = pseudo_rand_gen(secret, MODULUS_RANGE, get_parameters_shape(masked))
        masked = parameters_subtraction(masked, private_mask)
    recon = parameters_mod(masked, MODULUS_RANGE)
    q_total_ratio, recon = factor_extract(recon)
    inv_dq_total_ratio = QUANTIZATION_RANGE / q_total_ratio
    vectors = dequantize(recon, CLIPPING_RANGE, QUANTIZATION_RANGE)
    offset = -(active - 1) * CLIPPING_RANGE
    out = vectors[0]
    out += offset
    out *= inv_dq_total_ratio
    return np.asarray(out, dtype=np.float64)
