"""Every domain-separation label of fhe_agg, in one registry.

A label keeps one use of a hash or signature from ever being taken for another: ML-DSA contexts
(FIPS 204 ``ctx``), prefixes of SHA3/SHAKE inputs, HPKE ``info`` and the format tags of files on
disk. ``tests/test_domains.py`` checks that the labels are distinct and prefix-free and that
every label literal in the package's source is registered here, so a new one cannot be added
without being compared with all the others.

The labels keep the spellings they were first signed or hashed with (``fhe-agg/v1/...``,
``fhe_agg/...|``, ``fhe-agg/.../v1``): changing one changes every signature or digest made under
it, so unifying them is a protocol version change, not a refactoring.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["DOMAINS", "Domain"]

Kind = Literal["signature", "hash", "seal", "format"]


@dataclass(frozen=True)
class Domain:
    """What a label separates, the module (under ``fhe_agg``) using it, and its bytes."""

    kind: Kind
    module: str
    label: bytes


def _d(kind: Kind, module: str, label: str) -> Domain:
    return Domain(kind, module, label.encode())


DOMAINS: dict[str, Domain] = {
    # ML-DSA signature contexts
    "update": _d("signature", "protocol._messages", "fhe-agg/v1/update"),
    "abort-vote": _d("signature", "holder._abort", "fhe-agg/v1/abort-vote"),
    "ceremony": _d("signature", "ceremony._messages", "fhe_agg/ceremony/v1"),
    "audit-log": _d("signature", "identity._auditlog", "fhe-agg/v1/audit-log"),
    "identity": _d("signature", "identity._identity", "fhe-agg/v1/identity"),
    "key-rotation": _d("signature", "identity._rotation", "fhe-agg/v1/key-rotation"),
    "roster": _d("signature", "identity._roster", "fhe-agg/v1/roster"),
    "flower-public-key": _d("signature", "flower._records", "fhe_agg/flower/public-key/v1"),
    "flower-endorse": _d("hash", "flower._records", "fhe_agg/flower/endorse|"),
    "flower-pin-memo": _d("hash", "flower._pin_memo", "fhe_agg/flower/pin-memo|"),
    # hash and XOF prefixes
    "aggregate": _d("hash", "protocol._messages", "fhe_agg/aggregate/v2|"),
    "ceremony-commit": _d("hash", "ceremony._messages", "fhe_agg/ceremony-commit|"),
    "ceremony-id": _d("hash", "ceremony._messages", "fhe_agg/ceremony|"),
    "ceremony-transcript": _d("hash", "ceremony._transcript", "fhe_agg/ceremony-transcript|"),
    "crs": _d("hash", "ceremony._ceremony", "fhe_agg/crs|"),
    "expand": _d("hash", "hazmat.sampling", "fhe_agg/expand|"),
    "derived-random": _d("hash", "_parallel", "fhe_agg/derived-random|"),
    "zkproof": _d("hash", "hazmat.zkproof", "fhe_agg/zkproof/v2"),
    "zkproof-challenge": _d("hash", "hazmat.zkproof", "fhe_agg/zkproof/challenge|"),
    "wellformed": _d("hash", "protocol._wellformed", "fhe-agg/v1/wellformed"),
    "proofs-digest": _d("hash", "protocol._wellformed", "fhe-agg/v2/proofs"),
    "proven-chunks": _d("hash", "protocol._wellformed", "fhe-agg/v1/proven-chunks"),
    "verified-proof": _d("hash", "protocol._wellformed", "fhe-agg/v4/verified-proof|"),
    "merkle-leaf": _d("hash", "protocol._merkle", "fhe_agg/merkle-leaf/v2|"),
    "merkle-node": _d("hash", "protocol._merkle", "fhe_agg/merkle-node/v2|"),
    "layout": _d("hash", "ckks._packing", "fhe_agg/layout|"),
    "params": _d("hash", "protocol._config", "fhe_agg/params|"),
    "public-key": _d("hash", "ckks._keys", "fhe_agg/public-key|"),
    "seeded-random": _d("hash", "ckks._random", "fhe_agg/seeded-random|"),
    "store-sum": _d("hash", "server._store", "fhe_agg/store/sum/v2|"),
    "update-vector": _d("hash", "client._client", "fhe_agg/update-vector|"),
    "passphrase-check": _d("hash", "identity._keystore", "fhe-agg/keystore/v1/passphrase-check|"),
    "key-secret-check": _d("hash", "identity._key_secret", "fhe-agg/keystore/v1/key-secret-check"),
    "key-secret-seal": _d("hash", "identity._key_secret", "fhe-agg/keystore/v1/key-secret-seal"),
    # HPKE info
    "seal": _d("seal", "identity._sealing", "fhe-agg/seal/v1"),
    # format tags of files and documents
    "identity-file": _d("format", "identity._identity", "fhe-agg/identity/v1"),
    "key-rotation-file": _d("format", "identity._rotation", "fhe-agg/key-rotation/v1"),
    "private-key-file": _d("format", "identity._keystore", "fhe-agg/private-key/v1"),
    "key-secret": _d("format", "identity._key_secret", "fhe-agg/key-secret/v1:"),
    "roster-file": _d("format", "identity._roster_model", "fhe-agg/roster/v1"),
    "pin-memo-file": _d("format", "flower._pin_memo", "fhe_agg/flower/pin-memo/v1"),
}
