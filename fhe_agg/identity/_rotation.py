"""Key rotation: a member's new public identity, endorsed by the key it replaces.

The member signs :func:`rotation_message` with its *old* key (context
``b"fhe-agg/v1/key-rotation"``); the admin then signs the roster version that records it, so a
new key needs both signatures. The roster keeps the endorsement and checks it on every load.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fhe_agg._validate import round_number
from fhe_agg.identity._encoding import b64decode, b64encode, canonical_json
from fhe_agg.identity._identity import Identity, PublicIdentity, check_member_id

__all__ = ["ROTATION_CONTEXT", "KeyRotation", "check_reason", "rotation_message"]

#: Signature context of a key-rotation endorsement by the old key.
ROTATION_CONTEXT = b"fhe-agg/v1/key-rotation"
_ROTATION_FORMAT = "fhe-agg/key-rotation/v1"
_FIELDS = {
    "format",
    "consortium",
    "member",
    "old_fingerprint",
    "new",
    "from_round",
    "endorsement",
}
_MAX_REASON = 200


def check_reason(value: object) -> str:
    """A revocation reason: 1..200 printable characters."""
    if not isinstance(value, str) or not 1 <= len(value) <= _MAX_REASON or not value.isprintable():
        raise ValueError(f"reason: expected 1..{_MAX_REASON} printable characters")
    return value


def rotation_message(
    *, consortium: str, member: str, old_fingerprint: str, new: PublicIdentity, from_round: int
) -> bytes:
    """The canonical bytes the old key signs to endorse ``new``."""
    return canonical_json(
        {
            "format": _ROTATION_FORMAT,
            "consortium": consortium,
            "member": member,
            "old_fingerprint": old_fingerprint,
            "new": new.claims(),
            "from_round": from_round,
        }
    )


@dataclass(frozen=True, kw_only=True)
class KeyRotation:
    """A member's request to replace its key, signed by the key it replaces.

    Made by :meth:`KeyRotation.request` on the member's side; the admin applies it with
    :meth:`~fhe_agg.identity.Roster.rotate`, which checks the endorsement again.
    """

    consortium: str
    member: str
    old_fingerprint: str
    new: PublicIdentity
    from_round: int
    endorsement: bytes

    @classmethod
    def request(
        cls, old: Identity, new: PublicIdentity | Identity, *, consortium: str, from_round: int
    ) -> KeyRotation:
        """Endorse ``new`` (same id and role) with the ``old`` key from ``from_round`` on."""
        new_public = new.public if isinstance(new, Identity) else new
        if new_public.id != old.id or new_public.role is not old.role:
            raise ValueError("new: the new identity must keep the member's id and role")
        from_round = round_number(from_round, "from_round")
        fingerprint = old.fingerprint
        message = rotation_message(
            consortium=consortium,
            member=old.id,
            old_fingerprint=fingerprint,
            new=new_public,
            from_round=from_round,
        )
        return cls(
            consortium=consortium,
            member=old.id,
            old_fingerprint=fingerprint,
            new=new_public,
            from_round=from_round,
            endorsement=old.signing_key.sign(message, context=ROTATION_CONTEXT),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "format": _ROTATION_FORMAT,
            "consortium": self.consortium,
            "member": self.member,
            "old_fingerprint": self.old_fingerprint,
            "new": self.new.to_json(),
            "from_round": self.from_round,
            "endorsement": b64encode(self.endorsement),
        }

    @classmethod
    def from_json(cls, obj: object) -> KeyRotation:
        """Parse :meth:`to_json` output (the endorsement is checked by ``Roster.rotate``).

        Raises ``ValueError`` for a malformed request and :class:`~fhe_agg.CorruptKeyFile` /
        :class:`WrongSuite` for a bad new identity.
        """
        if not isinstance(obj, dict) or set(obj) != _FIELDS or obj["format"] != _ROTATION_FORMAT:
            raise ValueError(f"key rotation: expected exactly the fields {sorted(_FIELDS)}")
        if not all(isinstance(obj[k], str) for k in ("consortium", "member", "old_fingerprint")):
            raise ValueError("key rotation: consortium, member and old_fingerprint must be strings")
        return cls(
            consortium=obj["consortium"],
            member=check_member_id(obj["member"]),
            old_fingerprint=obj["old_fingerprint"],
            new=PublicIdentity.from_json(obj["new"], what="key rotation"),
            from_round=round_number(obj["from_round"], "from_round"),
            endorsement=b64decode(obj["endorsement"]),
        )
