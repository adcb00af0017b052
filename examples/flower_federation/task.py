"""The learning task: logistic regression on a synthetic, non-IID "screening" data set (numpy).

Each of the partitions has its own size, class balance and feature shift, drawn from one seeded
generator, so every process (nodes and the referee on the server) rebuilds the same data.
Training is full-batch gradient descent: deterministic, so the referee can recompute a round.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

FEATURES = 12
SEED = 2024
Params = dict[str, NDArray[np.float64]]


def _truth() -> tuple[NDArray[np.float64], float]:
    rng = np.random.default_rng(SEED)
    return rng.normal(0.0, 1.0, FEATURES), -0.3


def _sample(
    rng: np.random.Generator, n: int, shift: float
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    w, b = _truth()
    x = rng.normal(shift, 1.0, (n, FEATURES))
    p = 1.0 / (1.0 + np.exp(-(x @ w + b)))
    return x, (rng.random(n) < p).astype(np.float64)


def partition(index: int, count: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Partition ``index`` of ``count``: sizes 60, 100, 140, ... and shifted features."""
    if not 0 <= index < count:
        raise ValueError(f"index: expected 0..{count - 1}, got {index}")
    rng = np.random.default_rng([SEED, count, index])
    return _sample(rng, 60 + 40 * index, shift=0.25 * (index - count / 2))


def test_set() -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """A held-out set from the pooled distribution."""
    return _sample(np.random.default_rng([SEED, 999]), 1000, shift=0.0)


def initial_model() -> Params:
    return {"weight": np.zeros(FEATURES), "bias": np.zeros(1)}


def train(
    params: Params, x: NDArray[np.float64], y: NDArray[np.float64], *, epochs: int, lr: float
) -> Params:
    """Full-batch gradient descent on the logistic loss with a small L2 penalty."""
    w, b = params["weight"].astype(np.float64).copy(), params["bias"].astype(np.float64).copy()
    for _ in range(epochs):
        p = 1.0 / (1.0 + np.exp(-(x @ w + b[0])))
        grad_w = x.T @ (p - y) / len(y) + 1e-3 * w
        grad_b = np.array([np.mean(p - y)])
        w -= lr * grad_w
        b -= lr * grad_b
    return {"weight": w, "bias": b}


def evaluate(params: Params, x: NDArray[np.float64], y: NDArray[np.float64]) -> tuple[float, float]:
    """(log loss, accuracy)."""
    p = 1.0 / (1.0 + np.exp(-(x @ params["weight"] + params["bias"][0])))
    eps = 1e-12
    loss = float(-np.mean(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps)))
    return loss, float(np.mean((p >= 0.5) == (y == 1.0)))


def flat(params: Params) -> NDArray[np.float64]:
    return np.concatenate([params["weight"], params["bias"]])


def clipped_fedavg_step(
    params: Params, clients: int, *, epochs: int, lr: float, clip: float
) -> NDArray[np.float64]:
    """Plaintext reference of one round: weighted mean of every client's clipped update."""
    start = flat(params)
    total, mean = 0.0, np.zeros_like(start)
    for i in range(clients):
        x, y = partition(i, clients)
        delta = flat(train(params, x, y, epochs=epochs, lr=lr)) - start
        norm = float(np.linalg.norm(delta))
        if norm > clip:
            delta = delta * (clip / norm)
        mean += len(y) * delta
        total += len(y)
    return start + mean / total


def unflat(vector: NDArray[np.float64]) -> Params:
    return {"weight": vector[:FEATURES].copy(), "bias": vector[FEATURES:].copy()}
