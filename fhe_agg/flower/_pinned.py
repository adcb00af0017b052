"""Pinned mode: a node checks the directory the server relays against an admin-signed roster.

Without it a node trusts the server's directory, and a lying server could invent clients (its
own keys, so that one real update is decrypted among fakes), invent key holders, or lower
``min_clients``. With a :class:`PinnedRoster`, the node loads the verified roster and its own
roster identity (as ``fhe-agg roster``/``keys`` write them, checked like ``simulate --roster``
does) and refuses, before setting anything up, a ceremony directory, federation parameters,
holder keys or client roster that the pinned roster does not state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from fhe_agg._errors import NotInRoster, ParameterMismatch
from fhe_agg.ceremony._messages import CeremonySpec, HolderIdentity
from fhe_agg.errors import CorruptKeyFile, InvalidRoster
from fhe_agg.flower._pin_memo import PinMemo, pin_digest, read_memo, write_memo
from fhe_agg.identity import (
    Identity,
    Role,
    Roster,
    load_identity,
    read_passphrase_file,
)
from fhe_agg.identity._encoding import read_bounded
from fhe_agg.identity._keyfile_io import MAX_KEY_FILE_BYTES
from fhe_agg.identity._keystore import parse_public_identity
from fhe_agg.identity._roster import MAX_ROSTER_BYTES
from fhe_agg.protocol._config import FederationConfig
from fhe_agg.protocol._signing import SigningKey, VerifyKey
from fhe_agg.sim._deployment import load_member_identity

__all__ = ["Pin", "PinnedRoster"]

#: The round whose client keys the key holders check manifests against (Flower counts from 1).
FIRST_ROUND = 1


@dataclass(frozen=True)
class PinnedRoster:
    """Where a node finds its pinned federation: the roster file, the admin's ``.pub.json``
    and the node's own private ``.key`` file (a roster member with role client or holder).

    ``passphrase_file`` unlocks the key file at every message; for a node, make it a key secret
    (:func:`~fhe_agg.identity.write_key_secret`: HKDF, ~2 ms, where a passphrase costs scrypt's
    ~0.08 s) on other storage than the key file."""

    roster: Path
    admin_public: Path
    key: Path
    passphrase: bytes | None = None
    passphrase_file: Path | None = None  # read at every load; takes precedence over passphrase

    def __repr__(self) -> str:  # no passphrase
        return f"PinnedRoster(roster={str(self.roster)!r}, key={str(self.key)!r})"


@dataclass(frozen=True)
class _PinFiles:
    """The admin file and roster file as read for one message: what is verified is exactly
    what was hashed (:func:`~fhe_agg.flower._pin_memo.pin_digest`)."""

    admin_path: Path
    admin: bytes
    roster_path: Path
    roster: bytes

    @classmethod
    def read(cls, files: PinnedRoster) -> _PinFiles:
        admin = read_bounded(
            files.admin_public, MAX_KEY_FILE_BYTES, "identity file", CorruptKeyFile
        )
        roster = read_bounded(files.roster, MAX_ROSTER_BYTES, "roster", InvalidRoster)
        return cls(files.admin_public, admin, files.roster, roster)

    def verified_roster(self) -> Roster:
        """The roster, verified against the admin (the checks of :func:`load_verified_roster`)."""
        admin = parse_public_identity(self.admin, self.admin_path, role=Role.ADMIN)
        try:
            return Roster.from_bytes(self.roster, admin=admin)
        except InvalidRoster as exc:
            raise InvalidRoster(f"roster {self.roster_path}: {exc}") from None


class Pin:
    """A verified roster and this node's identity in it. Its repr shows no key material.

    Loaded with a state folder (``memo``), a message whose roster and admin files are those
    verified before reads the roster only when asked (:mod:`fhe_agg.flower._pin_memo`)."""

    def __init__(
        self,
        identity: Identity,
        signing_key: SigningKey,
        files: _PinFiles,
        roster: Roster | None,
    ) -> None:
        self.identity = identity
        self.signing_key = signing_key  # signs this node's updates (``update_signing_key``)
        self._files = files
        if roster is not None:
            self.__dict__["roster"] = roster

    @cached_property
    def roster(self) -> Roster:
        """The pinned roster, verified (from the bytes the memo matched) when first read."""
        return self._files.verified_roster()

    @classmethod
    def load(cls, files: PinnedRoster, *, memo: Path | None = None) -> Pin:
        """Verify the roster against the admin and the key file against the roster; with
        ``memo`` (the node's state folder), skip the roster's checks for the files verified
        there last (:mod:`fhe_agg.flower._pin_memo`) and record the ones verified now.

        Raises :class:`~fhe_agg.InvalidRoster`, the keystore's errors, ``ValueError`` for a key
        file the roster does not list or a file that cannot be read,
        :class:`~fhe_agg.NotInRoster` for a member that is neither a client nor a key holder, or
        is revoked, and ``WrongSuite`` for a key that cannot sign updates.
        """
        roster: Roster | None = None
        try:
            passphrase = files.passphrase
            if files.passphrase_file is not None:
                passphrase = read_passphrase_file(files.passphrase_file)
            read = _PinFiles.read(files)
            digest = pin_digest(read.admin, read.roster)
            identity = _remembered(files, passphrase, digest, memo)
            if identity is None:
                roster = read.verified_roster()
                identity = load_member_identity(roster, files.key, passphrase=passphrase)
        except OSError as exc:  # a missing or unreadable file: name it, refuse the hello
            raise ValueError(f"pinned roster: cannot read {exc.filename}: {exc.strerror}") from None
        if roster is not None:  # verified now: check the entry, then remember it
            if identity.role not in (Role.CLIENT, Role.HOLDER):
                raise NotInRoster(f"{identity.id!r} is a roster {identity.role.value}, not a node")
            if roster.member(identity.id).revoked:
                raise NotInRoster(f"{identity.id!r} is revoked in roster {roster.consortium!r}")
        signing_key = identity.update_signing_key()  # WrongSuite for a suite that cannot sign
        if roster is not None and memo is not None:
            write_memo(memo, PinMemo(digest, identity.id, identity.role, identity.fingerprint))
        return cls(identity, signing_key, read, roster)

    @property
    def is_holder(self) -> bool:
        return self.identity.role is Role.HOLDER

    def holder_keys(self) -> dict[str, HolderIdentity]:
        """The key holders the roster names (not revoked), with their identity keys."""
        out = {}
        for holder_id in self.roster.holders:
            public = self.roster.member(holder_id).current.identity
            verify = VerifyKey.from_bytes(public.signing_key.to_bytes())
            out[holder_id] = HolderIdentity(verify, public.sealing_key)
        return out

    def client_keys(self) -> dict[str, VerifyKey]:
        """The clients allowed to send updates, with their keys (``Roster.client_keys``)."""
        return self.roster.client_keys(FIRST_ROUND)

    def check_ceremony(self, spec: CeremonySpec, directory: Mapping[str, HolderIdentity]) -> None:
        """The relayed ceremony must be the roster's: its consortium, key epoch, preset,
        threshold, and exactly its key holders with their keys."""
        r = self.roster
        if (spec.consortium, spec.epoch, spec.preset.name, spec.threshold) != (
            r.consortium,
            r.key_epoch,
            r.preset,
            r.threshold,
        ):
            raise ParameterMismatch(
                f"the relayed ceremony ({spec.consortium!r}, epoch {spec.epoch}, "
                f"{spec.preset.name}, t={spec.threshold}) is not the pinned roster's "
                f"({r.consortium!r}, epoch {r.key_epoch}, {r.preset}, t={r.threshold})"
            )
        _same_holders(
            {h: d.verify_key for h, d in directory.items()},
            self.holder_keys(),
            "ceremony directory",
            sealing={h: d.sealing_key.to_bytes() for h, d in directory.items()},
        )

    def check_setup(
        self,
        config: FederationConfig,
        holders: Mapping[str, VerifyKey],
        clients: Mapping[str, VerifyKey],
    ) -> dict[str, VerifyKey]:
        """Check the relayed setup; return the pinned client keys (the key holder's roster).

        ``config`` must keep the roster's preset, threshold and number of holders and at least
        its ``min_clients``; ``holders`` must be exactly the roster's key holders; every entry
        of ``clients`` must be a roster client with its roster key.
        """
        r = self.roster
        if (
            config.preset.name != r.preset
            or config.threshold != r.threshold
            or config.holders != len(r.holders)
            or config.min_clients < r.min_clients
        ):
            raise ParameterMismatch(
                f"the relayed federation (preset {config.preset.name}, t={config.threshold} of "
                f"{config.holders}, min_clients {config.min_clients}) is not the pinned "
                f"roster's (preset {r.preset}, t={r.threshold} of {len(r.holders)}, "
                f"min_clients >= {r.min_clients})"
            )
        _same_holders(dict(holders), self.holder_keys(), "relayed holders")
        pinned = self.client_keys()
        for client_id, key in sorted(clients.items()):
            known = pinned.get(client_id)
            if known is None:
                raise NotInRoster(
                    f"relayed roster: client {client_id!r} is not in the pinned roster "
                    f"{r.consortium!r} version {r.version}"
                )
            if known.to_bytes() != key.to_bytes():
                raise NotInRoster(
                    f"relayed roster: client {client_id!r} has another key than the pinned "
                    f"roster {r.consortium!r} version {r.version} lists"
                )
        return pinned

    def __repr__(self) -> str:
        # not self.roster: a repr must not verify a roster the memo let this message skip
        return f"Pin({self.identity.id!r}, roster={str(self._files.roster_path)!r})"


def _remembered(
    files: PinnedRoster, passphrase: bytes | None, digest: bytes, memo: Path | None
) -> Identity | None:
    """The key file's identity if ``memo`` records these very roster and admin files
    (``digest``) with this member (id, role, key fingerprint): a client or holder, not revoked,
    when the memo was written; else ``None`` (the roster is then verified in full)."""
    known = None if memo is None else read_memo(memo)
    if known is None or known.digest != digest:
        return None
    identity = load_identity(files.key, passphrase=passphrase)
    if (identity.id, identity.role, identity.fingerprint) != (
        known.member,
        known.role,
        known.fingerprint,
    ):
        return None
    return identity


def _same_holders(
    relayed: dict[str, VerifyKey],
    pinned: Mapping[str, HolderIdentity],
    what: str,
    *,
    sealing: Mapping[str, bytes] | None = None,
) -> None:
    extra, missing = sorted(set(relayed) - set(pinned)), sorted(set(pinned) - set(relayed))
    if extra or missing:
        raise NotInRoster(
            f"{what}: key holders {extra} are not in the pinned roster, {missing} are missing"
        )
    for holder_id, key in sorted(relayed.items()):
        expected = pinned[holder_id]
        if key.to_bytes() != expected.verify_key.to_bytes() or (
            sealing is not None and sealing[holder_id] != expected.sealing_key.to_bytes()
        ):
            raise NotInRoster(
                f"{what}: key holder {holder_id!r} has another key than the pinned roster lists"
            )
