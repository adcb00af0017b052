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
def members() -> dict[str, Any]:
    """Real pq-only identities of a small consortium: admin, aggregator, four clients, two holders."""
    from fhe_agg.identity import Identity

    roles = {
        "admin": "admin",
        "agg": "aggregator",
        "alpha": "client",
        "bravo": "client",
        "charlie": "client",
        "delta": "client",
        "h1": "holder",
        "h2": "holder",
    }
    return {i: Identity.generate(id=i, role=r, suite="pq-only") for i, r in roles.items()}


@pytest.fixture(scope="session")
def base_roster(members: dict[str, Any]) -> Any:
    """Version 1 of the consortium's roster, signed by ``members["admin"]``."""
    from fhe_agg.identity import Roster

    return Roster.create(
        consortium="acme-health",
        admin=members["admin"],
        members=[m.public for name, m in members.items() if name != "admin"],
        preset="compact",  # not the default, so that editing it to "precise" is a change
        min_clients=3,
        threshold=2,
    )


@pytest.fixture
def cli() -> Any:
    """Run ``fhe-agg`` identity/audit commands in-process, through the real command group."""
    from click.testing import CliRunner

    from fhe_agg.cli import main

    runner = CliRunner()

    def run(*args: object) -> Any:
        return runner.invoke(main, [str(a) for a in args])

    return run
