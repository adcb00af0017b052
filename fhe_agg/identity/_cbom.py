"""CycloneDX 1.6 cryptography bill of materials (CBOM) from audit findings.

Each :class:`~fhe_agg.identity.Finding` becomes a ``cryptographic-asset`` component with
``cryptoProperties.assetType = algorithm`` and ``algorithmProperties`` (``primitive``,
``parameterSetIdentifier``, ``classicalSecurityLevel``, ``nistQuantumSecurityLevel``, 0 = no
NIST category met). The application component depends on every asset. The document is checked
against the official 1.6 JSON schema (``JsonStrictValidator``, extra ``json-validation`` of
``cyclonedx-python-lib``) before it is returned. Spec: https://cyclonedx.org/docs/1.6/json/.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from cyclonedx.model import Property
from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.model.crypto import (
    AlgorithmProperties,
    CryptoAssetType,
    CryptoPrimitive,
    CryptoProperties,
)
from cyclonedx.output.json import JsonV1Dot6
from cyclonedx.schema import SchemaVersion

from fhe_agg.identity._audit import Finding

__all__ = ["build_cbom", "cbom_json", "write_cbom"]


def _ref(asset: str, taken: set[str]) -> str:
    base = "crypto-" + (re.sub(r"[^A-Za-z0-9.-]+", "-", asset).strip("-").lower() or "asset")
    ref, i = base, 2
    while ref in taken:
        ref, i = f"{base}-{i}", i + 1
    taken.add(ref)
    return ref


def build_cbom(
    findings: Sequence[Finding], *, application: str = "fhe-agg", version: str | None = None
) -> Bom:
    """A CycloneDX :class:`~cyclonedx.model.bom.Bom` with one crypto asset per finding."""
    app = Component(
        name=application,
        version=version,
        type=ComponentType.APPLICATION,
        bom_ref=f"app-{application}",
    )
    bom = Bom()
    bom.metadata.component = app
    taken: set[str] = set()
    assets = []
    for f in findings:
        props = AlgorithmProperties(
            primitive=CryptoPrimitive(f.primitive),
            parameter_set_identifier=f.parameter_set,
            classical_security_level=f.classical_bits,
            nist_quantum_security_level=f.nist_quantum_level,
        )
        component = Component(
            name=f.asset,
            type=ComponentType.CRYPTOGRAPHIC_ASSET,
            bom_ref=_ref(f.asset, taken),
            description=f.usage,
            crypto_properties=CryptoProperties(
                asset_type=CryptoAssetType.ALGORITHM, algorithm_properties=props, oid=f.oid
            ),
            properties=[
                Property(name="fhe-agg:risk", value=f.risk.value),
                Property(name="fhe-agg:status", value=f.status),
                Property(
                    name="fhe-agg:quantum-vulnerable",
                    value="unknown"
                    if f.quantum_vulnerable is None
                    else str(f.quantum_vulnerable).lower(),
                ),
                Property(name="fhe-agg:replacement", value=f.replacement),
                *(Property(name="fhe-agg:reason", value=r) for r in f.reasons),
            ],
        )
        bom.components.add(component)
        assets.append(component)
    bom.register_dependency(app, assets)
    return bom


def cbom_json(
    findings: Sequence[Finding], *, application: str = "fhe-agg", version: str | None = None
) -> str:
    """The CBOM as CycloneDX 1.6 JSON; ``ValueError`` if it fails the official schema."""
    text: str = JsonV1Dot6(
        build_cbom(findings, application=application, version=version)
    ).output_as_string(indent=2)
    # jsonschema's format checkers take seconds to import: load them only when validating.
    from cyclonedx.validation.json import JsonStrictValidator

    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    if error is not None:
        raise ValueError(f"CBOM fails the CycloneDX 1.6 schema: {error}")
    return text


def write_cbom(
    findings: Sequence[Finding],
    path: str | Path,
    *,
    application: str = "fhe-agg",
    version: str | None = None,
) -> Path:
    """Write the validated CBOM to ``path`` and return it."""
    out = Path(path)
    out.write_text(cbom_json(findings, application=application, version=version) + "\n")
    return out
