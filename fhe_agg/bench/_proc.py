"""What the aggregator processes and their parent share: peak RSS and the pipe's framing.

Standard library only: the plaintext server (:mod:`._plain_child`) loads this module by file
path, without importing fhe_agg, so that its memory is numpy's alone.
"""

from __future__ import annotations

import resource
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import IO

__all__ = ["peak_rss_mb", "read_messages", "write_message"]

_LENGTH = struct.Struct("<Q")


def peak_rss_mb() -> float:
    """Peak resident set size of this process's memory image so far, in MiB.

    ``VmHWM`` from ``/proc/self/status`` where there is one: ``ru_maxrss`` is carried across
    ``fork`` + ``exec`` on Linux, so a fresh child would report at least its parent's RSS.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def write_message(stream: IO[bytes], payload: bytes) -> None:
    """Send ``payload`` with its length (8 bytes, little-endian) in front."""
    stream.write(_LENGTH.pack(len(payload)))
    stream.write(payload)


def read_messages(stream: IO[bytes], limit: int) -> Iterator[bytes]:
    """The payloads of :func:`write_message` until end of stream; ``ValueError`` for a length
    beyond ``limit``."""
    while header := stream.read(_LENGTH.size):
        (size,) = _LENGTH.unpack(header)
        if size > limit:
            raise ValueError(f"message of {size} bytes beyond {limit}")
        yield stream.read(size)
