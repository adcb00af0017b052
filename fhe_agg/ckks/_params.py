"""CKKS parameter presets, checked against the HomomorphicEncryption.org security tables.

A preset fixes the ring (``N``) and the RNS primes. Sums and plaintext scaling need no key
switching, so the data level can be a single prime. Two reals are packed per complex slot, so a
ciphertext carries ``N`` reals and costs ``2 * 64 * L`` bits of coefficients for them (``L`` data
primes), i.e. about 128 bits per real for one prime.

The check uses the 128-bit *quantum* column of the 2018 HomomorphicEncryption.org standard
(Albrecht et al., https://eprint.iacr.org/2019/939, Table 1, ternary secret, sigma = 3.2), as
encoded in SEAL's ``hestdparms.h``: log2(QP) <= 101 / 202 / 411 bits for N = 4096 / 8192 / 16384.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property

from fhe_agg.errors import UnsupportedParameters

__all__ = ["PRESETS", "QUANTUM_128_MAX_LOG_Q", "CkksPreset", "get_preset"]

#: Maximum log2(QP) for 128-bit security against quantum attackers, by ring degree N.
QUANTUM_128_MAX_LOG_Q: dict[int, int] = {
    1024: 25,
    2048: 51,
    4096: 101,
    8192: 202,
    16384: 411,
    32768: 827,
}

_MAX_PRIME_BITS = 60  # SEAL's Modulus holds at most 61 bits; 60 keeps sums below 2**63.


@dataclass(frozen=True, kw_only=True)
class CkksPreset:
    """A named CKKS ring and prime chain.

    ``data_prime_bits`` are the primes a ciphertext lives under; ``special_prime_bits`` is the
    key-level prime SEAL drops after encryption (``None``: the key level is the data level).
    The constructor refuses parameters above the quantum 128-bit limit for ``N``.
    """

    name: str
    poly_modulus_degree: int
    data_prime_bits: tuple[int, ...]
    special_prime_bits: int | None = None
    summary: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        n = self.poly_modulus_degree
        if n not in QUANTUM_128_MAX_LOG_Q:
            raise UnsupportedParameters(
                f"preset {self.name!r}: poly_modulus_degree {n} is not one of "
                f"{sorted(QUANTUM_128_MAX_LOG_Q)}"
            )
        if not self.data_prime_bits:
            raise UnsupportedParameters(f"preset {self.name!r}: needs at least one data prime")
        bits = [*self.data_prime_bits]
        if self.special_prime_bits is not None:
            bits.append(self.special_prime_bits)
        for b in bits:
            if not 20 <= b <= _MAX_PRIME_BITS:
                raise UnsupportedParameters(
                    f"preset {self.name!r}: prime size {b} bits is outside 20..{_MAX_PRIME_BITS}"
                )
        limit = QUANTUM_128_MAX_LOG_Q[n]
        if sum(bits) > limit:
            raise UnsupportedParameters(
                f"preset {self.name!r}: log2(QP) = {sum(bits)} bits exceeds the 128-bit quantum "
                f"security limit of {limit} bits for N = {n} (HomomorphicEncryption.org standard)"
            )

    @property
    def slots(self) -> int:
        """Complex slots per ciphertext (N/2)."""
        return self.poly_modulus_degree // 2

    @property
    def reals_per_ciphertext(self) -> int:
        """Reals per ciphertext with two reals packed per complex slot (N)."""
        return self.poly_modulus_degree

    @property
    def key_prime_bits(self) -> tuple[int, ...]:
        """Bit sizes of every prime at the key level, in SEAL's order (special prime last)."""
        if self.special_prime_bits is None:
            return self.data_prime_bits
        return (*self.data_prime_bits, self.special_prime_bits)

    @property
    def total_bits(self) -> int:
        """log2(QP) as counted by the security check."""
        return sum(self.key_prime_bits)

    @property
    def wire_bits_per_real(self) -> float:
        """Coefficient bits per real of a packed ciphertext (before its 18-byte header)."""
        return 2 * sum(self.data_prime_bits) * self.poly_modulus_degree / self.reals_per_ciphertext

    @cached_property
    def fingerprint(self) -> bytes:
        """SHA3-256 of the ring and prime sizes; identifies the preset on the wire."""
        text = f"ckks|{self.poly_modulus_degree}|{self.key_prime_bits}|{len(self.data_prime_bits)}"
        return hashlib.sha3_256(text.encode()).digest()


# Sizing (docs/key-safety.md §flooding): key holders flood every partial decryption for the
# *proven* noise of max_clients chunks, about 2**73 per holder for the target run (8
# clients, 3-of-5, tau = 2**16) where an honest-noise estimate gave 2**39.5. The noise must stay
# below q / 8 at its 2**-40 tail (2**80 there), so one 60-bit data prime no longer holds any
# flooded release: both presets carry two data primes. Clients encrypt at the data level, so the
# special prime does nothing for encryption; SEAL still treats the last prime as the key level.
_COMPACT = CkksPreset(
    name="compact",
    poly_modulus_degree=8192,
    data_prime_bits=(60, 40),
    special_prime_bits=40,
    summary=(
        "The DP preset. N=8192, 60- and 40-bit data primes + 40-bit special prime (140 of 202 "
        "quantum-safe bits); ~200 bits per parameter on the wire. The smallest modulus that "
        "holds 40-bit flooding from proven bounds; with DP the mechanism's noise dominates; "
        "exact decryption (which gives away the key) only by explicit opt-in for one holder."
    ),
)
_PRECISE = CkksPreset(
    name="precise",
    poly_modulus_degree=8192,
    data_prime_bits=(60, 60),
    special_prime_bits=40,
    summary=(
        "N=8192, two 60-bit data primes + 40-bit special prime (160 of 202 quantum-safe bits); "
        "~240 bits per parameter. 40-bit flooding from proven bounds without DP, ~1e-10 for 8 "
        "clients 3-of-5 (1e-6 leaves room for larger federations and weights)."
    ),
)

#: Presets by name; ``dp`` is another name for ``compact`` (the preset DP runs use).
PRESETS: dict[str, CkksPreset] = {"compact": _COMPACT, "dp": _COMPACT, "precise": _PRECISE}


def get_preset(name: str) -> CkksPreset:
    """Return the preset called ``name`` (``dp`` is ``compact``) or raise ``ValueError``."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"preset: unknown {name!r}; choose one of {sorted(PRESETS)}") from None
