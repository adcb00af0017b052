"""Run the federation: ``python examples/flower_federation/run.py --rounds 3 --json``.

Flower's Simulation Engine with one process per node (fhe_agg.flower.run_simulation): five
client nodes train, three key-holder nodes hold key shares from a dealerless ceremony, and two
of those decrypt each round's aggregate. Every node is pinned to an admin-signed roster written
first (into a temporary directory, or ``--roster-dir``); ``--unpinned`` runs the development
mode instead (five nodes, three of which also hold keys, identities trusted from the server).
Prints a JSON summary with ``--json``.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")  # no usage pings from this example
sys.path.insert(0, str(Path(__file__).resolve().parent))

import flwr
import pinning
from server_app import Outcome, Settings, build_server_app, plaintext_accuracy

import fhe_agg
from fhe_agg.flower import run_simulation
from fhe_agg.flower._node import _NODES
from fhe_agg.identity import SealingPrivateKey

SECRET_TYPES = (
    fhe_agg.KeyShare,
    fhe_agg.KeyHolder,
    fhe_agg.CeremonyMember,
    fhe_agg.SigningKey,
    SealingPrivateKey,
)


def server_secrets() -> int:
    """Objects of secret-holding types alive in this (the server's) process."""
    gc.collect()
    return sum(isinstance(o, SECRET_TYPES) for o in gc.get_objects()) + len(_NODES)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=5)
    parser.add_argument("--holders", type=int, default=3)
    parser.add_argument("--threshold", type=int, default=2)
    parser.add_argument("--clip", type=float, default=1.0)
    parser.add_argument("--json", action="store_true", help="print one JSON summary")
    parser.add_argument(
        "--roster-dir", type=Path, help="write the roster and key files here (a new directory)"
    )
    parser.add_argument(
        "--unpinned", action="store_true", help="development mode: trust the server's directory"
    )
    args = parser.parse_args(argv)
    settings = Settings(
        rounds=args.rounds,
        clients=args.clients,
        holders=args.holders,
        threshold=args.threshold,
        clip=args.clip,
        pinned=not args.unpinned,
    )
    if not settings.pinned:
        return _run(settings, args.json)
    if args.roster_dir is not None:
        return _run(settings, args.json, args.roster_dir)
    with tempfile.TemporaryDirectory(prefix="fhe-flower-roster-") as tmp:
        return _run(settings, args.json, Path(tmp) / "keys")


def _run(settings: Settings, as_json: bool, roster_dir: Path | None = None) -> int:
    if roster_dir is not None:
        pinning.write_consortium(
            roster_dir,
            clients=settings.clients,
            holders=settings.holders,
            threshold=settings.threshold,
            min_clients=min(3, settings.clients),
            preset="precise",
        )
        os.environ["FHE_FLOWER_ROSTER"] = str(roster_dir)  # read by client_app.py
    if as_json:
        logging.getLogger("flwr").setLevel(logging.WARNING)
    else:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    os.environ["FHE_FLOWER_KEY_HOLDERS"] = str(settings.holders)  # read by client_app.py
    outcome = Outcome()
    t0 = time.perf_counter()
    run_simulation(
        build_server_app(settings, outcome), "client_app:app", num_supernodes=settings.nodes
    )
    wall = time.perf_counter() - t0
    errors = [r["max_abs_error"] for r in outcome.rounds if r["max_abs_error"] is not None]
    summary = {
        "runtime": f"flwr {flwr.__version__} Simulation Engine, one process per node",
        **asdict(settings),
        "encrypted_accuracy": outcome.encrypted_accuracy,
        "plaintext_accuracy": plaintext_accuracy(settings),
        "rounds_decrypted": sum(r["decrypted"] for r in outcome.rounds),
        "max_abs_error": max(errors) if errors else None,
        "per_round": outcome.rounds,
        "server_secret_objects": server_secrets(),
        "setup_s": round(outcome.setup_s, 2),
        "rounds_s": round(outcome.rounds_s, 2),
        "wall_s": round(wall, 2),
    }
    if as_json:
        print(json.dumps(summary))
    else:
        print(json.dumps(summary, indent=2))
    return 0 if summary["rounds_decrypted"] == settings.rounds else 1


if __name__ == "__main__":
    sys.exit(main())
