"""Identity, sealing and audit for fhe_agg: crypto suites selectable per deployment.

* :class:`Suite` picks the signature and KEM algorithms (``pq-only``, ``hybrid``, ``cnsa2``,
  ``slh-dsa``); :class:`SuiteSigningKey` / :class:`SuiteVerifyKey` sign and verify under it.
* :class:`Identity` / :class:`PublicIdentity` are a member's keys (id, :class:`Role`, suite,
  signature and sealing keys); :func:`write_identity`, :func:`load_identity` and
  :func:`load_public_identity` keep them on disk (seed-form PKCS#8, 0600 files, 0700 directory),
  under a person's passphrase (scrypt) or, where a machine unlocks the key, a generated key secret
  (:func:`new_key_secret` / :func:`write_key_secret`, HKDF).
* :class:`Roster` is the admin-signed consortium roster (members, preset, ``min_clients``,
  threshold, key rotation via :class:`KeyRotation`, revocation); :func:`load_verified_roster`
  reads and verifies one, and :meth:`Roster.client_keys` gives the aggregator its roster.
* :func:`seal` / :func:`open_sealed` encrypt a small secret to one recipient with HPKE, bound to a
  :class:`SealInfo` (consortium, epoch, sender, recipient, purpose).
* :func:`audit_inventory` / :func:`audit_presets` rate an inventory's quantum risk
  (:func:`roster_inventory` turns a roster into one); :func:`write_cbom` records it as a
  CycloneDX 1.6 CBOM.
* :class:`AuditLog` appends signed, hash-chained JSON lines; :func:`verify_log` checks them.
"""

from fhe_agg.errors import (
    CorruptKeyFile,
    InsecureKeyFile,
    InvalidRoster,
    RevokedKey,
    WrongPassphrase,
)
from fhe_agg.identity._audit import (
    Finding,
    Policy,
    PresetReport,
    Risk,
    audit_inventory,
    audit_presets,
    default_deployment_inventory,
    load_inventory,
    roster_inventory,
)
from fhe_agg.identity._auditlog import AUDIT_LOG_CONTEXT, AuditLog, AuditLogError, verify_log
from fhe_agg.identity._cbom import build_cbom, cbom_json, write_cbom
from fhe_agg.identity._identity import Identity, PublicIdentity, Role
from fhe_agg.identity._key_secret import new_key_secret, write_key_secret
from fhe_agg.identity._keystore import (
    KeyFiles,
    load_identity,
    load_public_identity,
    read_passphrase_file,
    write_identity,
)
from fhe_agg.identity._roster import Roster, load_verified_roster
from fhe_agg.identity._roster_model import Member, MemberKey
from fhe_agg.identity._rotation import KeyRotation
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
]
