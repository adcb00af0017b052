"""Suite names, algorithm sizes and the length checks that tell one suite's bytes from another's.

Split from :mod:`fhe_agg.identity._suites` (which re-exports these names); see its docstring for
the algorithms of each suite.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import NoReturn

from fhe_agg.errors import MalformedMessage, WrongSuite
from fhe_agg.identity._encoding import choice
from fhe_agg.protocol._signing import ML_DSA_65_PUBLIC_KEY_BYTES, ML_DSA_65_SIGNATURE_BYTES

__all__ = ["Suite", "SuiteSpec", "WrongSuite"]

_MAX_CONTEXT = 255  # FIPS 204 §5.2 / FIPS 205 §10.2 / composite draft: ctx fits one length byte.


class Suite(Enum):
    """A deployment's crypto suite; the value is its configuration name."""

    PQ_ONLY = "pq-only"
    HYBRID = "hybrid"
    CNSA2 = "cnsa2"
    SLH_DSA = "slh-dsa"

    @classmethod
    def parse(cls, name: str | Suite) -> Suite:
        """Return the suite called ``name``; ``ValueError`` naming the known ones otherwise."""
        return choice(cls, name, "suite")

    @property
    def spec(self) -> SuiteSpec:
        """Algorithm names and sizes of this suite."""
        return _SPECS[self]


@dataclass(frozen=True, kw_only=True)
class SuiteSpec:
    """What a suite uses, with its exact byte sizes."""

    signature_algorithm: str
    kem_algorithm: str
    public_key_bytes: int
    private_key_bytes: int
    signature_bytes: int
    nist_category: int


_SPECS: dict[Suite, SuiteSpec] = {
    Suite.PQ_ONLY: SuiteSpec(
        signature_algorithm="ML-DSA-65",
        kem_algorithm="X-Wing (ML-KEM-768 + X25519)",
        public_key_bytes=ML_DSA_65_PUBLIC_KEY_BYTES,
        private_key_bytes=32,
        signature_bytes=ML_DSA_65_SIGNATURE_BYTES,
        nist_category=3,
    ),
    Suite.HYBRID: SuiteSpec(
        signature_algorithm="COMPSIG-MLDSA65-Ed25519-SHA512",
        kem_algorithm="X-Wing (ML-KEM-768 + X25519)",
        public_key_bytes=ML_DSA_65_PUBLIC_KEY_BYTES + 32,
        private_key_bytes=32 + 32,
        signature_bytes=ML_DSA_65_SIGNATURE_BYTES + 64,
        nist_category=3,
    ),
    Suite.CNSA2: SuiteSpec(
        signature_algorithm="ML-DSA-87",
        kem_algorithm="ML-KEM-1024 + P-384",
        public_key_bytes=2592,
        private_key_bytes=32,
        signature_bytes=4627,
        nist_category=5,
    ),
    Suite.SLH_DSA: SuiteSpec(
        signature_algorithm="SLH-DSA-SHA2-192s",
        kem_algorithm="X-Wing (ML-KEM-768 + X25519)",
        public_key_bytes=48,
        private_key_bytes=96,
        signature_bytes=16224,
        nist_category=3,
    ),
}


def _check_context(context: bytes, *, allow_empty: bool) -> None:
    if not isinstance(context, bytes):
        raise TypeError(f"context: expected bytes, got {type(context).__name__}")
    if len(context) > _MAX_CONTEXT or (not allow_empty and not context):
        low = 0 if allow_empty else 1
        raise ValueError(f"context: must be {low}..{_MAX_CONTEXT} bytes, got {len(context)}")


def _suite_by_length(length: int, field: str) -> Suite | None:
    for suite, spec in _SPECS.items():
        if getattr(spec, field) == length:
            return suite
    return None


def _refuse_length(suite: Suite, length: int, field: str, what: str) -> NoReturn:
    """Raise :class:`WrongSuite` for another suite's length, else :class:`MalformedMessage`."""
    other = _suite_by_length(length, field)
    if other is not None and other is not suite:
        raise WrongSuite(
            f"{what} of {length} bytes belongs to suite {other.value!r}, not {suite.value!r}"
        )
    expected = getattr(suite.spec, field)
    raise MalformedMessage(f"{suite.value} {what} must be {expected} bytes, got {length}")
