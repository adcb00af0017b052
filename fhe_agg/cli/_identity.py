"""``fhe-agg keys``, ``fhe-agg roster``, ``fhe-agg audit`` and ``fhe-agg audit-log``.

:func:`register` adds the commands to ``fhe_agg.cli.main``, whose group turns errors into one
line. The option choices come from the :class:`~fhe_agg.identity.Role` and
:class:`~fhe_agg.identity.Suite` enums; the rest of the library is imported inside each command.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from fhe_agg.cli._audit import _FILE, _SUITES, audit, audit_log
from fhe_agg.identity import Role

if TYPE_CHECKING:
    from fhe_agg.identity import Identity, Roster

__all__ = ["register"]

_ROLES = tuple(r.value for r in Role)
_OUT = click.Path(dir_okay=False, path_type=Path)


def _passphrase(path: Path | None) -> bytes | None:
    from fhe_agg.identity import read_passphrase_file

    return None if path is None else read_passphrase_file(path)


def _admin(key: Path, passphrase_file: Path | None) -> Identity:
    from fhe_agg.identity import load_identity

    return load_identity(key, passphrase=_passphrase(passphrase_file), role="admin")


#: ``--passphrase-file`` (click makes a new option each time the decorator is applied).
_passphrase_option = click.option(
    "--passphrase-file",
    type=_FILE,
    default=None,
    help="File whose first line is the key file's passphrase or key secret (`keys new-secret`).",
)


@click.group()
def keys() -> None:
    """Create and inspect member identities (key files)."""


@keys.command("new")
@click.option("--role", type=click.Choice(_ROLES), required=True, help="The member's role.")
@click.option("--id", "member_id", required=True, help="Member id (also the file name).")
@click.option(
    "--suite", type=click.Choice(_SUITES), default="pq-only", show_default=True, help="Suite."
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("keys"),
    show_default=True,
    help="Key directory (created with mode 0700).",
)
@_passphrase_option
def keys_new(
    role: str, member_id: str, suite: str, directory: Path, passphrase_file: Path | None
) -> None:
    """Write ID.key (private, 0600) and ID.pub.json (public identity) into DIR."""
    from fhe_agg.identity import Identity, write_identity
    from fhe_agg.identity._key_secret import is_key_secret

    passphrase = _passphrase(passphrase_file)
    identity = Identity.generate(id=member_id, role=role, suite=suite)
    files = write_identity(identity, directory, passphrase=passphrase)
    state = "unencrypted"
    if passphrase is not None:
        kdf = "key secret, HKDF" if is_key_secret(passphrase) else "passphrase, scrypt"
        state = f"encrypted: {kdf}"
    click.echo(f"private key  {files.private} (0600, {state})")
    click.echo(f"public       {files.public}")
    click.echo(f"fingerprint  {identity.fingerprint}")


@keys.command("new-secret")
@click.argument("path", type=_OUT)
def keys_new_secret(path: Path) -> None:
    """Write a generated key secret to PATH (a new file, mode 0600).

    Give it as --passphrase-file to `keys new` and to the node that loads the key. Use a key
    secret where a machine unlocks the key file without a person (a Flower SuperNode loads it at
    every message: HKDF instead of scrypt's ~0.08 s); keep a passphrase for a key a person
    holds. Whoever reads both the secret and the key file has the key: keep the secret on other
    storage (a secrets mount), as protected as the key file.
    """
    from fhe_agg.identity import write_key_secret

    write_key_secret(path)
    click.echo(f"key secret   {path} (0600; give it as --passphrase-file)")


@keys.command("show")
@click.argument("public_file", type=_FILE)
def keys_show(public_file: Path) -> None:
    """Verify a public identity file and print its id, role, suite and fingerprint."""
    from fhe_agg.identity import load_public_identity

    ident = load_public_identity(public_file)
    click.echo(f"{ident.id}  {ident.role.value}  {ident.suite.value}  {ident.fingerprint}")


@keys.command("rotate-request")
@click.option("--key", "old_key", type=_FILE, required=True, help="The member's current .key.")
@_passphrase_option
@click.option("--new", "new_public", type=_FILE, required=True, help="The new .pub.json.")
@click.option("--roster", "roster_path", type=_FILE, required=True, help="Current roster.")
@click.option("--admin-pub", type=_FILE, required=True, help="The admin's .pub.json.")
@click.option("--from-round", type=int, required=True, help="First round of the new key.")
@click.option("--out", type=_OUT, required=True, help="Where to write the signed request.")
def keys_rotate_request(
    old_key: Path,
    passphrase_file: Path | None,
    new_public: Path,
    roster_path: Path,
    admin_pub: Path,
    from_round: int,
    out: Path,
) -> None:
    """Sign a key-rotation request with the current key, for the admin to apply."""
    from fhe_agg.identity import KeyRotation, load_identity, load_public_identity
    from fhe_agg.identity import load_verified_roster as load_roster

    roster = load_roster(roster_path, admin_pub)
    old = load_identity(old_key, passphrase=_passphrase(passphrase_file))
    request = KeyRotation.request(
        old,
        load_public_identity(new_public),
        consortium=roster.consortium,
        from_round=from_round,
    )
    out.write_text(json.dumps(request.to_json(), indent=1, sort_keys=True) + "\n")
    click.echo(
        f"wrote {out}: {old.id} rotates to {request.new.fingerprint[:16]} from round {from_round}"
    )


@click.group()
def roster() -> None:
    """Create, change and verify the admin-signed consortium roster."""


#: ``--audit-log``: roster changes are recorded as ``roster.changed`` entries signed by the admin.
_audit_log_option = click.option(
    "--audit-log",
    type=_OUT,
    default=None,
    help="Record the change in this signed, hash-chained audit log (as the admin).",
)


def _save(new: Roster, out: Path, admin: Identity, audit_log: Path | None, change: str) -> None:
    new.save(out)
    if audit_log is not None:
        from fhe_agg.identity import AuditLog

        AuditLog(audit_log, key=admin.signing_key, actor=admin.id).record(
            "roster.changed",
            {
                "consortium": new.consortium,
                "version": new.version,
                "digest": new.digest,
                "change": change,
                "ceremony_required": new.ceremony_required,
            },
        )
    flag = "  (new key ceremony required)" if new.ceremony_required else ""
    click.echo(f"wrote {out}: {new.consortium} version {new.version}{flag}")


def _load_for_change(path: Path, admin: Identity) -> Roster:
    from fhe_agg.identity import Roster

    return Roster.load(path, admin=admin.public)


@roster.command("new")
@click.option("--admin", "admin_key", type=_FILE, required=True, help="The admin's .key file.")
@_passphrase_option
@click.option("--consortium", required=True, help="Consortium name.")
@click.option("--member", "members", type=_FILE, multiple=True, required=True, help="A .pub.json.")
@click.option(
    "--preset",
    default="precise",
    show_default=True,
    help="CKKS preset: precise (flooded decryption stays precise) or dp (= compact, for DP runs).",
)
@click.option("--min-clients", type=int, required=True, help="Fewest clients per round.")
@click.option("--threshold", type=int, required=True, help="Key holders needed to decrypt.")
@click.option("--from-round", type=int, default=0, show_default=True, help="First round.")
@click.option("--out", type=_OUT, required=True, help="Roster file to write.")
@_audit_log_option
def roster_new(
    admin_key: Path,
    passphrase_file: Path | None,
    consortium: str,
    members: tuple[Path, ...],
    preset: str,
    min_clients: int,
    threshold: int,
    from_round: int,
    out: Path,
    audit_log: Path | None,
) -> None:
    """Create version 1 of a roster from the members' public identity files."""
    from fhe_agg.identity import Roster, load_public_identity

    admin = _admin(admin_key, passphrase_file)
    new = Roster.create(
        consortium=consortium,
        admin=admin,
        members=[load_public_identity(m) for m in members],
        preset=preset,
        min_clients=min_clients,
        threshold=threshold,
        from_round=from_round,
    )
    _save(new, out, admin, audit_log, f"created with {len(new.members)} members")


@roster.command("verify")
@click.argument("roster_path", type=_FILE)
@click.option("--admin-pub", type=_FILE, required=True, help="The admin's .pub.json.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def roster_verify(roster_path: Path, admin_pub: Path, as_json: bool) -> None:
    """Verify a roster against the admin's public identity and summarise it."""
    from fhe_agg.identity import load_verified_roster

    r = load_verified_roster(roster_path, admin_pub)
    members = [
        {
            "id": m.id,
            "role": m.role.value,
            "suite": m.current.identity.suite.value,
            "fingerprint": m.current.identity.fingerprint,
            "keys": len(m.keys),
            "revoked_from_round": m.revoked_from_round,
        }
        for m in r.members
    ]
    summary = {
        "consortium": r.consortium,
        "version": r.version,
        "key_epoch": r.key_epoch,
        "preset": r.preset,
        "min_clients": r.min_clients,
        "threshold": r.threshold,
        "holders": list(r.holders),
        "ceremony_required": r.ceremony_required,
        "admin": r.admin.id,
        "members": members,
    }
    if as_json:
        click.echo(json.dumps(summary))
        return
    click.echo(
        f"ok: {r.consortium} version {r.version}, key epoch {r.key_epoch}, preset {r.preset}, "
        f"min_clients {r.min_clients}, threshold {r.threshold} of {len(r.holders)} holders"
    )
    for m in members:
        revoked = (
            ""
            if m["revoked_from_round"] is None
            else f"  revoked from round {m['revoked_from_round']}"
        )
        click.echo(
            f"  {m['id']:<16} {m['role']:<10} {m['suite']:<8} {str(m['fingerprint'])[:16]}{revoked}"
        )
    if r.ceremony_required:
        click.echo("a key holder was revoked: run a new key ceremony, then `roster new-epoch`")


def _change_options(fn: click.decorators.FC) -> click.decorators.FC:
    for option in reversed(
        (
            click.argument("roster_path", type=_FILE),
            click.option("--admin", "admin_key", type=_FILE, required=True, help="Admin .key."),
            _passphrase_option,
            click.option("--out", type=_OUT, default=None, help="New file [default: in place]."),
            _audit_log_option,
        )
    ):
        fn = option(fn)
    return fn


@roster.command("revoke")
@_change_options
@click.option("--member", "member_id", required=True, help="Id of the member to revoke.")
@click.option("--from-round", type=int, required=True, help="First round its keys are refused.")
@click.option("--reason", required=True, help="Why (recorded in the roster).")
def roster_revoke(
    roster_path: Path,
    admin_key: Path,
    passphrase_file: Path | None,
    out: Path | None,
    audit_log: Path | None,
    member_id: str,
    from_round: int,
    reason: str,
) -> None:
    """Revoke a member's keys from a round on (a holder: a new ceremony is required)."""
    admin = _admin(admin_key, passphrase_file)
    current = _load_for_change(roster_path, admin)
    new = current.revoke(member_id, from_round=from_round, reason=reason, admin=admin)
    change = f"revoked {member_id} from round {from_round}: {reason}"
    _save(new, out or roster_path, admin, audit_log, change)


@roster.command("rotate")
@_change_options
@click.option("--request", type=_FILE, required=True, help="From `keys rotate-request`.")
def roster_rotate(
    roster_path: Path,
    admin_key: Path,
    passphrase_file: Path | None,
    out: Path | None,
    audit_log: Path | None,
    request: Path,
) -> None:
    """Apply a key rotation signed by the member's current key."""
    from fhe_agg.identity import KeyRotation
    from fhe_agg.identity._encoding import read_bounded, strict_json

    data = read_bounded(request, 1 << 20, "rotation request")
    rotation = KeyRotation.from_json(strict_json(data))
    admin = _admin(admin_key, passphrase_file)
    new = _load_for_change(roster_path, admin).rotate(rotation, admin=admin)
    _save(new, out or roster_path, admin, audit_log, f"rotated the key of {rotation.member}")


@roster.command("add")
@_change_options
@click.option("--member", "member", type=_FILE, required=True, help="The new member's .pub.json.")
@click.option("--from-round", type=int, required=True, help="First round of the new member.")
def roster_add(
    roster_path: Path,
    admin_key: Path,
    passphrase_file: Path | None,
    out: Path | None,
    audit_log: Path | None,
    member: Path,
    from_round: int,
) -> None:
    """Add a member from its public identity file."""
    from fhe_agg.identity import load_public_identity

    admin = _admin(admin_key, passphrase_file)
    current = _load_for_change(roster_path, admin)
    identity = load_public_identity(member)
    new = current.add_member(identity, admin=admin, from_round=from_round)
    change = f"added {identity.id} ({identity.role.value}) from round {from_round}"
    _save(new, out or roster_path, admin, audit_log, change)


@roster.command("new-epoch")
@_change_options
def roster_new_epoch(
    roster_path: Path,
    admin_key: Path,
    passphrase_file: Path | None,
    out: Path | None,
    audit_log: Path | None,
) -> None:
    """Start the next key epoch (after a new key ceremony); clears `ceremony required`."""
    admin = _admin(admin_key, passphrase_file)
    new = _load_for_change(roster_path, admin).new_key_epoch(admin=admin)
    _save(new, out or roster_path, admin, audit_log, f"key epoch {new.key_epoch}")


def register(group: click.Group) -> None:
    """Add ``keys``, ``roster``, ``audit`` and ``audit-log`` to ``group``."""
    for command in (keys, roster, audit, audit_log):
        group.add_command(command)
