"""Shared fixtures for fhe_agg.identity tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

VECTORS = Path(__file__).resolve().parent.parent / "vectors"


def load_vectors(name: str) -> dict[str, Any]:
    """Load one JSON file from ``tests/vectors``."""
    data: dict[str, Any] = json.loads((VECTORS / name).read_text())
    return data


@pytest.fixture(scope="session")
def vectors_dir() -> Path:
    return VECTORS
