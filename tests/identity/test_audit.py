"""Quantum-risk audit, CKKS preset check and CycloneDX 1.6 CBOM."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fhe_agg.ckks._params import CkksPreset
from fhe_agg.identity import (
    Finding,
    Policy,
    Risk,
    Suite,
    audit_inventory,
    audit_presets,
    cbom_json,
    default_deployment_inventory,
    load_inventory,
    write_cbom,
)

LEGACY = Path(__file__).resolve().parents[2] / "examples" / "inventory_legacy.yaml"


@pytest.fixture(scope="module")
def legacy() -> dict[str, Finding]:
    return {f.asset: f for f in audit_inventory(load_inventory(LEGACY))}


def test_legacy_public_key_algorithms_are_quantum_vulnerable(legacy: dict[str, Finding]) -> None:
    for name in ("RSA-2048", "ECDH-P256", "ECDSA-P256"):
        f = legacy[name]
        assert f.quantum_vulnerable and f.nist_quantum_level == 0
        assert any("Shor" in r for r in f.reasons)
        assert any("2035" in r for r in f.reasons)
    assert any("deprecated after 2030" in r for r in legacy["RSA-2048"].reasons)
    # confidentiality paths rank above signatures (harvest now, decrypt later)
    assert legacy["RSA-2048"].risk is Risk.HIGH and legacy["RSA-2048"].confidentiality
    assert legacy["ECDH-P256"].risk is Risk.HIGH and legacy["ECDH-P256"].confidentiality
    assert legacy["ECDSA-P256"].risk is Risk.MEDIUM and not legacy["ECDSA-P256"].confidentiality
    assert "ML-DSA" in legacy["ECDSA-P256"].replacement
    assert "X-Wing" in legacy["ECDH-P256"].replacement


def test_aes128_is_grover_weakened_not_broken(legacy: dict[str, Finding]) -> None:
    f = legacy["AES-128-GCM"]
    assert not f.quantum_vulnerable and f.risk is Risk.LOW
    assert any("Grover" in r for r in f.reasons) and f.replacement == "AES-256-GCM"
    assert legacy["SHA-256"].risk is Risk.INFO


def test_findings_sorted_most_severe_first() -> None:
    findings = audit_inventory(load_inventory(LEGACY))
    order = list(Risk)
    assert [order.index(f.risk) for f in findings] == sorted(order.index(f.risk) for f in findings)


def test_already_disallowed_is_critical() -> None:
    got = {
        f.asset: f.risk
        for f in audit_inventory({"RSA-1024": "tls", "SHA-1": "hash", "MD5": "checksums"})
    }
    assert set(got.values()) == {Risk.CRITICAL}


@pytest.mark.parametrize("suite", list(Suite))
def test_own_deployment_has_no_quantum_vulnerable_confidentiality(suite: Suite) -> None:
    findings = audit_inventory(default_deployment_inventory(suite))
    assert len(findings) == 6
    assert not [f for f in findings if f.quantum_vulnerable]
    assert all(f.risk is Risk.INFO for f in findings)
    assert all((f.nist_quantum_level or 0) >= 1 for f in findings)


def test_policies() -> None:
    cnsa = {
        f.asset: f
        for f in audit_inventory(default_deployment_inventory(Suite.HYBRID), policy=Policy.CNSA2)
    }
    assert cnsa["X-Wing"].risk is Risk.MEDIUM and cnsa["SHA3-256"].risk is Risk.MEDIUM
    assert cnsa["SHA-256"].risk is Risk.MEDIUM  # CNSA 2.0 asks for SHA-384/512
    assert all(
        f.risk is Risk.INFO
        for f in audit_inventory(
            default_deployment_inventory(Suite.CNSA2) | {"SHA-384": "hashing"}, policy=Policy.CNSA2
        )
        if f.asset not in ("SHA3-256", "SHA-256")
    )
    eu = {
        f.asset: f
        for f in audit_inventory({"ML-KEM-768": "kex", "X-Wing": "kex"}, policy=Policy.EU_HYBRID)
    }
    assert eu["ML-KEM-768"].risk is Risk.MEDIUM and eu["X-Wing"].risk is Risk.INFO


def test_unknown_algorithm_needs_review() -> None:
    (f,) = audit_inventory({"RotatingCaesar": "very secret"})
    assert f.risk is Risk.MEDIUM and "not recognised" in f.reasons[0]


def test_presets_within_quantum_limits() -> None:
    reports = {r.name: r for r in audit_presets()}
    assert {"compact", "precise"} <= set(reports)
    # compact: 60- and 40-bit data primes + the 40-bit special prime
    assert reports["compact"].log_q_bits == 140 and reports["compact"].limit_bits == 202
    assert all(r.ok for r in reports.values())


def test_preset_above_quantum_limit_is_reported() -> None:
    preset = CkksPreset(
        name="edge", poly_modulus_degree=8192, data_prime_bits=(60, 60, 60), special_prime_bits=22
    )
    (report,) = audit_presets({"edge": preset})
    assert report.ok and report.log_q_bits == 202  # exactly at the limit is allowed
    object.__setattr__(preset, "special_prime_bits", 23)  # bypass the constructor's refusal
    (report,) = audit_presets({"edge": preset})
    assert not report.ok and "ABOVE" in report.explanation


def test_load_inventory_rejects_non_mappings(tmp_path: Path) -> None:
    bad = tmp_path / "inv.json"
    bad.write_text(json.dumps(["RSA-2048"]))
    with pytest.raises(ValueError, match="mapping"):
        load_inventory(bad)
    bad.write_text(json.dumps({"RSA-2048": 5}))
    with pytest.raises(ValueError, match="usage"):
        load_inventory(bad)


def test_cbom_validates_and_marks_vulnerable_assets(tmp_path: Path) -> None:
    findings = audit_inventory(load_inventory(LEGACY))
    path = write_cbom(findings, tmp_path / "cbom.json", version="0.1.0")
    doc = json.loads(path.read_text())
    assert doc["specVersion"] == "1.6" and doc["bomFormat"] == "CycloneDX"
    assets = {c["name"]: c for c in doc["components"]}
    assert set(assets) == {"RSA-2048", "ECDSA-P256", "ECDH-P256", "AES-128-GCM", "SHA-256"}
    for c in assets.values():
        assert c["type"] == "cryptographic-asset"
    level = {
        n: c["cryptoProperties"]["algorithmProperties"]["nistQuantumSecurityLevel"]
        for n, c in assets.items()
    }
    assert level == {"RSA-2048": 0, "ECDSA-P256": 0, "ECDH-P256": 0, "AES-128-GCM": 1, "SHA-256": 2}
    (dep,) = [d for d in doc["dependencies"] if d["ref"] == "app-fhe-agg"]
    assert len(dep["dependsOn"]) == 5


def test_cbom_of_own_deployment_validates() -> None:
    doc = json.loads(cbom_json(audit_inventory(default_deployment_inventory())))
    names = {c["name"] for c in doc["components"]}
    assert "X-Wing" in names and "COMPSIG-MLDSA65-Ed25519-SHA512" in names


def test_cbom_schema_validation_can_fail() -> None:
    """The validator really runs: a document missing required fields is refused."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    broken = json.dumps(
        {
            "bomFormat": "CycloneDX",
            "specVersion": "1.6",
            "components": [{"type": "cryptographic-asset"}],
        }
    )
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(broken) is not None


@pytest.mark.parametrize(
    ("usage", "confidential"),
    [
        ("model encryption", True),
        ("key exchange with the server", True),
        ("key-share sealing", True),
        ("TLS session keys", True),
        ("update signatures", False),
        ("checksums", False),
    ],
)
def test_unknown_algorithm_has_its_own_status_and_worst_case_risk(
    usage: str, confidential: bool
) -> None:
    (f,) = audit_inventory({"FrobCipher-9000": usage})
    assert f.status == "unknown" and f.quantum_vulnerable is None
    assert f.confidentiality is confidential
    assert f.risk is (Risk.HIGH if confidential else Risk.MEDIUM)
    assert f.at_least(Risk.MEDIUM) and f.at_least(Risk.HIGH) is confidential
    assert not f.at_least(Risk.CRITICAL)
    doc = json.loads(cbom_json([f]))
    props = {p["name"]: p["value"] for p in doc["components"][0]["properties"]}
    assert props["fhe-agg:status"] == "unknown"
