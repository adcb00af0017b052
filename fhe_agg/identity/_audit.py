"""Quantum-risk audit of a cryptographic inventory and of the CKKS presets.

An inventory maps algorithm names to what they protect, e.g. ``{"RSA-2048": "secure
aggregation", "AES-128-GCM": "model encryption"}``. Each asset gets a :class:`Finding` with a
:class:`Risk`, the reasons and a replacement. The rules follow:

* Shor's algorithm breaks RSA, finite-field and elliptic-curve DH/DSA (including X25519/Ed25519);
  data encrypted today can be recorded and decrypted later ("harvest now, decrypt later"), so
  key exchange and encryption rank above signatures, which only fail once a CRQC exists.
* NIST IR 8547 (ipd, Nov 2024): 112-bit RSA/ECC (RSA-2048, P-256-sized classical strength is
  128 bits) deprecated after 2030 and disallowed after 2035; all strengths and EdDSA disallowed
  after 2035. Already-disallowed choices (RSA < 2048, P-192, SHA-1, MD5, (3)DES) are critical.
* Grover's algorithm at best halves a symmetric key's strength (AES-128 still meets NIST
  Category 1); CNSA 2.0 nevertheless requires AES-256 and SHA-384/512, ML-KEM-1024, ML-DSA-87.
* BSI TR-02102-1 (2026-01) and ANSSI ask for lattice PQC in hybrid form; under
  :attr:`Policy.EU_HYBRID` a pure ML-KEM/ML-DSA asset is a medium (policy) finding.
* CKKS moduli are checked against the HomomorphicEncryption.org 128-bit *quantum* limits
  (:data:`fhe_agg.ckks._params.QUANTUM_128_MAX_LOG_Q`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from fhe_agg.ckks._params import PRESETS, CkksPreset
from fhe_agg.identity._audit_model import Finding, Policy, PresetReport, Risk, _preset_report
from fhe_agg.identity._audit_rules import classify
from fhe_agg.identity._encoding import read_bounded, strict_json
from fhe_agg.identity._suites import Suite

if TYPE_CHECKING:
    from fhe_agg.identity._roster import Roster

__all__ = [
    "Finding",
    "Policy",
    "PresetReport",
    "Risk",
    "audit_inventory",
    "audit_presets",
    "default_deployment_inventory",
    "load_inventory",
    "roster_inventory",
]

_MAX_INVENTORY_BYTES = 1 << 20
_MAX_ASSETS = 10_000


def audit_presets(presets: Mapping[str, CkksPreset] | None = None) -> list[PresetReport]:
    """Check every CKKS preset (default :data:`fhe_agg.PRESETS`) against the quantum limits."""
    chosen = PRESETS if presets is None else presets
    return [_preset_report(p) for _, p in sorted(chosen.items())]


def audit_inventory(inventory: Mapping[str, str], *, policy: Policy = Policy.NIST) -> list[Finding]:
    """Classify each ``algorithm -> usage`` entry; findings sorted most severe first."""
    if not isinstance(inventory, Mapping):
        raise TypeError("inventory: expected a mapping of algorithm name to usage")
    policy = Policy(policy)
    findings = []
    for asset, usage in inventory.items():
        if not isinstance(asset, str) or not isinstance(usage, str) or not asset.strip():
            raise ValueError(f"inventory: entry {asset!r} must map a name to a usage string")
        findings.append(classify(asset, usage, policy))
    order = list(Risk)
    return sorted(findings, key=lambda f: (order.index(f.risk), f.asset))


def load_inventory(path: str | Path) -> dict[str, str]:
    """Read a YAML (``.yaml``/``.yml``, needs PyYAML) or JSON mapping ``algorithm: usage``.

    Raises ``ValueError`` naming the file for anything else, duplicate JSON keys included (at
    most 1 MiB, 10,000 entries).
    """
    p = Path(path)
    raw = read_bounded(p, _MAX_INVENTORY_BYTES, "inventory")
    if p.suffix.lower() in (".yaml", ".yml"):
        import yaml  # type: ignore[import-untyped]

        try:
            data = yaml.safe_load(raw)
        except RecursionError:  # PyYAML composes nested collections recursively
            raise ValueError(f"inventory {p}: YAML nested too deeply") from None
        except ValueError as exc:  # a tagged value that does not construct (a bad date, ...)
            raise ValueError(f"inventory {p}: invalid YAML value ({exc})") from None
        except yaml.YAMLError as exc:
            where = getattr(exc, "problem_mark", None)
            line = f" (line {where.line + 1})" if where is not None else ""
            raise ValueError(f"inventory {p}: not valid YAML{line}") from None
    else:
        try:
            data = strict_json(raw)
        except ValueError:  # also duplicate keys, NaN and deep nesting
            raise ValueError(f"inventory {p}: not valid JSON") from None
    if not isinstance(data, dict) or len(data) > _MAX_ASSETS:
        raise ValueError(f"inventory {p}: expected a mapping of at most {_MAX_ASSETS} entries")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise ValueError(f"inventory {p}: every entry must be 'algorithm: usage' strings")
    return dict(data)


_ROLE_SIGNS = {
    "admin": "roster signatures (admin)",
    "client": "update signatures (clients)",
    "holder": "ceremony and partial-decryption signatures (key holders)",
    "aggregator": "audit-log signatures (aggregator)",
}


def _kem_asset(suite: Suite) -> str:
    return "MLKEM1024-P384" if suite is Suite.CNSA2 else "X-Wing"


#: The hashes and AEAD every deployment runs, whatever its suites: asset -> usage.
_SYMMETRIC = {
    "SHA3-256": "fingerprints, audit log chain",
    "SHA-256": "Merkle hashing of update chunks, proofs digest, proof transcripts",
    "AES-256-GCM": "HPKE AEAD for sealed key shares",
}


def default_deployment_inventory(
    suite: Suite | str = Suite.HYBRID, *, preset: str = "precise"
) -> dict[str, str]:
    """fhe_agg's own cryptography under ``suite``, as an inventory for :func:`audit_inventory`."""
    suite = Suite.parse(suite)
    return {
        suite.spec.signature_algorithm: "update and statement signatures",
        _kem_asset(suite): "key-share sealing (HPKE)",
        f"CKKS-{preset}": "model update encryption (secure aggregation)",
        **_SYMMETRIC,
    }


def roster_inventory(roster: Roster) -> dict[str, str]:
    """The cryptography a consortium runs under ``roster``, as an inventory.

    One signature asset per suite in use (the admin's and every non-revoked member's current
    key, with the roles that use it), the sealing KEM of each suite, the roster's CKKS preset,
    SHA3-256, SHA-256 and AES-256-GCM.
    """
    usages: dict[str, list[str]] = {}

    def use(asset: str, usage: str) -> None:
        if usage not in usages.setdefault(asset, []):
            usages[asset].append(usage)

    parties = [roster.admin, *(m.current.identity for m in roster.members if not m.revoked)]
    for identity in parties:
        use(identity.suite.spec.signature_algorithm, _ROLE_SIGNS[identity.role.value])
        use(_kem_asset(identity.suite), "key-share sealing (HPKE)")
    use(f"CKKS-{roster.preset}", "model update encryption (secure aggregation)")
    for asset, usage in _SYMMETRIC.items():
        use(asset, usage)
    return {asset: "; ".join(texts) for asset, texts in usages.items()}
