"""The README's keys-and-roster walkthrough, run as written: the shell block marked
``<!-- walkthrough: ... -->`` is executed by ``sh -e`` in an empty directory with the installed
``fhe-agg`` command (the one next to this interpreter), so the README cannot drift from the CLI."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"<!-- walkthrough:[^\n]*-->\n```sh\n(.*?)\n```", re.S)


def walkthrough() -> str:
    """The one marked shell block of README.md."""
    blocks = BLOCK.findall((ROOT / "README.md").read_text())
    assert len(blocks) == 1, "README.md: expected exactly one <!-- walkthrough --> sh block"
    return str(blocks[0])


def _environment() -> dict[str, str]:
    """PATH finds this interpreter's ``fhe-agg``; PYTHONPATH makes it import this checkout."""
    bin_dir = Path(sys.executable).parent
    assert (bin_dir / "fhe-agg").is_file(), f"no fhe-agg next to {sys.executable}"
    path = os.pathsep.join([str(bin_dir), os.environ.get("PATH", "")])
    python_path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PATH": path, "PYTHONPATH": python_path}


def test_the_walkthrough_block_has_no_placeholders() -> None:
    script = walkthrough()
    assert "..." not in script and "<" not in script
    for needed in ("--role holder", "--role aggregator", "roster new", "--audit-log"):
        assert needed in script, needed


@pytest.mark.slow
def test_readme_walkthrough_runs_as_written(tmp_path: Path) -> None:
    done = subprocess.run(
        ["sh", "-e", "-c", walkthrough()],
        cwd=tmp_path,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out, err = done.stdout, done.stderr
    assert "preset precise" in out and "threshold 2 of 3 holders" in out
    assert "refused: round 2 client hospital-b: RevokedKey" in err
    errors = [float(v) for v in re.findall(r"^max_abs_error\s+(\S+)$", out, re.M)]
    assert errors and errors[-1] <= 1e-6  # 2-of-3, flooded, preset precise
    assert re.search(r"^ok: audit\.jsonl: \d+ entries", out, re.M)
    events = [
        json.loads(line)["event"] for line in (tmp_path / "audit.jsonl").read_text().splitlines()
    ]
    assert {"ceremony.completed", "update.rejected", "release"} <= set(events)
    cbom = (tmp_path / "cbom.json").read_text()
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(cbom) is None
