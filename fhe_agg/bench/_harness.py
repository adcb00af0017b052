"""What every benchmark family shares: the plan, figure entries, timing and federation fixtures.

A figure entry is a plain dict (it goes to JSON as is)::

    {"figure": family, "label": ..., "workload": ..., "unit": ..., "ours": x,
     "baseline": y, "baseline_name": ..., "ratio": x / y, "higher_is_better": bool,
     "target": {"on": "ratio" | "ours", "op": ">=" | "<=", "value": v} | None,
     "met": bool | None, "note": ...}
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from fhe_agg.ckks._packing import Layout
from fhe_agg.client._client import Client
from fhe_agg.protocol._config import FederationConfig
from fhe_agg.protocol._messages import EncryptedAggregate
from fhe_agg.protocol._signing import SigningKey, VerifyKey
from fhe_agg.server._aggregator import Aggregator

__all__ = [
    "HOLDER_SETS",
    "Figure",
    "Plan",
    "Target",
    "delivered_message",
    "figure",
    "median_seconds",
    "paired_medians",
    "size_label",
]

Figure = dict[str, Any]
Mode = Literal["smoke", "quick", "full"]

#: (holders, threshold) of the key-holder workloads.
HOLDER_SETS: tuple[tuple[int, int], ...] = ((1, 1), (3, 2), (5, 3))


@dataclass(frozen=True, kw_only=True)
class Plan:
    """The workloads of one run."""

    mode: Mode
    sizes: tuple[int, ...]  # vector sizes for the per-size families
    resnet: bool  # add the state_dict of a small ResNet as a workload (client costs)
    resnet_holder_costs: bool  # ... and run the key-holder family on it too
    repeats: int
    round_repeats: int
    ingest_params: int
    ingest_clients: tuple[int, ...]
    round_params: int
    round_clients: int = 10
    round_dropped: int = 3
    workers: int = 2  # the scaling family measures 1 -> workers workers (1: skipped)
    scaling_params: int = 100_000
    scaling_clients: int = 4

    @classmethod
    def for_mode(
        cls, mode: Mode, *, sizes: tuple[int, ...] | None = None, workers: int = 2
    ) -> Plan:
        """The workloads of ``mode``, optionally with other vector ``sizes``; the scaling
        family measures 1 -> ``workers`` processes."""
        if mode == "smoke":
            plan = cls(
                mode=mode,
                sizes=(2 * 8192,),
                resnet=False,
                resnet_holder_costs=False,
                repeats=1,
                round_repeats=1,
                ingest_params=8192,
                ingest_clients=(3, 4),
                round_params=8192,
                round_clients=5,
                round_dropped=1,
                scaling_params=8192,
                scaling_clients=3,
            )
        elif mode == "quick":
            plan = cls(
                mode=mode,
                sizes=(100_000,),
                resnet=True,
                resnet_holder_costs=False,
                repeats=3,
                round_repeats=1,
                ingest_params=100_000,
                ingest_clients=(2, 10, 50),
                round_params=100_000,
            )
        else:
            plan = cls(
                mode=mode,
                sizes=(100_000, 1_000_000, 10_000_000),
                resnet=True,
                resnet_holder_costs=True,
                repeats=3,
                round_repeats=3,
                ingest_params=1_000_000,
                ingest_clients=(2, 10, 20, 50),
                round_params=1_000_000,
                scaling_params=2_000_000,  # two proof batches per update
            )
        if sizes is not None:
            plan = dataclasses.replace(plan, sizes=sizes)
        return dataclasses.replace(plan, workers=workers)


@dataclass(frozen=True)
class Target:
    """A goal on ``ours`` or on ``ratio``; ``op`` says which side is good."""

    on: Literal["ours", "ratio"]
    op: Literal[">=", "<="]
    value: float

    def met(self, ours: float, ratio: float | None) -> bool | None:
        x = ours if self.on == "ours" else ratio
        if x is None or not math.isfinite(x):
            return None
        return x >= self.value if self.op == ">=" else x <= self.value


def size_label(params: int) -> str:
    """``100000`` -> ``1e5 params``; other sizes with thousands separators."""
    exponent = math.log10(params) if params > 0 else 0.0
    if exponent.is_integer():
        return f"1e{int(exponent)} params"
    return f"{params:,} params"


def figure(
    family: str,
    label: str,
    *,
    workload: str,
    unit: str,
    ours: float,
    baseline: float,
    baseline_name: str,
    higher_is_better: bool,
    target: Target | None = None,
    note: str = "",
    params: int | None = None,
    **extra: Any,
) -> Figure:
    """One entry; ``ratio`` is ``ours / baseline`` (None when the baseline is 0)."""
    ratio = ours / baseline if baseline else None
    return {
        "figure": family,
        "label": label,
        "workload": workload,
        "params": params,
        "unit": unit,
        "ours": float(ours),
        "baseline": float(baseline),
        "baseline_name": baseline_name,
        "ratio": None if ratio is None else float(ratio),
        "higher_is_better": higher_is_better,
        "target": None if target is None else target.__dict__.copy(),
        "met": None if target is None else target.met(ours, ratio),
        "note": note,
        **extra,
    }


def delivered_message(
    content: Any, *, node: int, action: str, run_id: int, group_id: str = ""
) -> Any:
    """A flwr ``Message`` carrying ``content`` to ``node`` as a SuperNode delivers it: a fresh
    message id, the SuperLink as source, ``action`` as its type (flwr imported here, only by
    the families that run Flower nodes)."""
    from flwr.app import DEFAULT_TTL, Message, Metadata

    metadata = Metadata(
        run_id=run_id,
        message_id=uuid.uuid4().hex,
        src_node_id=0,  # the SuperLink
        dst_node_id=node,
        reply_to_message_id="",
        group_id=group_id,
        created_at=time.time(),
        ttl=DEFAULT_TTL,
        message_type=action,
    )
    # as the SuperNode's runtime builds a delivered message (instructions built with
    # ``dst_node_id`` need the runtime's task identity, set only inside a Flower run)
    return Message(content=content, metadata=metadata)  # type: ignore[call-overload]


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    """Median CPU time of ``repeats`` calls of ``fn``."""
    return paired_medians({"fn": fn}, repeats)["fn"]


def paired_medians(
    fns: dict[str, Callable[[], object]], repeats: int, *, warmup: bool = False
) -> dict[str, float]:
    """Median CPU time of each of ``fns``, run in turn within every repetition so that ours and
    its baselines meet the same machine conditions (one unmeasured call of each first if
    ``warmup``).

    CPU time of this process is the cost on one core, robust to other load on a shared machine:
    every timed path here is single-threaded.
    """
    if warmup:
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.process_time()
            fn()
            times[name].append(time.process_time() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def client_vectors(
    count: int, params: int, seed: int
) -> tuple[list[NDArray[np.float64]], list[float]]:
    """``count`` distinct vectors uniform in [-1, 1] and distinct weights 1, 2, ..."""
    rng = np.random.default_rng(seed)
    return [rng.uniform(-1.0, 1.0, params) for _ in range(count)], [
        float(i + 1) for i in range(count)
    ]


def aggregate_of(
    config: FederationConfig,
    public_key: Any,
    vectors: list[NDArray[np.float64]],
    weights: list[float],
    *,
    round_id: int = 1,
) -> tuple[Aggregator, EncryptedAggregate, dict[str, VerifyKey]]:
    """Encrypt, sign and aggregate ``vectors``; the caller closes the returned aggregator."""
    keys = {f"client-{i:03d}": SigningKey.generate() for i in range(len(vectors))}
    roster = {cid: key.verify_key for cid, key in keys.items()}
    layout = Layout.for_vector(vectors[0].size)
    agg = Aggregator(
        config=config, roster=roster, public_key=public_key, round_id=round_id, layout=layout
    )
    for (cid, key), vector, weight in zip(keys.items(), vectors, weights, strict=True):
        client = Client(client_id=cid, signing_key=key, config=config, public_key=public_key)
        agg.add(client.encrypt_update(vector, round_id=round_id, weight=weight).to_bytes())
    return agg, agg.finalize(), roster


def warm_kernels() -> None:
    """Load (compile, or read from numba's cache) every compiled kernel before anything is timed,
    so that no figure's first call carries the one-time load (~1.4 s: importing numba and setting
    up its compiler). Nothing happens on the pure-numpy path."""
    from fhe_agg.ckks._random import SeededRandom
    from fhe_agg.hazmat import _accel
    from fhe_agg.hazmat.packed_format import _pack_rows, _unpack_rows
    from fhe_agg.hazmat.rlwe import FixedOperand, add_polys, mul_fixed, to_ntt_batch
    from fhe_agg.hazmat.sampling import rounded_gaussian

    if not _accel.available():  # loads the kernels module when numba is there
        return
    primes = (257,)
    x = to_ntt_batch(np.arange(64, dtype=np.int64)[None], 64, primes)
    add_polys(x, mul_fixed(x, FixedOperand.of(x[0], primes), primes), primes)
    _unpack_rows(_pack_rows(x[0], 9), 1, 64, 9)
    rounded_gaussian(2048, 3.0, SeededRandom(0))
