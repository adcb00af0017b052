"""The consortium roster: who takes part, with which keys and policy, signed by the admin.

A roster names the consortium, a version number (each change adds one and records the previous
version's digest), the key epoch, the CKKS preset, ``min_clients``, the decryption ``threshold``
and the members (id, role, suite, key history, revocation). The admin signs the canonical JSON of
all of it (context ``b"fhe-agg/v1/roster"``); the file is that JSON, indented, with the base64
signature in ``"signature"``. Every party verifies before use (:meth:`Roster.load`,
:func:`load_verified_roster`): another admin, an edited field, a bad signature or an unendorsed
key rotation raises :class:`~fhe_agg.InvalidRoster` naming the problem.

Changes are new signed versions: :meth:`Roster.add_member`, :meth:`Roster.revoke` (a client's
updates are refused from the given round on; revoking a key holder sets
:attr:`Roster.ceremony_required`), :meth:`Roster.rotate` (a :class:`KeyRotation` signed by the old
key) and :meth:`Roster.new_key_epoch` (after a new key ceremony).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fhe_agg._validate import round_number
from fhe_agg.errors import FheAggError, InvalidRoster
from fhe_agg.identity._encoding import (
    b64decode,
    b64encode,
    canonical_json,
    read_bounded,
)
from fhe_agg.identity._identity import Identity, PublicIdentity, Role
from fhe_agg.identity._keystore import load_public_identity
from fhe_agg.identity._roster_model import (
    DECODE_ERRORS,
    ROSTER_FORMAT,
    Member,
    MemberKey,
    RevokedVerifyKey,
    decode_admin,
    decode_fields,
    roster_fields,
    validate_content,
)
from fhe_agg.identity._rotation import KeyRotation, check_reason
from fhe_agg.identity._suites import Suite, WrongSuite
from fhe_agg.protocol._signing import VerifyKey

__all__ = ["MAX_ROSTER_BYTES", "ROSTER_CONTEXT", "Roster", "load_verified_roster"]

#: Signature context of the admin's roster signature.
ROSTER_CONTEXT = b"fhe-agg/v1/roster"
#: Largest roster file that is read (bytes).
MAX_ROSTER_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class Roster:
    """A verified, admin-signed consortium roster. Build with :meth:`create`, read with
    :meth:`load`; every change returns a new signed version."""

    consortium: str
    version: int
    key_epoch: int
    preset: str
    min_clients: int
    threshold: int
    admin: PublicIdentity
    members: tuple[Member, ...]
    ceremony_required: bool
    previous_digest: str | None
    signature: bytes

    # --- reading ----------------------------------------------------------------------------

    def member(self, member_id: str) -> Member:
        """The member called ``member_id``; ``KeyError`` naming it otherwise."""
        for m in self.members:
            if m.id == member_id:
                return m
        raise KeyError(f"no member {member_id!r} in roster {self.consortium!r}")

    def _ids(self, role: Role) -> tuple[str, ...]:
        return tuple(m.id for m in self.members if m.role is role and not m.revoked)

    @property
    def clients(self) -> tuple[str, ...]:
        """Ids of the clients not revoked (from any round), sorted."""
        return self._ids(Role.CLIENT)

    @property
    def holders(self) -> tuple[str, ...]:
        """Ids of the key holders not revoked, sorted: the next key ceremony's participants."""
        return self._ids(Role.HOLDER)

    @property
    def digest(self) -> str:
        """Hex SHA3-256 of the signed document; the next version records it."""
        return hashlib.sha3_256(canonical_json(self._document())).hexdigest()

    def client_keys(self, round_id: int) -> dict[str, VerifyKey]:
        """``client id -> ML-DSA-65 VerifyKey`` for the update signatures of ``round_id``.

        Pass it as the ``roster`` of :class:`~fhe_agg.Aggregator` / :class:`~fhe_agg.KeyHolder`.
        A client whose key is revoked for this round maps to a key that refuses every
        signature with :class:`~fhe_agg.RevokedKey` (naming the round and reason); clients
        that join later are absent. Raises :class:`WrongSuite` for a client key of another
        suite than ``pq-only``: the update path verifies ML-DSA-65 signatures only, for now.
        """
        round_id = round_number(round_id, "round_id")
        out: dict[str, VerifyKey] = {}
        for m in self.members:
            if m.role is not Role.CLIENT:
                continue
            if m.revoked_from_round is not None and round_id >= m.revoked_from_round:
                last = m.current.identity
                if last.suite is Suite.PQ_ONLY:  # other suites cannot sign updates anyway
                    out[m.id] = RevokedVerifyKey(
                        last.signing_key.to_bytes(),
                        f"client {m.id!r} was revoked from round {m.revoked_from_round} on "
                        f"(roster version {self.version}): {m.revocation_reason}",
                    )
                continue
            key = m.key_for_round(round_id)
            if key is None:
                continue
            if key.identity.suite is not Suite.PQ_ONLY:
                raise WrongSuite(
                    f"client {m.id!r} uses suite {key.identity.suite.value!r}; the aggregation "
                    "path verifies pq-only (ML-DSA-65) client keys for now"
                )
            out[m.id] = VerifyKey.from_bytes(key.identity.signing_key.to_bytes())
        return out

    # --- encoding and verification ----------------------------------------------------------

    def _document(self, *, signed: bool = True) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "format": ROSTER_FORMAT,
            "consortium": self.consortium,
            "version": self.version,
            "key_epoch": self.key_epoch,
            "preset": self.preset,
            "min_clients": self.min_clients,
            "threshold": self.threshold,
            "admin": self.admin.to_json(),
            "members": [m.to_json() for m in self.members],
            "ceremony_required": self.ceremony_required,
            "previous_digest": self.previous_digest,
        }
        if signed:
            doc["signature"] = b64encode(self.signature)
        return doc

    def to_bytes(self) -> bytes:
        """The roster file: indented JSON with sorted keys."""
        return json.dumps(self._document(), indent=1, sort_keys=True).encode() + b"\n"

    def save(self, path: str | Path) -> Path:
        """Write :meth:`to_bytes` to ``path`` atomically (temporary file, then rename)."""
        out = Path(path)
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        tmp.write_bytes(self.to_bytes())
        tmp.replace(out)
        return out

    @classmethod
    def from_bytes(cls, data: bytes, *, admin: PublicIdentity) -> Roster:
        """Parse and verify a roster file against the expected ``admin`` identity.

        The admin and the signature are checked first, over the canonical JSON of the document
        without ``"signature"`` (the bytes :meth:`_document` gives when signing), so a forged
        roster costs one signature check, not one per member key.

        Raises :class:`~fhe_agg.InvalidRoster` naming the problem: not a roster, another
        admin, an edited field or bad signature, inconsistent members or policy.
        """
        if not isinstance(admin, PublicIdentity):
            raise TypeError(f"admin: expected PublicIdentity, got {type(admin).__name__}")
        doc = roster_fields(data)
        signer = decode_admin(doc)
        if signer.signing_key != admin.signing_key:
            raise InvalidRoster(
                f"roster is signed by admin {signer.id!r} (fingerprint "
                f"{signer.fingerprint[:16]}), not the expected {admin.id!r} "
                f"({admin.fingerprint[:16]})"
            )
        unsigned = {k: v for k, v in doc.items() if k != "signature"}
        try:
            admin.signing_key.verify(
                b64decode(doc["signature"]), canonical_json(unsigned), context=ROSTER_CONTEXT
            )
        except (ValueError, FheAggError):
            raise InvalidRoster(
                "roster signature does not verify: a field was edited or the signature is damaged"
            ) from None
        roster = _decode(doc, signer)
        for m in roster.members:
            m.check(roster.consortium)
        return roster

    @classmethod
    def load(cls, path: str | Path, *, admin: PublicIdentity) -> Roster:
        """Read (at most 64 MiB) and verify a roster file; see :meth:`from_bytes`."""
        p = Path(path)
        data = read_bounded(p, MAX_ROSTER_BYTES, "roster", InvalidRoster)
        try:
            return cls.from_bytes(data, admin=admin)
        except InvalidRoster as exc:
            raise InvalidRoster(f"roster {p}: {exc}") from None

    def check_successor(self, previous: Roster) -> None:
        """Raise :class:`~fhe_agg.InvalidRoster` unless this roster is the version right after
        ``previous`` (same consortium and admin, version + 1, its digest recorded)."""
        if (
            self.consortium != previous.consortium
            or self.admin.signing_key != previous.admin.signing_key
            or self.version != previous.version + 1
            or self.previous_digest != previous.digest
        ):
            raise InvalidRoster(
                f"roster version {self.version} does not follow version {previous.version} "
                f"of {previous.consortium!r}"
            )

    # --- changes by the admin ---------------------------------------------------------------

    @classmethod
    def create(
        cls,
        *,
        consortium: str,
        admin: Identity,
        members: Sequence[PublicIdentity],
        preset: str = "precise",
        min_clients: int,
        threshold: int,
        from_round: int = 0,
    ) -> Roster:
        """Version 1 of a roster, signed by ``admin`` (an :class:`Identity` of role admin).

        Every member's identity proof is checked; ids and keys must be unique; ``threshold``
        must be in ``1..holders`` and ``min_clients`` in ``1..clients``. ``preset`` defaults to
        ``precise``: with several holders every decryption is flooded, which ``compact`` (= ``dp``,
        meant for DP runs) cannot absorb (a 2-of-3 round then errs by ~2e-3).
        """
        for ident in members:
            if not isinstance(ident, PublicIdentity):
                raise TypeError("members: expected PublicIdentity objects")
            ident.verify_proof()
        from_round = round_number(from_round, "from_round")
        start = [
            Member(id=i.id, role=i.role, keys=(MemberKey(identity=i, valid_from_round=from_round),))
            for i in members
        ]
        draft = cls(
            consortium=consortium,
            version=1,
            key_epoch=1,
            preset=preset,
            min_clients=min_clients,
            threshold=threshold,
            admin=_admin_public(admin),
            members=tuple(sorted(start, key=lambda m: m.id)),
            ceremony_required=False,
            previous_digest=None,
            signature=b"",
        )
        validate_content(draft)
        return _sign(draft, admin)

    def _next(self, admin: Identity, **changes: Any) -> Roster:
        if _admin_public(admin).signing_key != self.admin.signing_key:
            raise ValueError("admin: this roster is signed by another admin key")
        draft = replace(
            self, version=self.version + 1, previous_digest=self.digest, signature=b"", **changes
        )
        validate_content(draft)
        return _sign(draft, admin)

    def _replace_member(self, member: Member) -> tuple[Member, ...]:
        return tuple(member if m.id == member.id else m for m in self.members)

    def add_member(self, identity: PublicIdentity, *, admin: Identity, from_round: int) -> Roster:
        """A new version with ``identity`` as a new member, valid from ``from_round``."""
        identity.verify_proof()
        key = MemberKey(identity=identity, valid_from_round=round_number(from_round, "from_round"))
        new = Member(id=identity.id, role=identity.role, keys=(key,))
        members = tuple(sorted((*self.members, new), key=lambda m: m.id))
        return self._next(admin, members=members)

    def revoke(self, member_id: str, *, from_round: int, reason: str, admin: Identity) -> Roster:
        """A new version revoking every key of ``member_id`` from ``from_round`` on.

        Revoking a key holder sets :attr:`ceremony_required`: its key share must stop counting,
        which takes a new key ceremony among the remaining holders.
        """
        m = self.member(member_id)
        if m.revoked:
            raise ValueError(f"member {member_id!r} is already revoked")
        revoked = replace(
            m,
            revoked_from_round=round_number(from_round, "from_round"),
            revocation_reason=check_reason(reason),
        )
        ceremony = self.ceremony_required or m.role is Role.HOLDER
        return self._next(admin, members=self._replace_member(revoked), ceremony_required=ceremony)

    def rotate(self, rotation: KeyRotation, *, admin: Identity) -> Roster:
        """A new version where ``rotation.new`` replaces the member's key from its round on.

        The rotation must be signed by the member's current key (checked here and on every
        later verification); the admin's signature on the new version is the second approval.
        """
        if rotation.consortium != self.consortium:
            raise InvalidRoster(f"key rotation is for consortium {rotation.consortium!r}")
        m = self.member(rotation.member)
        if m.revoked:
            raise InvalidRoster(f"member {m.id!r} is revoked; a revoked key cannot endorse")
        if rotation.old_fingerprint != m.current.identity.fingerprint:
            raise InvalidRoster(f"key rotation for {m.id!r} is not from its current key")
        rotation.new.verify_proof()
        old = replace(m.current, valid_until_round=rotation.from_round)
        new = MemberKey(
            identity=rotation.new,
            valid_from_round=rotation.from_round,
            endorsement=rotation.endorsement,
        )
        rotated = replace(m, keys=(*m.keys[:-1], old, new))
        rotated.check(self.consortium)  # endorsement by the old key, ranges
        return self._next(admin, members=self._replace_member(rotated))

    def new_key_epoch(self, *, admin: Identity) -> Roster:
        """A new version for the next key ceremony: ``key_epoch + 1``, flag cleared."""
        return self._next(admin, key_epoch=self.key_epoch + 1, ceremony_required=False)

    def __repr__(self) -> str:
        flag = ", ceremony required" if self.ceremony_required else ""
        return (
            f"Roster({self.consortium!r}, version={self.version}, members={len(self.members)}, "
            f"t={self.threshold}, preset={self.preset}{flag})"
        )


def _admin_public(admin: Identity) -> PublicIdentity:
    if not isinstance(admin, Identity):
        raise TypeError(f"admin: expected the admin's Identity, got {type(admin).__name__}")
    if admin.role is not Role.ADMIN:
        raise ValueError(f"admin: identity {admin.id!r} has role {admin.role.value}, not admin")
    return admin.public


def _sign(draft: Roster, admin: Identity) -> Roster:
    body = canonical_json(draft._document(signed=False))
    return replace(draft, signature=admin.signing_key.sign(body, context=ROSTER_CONTEXT))


def _decode(doc: dict[str, Any], admin: PublicIdentity) -> Roster:
    try:
        roster = Roster(**decode_fields(doc, admin))
        validate_content(roster)
    except DECODE_ERRORS as exc:
        raise InvalidRoster(str(exc)) from None
    return roster


def _parse(data: bytes) -> Roster:
    """Decode a roster file without checking its signature (callers then verify)."""
    doc = roster_fields(data)
    return _decode(doc, decode_admin(doc))


def load_verified_roster(path: str | Path, admin_public_path: str | Path) -> Roster:
    """Read the admin's ``.pub.json`` (role admin) and the roster, and verify the roster.

    The one call a party needs before using a roster (e.g. ``simulate --roster``). Raises
    :class:`~fhe_agg.CorruptKeyFile` / ``ValueError`` for the admin file and
    :class:`~fhe_agg.InvalidRoster` for the roster.
    """
    admin = load_public_identity(admin_public_path, role=Role.ADMIN)
    return Roster.load(path, admin=admin)
