"""SEAL's serialization scratch folders: a process that died without atexit leaves one behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fhe_agg.ckks._seal import remove_stale_scratch


def _dead_pid() -> int:
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(child.stdout)


def test_folders_of_gone_processes_are_removed_and_live_ones_kept(tmp_path: Path) -> None:
    dead = tmp_path / f"fhe_agg-{_dead_pid()}-abc"
    live = tmp_path / f"fhe_agg-{os.getpid()}-def"
    spool = tmp_path / "fhe_agg-spool-xyz"  # the aggregator's spool: not a scratch folder
    for folder in (dead, live, spool):
        folder.mkdir()
    (dead / "1-2-3.seal").write_bytes(b"half a ciphertext")
    remove_stale_scratch(tmp_path)
    assert not dead.exists()
    assert live.exists() and spool.exists()
