"""A consortium deployment read from disk: the admin-signed roster and every member's key file.

``fhe-agg simulate --roster`` plays every member of a real roster in one process, so it needs
each member's private key file (``<id>.key`` in the key directory, as ``fhe-agg keys new``
writes them). Everything is verified before use: the roster against the admin's public identity,
each key file against the roster's current public key of that member (a stale or foreign key
file is refused), and roles. Revoked clients are kept: they still try to take part, and the
aggregator refuses their updates from the revocation round on, with the reason in the audit log.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from fhe_agg.identity import Identity, Role, Roster, load_identity, load_verified_roster
from fhe_agg.protocol._signing import SigningKey

__all__ = ["Deployment", "load_deployment", "load_member_identity"]


@dataclass(frozen=True, eq=False)
class Deployment:
    """A verified roster with the private identities of the members it plays."""

    roster: Roster
    clients: Mapping[str, SigningKey]  # every client, revoked ones included
    holders: Mapping[str, Identity]  # the holders not revoked: the key ceremony's members
    aggregator: Identity | None

    def __repr__(self) -> str:
        return (
            f"Deployment({self.roster.consortium!r}, clients={len(self.clients)}, "
            f"holders={len(self.holders)}, aggregator={self.aggregator is not None})"
        )


def load_member_identity(
    roster: Roster,
    path: str | Path,
    *,
    passphrase: bytes | None = None,
    member_id: str | None = None,
) -> Identity:
    """The private identity in key file ``path``, checked against ``roster``: its id names a
    member (``member_id`` if given), with that member's role and current public key.

    Raises the keystore's errors for a bad key file and ``ValueError`` for a key file of
    another member, role or key (rotated or foreign) than the roster lists.
    """
    p = Path(path)
    if member_id is None:
        identity = load_identity(p, passphrase=passphrase)
        try:
            member = roster.member(identity.id)
        except KeyError:
            raise ValueError(
                f"{p}: {identity.id!r} is no member of roster {roster.consortium!r}"
            ) from None
        if identity.role is not member.role:
            raise ValueError(
                f"{p}: {identity.id!r} has role {identity.role.value}, the roster lists "
                f"{member.role.value}"
            )
    else:
        member = roster.member(member_id)
        identity = load_identity(p, passphrase=passphrase, role=member.role)
    if identity.id != member.id or (identity.fingerprint != member.current.identity.fingerprint):
        raise ValueError(
            f"{p}: not the key roster {roster.consortium!r} version {roster.version} lists "
            f"for {member.id!r} (rotated or foreign key file)"
        )
    return identity


def _identity(roster: Roster, keys_dir: Path, member_id: str, passphrase: bytes | None) -> Identity:
    path = keys_dir / f"{member_id}.key"
    if not path.is_file():
        raise ValueError(
            f"{path}: no key file for roster member {member_id!r} (the simulation plays every "
            "member, so it needs each member's .key in --keys)"
        )
    return load_member_identity(roster, path, passphrase=passphrase, member_id=member_id)


def load_deployment(
    roster_path: str | Path,
    admin_public_path: str | Path,
    keys_dir: str | Path,
    *,
    passphrase: bytes | None = None,
) -> Deployment:
    """Verify the roster and load every client, holder and aggregator key file it names.

    Raises :class:`~fhe_agg.identity.InvalidRoster` for a roster that does not verify, the
    keystore's errors for a bad key file, ``ValueError`` for a missing or mismatched key file or
    a roster without enough holders for its threshold, and
    :class:`~fhe_agg.identity.WrongSuite` for a client or holder whose suite cannot sign updates
    or ceremony messages (only ``pq-only`` today).
    """
    roster = load_verified_roster(roster_path, admin_public_path)
    keys = Path(keys_dir)
    by_role: dict[Role, list[str]] = {role: [] for role in Role}
    for member in roster.members:
        by_role[member.role].append(member.id)
    clients = {
        c: _identity(roster, keys, c, passphrase).update_signing_key() for c in by_role[Role.CLIENT]
    }
    holders = {h: _identity(roster, keys, h, passphrase) for h in roster.holders}
    for identity in holders.values():
        identity.update_signing_key()  # WrongSuite for a holder that cannot sign the ceremony
    if len(holders) < roster.threshold:
        raise ValueError(
            f"roster {roster.consortium!r}: {len(holders)} key holders not revoked, fewer than "
            f"its threshold {roster.threshold}"
        )
    if len(clients) < roster.min_clients:
        raise ValueError(
            f"roster {roster.consortium!r}: {len(clients)} clients, fewer than min_clients "
            f"{roster.min_clients}"
        )
    aggregators = by_role[Role.AGGREGATOR]
    aggregator = _identity(roster, keys, aggregators[0], passphrase) if aggregators else None
    return Deployment(roster, clients, holders, aggregator)
