"""fhe_agg.identity exports exactly the intended names, each documented."""

from __future__ import annotations

import fhe_agg.errors
import fhe_agg.identity

EXPECTED = {
    "AUDIT_LOG_CONTEXT",
    "MAX_SEALED_PLAINTEXT",
    "AuditLog",
    "AuditLogError",
    "CorruptKeyFile",
    "Finding",
    "Identity",
    "InsecureKeyFile",
    "InvalidRoster",
    "KeyFiles",
    "KeyRotation",
    "Member",
    "MemberKey",
    "Policy",
    "PresetReport",
    "PublicIdentity",
    "RevokedKey",
    "Risk",
    "Role",
    "Roster",
    "SealInfo",
    "SealingError",
    "SealingPrivateKey",
    "SealingPublicKey",
    "Suite",
    "SuiteSigningKey",
    "SuiteSpec",
    "SuiteVerifyKey",
    "WrongPassphrase",
    "WrongSuite",
    "audit_inventory",
    "audit_presets",
    "build_cbom",
    "cbom_json",
    "default_deployment_inventory",
    "load_identity",
    "load_inventory",
    "load_public_identity",
    "load_verified_roster",
    "new_key_secret",
    "open_sealed",
    "read_passphrase_file",
    "roster_inventory",
    "seal",
    "verify_log",
    "write_cbom",
    "write_identity",
    "write_key_secret",
}


def test_identity_exports_exactly_the_intended_names() -> None:
    assert set(fhe_agg.identity.__all__) == EXPECTED
    for name in EXPECTED:
        assert hasattr(fhe_agg.identity, name), name


def test_identity_errors_are_typed_and_drawn_in_the_hierarchy() -> None:
    doc = fhe_agg.errors.__doc__ or ""
    for name in EXPECTED:
        obj = getattr(fhe_agg.identity, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, fhe_agg.FheAggError), name
            assert name in doc, f"{name} missing from the hierarchy drawing"


def test_identity_public_callables_have_docstrings() -> None:
    for name in EXPECTED:
        obj = getattr(fhe_agg.identity, name)
        if callable(obj):
            assert obj.__doc__, name
