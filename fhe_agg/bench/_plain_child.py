"""The plaintext baseline aggregator process, run by file path so it imports numpy only.

Reads length-prefixed messages (an f64 weight then float32 values) from stdin, adds ``w * x``
into a float64 running sum, divides by the total weight, and prints one JSON object with the
seconds spent adding, the peak RSS and the RSS before the first message.
"""

from __future__ import annotations

import json
import struct
import sys
import time
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from fhe_agg.bench._proc import peak_rss_mb, read_messages
else:  # run by path, this file's folder is sys.path[0]: _proc comes without fhe_agg
    from _proc import peak_rss_mb, read_messages

_WEIGHT = struct.Struct("<d")


def main(params: int) -> int:
    rss_before = peak_rss_mb()
    total = np.zeros(params)
    expected = _WEIGHT.size + 4 * params
    weights, add_s, count = 0.0, 0.0, 0
    for message in read_messages(sys.stdin.buffer, expected):
        if len(message) != expected:
            raise ValueError(f"message of {len(message)} bytes, expected {expected}")
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
        "peak_rss_mb": peak_rss_mb(),
    }
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1])))
