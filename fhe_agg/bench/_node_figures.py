"""The ``node_overhead`` rows: one per node handler, the whole round against the 5% target, and
the key file's unlock under a key secret against a passphrase.

The federation is :func:`._node_costs.run_federation` (its key files under key secrets, as
machine-held nodes keep them). The last row times the unlock of one member's key file under each
protection (key secret: HKDF; a person's passphrase: scrypt), the part of each message's load
that the protection decides.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import Any

from fhe_agg.bench._harness import Figure, Plan, figure, median_seconds, size_label
from fhe_agg.bench._node_costs import (
    CLIENTS,
    HOLDERS,
    PARAMS,
    TARGET,
    THRESHOLD,
    Protection,
    protect_file,
    run_federation,
)
from fhe_agg.bench._node_phases import PHASES, Phases

__all__ = ["node_figures"]

UNLOCKS = 5  # unlocks timed per protection for the last row


_LABELS = {
    "train": "client update (encrypt + prove + sign the train reply)",
    "query.fhe_challenge": "challenge (key holder)",
    "query.fhe_decrypt": "partial decryption (key holder)",
    "query.fhe_abort": "abort vote (key holder)",
    "query.fhe_ceremony": "key ceremony step (key holder, once per key)",
    "query.fhe_setup": "setup (every node, once per run)",
}
_ROUND_ACTIONS = ("train", "query.fhe_challenge", "query.fhe_decrypt")


def _phase_medians(rows: list[Phases]) -> dict[str, Any]:
    """Per-message medians (CPU, and wall beside) of the phases of ``rows``."""

    def median(values: list[float]) -> float:
        return float(statistics.median(values))

    out = {f"{p}_s": median([r.spent_cpu[p] for r in rows]) for p in PHASES}
    out["wall_overhead_s"] = median([r.overhead(cpu=False) for r in rows])
    out["wall_work_s"] = median([r.work(cpu=False) for r in rows])
    return out


def _unlock_seconds(protection: Protection) -> float:
    """Median CPU seconds to load one holder's key file under ``protection`` as a node does at
    every message: read the secret file, derive, check, decode the components."""
    from fhe_agg.identity import (
        Identity,
        Role,
        Suite,
        load_identity,
        read_passphrase_file,
        write_identity,
    )

    with tempfile.TemporaryDirectory(prefix="fhe-bench-unlock-") as tmp:
        folder = Path(tmp) / "keys"
        folder.mkdir(mode=0o700)
        member = Identity.generate(id="holder-1", role=Role.HOLDER, suite=Suite.PQ_ONLY)
        write_identity(member, folder, passphrase=protect_file(folder, member.id, protection))

        def unlock() -> None:
            secret = read_passphrase_file(folder / f"{member.id}.secret")
            load_identity(folder / f"{member.id}.key", passphrase=secret)

        return median_seconds(unlock, UNLOCKS)


def _unlock_figure() -> Figure:
    """The key file's unlock under a key secret (the federation's) against a passphrase."""
    return figure(
        "node_overhead",
        "key file unlock: key secret (HKDF) against a passphrase (scrypt), per message",
        workload="one pq-only holder key file and its secret file",
        unit="s CPU",
        ours=_unlock_seconds("key-secret"),
        baseline=_unlock_seconds("passphrase"),
        baseline_name="the same key file under a passphrase (scrypt n=2**15, r=8)",
        higher_is_better=False,
        note=f"medians of {UNLOCKS} loads each; part of every message's load (one per message)",
        messages=UNLOCKS,
    )


def _handler_figures(
    timings: list[Any], round_work: float, kind: str, common: dict[str, Any]
) -> list[Figure]:
    """One row per node handler: medians of its messages' phases against its work."""
    out = []
    for action, label in _LABELS.items():
        rows = [p for a, _, p, _r in timings if a == action]
        if not rows:
            continue
        overhead = float(statistics.median([p.overhead() for p in rows]))
        out.append(
            figure(
                "node_overhead",
                label,
                ours=overhead,
                baseline=float(statistics.median([p.work() for p in rows])),
                note=f"per message, medians; load (state folder, key file under {kind}, "
                "stores, setup, round state), unseal (key share), save (durable writes)",
                messages=len(rows),
                share_of_round_work=overhead / round_work if round_work else None,
                **_phase_medians(rows),
                **common,
            )
        )
    return out


def node_figures(plan: Plan, *, protection: Protection = "key-secret") -> list[Figure]:
    """One row per node handler, one for the whole round, the key file's unlock under each
    protection and (``--full``, from a source checkout) a two-round deployment run of the Flower
    example next to the same in-process. ``protection``: the federation's key files (the suite
    runs the default; ``"passphrase"`` measures the same with scrypt files)."""
    params = PARAMS[plan.mode]
    run = run_federation(params, protection=protection)
    kind = "key secrets" if protection == "key-secret" else "passphrases"
    workload = (
        f"{size_label(params)}, {CLIENTS} clients, {THRESHOLD}-of-{HOLDERS} precise, pinned, "
        f"key files under {kind}"
    )
    timings = run["timings"]
    round_rows = [p for a, _, p, r in timings if r == 1 and a in _ROUND_ACTIONS]
    round_work = sum(p.work() for p in round_rows)
    round_overhead = sum(p.overhead() for p in round_rows)
    common: dict[str, Any] = {
        "workload": workload,
        "unit": "s CPU",
        "baseline_name": "the handler's cryptographic work (same messages)",
        "higher_is_better": False,
        "params": params,
    }
    out = _handler_figures(timings, round_work, kind, common)
    out.append(
        figure(
            "node_overhead",
            "whole round: every node message of a decrypted round",
            ours=round_overhead,
            baseline=round_work,
            target=TARGET,
            note="sums over the round's train, challenge and partial messages; work: the nodes' "
            "cryptographic work (the server's ingest not counted); process start left aside",
            messages=len(round_rows),
            max_abs_error=run["max_abs_error"],
            **_phase_medians(round_rows),
            **common,
        )
    )
    out.append(_unlock_figure())
    if plan.mode == "full":
        from fhe_agg.bench._deployment_round import deployment_figures

        out += deployment_figures()
    return out
