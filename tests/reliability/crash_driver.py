"""Crash-test driver: an aggregator that (re-)sends a directory of updates into a SQLite store.

    python tests/reliability/crash_driver.py WORKDIR STORE OUT

``WORKDIR`` holds ``setup.json`` (federation bounds, public key, roster, layout size, round) and
``updates/*.bin`` (update wire bytes, added in name order). Every update is sent, as a client
that got no answer would re-send it: one the store already counts is refused with
``DuplicateUpdate`` and skipped. Then the round is finalized and the aggregate's bytes are written
atomically to ``OUT``. One progress line per step goes to stdout unbuffered, so whoever kills
this process can tell where it was::

    open <accepted> <finalized>   the store is open (resumed with <accepted> updates)
    begin <name>                  add() of this update was called
    added <name> | duplicate <name>
    done                          OUT is written
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from fhe_agg import (
    PRESETS,
    Aggregator,
    DuplicateUpdate,
    FederationConfig,
    Layout,
    PublicKey,
    VerifyKey,
)


def write_setup(
    workdir: Path,
    *,
    config_args: dict[str, Any],
    public_key: PublicKey,
    roster: dict[str, VerifyKey],
    params: int,
    round_id: int,
) -> None:
    """Write ``setup.json`` for :func:`run` (``config_args`` as FederationConfig keywords,
    with the preset by name and no flooding)."""
    setup = {
        "config": config_args,
        "public_key": public_key.blob.hex(),
        "roster": {cid: key.to_bytes().hex() for cid, key in roster.items()},
        "params": params,
        "round": round_id,
    }
    (workdir / "setup.json").write_text(json.dumps(setup))


def open_aggregator(workdir: Path, store: Path) -> Aggregator:
    """The aggregator of ``setup.json``'s round on ``store`` (created or resumed)."""
    setup = json.loads((workdir / "setup.json").read_text())
    args = dict(setup["config"])
    config = FederationConfig(
        preset=PRESETS[args.pop("preset")], flooding=None, unsafe_exact_decryption=True, **args
    )
    return Aggregator(
        config=config,
        roster={cid: VerifyKey.from_bytes(bytes.fromhex(k)) for cid, k in setup["roster"].items()},
        public_key=PublicKey.from_bytes(config.preset, bytes.fromhex(setup["public_key"])),
        round_id=setup["round"],
        layout=Layout.for_vector(setup["params"]),
        store=store,
    )


def run(workdir: Path, store: Path, out: Path, fd: int = 1) -> None:
    """Drive one (possibly resumed) round to the end; progress lines go to ``fd``."""

    def say(line: str) -> None:
        os.write(fd, f"{line}\n".encode())

    with open_aggregator(workdir, store) as agg:
        say(f"open {len(agg.accepted_clients)} {int(agg.finalized)}")
        for path in sorted((workdir / "updates").glob("*.bin")):
            if agg.finalized:
                break
            say(f"begin {path.stem}")
            try:
                agg.add(path.read_bytes())
            except DuplicateUpdate:
                say(f"duplicate {path.stem}")
            else:
                say(f"added {path.stem}")
        data = agg.finalize().to_bytes()
    tmp = out.with_suffix(".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, out)
    say("done")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    run(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
