"""Consortium identities: a member's id, role, suite, signature key and HPKE sealing key.

A :class:`PublicIdentity` is what a member publishes (``<id>.pub.json``): its public keys and a
*proof*, the member's own signature over the rest (context ``b"fhe-agg/v1/identity"``). The proof
shows possession of the signature key and binds id, role and suite to it, so an edited or
corrupted identity file is refused. An :class:`Identity` holds the private keys; its repr never
shows key material. Files are written and read by :mod:`fhe_agg.identity._keystore`.

Every member gets a sealing key of its suite (X-Wing, or ML-KEM-1024 + P-384 under ``cnsa2``):
key holders need one for the key ceremony, and any future transport secret can use the others'.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

from fhe_agg.ckks._random import RandomSource
from fhe_agg.errors import CorruptKeyFile, FheAggError, MalformedMessage
from fhe_agg.identity._encoding import b64decode, b64encode, canonical_json, choice
from fhe_agg.identity._sealing import SealingPrivateKey, SealingPublicKey
from fhe_agg.identity._suites import Suite, SuiteSigningKey, SuiteVerifyKey, WrongSuite
from fhe_agg.protocol._signing import SigningKey

__all__ = ["IDENTITY_CONTEXT", "Identity", "PublicIdentity", "Role", "check_member_id"]

#: Signature context of the proof in a public identity.
IDENTITY_CONTEXT = b"fhe-agg/v1/identity"
_FORMAT = "fhe-agg/identity/v1"
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_FIELDS = {"format", "id", "role", "suite", "signing_key", "sealing_key", "fingerprint", "proof"}


class Role(Enum):
    """What a member does in the consortium; the value is its configuration name."""

    CLIENT = "client"
    HOLDER = "holder"
    AGGREGATOR = "aggregator"
    ADMIN = "admin"

    @classmethod
    def parse(cls, name: str | Role) -> Role:
        """Return the role called ``name``; ``ValueError`` naming the known ones otherwise."""
        return choice(cls, name, "role")


def check_member_id(member_id: object) -> str:
    """Return ``member_id`` if it is 1..64 of ``[A-Za-z0-9._-]``, not starting with ``.-_``.

    Ids name files and go into HPKE ``info`` strings, so they are restricted; ``ValueError``
    (or ``TypeError``) otherwise.
    """
    if not isinstance(member_id, str):
        raise TypeError(f"id: expected str, got {type(member_id).__name__}")
    if not _ID.fullmatch(member_id):
        raise ValueError(
            f"id: {member_id!r} must be 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return member_id


@dataclass(frozen=True, kw_only=True)
class PublicIdentity:
    """A member's public keys, bound to its id, role and suite by its own signature."""

    id: str
    role: Role
    suite: Suite
    signing_key: SuiteVerifyKey
    sealing_key: SealingPublicKey
    proof: bytes

    def __post_init__(self) -> None:
        check_member_id(self.id)
        if not isinstance(self.role, Role) or not isinstance(self.suite, Suite):
            raise TypeError("role and suite: expected Role and Suite")
        if not isinstance(self.signing_key, SuiteVerifyKey) or not isinstance(
            self.sealing_key, SealingPublicKey
        ):
            raise TypeError(
                "signing_key and sealing_key: expected SuiteVerifyKey, SealingPublicKey"
            )
        for name, key in (("signing_key", self.signing_key), ("sealing_key", self.sealing_key)):
            if key.suite is not self.suite:
                raise WrongSuite(
                    f"{name} of {self.id!r} is for suite {key.suite.value!r}, "
                    f"not {self.suite.value!r}"
                )

    @property
    def fingerprint(self) -> str:
        """Hex SHA3-256 of the suite and signature public key (see :class:`SuiteVerifyKey`)."""
        return self.signing_key.fingerprint.hex()

    def claims(self) -> dict[str, Any]:
        """The signed fields, as JSON values."""
        return {
            "format": _FORMAT,
            "id": self.id,
            "role": self.role.value,
            "suite": self.suite.value,
            "signing_key": b64encode(self.signing_key.to_bytes()),
            "sealing_key": b64encode(self.sealing_key.to_bytes()),
        }

    def verify_proof(self) -> None:
        """Raise :class:`~fhe_agg.InvalidSignature` unless the proof verifies."""
        self.signing_key.verify(self.proof, canonical_json(self.claims()), context=IDENTITY_CONTEXT)

    def to_json(self) -> dict[str, Any]:
        """The JSON object of a ``.pub.json`` file (also embedded in rosters)."""
        return {**self.claims(), "fingerprint": self.fingerprint, "proof": b64encode(self.proof)}

    @classmethod
    def from_json(cls, obj: object, *, what: str = "public identity") -> PublicIdentity:
        """Parse and verify :meth:`to_json` output.

        Raises :class:`~fhe_agg.CorruptKeyFile` (naming ``what``) for missing or extra fields,
        bad encodings, a fingerprint that does not match or a proof that does not verify, and
        :class:`WrongSuite` for keys of another suite than the one named.
        """
        if not isinstance(obj, dict) or set(obj) != _FIELDS:
            raise CorruptKeyFile(f"{what}: expected exactly the fields {sorted(_FIELDS)}")
        if obj["format"] != _FORMAT:
            raise CorruptKeyFile(f"{what}: format {obj['format']!r}, expected {_FORMAT!r}")
        try:
            suite = Suite.parse(obj["suite"])
            identity = cls(
                id=obj["id"],
                role=Role.parse(obj["role"]),
                suite=suite,
                signing_key=SuiteVerifyKey.from_bytes(suite, b64decode(obj["signing_key"])),
                sealing_key=SealingPublicKey.from_bytes(suite, b64decode(obj["sealing_key"])),
                proof=b64decode(obj["proof"]),
            )
        except WrongSuite as exc:
            raise WrongSuite(f"{what}: {exc}") from None
        except (ValueError, TypeError, MalformedMessage) as exc:
            raise CorruptKeyFile(f"{what}: {exc}") from None
        if obj["fingerprint"] != identity.fingerprint:
            raise CorruptKeyFile(f"{what}: fingerprint does not match the key (file edited?)")
        try:
            identity.verify_proof()
        except FheAggError:
            raise CorruptKeyFile(
                f"{what} {identity.id!r}: its self-signature does not verify (file edited or "
                "corrupted)"
            ) from None
        return identity

    def __repr__(self) -> str:
        return (
            f"PublicIdentity({self.id!r}, {self.role.value}, {self.suite.value}, "
            f"fingerprint={self.fingerprint[:16]})"
        )


class Identity:
    """A member's private signature and sealing keys. Its repr never shows key material."""

    __slots__ = ("_id", "_public", "_role", "_sealing", "_signing")

    def __init__(
        self,
        *,
        id: str,
        role: Role | str,
        signing_key: SuiteSigningKey,
        sealing_key: SealingPrivateKey,
    ) -> None:
        if not isinstance(signing_key, SuiteSigningKey):
            raise TypeError("signing_key: expected SuiteSigningKey")
        if not isinstance(sealing_key, SealingPrivateKey):
            raise TypeError("sealing_key: expected SealingPrivateKey")
        if sealing_key.suite is not signing_key.suite:
            raise WrongSuite(
                f"sealing_key is for suite {sealing_key.suite.value!r}, the signing key for "
                f"{signing_key.suite.value!r}"
            )
        self._id = check_member_id(id)
        self._role = Role.parse(role)
        self._signing, self._sealing = signing_key, sealing_key
        self._public: PublicIdentity | None = None

    @classmethod
    def generate(
        cls, *, id: str, role: Role | str, suite: Suite | str, random: RandomSource | None = None
    ) -> Identity:
        """Fresh keys of ``suite``; seeds come from ``random`` (default: the OS CSPRNG).

        SLH-DSA signature keys come from pqcrypto's own RNG (``random`` must then be ``None``).
        """
        suite = Suite.parse(suite)
        return cls(
            id=id,
            role=role,
            signing_key=SuiteSigningKey.generate(suite, random=random),
            sealing_key=SealingPrivateKey.generate(suite, random=random),
        )

    @property
    def id(self) -> str:
        return self._id

    @property
    def role(self) -> Role:
        return self._role

    @property
    def suite(self) -> Suite:
        return self._signing.suite

    @property
    def signing_key(self) -> SuiteSigningKey:
        return self._signing

    @property
    def sealing_key(self) -> SealingPrivateKey:
        return self._sealing

    @property
    def fingerprint(self) -> str:
        """:attr:`PublicIdentity.fingerprint` of :attr:`public`, without making its proof (an
        ML-DSA signature: a node checks its key file against the roster at every message)."""
        return self._signing.verify_key.fingerprint.hex()

    @property
    def public(self) -> PublicIdentity:
        """The public identity; its proof is made once per object (ML-DSA signing is hedged)."""
        if self._public is not None:
            return self._public
        unsigned = PublicIdentity(
            id=self._id,
            role=self._role,
            suite=self.suite,
            signing_key=self._signing.verify_key,
            sealing_key=self._sealing.public_key,
            proof=b"",
        )
        proof = self._signing.sign(canonical_json(unsigned.claims()), context=IDENTITY_CONTEXT)
        self._public = replace(unsigned, proof=proof)
        return self._public

    def update_signing_key(self) -> SigningKey:
        """The ML-DSA-65 :class:`~fhe_agg.SigningKey` that signs model updates today.

        The update path (``Client``/``Aggregator``) verifies ML-DSA-65 only, so this raises
        :class:`WrongSuite` for any suite but ``pq-only``.
        """
        if self.suite is not Suite.PQ_ONLY:
            raise WrongSuite(
                f"identity {self._id!r} uses suite {self.suite.value!r}; model updates are "
                "signed with pq-only (ML-DSA-65) keys for now"
            )
        return SigningKey.from_seed(self._signing.private_bytes())

    def __repr__(self) -> str:
        fp = self._signing.verify_key.fingerprint.hex()[:16]
        return (
            f"Identity({self._id!r}, {self._role.value}, {self.suite.value}, <secret>, "
            f"fingerprint={fp})"
        )

    __str__ = __repr__
