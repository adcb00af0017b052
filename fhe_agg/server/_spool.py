"""An aggregator's accepted updates on disk (chunk bytes and proofs), when it keeps no store."""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["Spool"]


class Spool:
    """Accepted updates' chunk bytes on disk, one file per update, written atomically."""

    def __init__(self, directory: Path | None) -> None:
        self._owned = directory is None
        self.root = (
            Path(tempfile.mkdtemp(prefix="fhe_agg-spool-")) if directory is None else directory
        )
        self.root.mkdir(parents=True, exist_ok=True)
        self._offsets: list[list[int]] = []
        self._proof_sizes: list[list[int]] = []

    def _write(self, name: str, blobs: tuple[bytes, ...]) -> list[int]:
        final = self.root / name
        tmp = final.with_suffix(".tmp")
        with open(tmp, "wb") as fh:
            for c in blobs:
                fh.write(c)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(final)
        offsets = [0]
        for c in blobs:
            offsets.append(offsets[-1] + len(c))
        return offsets

    def write(self, chunks: tuple[bytes, ...], proofs: tuple[bytes, ...]) -> None:
        slot = len(self._offsets)
        proof_offsets = self._write(f"proofs-{slot:06d}.bin", proofs)
        self._offsets.append(self._write(f"update-{slot:06d}.bin", chunks))
        self._proof_sizes.append(proof_offsets)

    def read(self, slot: int, index: int) -> bytes:
        start, end = self._offsets[slot][index], self._offsets[slot][index + 1]
        with open(self.root / f"update-{slot:06d}.bin", "rb") as fh:
            fh.seek(start)
            return fh.read(end - start)

    def read_proofs(self, slot: int) -> tuple[bytes, ...]:
        offsets = self._proof_sizes[slot]
        data = (self.root / f"proofs-{slot:06d}.bin").read_bytes()
        return tuple(data[a:b] for a, b in itertools.pairwise(offsets))

    def close(self) -> None:
        if self._owned:
            shutil.rmtree(self.root, ignore_errors=True)
