"""Write seed inputs for every fuzz target: real messages of a small deterministic federation.

``python fuzz/make_corpus.py [--out fuzz/corpus]`` writes ``<out>/<target>/seed-<n>``. The
corpus is generated, not committed (a few MB of ciphertexts); ``run_all.py`` calls this first.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import targets

HERE = Path(__file__).resolve().parent


def write_corpus(out: Path, names: list[str] | None = None) -> dict[str, int]:
    """Write the seeds of ``names`` (default: every target); return the count per target."""
    counts = {}
    for name in names or list(targets.TARGETS):
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        seeds = targets.TARGETS[name].seeds()
        if not seeds:
            raise RuntimeError(f"{name}: no seed inputs")
        for seed in seeds:
            digest = hashlib.sha256(seed).hexdigest()[:16]
            (folder / f"seed-{digest}").write_bytes(seed)
        counts[name] = len(seeds)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=HERE / "corpus")
    parser.add_argument("names", nargs="*", help="targets (default: all)")
    args = parser.parse_args()
    for name, count in write_corpus(args.out, args.names).items():
        print(f"{name:18} {count} seeds")


if __name__ == "__main__":
    main()
