"""``fhe-agg keys``, ``roster``, ``audit`` and ``audit-log`` end to end, with real key files."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from fhe_agg.identity import AuditLog, load_identity, load_verified_roster

from .helpers import one_line_error

LEGACY = Path(__file__).resolve().parents[2] / "examples" / "inventory_legacy.yaml"
SECRET = "s3cret passphrase"


@pytest.fixture
def site(tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Key files for an admin (passphrase-protected), three clients, two holders, an aggregator,
    and a signed roster, all made through the CLI."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pw").write_text(SECRET + "\n")
    made = [("admin", "admin", "pq-only"), ("agg", "aggregator", "pq-only")]
    made += [(c, "client", "pq-only") for c in ("alpha", "bravo", "charlie")]
    made += [("h1", "holder", "pq-only"), ("h2", "holder", "hybrid")]
    for member_id, role, suite in made:
        extra = ["--passphrase-file", "pw"] if role == "admin" else []
        result = cli("keys", "new", "--role", role, "--id", member_id, "--suite", suite, *extra)
        assert result.exit_code == 0, result.output
    members = [a for m in made[1:] for a in ("--member", f"keys/{m[0]}.pub.json")]
    result = cli(
        "roster", "new", "--admin", "keys/admin.key", "--passphrase-file", "pw",
        "--consortium", "acme", *members, "--min-clients", "2", "--threshold", "2",
        "--out", "roster.json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "acme version 1" in result.stdout
    return {"dir": tmp_path / "keys", "roster": tmp_path / "roster.json"}


def _admin(*args: str) -> list[str]:
    return [*args, "--admin", "keys/admin.key", "--passphrase-file", "pw"]


def test_keys_new_writes_protected_files(site: dict[str, Path], cli: Any) -> None:
    assert stat.S_IMODE(site["dir"].stat().st_mode) == 0o700
    assert stat.S_IMODE((site["dir"] / "alpha.key").stat().st_mode) == 0o600
    assert "ENCRYPTED PRIVATE KEY" in (site["dir"] / "admin.key").read_text()
    assert "ENCRYPTED" not in (site["dir"] / "alpha.key").read_text()
    assert load_identity(site["dir"] / "h2.key").suite.value == "hybrid"
    shown = cli("keys", "show", "keys/h2.pub.json")
    assert shown.exit_code == 0 and shown.stdout.startswith("h2  holder  hybrid  ")
    again = cli("keys", "new", "--role", "client", "--id", "alpha")
    assert again.exit_code == 2
    one_line_error(again, "refusing to overwrite")


def test_key_file_errors_are_one_actionable_line(site: dict[str, Path], cli: Any) -> None:
    (site["dir"] / "bad-pw").write_text("guess\n")
    wrong = cli("roster", "verify", "roster.json", "--admin-pub", "keys/admin.key")
    one_line_error(wrong, "private key file", "pass the .pub.json")
    args = ["roster", "add", "roster.json", "--member", "keys/h1.pub.json", "--from-round", "1"]
    result = cli(*args, "--admin", "keys/admin.key", "--passphrase-file", "keys/bad-pw")
    line = one_line_error(result, "wrong passphrase", "admin.key")
    assert "guess" not in result.output and SECRET not in line
    one_line_error(cli(*args, "--admin", "keys/admin.key"), "is encrypted", "--passphrase-file")
    one_line_error(cli(*args, "--admin", "keys/alpha.key"), "role client, expected admin")
    (site["dir"] / "admin.key").chmod(0o644)
    one_line_error(cli(*_admin(*args)), "chmod 600")


def test_roster_verify_and_refusals(site: dict[str, Path], cli: Any) -> None:
    ok = cli("roster", "verify", "roster.json", "--admin-pub", "keys/admin.pub.json", "--json")
    assert ok.exit_code == 0, ok.output
    summary = json.loads(ok.stdout)
    assert summary["version"] == 1 and summary["holders"] == ["h1", "h2"]
    assert {m["id"] for m in summary["members"]} == {"agg", "alpha", "bravo", "charlie", "h1", "h2"}
    result = cli("keys", "new", "--role", "admin", "--id", "admin", "--dir", "other")
    assert result.exit_code == 0
    one_line_error(
        cli("roster", "verify", "roster.json", "--admin-pub", "other/admin.pub.json"),
        "not the expected",
    )
    text = site["roster"].read_text().replace('"min_clients": 2', '"min_clients": 1')
    Path("edited.json").write_text(text)
    one_line_error(
        cli("roster", "verify", "edited.json", "--admin-pub", "keys/admin.pub.json"),
        "edited.json",
        "signature does not verify",
    )


def test_roster_changes_revoke_rotate_add_epoch(site: dict[str, Path], cli: Any) -> None:
    revoke = cli(
        *_admin("roster", "revoke", "roster.json"),
        "--member", "bravo", "--from-round", "3", "--reason", "laptop stolen",
    )  # fmt: skip
    assert revoke.exit_code == 0 and "version 2" in revoke.stdout
    holder = cli(
        *_admin("roster", "revoke", "roster.json"),
        "--member", "h2", "--from-round", "3", "--reason", "left", "--out", "v3.json",
    )  # fmt: skip
    assert "new key ceremony required" in holder.stdout
    assert cli("keys", "new", "--role", "client", "--id", "alpha", "--dir", "new").exit_code == 0
    request = cli(
        "keys", "rotate-request", "--key", "keys/alpha.key", "--new", "new/alpha.pub.json",
        "--roster", "v3.json", "--admin-pub", "keys/admin.pub.json", "--from-round", "5",
        "--out", "rotation.json",
    )  # fmt: skip
    assert request.exit_code == 0, request.output
    rotate = cli(*_admin("roster", "rotate", "v3.json"), "--request", "rotation.json")
    assert rotate.exit_code == 0, rotate.output
    # a second application is stale: the request no longer comes from the current key
    stale = cli(*_admin("roster", "rotate", "v3.json"), "--request", "rotation.json")
    one_line_error(stale, "current key")
    assert cli("keys", "new", "--role", "client", "--id", "delta").exit_code == 0
    add = cli(
        *_admin("roster", "add", "v3.json"), "--member", "keys/delta.pub.json", "--from-round", "4"
    )
    assert add.exit_code == 0, add.output
    epoch = cli(*_admin("roster", "new-epoch", "v3.json"))
    assert epoch.exit_code == 0 and "ceremony" not in epoch.stdout
    final = load_verified_roster("v3.json", "keys/admin.pub.json")
    assert final.version == 6 and final.key_epoch == 2 and not final.ceremony_required
    assert len(final.member("alpha").keys) == 2 and "delta" in final.client_keys(4)
    assert final.member("bravo").revoked_from_round == 3
    text = cli("roster", "verify", "v3.json", "--admin-pub", "keys/admin.pub.json")
    assert "revoked from round 3" in text.stdout


def test_audit_legacy_inventory_with_cbom(tmp_path: Path, cli: Any) -> None:
    out = tmp_path / "out.json"
    result = cli("audit", LEGACY, "--cbom", out)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    for asset in ("RSA-2048", "ECDH-P256", "ECDSA-P256"):
        header = next(line for line in lines if f" {asset}:" in line)
        assert "QUANTUM-VULNERABLE" in header
    assert "deprecated after 2030, disallowed after 2035" in result.stdout
    aes = next(line for line in lines if " AES-128-GCM:" in line)
    assert "quantum-safe" in aes and aes.startswith("low")
    assert "Grover" in result.stdout
    assert "in confidentiality paths: ECDH-P256, RSA-2048" in result.stdout
    text = out.read_text()
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    bom = json.loads(text)
    assert bom["specVersion"] == "1.6"
    levels = {
        c["name"]: c["cryptoProperties"]["algorithmProperties"].get("nistQuantumSecurityLevel")
        for c in bom["components"]
    }
    assert levels["RSA-2048"] == levels["ECDH-P256"] == levels["ECDSA-P256"] == 0
    assert levels["AES-128-GCM"] == 1


@pytest.mark.parametrize("suite", ["pq-only", "hybrid", "cnsa2", "slh-dsa"])
def test_default_deployment_has_no_vulnerable_confidentiality_path(cli: Any, suite: str) -> None:
    result = cli("audit", "--json", "--suite", suite)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["quantum_vulnerable"] == [] and report["quantum_vulnerable_confidentiality"] == []
    assert report["ckks_presets"] and all(p["ok"] for p in report["ckks_presets"])


def test_audit_of_a_roster(site: dict[str, Path], cli: Any) -> None:
    verified = cli("audit", "roster.json", "--admin-pub", "keys/admin.pub.json", "--json")
    assert verified.exit_code == 0, verified.output
    report = json.loads(verified.stdout)
    assets = {f["asset"]: f for f in report["findings"]}
    assert {"ML-DSA-65", "COMPSIG-MLDSA65-Ed25519-SHA512", "X-Wing", "CKKS-precise"} <= set(assets)
    assert "key holders" in assets["COMPSIG-MLDSA65-Ed25519-SHA512"]["usage"]
    assert report["quantum_vulnerable_confidentiality"] == []
    unverified = cli("audit", "roster.json")
    assert unverified.exit_code == 0 and "not verified" in unverified.stderr
    assert cli("keys", "new", "--role", "admin", "--id", "x", "--dir", "other").exit_code == 0
    one_line_error(
        cli("audit", "roster.json", "--admin-pub", "other/x.pub.json"), "not the expected"
    )


def test_audit_refuses_a_broken_inventory(tmp_path: Path, cli: Any) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("RSA-2048: [unclosed\n")
    one_line_error(cli("audit", bad), "not valid YAML")
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    one_line_error(cli("audit", listed), "mapping")


def test_audit_log_verify_needs_keys_and_reads_roster_keys(site: dict[str, Path], cli: Any) -> None:
    agg = load_identity(site["dir"] / "agg.key")
    log = AuditLog("audit.jsonl", key=agg.signing_key, actor="agg")
    log.record("round.opened", {"round": 1})
    one_line_error(cli("audit-log", "verify", "audit.jsonl"), "--pub")
    by_roster = cli(
        "audit-log", "verify", "audit.jsonl", "--roster", "roster.json",
        "--admin-pub", "keys/admin.pub.json",
    )  # fmt: skip
    assert by_roster.exit_code == 0, by_roster.output
    one_line_error(
        cli("audit-log", "verify", "audit.jsonl", "--pub", "keys/alpha.pub.json"),
        "line 1",
        "unknown actor",
    )


def test_roster_new_defaults_to_the_precise_preset(site: dict[str, Path], cli: Any) -> None:
    """2-of-2 holders flood every decryption; `compact` would lose precision (~3e-3)."""
    ok = cli("roster", "verify", "roster.json", "--admin-pub", "keys/admin.pub.json", "--json")
    assert json.loads(ok.stdout)["preset"] == "precise"


def test_a_public_file_given_for_a_private_key_is_named_as_such(
    site: dict[str, Path], cli: Any
) -> None:
    assert stat.S_IMODE((site["dir"] / "admin.pub.json").stat().st_mode) & 0o077  # readable
    result = cli(
        "roster", "new", "--admin", "keys/admin.pub.json", "--passphrase-file", "pw",
        "--consortium", "acme", "--member", "keys/alpha.pub.json", "--member", "keys/h1.pub.json",
        "--min-clients", "1", "--threshold", "1", "--out", "other.json",
    )  # fmt: skip
    line = one_line_error(result, "keys/admin.pub.json", "public identity file", "private .key")
    assert "chmod" not in line
    (site["dir"] / "alpha.key").chmod(0o644)  # a real private key file still gets the chmod hint
    one_line_error(cli(*_admin("roster", "add", "roster.json"), "--member", "keys/alpha.key",
                       "--from-round", "1"), "private key file")  # fmt: skip
    shown = cli("roster", "revoke", "roster.json", "--admin", "keys/alpha.key", "--member", "h1",
                "--from-round", "1", "--reason", "x")  # fmt: skip
    one_line_error(shown, "chmod 600 keys/alpha.key")


def test_roster_without_holders_or_clients_says_what_to_add(
    site: dict[str, Path], cli: Any
) -> None:
    base = ["roster", "new", "--admin", "keys/admin.key", "--passphrase-file", "pw"]
    base += ["--consortium", "acme", "--out", "other.json", "--min-clients", "1"]
    clients = ["--member", "keys/alpha.pub.json", "--member", "keys/bravo.pub.json"]
    no_holders = cli(*base, *clients, "--threshold", "2")
    line = one_line_error(no_holders, "threshold 2", "0 key holder", "--role holder")
    assert "1..0" not in line
    no_clients = cli(*base, "--member", "keys/h1.pub.json", "--threshold", "1")
    one_line_error(no_clients, "min_clients 1", "0 client", "--role client")


def test_audit_gates_ci_with_fail_on_and_reports_unknown_algorithms(
    tmp_path: Path, cli: Any
) -> None:
    inventory = tmp_path / "inv.yaml"
    inventory.write_text(
        "FrobCipher-9000: model encryption\nFrobSign-2: update signatures\n"
        "AES-256-GCM: sealed key shares\n"
    )
    report = cli("audit", inventory, "--json")
    assert report.exit_code == 0, report.output  # no --fail-on: report only
    out = json.loads(report.stdout)
    findings = {f["asset"]: f for f in out["findings"]}
    frob = findings["FrobCipher-9000"]
    assert frob["status"] == "unknown" and frob["quantum_vulnerable"] is None
    assert frob["confidentiality"] and frob["risk"] == "high"
    assert (
        findings["FrobSign-2"]["risk"] == "medium" and not findings["FrobSign-2"]["confidentiality"]
    )
    assert out["unknown"] == ["FrobCipher-9000", "FrobSign-2"]
    text = cli("audit", inventory)
    assert "[UNKNOWN, confidentiality]" in text.stdout and "not recognised (unknown)" in text.stdout
    for level, code, failing in [
        ("critical", 0, []),
        ("high", 1, ["FrobCipher-9000"]),
        ("medium", 1, ["FrobCipher-9000", "FrobSign-2"]),
        ("low", 1, ["FrobCipher-9000", "FrobSign-2"]),
    ]:
        gated = cli("audit", inventory, "--json", "--fail-on", level, "--cbom", tmp_path / "c.json")
        assert gated.exit_code == code, (level, gated.output)
        assert json.loads(gated.stdout)["failing"] == failing  # stdout stays one JSON object
        assert ("error:" in gated.stderr) == bool(failing)
    cbom = (tmp_path / "c.json").read_text()
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(cbom) is None
    frob_props = next(c for c in json.loads(cbom)["components"] if c["name"] == "FrobCipher-9000")
    props = {p["name"]: p["value"] for p in frob_props["properties"]}
    assert props["fhe-agg:status"] == "unknown" and props["fhe-agg:quantum-vulnerable"] == "unknown"
    assert cli("audit", "--fail-on", "low").exit_code == 0  # own deployment: nothing above info
    assert cli("audit", LEGACY, "--fail-on", "high").exit_code == 1  # RSA-2048, ECDH-P256
    assert cli("audit", "--fail-on", "info").exit_code == 2  # not a level to gate on


def test_keys_new_secret_then_a_key_file_sealed_under_it(
    tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    made = cli("keys", "new-secret", "node.secret")
    assert made.exit_code == 0, made.output
    assert stat.S_IMODE((tmp_path / "node.secret").stat().st_mode) == 0o600
    secret = (tmp_path / "node.secret").read_bytes().strip()
    assert secret.startswith(b"fhe-agg/key-secret/v1:") and secret.decode() not in made.output
    one_line_error(cli("keys", "new-secret", "node.secret"), "refusing to overwrite")
    assert (tmp_path / "node.secret").read_bytes().strip() == secret
    args = ("keys", "new", "--role", "admin", "--id", "adm", "--passphrase-file", "node.secret")
    result = cli(*args)
    assert result.exit_code == 0, result.output
    assert "encrypted: key secret, HKDF" in result.stdout
    key = tmp_path / "keys" / "adm.key"
    assert json.loads(key.read_text())["kdf"]["name"] == "hkdf-sha256"
    assert load_identity(key, passphrase=secret).id == "adm"
    (tmp_path / "pw").write_text(SECRET + "\n")
    args = ("roster", "new", "--admin", key, "--consortium", "c", "--member", "keys/adm.pub.json")
    args += ("--min-clients", "1", "--threshold", "1", "--out", "roster.json")
    refused = cli(*args, "--passphrase-file", "pw")
    one_line_error(refused, "adm.key", "generated key secret, not a passphrase", "new-secret")
