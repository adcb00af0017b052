"""Run every fuzz target for N inputs, one after the other, and print a table.

    python fuzz/run_all.py [--runs 100000] [--timeout 20] [--json out.json] [targets...]

Seeds come from ``make_corpus.py`` (written to ``fuzz/corpus`` if missing); inputs the fuzzer
finds interesting go to ``fuzz/.work/<target>``; a crashing, hanging or memory-hungry input to
``fuzz/.work/artifacts/``. Each target's libFuzzer log is ``fuzz/.work/logs/<target>.log``. The
exit status is non-zero if any target found a problem.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work"
_DONE = re.compile(r"Done (\d+) runs in (\d+) second")
_STATUS = re.compile(r"^#(\d+)\s", re.MULTILINE)


def _outcome(log: str, code: int) -> tuple[int, str]:
    """``(inputs run, result)`` from a libFuzzer log and exit status."""
    done = _DONE.search(log)
    statuses = _STATUS.findall(log)
    runs = int(done.group(1)) if done else int(statuses[-1]) if statuses else 0
    if code == 0 and done:
        return runs, "ok"
    if "Uncaught Python exception" in log:
        match = re.search(r"^(\w+(?:\.\w+)*(?:Error|Exception|Exit)\w*):", log, re.MULTILINE)
        return runs, f"CRASH {match.group(1) if match else 'exception'}"
    for marker, label in (("timeout after", "HANG"), ("out-of-memory", "OOM")):
        if marker in log:
            return runs, label
    return runs, f"FAILED (exit {code})"


def run_target(name: str, runs: int, timeout: int, rss_mb: int) -> dict[str, object]:
    """Fuzz ``name`` for ``runs`` inputs; return its row of the table."""
    corpus, seeds = WORK / name, HERE / "corpus" / name
    artifacts, logs = WORK / "artifacts", WORK / "logs"
    for folder in (corpus, artifacts, logs):
        folder.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        str(HERE / "fuzz_one.py"),
        name,
        f"-runs={runs}",
        f"-timeout={timeout}",
        f"-rss_limit_mb={rss_mb}",
        f"-artifact_prefix={artifacts}/{name}-",
        "-print_final_stats=1",
        str(corpus),
        str(seeds),
    ]
    start = time.monotonic()
    # libFuzzer ends the process without running atexit: the child's scratch files go in a
    # folder this process removes
    shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="fhe_agg-fuzz-", dir=shm) as scratch:
        env = {**os.environ, "FHE_AGG_FUZZ_SCRATCH": scratch}
        proc = subprocess.run(command, capture_output=True, text=True, errors="replace", env=env)
    elapsed = time.monotonic() - start
    log = proc.stdout + proc.stderr
    (logs / f"{name}.log").write_text(log)
    done, result = _outcome(log, proc.returncode)
    return {"parser": name, "inputs": done, "result": result, "seconds": round(elapsed, 1)}


def main() -> None:
    import targets
    from make_corpus import write_corpus

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=100_000, help="inputs per target")
    parser.add_argument("--timeout", type=int, default=20, help="seconds per input (hang)")
    parser.add_argument("--rss-mb", type=int, default=3072, help="RSS limit (memory blow-up)")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    parser.add_argument(
        "names", nargs="*", help=f"targets (default: all of {list(targets.TARGETS)})"
    )
    args = parser.parse_args()
    names = args.names or list(targets.TARGETS)
    unknown = set(names) - set(targets.TARGETS)
    if unknown:
        parser.error(f"unknown targets {sorted(unknown)}")
    missing = [name for name in names if not (HERE / "corpus" / name).is_dir()]
    if missing:
        write_corpus(HERE / "corpus", missing)  # one federation built for all of them
    print(f"{'parser':18} {'inputs run':>10}  {'result':24} {'time':>8}", flush=True)
    rows = []
    for name in names:
        row = run_target(name, args.runs, args.timeout, args.rss_mb)
        rows.append(row)
        print(f"{name:18} {row['inputs']:>10}  {row['result']:24} {row['seconds']:>7}s", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    sys.exit(0 if all(r["result"] == "ok" for r in rows) else 1)


if __name__ == "__main__":
    main()
