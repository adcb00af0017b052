"""Run the App end to end on 127.0.0.1: ``python run.py --mode deployment --rounds 2 --json``.

What an operator does by hand (docs/deploy.md), in one command: write the admin-signed roster and
every member's key file (``pinning.py``), start Flower's ``flower-superlink`` and then either one
``flower-supernode`` per member, each with its own state folder (``--mode deployment``), or
nothing more (``--mode simulation``: the SuperLink's Simulation Engine runs the nodes), and
submit the App with ``flwr run``. Every connection is TLS (a CA and a server certificate for
127.0.0.1 made in the work folder, ``certs.py``) and, in deployment mode, the SuperLink admits only
the SuperNodes whose keys were registered with ``flwr supernode register`` (``--insecure``: plain
HTTP, no SuperNode authentication). Every process started is stopped by its pid at the end.
Prints the ServerApp's JSON summary (with ``--json``, on one line).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import certs
import launch
import pinning


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("simulation", "deployment"), default="simulation")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--clients", type=int, default=5)
    parser.add_argument("--holders", type=int, default=3)
    parser.add_argument("--threshold", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--json", action="store_true", help="print one JSON summary")
    parser.add_argument(
        "--insecure", action="store_true", help="no TLS and no SuperNode authentication"
    )
    parser.add_argument("--work-dir", type=Path, help="keys, state folders and logs (kept)")
    args = parser.parse_args(argv)
    if args.work_dir is not None:
        return _run(args, args.work_dir)
    with tempfile.TemporaryDirectory(prefix="fhe-flower-") as tmp:
        return _run(args, Path(tmp))


def _run(args: argparse.Namespace, work: Path) -> int:
    roster = work / "keys"
    pinning.write_consortium(
        roster,
        clients=args.clients,
        holders=args.holders,
        threshold=args.threshold,
        min_clients=min(3, args.clients),
        preset="precise",
    )
    port = launch.free_port()
    tls = None if args.insecure else certs.write_tls(work / "tls")
    env = launch.environment(work / "flwr-home", "local-fhe", port, tls=tls)
    summary_file = work / "summary.json"
    run_config: dict[str, Any] = {
        "num-server-rounds": args.rounds,
        "clients": args.clients,
        "holders": args.holders,
        "threshold": args.threshold,
        "roster-dir": str(roster),
        "summary-file": str(summary_file),
    }
    nodes = args.clients + args.holders
    t0 = time.perf_counter()
    with launch.Processes(work / "logs") as procs:
        simulation = args.mode == "simulation"
        node_auth = tls is not None and not simulation
        launch.start_superlink(
            procs,
            env,
            port,
            work / "superlink.db",
            simulation=simulation,
            tls=tls,
            node_auth=node_auth,
        )
        federation_config = None
        if simulation:
            run_config["fhe-state-root"] = str(work / "state")
            federation_config = f"num-supernodes={nodes}"
        else:
            for k in range(nodes):
                name = pinning.member_of(k, args.holders)
                key = work / "flower-keys" / name if node_auth else None
                if key is not None:
                    public = certs.write_node_key(key)
                    launch.register_supernode(env, "local-fhe", public, name)
                launch.start_supernode(
                    procs,
                    env,
                    name,
                    port,
                    {
                        "partition-id": k,
                        "num-partitions": nodes,
                        "fhe-state-dir": str(work / "state" / name),
                    },
                    tls=tls,
                    auth_key=key,
                )
        code = launch.flwr_run(
            env,
            "local-fhe",
            run_config,
            timeout=args.timeout,
            federation_config=federation_config,
            log=work / "logs" / "flwr-run.log",
        )
    if code != 0 or not summary_file.exists():
        print(
            f"flwr run failed (exit {code}, no summary); the end of {work / 'logs'}:",
            *_tails(work / "logs"),
            sep="\n",
            file=sys.stderr,
        )
        return 1
    summary = json.loads(summary_file.read_text())
    summary["mode"] = args.mode
    summary["wall_s"] = round(time.perf_counter() - t0, 2)
    print(json.dumps(summary) if args.json else json.dumps(summary, indent=2))
    if summary["rounds_decrypted"] != args.rounds:
        log = work / "logs" / "flwr-run.log"
        tail = log.read_text(errors="replace").splitlines()[-60:] if log.exists() else []
        print(
            f"only {summary['rounds_decrypted']} of {args.rounds} rounds were decrypted "
            f"(per_round in the summary says which); the end of {log}:",
            *tail,
            sep="\n",
            file=sys.stderr,
        )
        return 1
    return 0


def _tails(logs: Path, lines: int = 40) -> list[str]:
    """The last lines of flwr run's and the SuperLink's logs (the folder may be temporary)."""
    out = []
    for name in ("flwr-run.log", "superlink.log"):
        path = logs / name
        if path.exists():
            out += [f"--- {name}", *path.read_text(errors="replace").splitlines()[-lines:]]
    return out


if __name__ == "__main__":
    sys.exit(main())
