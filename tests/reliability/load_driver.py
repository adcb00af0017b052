"""Load-test driver: one aggregator process fed through an IngestQueue, its peak RSS measured.

    python tests/reliability/load_driver.py WORKDIR STORE CHECKPOINT

``WORKDIR`` holds ``setup.json`` as :func:`crash_driver.write_setup` writes it; the round's state
goes to the SQLite ``STORE``. Updates (wire bytes, length-prefixed as
:func:`fhe_agg.bench._proc.write_message` frames them) arrive on stdin. The main thread is the
producer: it submits each one to an :class:`~fhe_agg.IngestQueue` bounded to two updates' bytes
(and four updates), retrying every time the queue answers :class:`~fhe_agg.Busy`; the queue's
worker verifies and adds. After ``CHECKPOINT`` updates it waits for the queue to drain and reads
its own peak RSS (``VmHWM``), and again once the round is finalized. Prints one JSON object.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any, BinaryIO

from crash_driver import open_aggregator

from fhe_agg import Busy, IngestQueue
from fhe_agg.bench._proc import peak_rss_mb, read_messages

MAX_PENDING = 4
RETRY_SECONDS = 0.01


def run(workdir: Path, store: Path, checkpoint: int, stream: BinaryIO) -> dict[str, Any]:
    """Stream every update of ``stream`` into the round, finalize it, return the figures."""
    start = time.monotonic()
    with open_aggregator(workdir, store) as agg:
        bound = 2 * agg.bounds.update_bytes
        out: dict[str, Any] = {"rss_before_mb": peak_rss_mb(), "busy": 0, "submitted": 0}
        queue = IngestQueue(agg, max_pending_bytes=bound, max_pending=MAX_PENDING)
        for message in read_messages(stream, agg.bounds.update_bytes):
            while True:
                try:
                    queue.submit(message, timeout=RETRY_SECONDS)
                    break
                except Busy:
                    out["busy"] += 1
            out["submitted"] += 1
            out["update_bytes"] = len(message)
            del message  # only the queue holds it now
            if out["submitted"] == checkpoint:
                queue.drain()
                out["accepted_at_checkpoint"] = queue.accepted
                out["rss_at_checkpoint_mb"] = peak_rss_mb()
        queue.close()
        aggregate = agg.finalize()
        out.update(
            rss_end_mb=peak_rss_mb(),
            accepted=queue.accepted,
            rejected=[f"{type(e).__name__}: {e}" for _, e in queue.rejected],
            max_pending=queue.max_pending,
            max_pending_bytes=queue.max_pending_bytes,
            peak_pending=queue.peak_pending,
            peak_pending_bytes=queue.peak_pending_bytes,
            aggregate_sha256=hashlib.sha256(aggregate.to_bytes()).hexdigest(),
            seconds=time.monotonic() - start,
        )
    return out


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    result = run(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), sys.stdin.buffer)
    print(json.dumps(result), flush=True)
