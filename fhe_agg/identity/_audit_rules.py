"""The classification rules of the quantum-risk audit: one asset name and usage -> a Finding.

The reasons, dates and replacements are documented in :mod:`fhe_agg.identity._audit`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fhe_agg.ckks._params import PRESETS
from fhe_agg.identity._audit_model import Finding, Policy, Risk, _preset_report

__all__ = ["classify"]

_SHOR = "Shor's algorithm breaks it on a cryptographically relevant quantum computer (CRQC)"
_HNDL = "harvest now, decrypt later: recorded traffic becomes readable once a CRQC exists"
_IR8547_112 = "NIST IR 8547: 112-bit strength deprecated after 2030, disallowed after 2035"
_IR8547_128 = "NIST IR 8547: disallowed after 2035"
_GROVER = "Grover's search at best halves the key strength (AES-128 -> ~64-bit quantum work)"
_CNSA = "CNSA 2.0 requires ML-KEM-1024, ML-DSA-87, AES-256 and SHA-384/512"
_EU = "BSI TR-02102-1 (2026-01) / ANSSI: lattice PQC only in hybrid form"

_OIDS = {
    "ML-DSA-44": "2.16.840.1.101.3.4.3.17",
    "ML-DSA-65": "2.16.840.1.101.3.4.3.18",
    "ML-DSA-87": "2.16.840.1.101.3.4.3.19",
    "ML-KEM-512": "2.16.840.1.101.3.4.4.1",
    "ML-KEM-768": "2.16.840.1.101.3.4.4.2",
    "ML-KEM-1024": "2.16.840.1.101.3.4.4.3",
    "SLH-DSA-SHA2-192S": "2.16.840.1.101.3.4.3.22",
    "X-WING": "1.3.6.1.4.1.62253.25722",
    "COMPOSITE": "1.3.6.1.5.5.7.6.48",
    "ED25519": "1.3.101.112",
    "X25519": "1.3.101.110",
    "AES-128-GCM": "2.16.840.1.101.3.4.1.6",
    "AES-256-GCM": "2.16.840.1.101.3.4.1.46",
    "SHA-256": "2.16.840.1.101.3.4.2.1",
    "SHA-384": "2.16.840.1.101.3.4.2.2",
    "SHA-512": "2.16.840.1.101.3.4.2.3",
    "SHA3-256": "2.16.840.1.101.3.4.2.8",
}
_SIGN_WORDS = ("sign", "signature", "auth", "certificate", "attest")
#: Usage words that put an unrecognised algorithm on a confidentiality path.
_CONFIDENTIALITY_WORDS = (
    "encrypt",
    "decrypt",
    "cipher",
    "key exchange",
    "key-exchange",
    "key agreement",
    "key encapsulation",
    "kem",
    "seal",
    "wrap",
    "tls",
    "confidential",
)
_RSA_BITS = {1024: 80, 2048: 112, 3072: 128, 4096: 152, 7680: 192, 15360: 256}
_CURVE_BITS = {
    "P192": 96,
    "P224": 112,
    "P256": 128,
    "P384": 192,
    "P521": 256,
    "25519": 128,
    "448": 224,
}


def _norm(name: str) -> str:
    return re.sub(r"[\s_]+", "-", name.strip().upper())


@dataclass(frozen=True)
class _Entry:
    """One inventory entry as the rules read it: the normalised name and the usage's reading."""

    asset: str
    usage: str
    name: str
    signing: bool
    policy: Policy

    def finding(self, **fields: Any) -> Finding:
        return Finding(asset=self.asset, usage=self.usage, **fields)


def _disallowed(e: _Entry, m: re.Match[str]) -> Finding:
    return e.finding(
        primitive="other",
        risk=Risk.CRITICAL,
        quantum_vulnerable=True,
        confidentiality=not e.signing,
        reasons=("already disallowed by NIST (SP 800-131A)",),
        replacement="ML-DSA-65 / X-Wing / AES-256-GCM / SHA3-256",
        nist_quantum_level=0,
    )


def _rsa(e: _Entry, m: re.Match[str]) -> Finding:
    bits = int(m.group(1))
    strength = max((s for k, s in _RSA_BITS.items() if k <= bits), default=80)
    primitive = "signature" if e.signing else "pke"
    return _public_key(e.asset, e.usage, primitive, e.signing, strength, bits=str(bits))


def _elliptic(e: _Entry, m: re.Match[str]) -> Finding:
    kind, curve = m.group(1), m.group(2).replace("-", "")
    is_sig = kind in ("ECDSA", "ED", "EDDSA")
    return _public_key(
        e.asset,
        e.usage,
        "signature" if is_sig else "key-agree",
        is_sig,
        _CURVE_BITS.get(curve, 128),
        bits=curve,
        oid=_OIDS.get(e.name),
        eddsa=kind in ("ED", "EDDSA"),
    )


def _finite_field(e: _Entry, m: re.Match[str]) -> Finding:
    is_sig = e.name.startswith("DSA")
    primitive = "signature" if is_sig else "key-agree"
    return _public_key(e.asset, e.usage, primitive, is_sig, 112, bits=None)


def _round3(e: _Entry, m: re.Match[str]) -> Finding:
    return e.finding(
        primitive="kem" if "KYBER" in e.name else "signature",
        risk=Risk.HIGH,
        quantum_vulnerable=False,
        confidentiality="KYBER" in e.name,
        reasons=("pre-standard round-3 parameters, not compatible with FIPS 203/204",),
        replacement="ML-KEM-768 / ML-DSA-65 / X25519MLKEM768",
    )


def _module_lattice(e: _Entry, m: re.Match[str]) -> Finding:
    oid = _OIDS.get(e.name)
    return _lattice(e.asset, e.usage, m.group(1), int(m.group(2)), e.policy, oid=oid)


def _hybrid(e: _Entry, m: re.Match[str]) -> Finding:
    is_kem = "KEM" in e.name or "WING" in e.name
    level = 5 if "1024" in e.name else 3
    reasons = ["hybrid: secure while either component holds"]
    risk = Risk.INFO
    if e.policy is Policy.CNSA2 and level < 5:
        risk, reasons = Risk.MEDIUM, [*reasons, _CNSA]
    oid = _OIDS["X-WING" if "WING" in e.name else "COMPOSITE"] if level == 3 else None
    return e.finding(
        primitive="kem" if is_kem else "signature",
        risk=risk,
        quantum_vulnerable=False,
        confidentiality=is_kem,
        reasons=tuple(reasons),
        replacement="-" if risk is Risk.INFO else "ML-KEM-1024 / ML-DSA-87",
        nist_quantum_level=level,
        oid=oid,
    )


def _hash_based(e: _Entry, m: re.Match[str]) -> Finding:
    return e.finding(
        primitive="signature",
        risk=Risk.INFO,
        quantum_vulnerable=False,
        confidentiality=False,
        reasons=("FIPS 205 hash-based; BSI/ANSSI allow it without a hybrid",),
        replacement="-",
        nist_quantum_level={"128": 1, "192": 3, "256": 5}[m.group(2)],
        oid=_OIDS.get(e.name),
    )


def _aes(e: _Entry, m: re.Match[str]) -> Finding:
    bits = int(m.group(1))
    reasons = [_GROVER] if bits == 128 else []
    risk = Risk.LOW if bits == 128 else Risk.INFO
    if e.policy is Policy.CNSA2 and bits < 256:
        risk, reasons = Risk.MEDIUM, [*reasons, _CNSA]
    return e.finding(
        primitive="ae" if m.group(2) in ("GCM", "CCM", "SIV", "GCM-SIV") else "block-cipher",
        risk=risk,
        quantum_vulnerable=False,
        confidentiality=True,
        reasons=tuple(reasons) or ("symmetric; Grover leaves >= 128-bit strength",),
        replacement="AES-256-GCM" if risk is not Risk.INFO else "-",
        classical_bits=bits,
        nist_quantum_level={128: 1, 192: 3, 256: 5}[bits],
        oid=_OIDS.get(e.name),
        parameter_set=str(bits),
    )


def _sha(e: _Entry, m: re.Match[str]) -> Finding:
    size = int(m.group(2))
    canonical = f"SHA{'3' if m.group(1) else ''}-{size}"
    # NIST PQC call for proposals: categories 2 and 4 are SHA collision searches.
    level = {224: 1, 256: 2, 384: 4, 512: 5}[size]
    weak = e.policy is Policy.CNSA2 and size < 384
    return e.finding(
        primitive="hash",
        risk=Risk.MEDIUM if weak else Risk.INFO,
        quantum_vulnerable=False,
        confidentiality=False,
        reasons=(_CNSA,) if weak else ("hash; quantum search gains at most a square root",),
        replacement="SHA-384" if weak else "-",
        nist_quantum_level=level,
        oid=_OIDS.get(canonical),
        parameter_set=str(size),
    )


def _ckks_rule(e: _Entry, m: re.Match[str]) -> Finding:
    return _ckks(e.asset, e.usage, (m.group(1) or "compact").lower())


def _unstandardised(e: _Entry, m: re.Match[str]) -> Finding:
    return e.finding(
        primitive="other",
        risk=Risk.INFO,
        quantum_vulnerable=False,
        confidentiality="DSA" not in e.name and "FALCON" not in e.name,
        reasons=(
            "no final NIST standard (FN-DSA is FIPS 206 draft; HQC pending; "
            "McEliece/sntrup not selected)",
        ),
        replacement="keep behind a feature flag",
    )


_HYBRID_NAMES = (
    "X-WING",
    "XWING",
    "X25519MLKEM768",
    "MLKEM768-X25519",
    "MLKEM1024-P384",
    "COMPSIG-MLDSA65-ED25519-SHA512",
    "MLDSA65-ED25519",
    "COMPOSITE-ML-DSA-65-ED25519",
)

#: The rules in order: the first pattern that matches the whole normalised name decides.
_RULES: tuple[tuple[re.Pattern[str], Callable[[_Entry, re.Match[str]], Finding]], ...] = tuple(
    (re.compile(pattern), rule)
    for pattern, rule in (
        (r"(MD5|SHA-?1|(3|TRIPLE-?)?DES(-EDE)?|RC4|RSA-(512|768|1024)|.*P-?192)", _disallowed),
        (r"RSA(?:-(?:OAEP|PSS|PKCS1))?-(\d+)(?:-.*)?", _rsa),
        (r"(ECDSA|ECDH|ECDHE|ED|X|EDDSA)-?(P-?\d+|25519|448)", _elliptic),
        (r"(FF)?DHE?-?\d*|DSA-?\d*", _finite_field),
        (r"(KYBER|DILITHIUM)\d*|X25519-?KYBER768-?DRAFT00", _round3),
        (r"ML-(DSA|KEM)-(\d+)", _module_lattice),
        ("|".join(map(re.escape, _HYBRID_NAMES)), _hybrid),
        (r"SLH-DSA-(SHA2|SHAKE)-(128|192|256)[SF]", _hash_based),
        (r"AES-?(128|192|256)(?:-(GCM|CCM|CBC|CTR|SIV|GCM-SIV))?", _aes),
        (r"SHA(3)?-?(224|256|384|512)", _sha),
        (r"CKKS(?:-(\w+))?", _ckks_rule),
        (r"(FALCON|FN-DSA|HQC|MCELIECE|SNTRUP)[\w-]*", _unstandardised),
    )
)


def classify(asset: str, usage: str, policy: Policy) -> Finding:
    """Classify one inventory entry under ``policy``: the first rule whose pattern matches the
    normalised name decides; a name no rule matches is rated as unknown (worst case of its path)."""
    signing = any(w in usage.lower() for w in _SIGN_WORDS)
    entry = _Entry(asset=asset, usage=usage, name=_norm(asset), signing=signing, policy=policy)
    for pattern, rule in _RULES:
        if match := pattern.fullmatch(entry.name):
            return rule(entry, match)
    return _unknown(asset, usage)


def _unknown(asset: str, usage: str) -> Finding:
    """An algorithm the rules do not recognise: status unknown, rated as the worst case of its
    path, as if it were classical public-key cryptography there (confidentiality, which a
    harvest-now-decrypt-later attacker records today: high; anything else: medium)."""
    confidential = any(w in usage.lower() for w in _CONFIDENTIALITY_WORDS)
    path = "a confidentiality path" if confidential else "an integrity or other path"
    return Finding(
        asset=asset,
        usage=usage,
        primitive="unknown",
        risk=Risk.HIGH if confidential else Risk.MEDIUM,
        quantum_vulnerable=None,
        confidentiality=confidential,
        reasons=(
            f"algorithm not recognised: quantum safety unknown; rated as the worst case of {path} "
            "until reviewed by hand",
        ),
        replacement="a recognised algorithm: ML-KEM / X-Wing, ML-DSA, AES-256-GCM, SHA3-256",
    )


def _public_key(
    asset: str,
    usage: str,
    primitive: str,
    signing: bool,
    strength: int,
    *,
    bits: str | None,
    oid: str | None = None,
    eddsa: bool = False,
) -> Finding:
    reasons = [_SHOR]
    if not signing:
        reasons.append(_HNDL)
    reasons.append(_IR8547_112 if strength <= 112 and not eddsa else _IR8547_128)
    risk = Risk.HIGH if (not signing or strength <= 112) else Risk.MEDIUM
    replacement = (
        "ML-DSA-65 or composite ML-DSA-65+Ed25519 (ML-DSA-87 under CNSA 2.0)"
        if signing
        else "X-Wing (ML-KEM-768 + X25519) or ML-KEM-1024 under CNSA 2.0"
    )
    return Finding(
        asset=asset,
        usage=usage,
        primitive=primitive,
        risk=risk,
        quantum_vulnerable=True,
        confidentiality=not signing,
        reasons=tuple(reasons),
        replacement=replacement,
        classical_bits=strength,
        nist_quantum_level=0,
        oid=oid,
        parameter_set=bits,
    )


def _lattice(
    asset: str, usage: str, kind: str, size: int, policy: Policy, *, oid: str | None
) -> Finding:
    level = {44: 2, 65: 3, 87: 5, 512: 1, 768: 3, 1024: 5}.get(size, 0)
    reasons: list[str] = [f"FIPS {'204' if kind == 'DSA' else '203'}, NIST Category {level}"]
    risk = Risk.LOW if size in (44, 512) else Risk.INFO
    if policy is Policy.CNSA2 and size not in (87, 1024):
        risk, reasons = Risk.MEDIUM, [*reasons, _CNSA]
    if policy is Policy.EU_HYBRID:
        risk, reasons = Risk.MEDIUM, [*reasons, _EU]
    replacement = (
        "-"
        if risk is Risk.INFO
        else (
            "ML-DSA-87"
            if policy is Policy.CNSA2 and kind == "DSA"
            else "ML-KEM-1024"
            if policy is Policy.CNSA2
            else "composite ML-DSA-65+Ed25519"
            if kind == "DSA"
            else "X-Wing"
        )
    )
    return Finding(
        asset=asset,
        usage=usage,
        primitive="signature" if kind == "DSA" else "kem",
        risk=risk,
        quantum_vulnerable=False,
        confidentiality=kind == "KEM",
        reasons=tuple(reasons),
        replacement=replacement,
        nist_quantum_level=level,
        oid=oid,
        parameter_set=str(size),
    )


def _ckks(asset: str, usage: str, preset_name: str) -> Finding:
    preset = PRESETS.get(preset_name)
    if preset is None:
        return Finding(
            asset=asset,
            usage=usage,
            primitive="pke",
            risk=Risk.MEDIUM,
            quantum_vulnerable=False,
            confidentiality=True,
            reasons=(f"unknown CKKS preset {preset_name!r}",),
            replacement=f"one of {sorted(PRESETS)}",
        )
    report = _preset_report(preset)
    return Finding(
        asset=asset,
        usage=usage,
        primitive="pke",
        risk=Risk.INFO if report.ok else Risk.MEDIUM,
        quantum_vulnerable=False,
        confidentiality=True,
        reasons=(report.explanation,),
        replacement="-" if report.ok else "enlarge N or shrink the modulus",
        nist_quantum_level=1 if report.ok else 0,
        parameter_set=f"N={report.ring_degree}",
    )
