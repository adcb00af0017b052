"""The vocabulary of the quantum-risk audit: risks, policies, findings and CKKS preset reports.

Split from :mod:`fhe_agg.identity._audit`, which re-exports these names and documents the rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from fhe_agg.ckks._params import QUANTUM_128_MAX_LOG_Q, CkksPreset

__all__ = ["Finding", "Policy", "PresetReport", "Risk"]


class Risk(Enum):
    """Severity of a finding, most severe first."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"


class Policy(Enum):
    """Which guidance the audit applies on top of NIST's."""

    NIST = "nist"
    CNSA2 = "cnsa2"
    EU_HYBRID = "eu-hybrid"


@dataclass(frozen=True, kw_only=True)
class Finding:
    """One inventory asset, classified.

    ``primitive`` uses CycloneDX 1.6 ``cryptoProperties.algorithmProperties.primitive`` values;
    ``nist_quantum_level`` is 0 (no NIST category met: quantum-vulnerable) to 5.
    ``quantum_vulnerable`` is ``None`` for an algorithm the audit does not recognise: unknown,
    neither safe nor vulnerable (:attr:`status` ``"unknown"``).
    """

    asset: str
    usage: str
    primitive: str
    risk: Risk
    quantum_vulnerable: bool | None
    confidentiality: bool
    reasons: tuple[str, ...]
    replacement: str
    classical_bits: int | None = None
    nist_quantum_level: int | None = None
    oid: str | None = None
    parameter_set: str | None = None

    @property
    def status(self) -> str:
        """``"quantum-vulnerable"``, ``"quantum-safe"`` or ``"unknown"`` (not recognised)."""
        if self.quantum_vulnerable is None:
            return "unknown"
        return "quantum-vulnerable" if self.quantum_vulnerable else "quantum-safe"

    def at_least(self, level: Risk) -> bool:
        """Whether this finding is as severe as ``level`` or more (``--fail-on``)."""
        order = list(Risk)
        return order.index(self.risk) <= order.index(Risk(level))


@dataclass(frozen=True, kw_only=True)
class PresetReport:
    """A CKKS preset against the 128-bit quantum limit for its ring degree."""

    name: str
    ring_degree: int
    log_q_bits: int
    limit_bits: int
    ok: bool
    explanation: str


def _preset_report(preset: CkksPreset) -> PresetReport:
    n, total = preset.poly_modulus_degree, preset.total_bits
    limit = QUANTUM_128_MAX_LOG_Q[n]
    ok = total <= limit
    verdict = "within" if ok else "ABOVE"
    text = (
        f"CKKS {preset.name}: log2(QP) = {total} bits, {verdict} the 128-bit quantum limit of "
        f"{limit} bits for N = {n} (HomomorphicEncryption.org standard, Albrecht et al. 2018)"
    )
    return PresetReport(
        name=preset.name, ring_degree=n, log_q_bits=total, limit_bits=limit, ok=ok, explanation=text
    )
