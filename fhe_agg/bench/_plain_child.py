"""The plaintext baseline aggregator process, run by file path so it imports numpy only.

Reads length-prefixed messages (an f64 weight then float32 values) from stdin, adds ``w * x``
into a float64 running sum, divides by the total weight, and prints one JSON object with the
seconds spent adding, the peak RSS and the RSS before the first message.
"""

from __future__ import annotations

import json
import resource
import struct
import sys
import time

import numpy as np

_LENGTH = struct.Struct("<Q")
_WEIGHT = struct.Struct("<d")


def _rss_mb() -> float:
    """Peak RSS of this memory image (``VmHWM``; ``ru_maxrss`` survives fork + exec)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main(params: int) -> int:
    stream = sys.stdin.buffer
    rss_before = _rss_mb()
    total = np.zeros(params)
    weights, add_s, count = 0.0, 0.0, 0
    while header := stream.read(_LENGTH.size):
        (size,) = _LENGTH.unpack(header)
        if size != _WEIGHT.size + 4 * params:
            raise ValueError(f"message of {size} bytes, expected {_WEIGHT.size + 4 * params}")
        message = stream.read(size)
        t0 = time.process_time()
        (weight,) = _WEIGHT.unpack_from(message)
        total += weight * np.frombuffer(message, dtype=np.float32, offset=_WEIGHT.size)
        weights += weight
        add_s += time.process_time() - t0
        count += 1
    t0 = time.process_time()
    mean = total / weights
    add_s += time.process_time() - t0
    del mean
    result = {
        "accepted": count,
        "add_s": add_s,
        "rss_before_mb": rss_before,
        "peak_rss_mb": _rss_mb(),
    }
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1])))
