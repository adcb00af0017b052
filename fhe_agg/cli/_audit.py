"""``fhe-agg audit`` (quantum-risk audit, CycloneDX CBOM) and ``fhe-agg audit-log verify``."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from fhe_agg.identity import Policy, Risk, Suite

if TYPE_CHECKING:
    from fhe_agg.identity import Finding, SuiteVerifyKey

__all__ = ["audit", "audit_log"]

_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
_SUITES = tuple(s.value for s in Suite)
_ROSTER_FORMAT = b'"fhe-agg/roster/v1"'


def _inventory(
    source: Path | None, suite: str, preset: str, admin_pub: Path | None
) -> tuple[str, dict[str, str], bool]:
    """``(description, inventory, is a deployment)`` for a file, a roster or the default."""
    from fhe_agg.identity import (
        Roster,
        default_deployment_inventory,
        load_inventory,
        load_public_identity,
        roster_inventory,
    )
    from fhe_agg.identity._encoding import read_bounded
    from fhe_agg.identity._roster import MAX_ROSTER_BYTES, _parse

    if source is None:
        what = f"the fhe-agg default deployment (suite {suite}, preset {preset})"
        return what, default_deployment_inventory(suite, preset=preset), True
    data = read_bounded(source, MAX_ROSTER_BYTES, "roster or inventory")
    if _ROSTER_FORMAT not in data:
        return str(source), load_inventory(source), False
    if admin_pub is not None:
        r = Roster.from_bytes(data, admin=load_public_identity(admin_pub, role="admin"))
        return f"roster {source} (verified)", roster_inventory(r), True
    click.echo("note: roster signature not verified (pass --admin-pub to verify)", err=True)
    return f"roster {source} (signature not verified)", roster_inventory(_parse(data)), True


def _finding_json(f: Finding) -> dict[str, Any]:
    out = dataclasses.asdict(f)
    out["status"] = f.status
    out["risk"] = f.risk.value
    out["reasons"] = list(f.reasons)
    return out


def _print_findings(what: str, policy: str, findings: list[Finding]) -> None:
    click.echo(f"quantum-risk audit (policy {policy}) of {what}")
    for f in findings:
        flag = f.status.upper() if f.quantum_vulnerable is not False else f.status
        path = "confidentiality" if f.confidentiality else "integrity/other"
        click.echo(f"{f.risk.value:<8} {f.asset}: {f.usage}  [{flag}, {path}]")
        for reason in f.reasons:
            click.echo(f"         why: {reason}")
        if f.replacement != "-":
            click.echo(f"         replace with: {f.replacement}")


@click.command(short_help="Quantum-risk audit of a deployment or inventory (CycloneDX CBOM).")
@click.argument("inventory", type=_FILE, required=False)
@click.option("--cbom", type=click.Path(dir_okay=False, path_type=Path), help="Write a CBOM.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object, nothing else.")
@click.option(
    "--policy",
    type=click.Choice([p.value for p in Policy]),
    default="nist",
    show_default=True,
    help="Guidance applied on top of NIST's.",
)
@click.option(
    "--suite",
    type=click.Choice(_SUITES),
    default="hybrid",
    show_default=True,
    help="Suite of the default deployment (no INVENTORY).",
)
@click.option("--preset", default="precise", show_default=True, help="Default deployment preset.")
@click.option("--admin-pub", type=_FILE, default=None, help="Verify a roster INVENTORY first.")
@click.option(
    "--fail-on",
    type=click.Choice([r.value for r in Risk if r is not Risk.INFO]),
    default=None,
    help="Exit 1 if a finding is this severe or more (an unrecognised algorithm is high on a "
    "confidentiality path, medium elsewhere).",
)
@click.pass_context
def audit(
    ctx: click.Context,
    inventory: Path | None,
    cbom: Path | None,
    as_json: bool,
    policy: str,
    suite: str,
    preset: str,
    admin_pub: Path | None,
    fail_on: str | None,
) -> None:
    """Rate the quantum risk of INVENTORY and optionally write a CycloneDX 1.6 CBOM.

    INVENTORY is a YAML/JSON mapping `algorithm: usage` or a roster file (its suites and CKKS
    preset are audited); without it, fhe-agg's own default deployment is audited. With
    --fail-on LEVEL the exit code is 1 when a finding at LEVEL or above exists (for CI).
    """
    import fhe_agg
    from fhe_agg.ckks._params import get_preset
    from fhe_agg.identity import audit_inventory, audit_presets, write_cbom

    what, assets, deployment = _inventory(inventory, suite, preset, admin_pub)
    findings = audit_inventory(assets, policy=Policy(policy))
    presets = []
    if deployment:
        names = {a.split("-", 1)[1] for a in assets if a.startswith("CKKS-")}
        presets = audit_presets({n: get_preset(n) for n in names})
    if cbom is not None:
        write_cbom(findings, cbom, version=fhe_agg.__version__)
    vulnerable = [f.asset for f in findings if f.quantum_vulnerable]
    confidential = [f.asset for f in findings if f.quantum_vulnerable and f.confidentiality]
    unknown = [f.asset for f in findings if f.quantum_vulnerable is None]
    failing = [] if fail_on is None else [f.asset for f in findings if f.at_least(Risk(fail_on))]
    if as_json:
        out = {
            "source": what,
            "policy": policy,
            "findings": [_finding_json(f) for f in findings],
            "ckks_presets": [dataclasses.asdict(p) for p in presets],
            "quantum_vulnerable": vulnerable,
            "quantum_vulnerable_confidentiality": confidential,
            "unknown": unknown,
            "fail_on": fail_on,
            "failing": failing,
            "cbom": None if cbom is None else str(cbom),
        }
        click.echo(json.dumps(out))
    else:
        _print_summary(what, policy, findings, cbom, confidential=confidential, unknown=unknown)
    if failing:
        click.echo(
            f"error: {len(failing)} finding(s) at --fail-on {fail_on} or above: "
            f"{', '.join(failing)}",
            err=True,
        )
        ctx.exit(1)


def _print_summary(
    what: str,
    policy: str,
    findings: list[Finding],
    cbom: Path | None,
    *,
    confidential: list[str],
    unknown: list[str],
) -> None:
    _print_findings(what, policy, findings)
    vulnerable = sum(1 for f in findings if f.quantum_vulnerable)
    click.echo(
        f"summary: {vulnerable} quantum-vulnerable asset(s); in confidentiality paths: "
        f"{', '.join(confidential) or 'none'}; not recognised (unknown): "
        f"{', '.join(unknown) or 'none'}"
    )
    if cbom is not None:
        click.echo(f"wrote {cbom} (CycloneDX 1.6 CBOM, schema-validated)")


@click.group("audit-log")
def audit_log() -> None:
    """Check signed, hash-chained audit logs."""


def _log_keys(
    publics: tuple[Path, ...], roster_path: Path | None, admin_pub: Path | None
) -> dict[str, SuiteVerifyKey]:
    from fhe_agg.identity import load_public_identity, load_verified_roster

    keys: dict[str, SuiteVerifyKey] = {}
    if roster_path is not None:
        if admin_pub is None:
            raise ValueError("--roster: also pass --admin-pub to verify the roster")
        r = load_verified_roster(roster_path, admin_pub)
        keys[r.admin.id] = r.admin.signing_key
        keys.update({m.id: m.current.identity.signing_key for m in r.members})
    for path in publics:
        ident = load_public_identity(path)
        keys[ident.id] = ident.signing_key
    if not keys:
        raise ValueError("give the actors' keys: --pub FILE (repeatable) or --roster/--admin-pub")
    return keys


@audit_log.command("verify")
@click.argument("log_file", type=_FILE)
@click.option("--pub", "publics", type=_FILE, multiple=True, help="An actor's .pub.json.")
@click.option("--roster", "roster_path", type=_FILE, default=None, help="Take keys from a roster.")
@click.option("--admin-pub", type=_FILE, default=None, help="The roster admin's .pub.json.")
@click.option("--head", default=None, help="Expected hash of the last line (detects truncation).")
def audit_log_verify(
    log_file: Path,
    publics: tuple[Path, ...],
    roster_path: Path | None,
    admin_pub: Path | None,
    head: str | None,
) -> None:
    """Verify every line's signature, sequence number and hash chain; name the first bad line."""
    from fhe_agg.identity import verify_log

    count = verify_log(log_file, _log_keys(publics, roster_path, admin_pub), expected_head=head)
    click.echo(f"ok: {log_file}: {count} entries, signatures and hash chain verified")
