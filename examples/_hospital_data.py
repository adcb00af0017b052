"""Data and model of the hospital example: the split, local training and evaluation.

Nothing here touches encryption; :mod:`hospital_federation` decides how updates are averaged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray
from sklearn.datasets import load_breast_cancer
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from fhe_agg import Layout
from fhe_agg.torch import unflatten_state_dict

LOCAL_EPOCHS, LEARNING_RATE, BATCH = 5, 0.1, 16
LABEL_SKEW = 1.0  # Dirichlet concentration of each class over the hospitals: lower, more skewed
MIN_SITE_SIZE = 30
TEST_FRACTION = 0.25

StateDict = dict[str, torch.Tensor]
Site = tuple[NDArray[np.float64], NDArray[np.float64]]  # standardised features, labels (1 benign)


@dataclass(frozen=True)
class Data:
    sites: list[Site]
    x_test: torch.Tensor
    y_test: NDArray[np.float64]


def load_data(seed: int, sites: int) -> Data:
    """A stratified held-out test set and a label-skewed split of the rest into ``sites``.

    Features are standardised with the pooled training statistics (a simplification: a real
    consortium would agree on them first, e.g. by one encrypted aggregation of sums and squares).
    """
    x, y = load_breast_cancer(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=TEST_FRACTION, stratify=y, random_state=seed
    )
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    rng = np.random.default_rng(seed)
    while True:  # redraw until every hospital has enough patients
        parts: list[list[int]] = [[] for _ in range(sites)]
        for label in (0, 1):
            idx = rng.permutation(np.flatnonzero(y_train == label))
            cuts = np.cumsum(rng.dirichlet([LABEL_SKEW] * sites))[:-1] * idx.size
            for part, share in zip(parts, np.split(idx, cuts.astype(int)), strict=True):
                part.extend(share.tolist())
        if min(map(len, parts)) >= MIN_SITE_SIZE:
            break
    split = [(x_train[sorted(p)], y_train[sorted(p)].astype(np.float64)) for p in parts]
    return Data(split, torch.tensor(x_test, dtype=torch.float32), y_test.astype(np.float64))


def new_model() -> torch.nn.Module:
    """Logistic regression on the 30 features (31 parameters)."""
    return torch.nn.Linear(30, 1)


def load(model: torch.nn.Module, vector: NDArray[np.float64], layout: Layout) -> StateDict:
    """Put a flat parameter vector into ``model``; returns the state_dict loaded."""
    state = unflatten_state_dict(vector, layout, template=model.state_dict())
    model.load_state_dict(state)
    return state


def local_update(vector: NDArray[np.float64], layout: Layout, site: Site, seed: int) -> StateDict:
    """A few epochs of minibatch SGD from the global model; returns ``local - global``."""
    model = new_model()
    start = {k: v.clone() for k, v in load(model, vector, layout).items()}
    x = torch.tensor(site[0], dtype=torch.float32)
    y = torch.tensor(site[1], dtype=torch.float32)
    optimiser = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
    shuffle = torch.Generator().manual_seed(seed)
    for _ in range(LOCAL_EPOCHS):
        for batch in torch.randperm(len(y), generator=shuffle).split(BATCH):
            optimiser.zero_grad()
            logits = model(x[batch]).squeeze(1)
            torch.nn.functional.binary_cross_entropy_with_logits(logits, y[batch]).backward()
            optimiser.step()
    return {k: v.detach() - start[k] for k, v in model.state_dict().items()}


def evaluate(vector: NDArray[np.float64], layout: Layout, data: Data) -> dict[str, float]:
    """Test-set cross-entropy, accuracy (threshold 0.5) and ROC AUC of the global model."""
    model = new_model()
    load(model, vector, layout)
    with torch.no_grad():
        logits = model(data.x_test).squeeze(1)
    target = torch.tensor(data.y_test, dtype=torch.float32)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, target)
    scores = logits.double().numpy()
    return {
        "loss": round(float(loss), 4),
        "accuracy": round(float(np.mean((scores > 0) == (data.y_test > 0.5))), 4),
        "auc": round(float(roc_auc_score(data.y_test, scores)), 4),
    }
