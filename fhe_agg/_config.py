"""The public configuration every party of a federation shares, and what follows from it."""

from __future__ import annotations

import hashlib
import math
import struct
from dataclasses import dataclass, field
from functools import cached_property

from fhe_agg._errors import UnsupportedParameters
from fhe_agg._params import PRESETS, CkksPreset
from fhe_agg._seal import backend_for

__all__ = ["PROTOCOL_VERSION", "FederationConfig"]

PROTOCOL_VERSION = 1
_MIN_SCALE_BITS = 20
_HEADROOM_BITS = 3  # room for encryption, flooding and DP noise on top of the largest sum


@dataclass(frozen=True, kw_only=True)
class FederationConfig:
    """Public parameters of a federation: CKKS preset and the bounds that size the encoding.

    The CKKS scale is derived, not chosen: the largest power of two such that ``max_clients``
    updates, each weighted by at most ``max_weight`` and with every coordinate within
    ``value_bound``, still sum below ``q / 2**3``. A larger scale means more precision; the
    constructor raises :class:`UnsupportedParameters` if fewer than 20 bits remain.
    """

    preset: CkksPreset = field(default_factory=lambda: PRESETS["compact"])
    min_clients: int = 3
    max_clients: int = 64
    max_weight: float = 10_000.0
    value_bound: float = 16.0

    def __post_init__(self) -> None:
        if not isinstance(self.preset, CkksPreset):
            raise TypeError(f"preset: expected CkksPreset, got {type(self.preset).__name__}")
        for name in ("min_clients", "max_clients"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}: must be a positive integer, got {value!r}")
        if self.min_clients > self.max_clients:
            raise ValueError(
                f"min_clients: {self.min_clients} exceeds max_clients {self.max_clients}"
            )
        for name in ("max_weight", "value_bound"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name}: must be a positive finite number, got {value!r}")
        if self.scale_bits < _MIN_SCALE_BITS:
            raise UnsupportedParameters(
                f"preset {self.preset.name}: only {self.scale_bits} bits of scale remain for "
                f"max_clients={self.max_clients}, max_weight={self.max_weight}, "
                f"value_bound={self.value_bound}; lower them or use a preset with a larger modulus"
            )

    @cached_property
    def scale_bits(self) -> int:
        """log2 of the CKKS scale."""
        q = math.prod(backend_for(self.preset).data_primes)
        largest_sum = self.max_clients * self.max_weight * self.value_bound * math.sqrt(2)
        return math.floor(math.log2(q) - _HEADROOM_BITS - math.log2(largest_sum))

    @property
    def scale(self) -> float:
        """The CKKS scale every client encodes at."""
        return float(2**self.scale_bits)

    @cached_property
    def params_id(self) -> bytes:
        """SHA3-256 identifying preset, scale and bounds; signed with each update."""
        packed = struct.pack(
            "<IIIddI",
            PROTOCOL_VERSION,
            self.min_clients,
            self.max_clients,
            float(self.max_weight),
            float(self.value_bound),
            self.scale_bits,
        )
        return hashlib.sha3_256(b"fhe_agg/params|" + self.preset.fingerprint + packed).digest()
