"""A two-round run of the Flower example on a local deployment next to the same in-process.

``--full`` only, from a source checkout: ``examples/flower_federation/run.py --mode deployment``
starts ``flower-superlink`` and one ``flower-supernode`` per roster member on 127.0.0.1 (every
message in a fresh ``flwr-clientapp`` process, node state in each member's state folder) and
submits the App with ``flwr run``; its ServerApp reports the setup and round seconds. The same
federation (members, 2-of-3 holders, model size, two rounds, pinned roster, state on disk) then
runs in this process through :func:`fhe_agg.bench._node_costs.run_federation`, whose nodes do
not train (the example's logistic regression takes milliseconds).
"""

from __future__ import annotations

import time
from pathlib import Path

from fhe_agg.bench._harness import Figure, figure
from fhe_agg.bench._node_costs import run_federation

__all__ = ["deployment_figures"]


def deployment_figures(timeout: float = 1800.0) -> list[Figure]:
    """The Flower example's two rounds on a local deployment (``flower-superlink`` and one
    ``flower-supernode`` per member, a fresh process per message) next to the same federation
    in this process; none if the example (a source checkout) or Flower's commands are absent."""
    import json
    import runpy
    import shutil
    import sys

    example = Path(__file__).resolve().parents[2] / "examples" / "flower_federation"
    bin_dir = Path(sys.executable).parent
    if not (example / "run.py").exists() or not (bin_dir / "flower-superlink").exists():
        return []
    if shutil.which("flwr", path=str(bin_dir)) is None:
        return []
    clients, holders = 5, 3
    ran = _run_example(example, bin_dir, clients=clients, holders=holders, timeout=timeout)
    if ran is None:
        return []
    stdout, wall = ran
    summary = json.loads(stdout.strip().splitlines()[-1])
    params = int(runpy.run_path(str(example / "task.py"))["FEATURES"]) + 1
    local = run_federation(params, clients=clients, rounds=2, abort=False)
    in_process = local["setup_s"] + local["rounds_s"]
    deployed = float(summary["setup_s"]) + float(summary["rounds_s"])
    return [
        figure(
            "deployment_round",
            "two rounds (setup included) on a local deployment vs in this process",
            workload=f"Flower example, {params} params, {clients} clients, 2-of-{holders}, pinned",
            unit="s wall",
            ours=deployed,
            baseline=in_process,
            baseline_name="the same federation and rounds in this process (state on disk)",
            higher_is_better=False,
            note="ServerApp's setup + rounds; the example also trains on each node; launch of "
            f"the SuperLink and SuperNodes not counted (whole command {wall:.1f} s)",
            params=params,
            command_wall_s=wall,
            deployment_summary={k: summary.get(k) for k in ("setup_s", "rounds_s", "wall_s")},
            in_process_setup_s=local["setup_s"],
            in_process_rounds_s=local["rounds_s"],
        )
    ]


def _run_example(
    example: Path, bin_dir: Path, *, clients: int, holders: int, timeout: float
) -> tuple[str, float] | None:
    """The example's two deployed rounds: its stdout and wall seconds, or ``None`` (said on
    stderr) if it failed or overran ``timeout``."""
    import os
    import signal
    import subprocess
    import sys

    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    command = [sys.executable, "run.py", "--mode", "deployment", "--rounds", "2", "--json"]
    command += ["--clients", str(clients), "--holders", str(holders), "--threshold", "2"]
    command += ["--timeout", str(int(timeout * 0.8))]  # run.py stops its processes itself
    t0 = time.perf_counter()
    proc = subprocess.Popen(  # its own process group: all of it is stopped if it hangs
        command, cwd=example, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True,
    )  # fmt: skip
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        print(f"deployment_round: the example's run took over {timeout} s", file=sys.stderr)
        return None
    wall = time.perf_counter() - t0
    if proc.returncode != 0:  # say so, and keep the rest of a long --full run
        print(f"deployment_round: the example's run failed:\n{stderr[-3000:]}", file=sys.stderr)
        return None
    return stdout, wall
