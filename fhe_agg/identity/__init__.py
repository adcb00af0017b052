"""Identity, sealing and audit for fhe_agg: crypto suites selectable per deployment.

* :class:`Suite` picks the signature and KEM algorithms (``pq-only``, ``hybrid``, ``cnsa2``,
  ``slh-dsa``); :class:`SuiteSigningKey` / :class:`SuiteVerifyKey` sign and verify under it.
* :func:`seal` / :func:`open_sealed` encrypt a small secret to one recipient with HPKE, bound to a
  :class:`SealInfo` (consortium, epoch, sender, recipient, purpose).
* :func:`audit_inventory` / :func:`audit_presets` rate an inventory's quantum risk;
  :func:`write_cbom` records it as a CycloneDX 1.6 CBOM.
* :class:`AuditLog` appends signed, hash-chained JSON lines; :func:`verify_log` checks them.
"""

from __future__ import annotations

from fhe_agg.identity._audit import (
    Finding,
    Policy,
    PresetReport,
    Risk,
    audit_inventory,
    audit_presets,
    default_deployment_inventory,
    load_inventory,
)
from fhe_agg.identity._auditlog import AUDIT_LOG_CONTEXT, AuditLog, AuditLogError, verify_log
from fhe_agg.identity._cbom import build_cbom, cbom_json, write_cbom
from fhe_agg.identity._sealing import (
    MAX_SEALED_PLAINTEXT,
    SealInfo,
    SealingError,
    SealingPrivateKey,
    SealingPublicKey,
    open_sealed,
    seal,
)
from fhe_agg.identity._suites import (
    Suite,
    SuiteSigningKey,
    SuiteSpec,
    SuiteVerifyKey,
    WrongSuite,
)

__all__ = [
    "AUDIT_LOG_CONTEXT",
    "MAX_SEALED_PLAINTEXT",
    "AuditLog",
    "AuditLogError",
    "Finding",
    "Policy",
    "PresetReport",
    "Risk",
    "SealInfo",
    "SealingError",
    "SealingPrivateKey",
    "SealingPublicKey",
    "Suite",
    "SuiteSigningKey",
    "SuiteSpec",
    "SuiteVerifyKey",
    "WrongSuite",
    "audit_inventory",
    "audit_presets",
    "build_cbom",
    "cbom_json",
    "default_deployment_inventory",
    "load_inventory",
    "open_sealed",
    "seal",
    "verify_log",
    "write_cbom",
]
