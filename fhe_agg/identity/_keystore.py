"""Key files on disk: ``<id>.key`` (private, mode 0600) and ``<id>.pub.json`` (public identity).

The private file is JSON::

    {"format": "fhe-agg/private-key/v1", "public": <public identity>, "encrypted": bool,
     "kdf": {...} | null, "check": b64 | null, "signing": [component], "sealing": [component]}

Each component is one private key in **seed form**: PKCS#8 PEM for every algorithm pyca supports
(ML-DSA-44/65/87 as the 32-byte seed, RFC 9881; ML-KEM as ``d||z``, RFC 9935; Ed25519, X25519,
P-384), encrypted with ``BestAvailableEncryption`` when a passphrase is given. SLH-DSA has no
PKCS#8 in pyca, so its 96-byte FIPS 205 secret key is stored as base64, or when a passphrase is
given sealed with AES-256-GCM under the file's derived key (the AAD names the file's identity).

With a passphrase, ``kdf`` is ``{"name": "scrypt", "salt", "n", "r", "p"}`` (RFC 7914, 16-byte
salt, n at most 2**17) and ``check`` an HMAC-SHA256 under a second scrypt-derived key over the
public identity, so a wrong passphrase (:class:`WrongPassphrase`) is told apart from a corrupted
file (:class:`CorruptKeyFile`). A passphrase that is a generated key secret
(:mod:`fhe_agg.identity._key_secret`, ``fhe-agg/key-secret/v1:...``) gives instead
``kdf = {"name": "hkdf-sha256", "salt"}``: the check key and the AES-GCM key come from HKDF-SHA256
of its 32 bytes (no stretching: the secret is uniform, see that module), and such a file opens
only with a well-formed key secret. The PKCS#8 components are encrypted with the passphrase or
key-secret text either way (PBES2, PBKDF2-HMAC-SHA256 at pyca's 2,048 iterations: ~0.3 ms per
component, measured; the key secret's 256 bits make the iteration count irrelevant). Loading
dispatches on ``kdf["name"]``; the kdf's exact field set and salt length are checked. After
decoding, the public keys derived from the private ones must equal those recorded in ``public``.

Loading refuses a private file readable or writable by group/others or owned by another user, a
directory writable by group/others, and symbolic links (:class:`InsecureKeyFile`). Every read is
bounded in size. Errors name the file and what to do, never key material.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from fhe_agg.ckks._random import RandomSource, default_random
from fhe_agg.errors import CorruptKeyFile, MalformedMessage, WrongPassphrase
from fhe_agg.identity._encoding import (
    b64decode,
    b64encode,
    canonical_json,
    read_bounded,
    strict_json,
)
from fhe_agg.identity._identity import Identity, PublicIdentity, Role
from fhe_agg.identity._key_secret import (
    HKDF_NAME,
    KEY_SECRET_PREFIX,
    derive_key_secret_keys,
    is_key_secret,
    parse_key_secret,
)
from fhe_agg.identity._keyfile_io import (
    MAX_KEY_FILE_BYTES,
    read_private,
    secure_directory,
    write_new,
)
from fhe_agg.identity._keystore_codec import decode_components, encode_components
from fhe_agg.identity._sealing import SealingPrivateKey
from fhe_agg.identity._suites import Suite, SuiteSigningKey, WrongSuite

__all__ = [
    "MAX_KEY_FILE_BYTES",
    "KeyFiles",
    "load_identity",
    "load_public_identity",
    "parse_public_identity",
    "public_identity_text",
    "read_passphrase_file",
    "write_identity",
]

_MAX_PASSPHRASE_BYTES = 1024
_FORMAT = "fhe-agg/private-key/v1"
_FIELDS = {"format", "public", "encrypted", "kdf", "check", "signing", "sealing"}
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 1 << 15, 8, 1
_SALT_BYTES = 16
_CHECK_LABEL = b"fhe-agg/keystore/v1/passphrase-check|"


@dataclass(frozen=True)
class KeyFiles:
    """Where :func:`write_identity` put the two files."""

    private: Path
    public: Path


def _derive(passphrase: bytes, salt: bytes, n: int) -> tuple[bytes, bytes]:
    """``(check key, sealing key)`` from scrypt(passphrase, salt)."""
    okm = Scrypt(salt=salt, length=64, n=n, r=_SCRYPT_R, p=_SCRYPT_P).derive(passphrase)
    return okm[:32], okm[32:]


def _check_value(key: bytes, public: dict[str, Any]) -> bytes:
    return hmac.digest(key, _CHECK_LABEL + canonical_json(public), "sha256")


def _check_passphrase(passphrase: bytes | None) -> None:
    if passphrase is None:
        return
    if not isinstance(passphrase, bytes):
        raise TypeError(f"passphrase: expected bytes, got {type(passphrase).__name__}")
    if not 1 <= len(passphrase) <= _MAX_PASSPHRASE_BYTES:
        raise ValueError(f"passphrase: must be 1..{_MAX_PASSPHRASE_BYTES} bytes")


def _private_document(
    identity: Identity, passphrase: bytes | None, secret: bytes | None, random: RandomSource
) -> dict[str, Any]:
    """The private file's document; ``secret``: the 32 bytes of ``passphrase`` when it is a key
    secret (HKDF), else ``None`` (scrypt)."""
    public = identity.public.to_json()
    kdf: dict[str, Any] | None = None
    check: str | None = None
    seal_key: bytes | None = None
    if passphrase is not None:
        salt = random.bytes(_SALT_BYTES)
        if secret is not None:
            check_key, seal_key = derive_key_secret_keys(secret, salt)
            kdf = {"name": HKDF_NAME, "salt": b64encode(salt)}
        else:
            check_key, seal_key = _derive(passphrase, salt, _SCRYPT_N)
            kdf = {"name": "scrypt", "salt": b64encode(salt), "n": _SCRYPT_N, "r": _SCRYPT_R}
            kdf["p"] = _SCRYPT_P
        check = b64encode(_check_value(check_key, public))
    aad = canonical_json({"id": identity.id, "fingerprint": identity.fingerprint})
    signing, sealing = encode_components(
        identity.suite,
        identity.signing_key.private_bytes(),
        identity.sealing_key.private_bytes(),
        passphrase=passphrase,
        seal_key=seal_key,
        aad=aad,
        random=random,
    )
    return {
        "format": _FORMAT,
        "public": public,
        "encrypted": passphrase is not None,
        "kdf": kdf,
        "check": check,
        "signing": signing,
        "sealing": sealing,
    }


def write_identity(
    identity: Identity,
    directory: str | Path,
    *,
    passphrase: bytes | None = None,
    random: RandomSource | None = None,
) -> KeyFiles:
    """Write ``<id>.key`` (0600) and ``<id>.pub.json`` (0644) into ``directory`` (0700).

    The directory is created if needed; an existing one open to group or others is refused
    (:class:`InsecureKeyFile`), and so are existing files (``ValueError``: keys are never
    overwritten). ``random`` draws the salts and nonces (default: the OS CSPRNG).
    ``passphrase`` is a person's passphrase (scrypt) or a key secret from
    :func:`~fhe_agg.identity.new_key_secret` (HKDF; ``ValueError`` if it is malformed).
    """
    if not isinstance(identity, Identity):
        raise TypeError(f"identity: expected Identity, got {type(identity).__name__}")
    _check_passphrase(passphrase)
    secret = None
    if passphrase is not None and is_key_secret(passphrase):
        try:
            secret = parse_key_secret(passphrase)
        except ValueError as exc:
            raise ValueError(f"passphrase: {exc}") from None
    folder = Path(directory)
    private, public = folder / f"{identity.id}.key", folder / f"{identity.id}.pub.json"
    for path in (private, public):
        if path.exists() or path.is_symlink():
            raise ValueError(f"{path} exists; refusing to overwrite a key (choose another id/dir)")
    secure_directory(folder)
    document = _private_document(identity, passphrase, secret, random or default_random())
    write_new(private, canonical_json(document) + b"\n", 0o600)
    write_new(public, public_identity_text(identity.public), 0o644)
    return KeyFiles(private=private, public=public)


def public_identity_text(public: PublicIdentity) -> bytes:
    """The bytes of a ``.pub.json`` file: indented JSON with sorted keys (verified, not signed
    as written: the proof covers the canonical form of the claims)."""
    return json.dumps(public.to_json(), indent=2, sort_keys=True).encode() + b"\n"


def _parse_json(path: Path, raw: bytes, what: str) -> Any:
    if not raw.strip():
        raise CorruptKeyFile(f"{what} {path} is empty")
    try:
        return strict_json(raw)
    except ValueError:
        raise CorruptKeyFile(f"{what} {path} is not valid JSON (truncated or edited?)") from None


def _expect(
    public: PublicIdentity, path: Path, suite: Suite | str | None, role: Role | str | None
) -> None:
    if suite is not None and public.suite is not Suite.parse(suite):
        raise WrongSuite(
            f"{path} holds a {public.suite.value!r} key, expected {Suite.parse(suite).value!r}"
        )
    if role is not None and public.role is not Role.parse(role):
        raise ValueError(
            f"{path} belongs to {public.id!r} with role {public.role.value}, "
            f"expected {Role.parse(role).value}"
        )


def load_public_identity(
    path: str | Path, *, suite: Suite | str | None = None, role: Role | str | None = None
) -> PublicIdentity:
    """Read and verify a ``.pub.json`` file (at most 64 KiB).

    Raises :class:`CorruptKeyFile` for a truncated, edited or inconsistent file (or a private
    key file), :class:`WrongSuite` if ``suite`` is given and differs, ``ValueError`` if ``role``
    differs.
    """
    p = Path(path)
    raw = read_bounded(p, MAX_KEY_FILE_BYTES, "identity file", CorruptKeyFile)
    return parse_public_identity(raw, p, suite=suite, role=role)


def parse_public_identity(
    raw: bytes, path: Path, *, suite: Suite | str | None = None, role: Role | str | None = None
) -> PublicIdentity:
    """:func:`load_public_identity` of the bytes ``raw`` already read from ``path`` (named in
    errors): for a caller that must verify exactly the bytes it hashed."""
    data = _parse_json(path, raw, "identity file")
    if isinstance(data, dict) and data.get("format") == _FORMAT:
        raise CorruptKeyFile(f"{path} is a private key file; pass the .pub.json file instead")
    public = PublicIdentity.from_json(data, what=f"identity file {path}")
    _expect(public, path, suite, role)
    return public


def load_identity(
    path: str | Path,
    *,
    passphrase: bytes | None = None,
    suite: Suite | str | None = None,
    role: Role | str | None = None,
) -> Identity:
    """Read a private key file written by :func:`write_identity`.

    Raises :class:`InsecureKeyFile` (permissions, owner, symlink), :class:`CorruptKeyFile`
    (truncated, edited, not matching its public keys, a public identity file, a PKCS#8 key
    whose PBKDF2 cost is out of bounds), :class:`WrongPassphrase` (missing, wrong
    or unexpected passphrase), :class:`WrongSuite` / ``ValueError`` when ``suite`` / ``role``
    are given and differ.
    """
    _check_passphrase(passphrase)
    p = Path(path)
    doc = _parse_json(p, read_private(p, _FORMAT), "key file")
    if not isinstance(doc, dict) or doc.get("format") != _FORMAT:
        if isinstance(doc, dict) and "proof" in doc:
            raise CorruptKeyFile(f"{p} is a public identity file; pass the private .key file")
        raise CorruptKeyFile(f"key file {p} is not an fhe-agg private key file")
    if set(doc) != _FIELDS or not isinstance(doc["encrypted"], bool):
        raise CorruptKeyFile(f"key file {p}: expected exactly the fields {sorted(_FIELDS)}")
    public = PublicIdentity.from_json(doc["public"], what=f"key file {p}")
    _expect(public, p, suite, role)
    seal_key = _unlock(p, doc, passphrase)
    aad = canonical_json({"id": public.id, "fingerprint": public.fingerprint})
    try:
        signing_raw, sealing_raw = decode_components(
            public.suite,
            doc["signing"],
            doc["sealing"],
            passphrase=passphrase,
            seal_key=seal_key,
            aad=aad,
        )
        signing = SuiteSigningKey.from_private_bytes(public.suite, signing_raw)
        sealing = SealingPrivateKey.from_private_bytes(public.suite, sealing_raw)
    except (ValueError, TypeError, InvalidTag, MalformedMessage) as exc:
        raise CorruptKeyFile(f"key file {p}: {_describe(exc)}") from None
    if signing.verify_key != public.signing_key or sealing.public_key != public.sealing_key:
        raise CorruptKeyFile(f"key file {p}: private keys do not match its public identity")
    return Identity(id=public.id, role=public.role, signing_key=signing, sealing_key=sealing)


def _describe(exc: Exception) -> str:
    if isinstance(exc, InvalidTag):
        return "an encrypted key does not authenticate (file edited)"
    return str(exc) or type(exc).__name__


def _unlock(path: Path, doc: dict[str, Any], passphrase: bytes | None) -> bytes | None:
    """Check the passphrase against the file; the AES key for sealed components, if any."""
    if not doc["encrypted"]:
        if passphrase is not None:
            raise WrongPassphrase(f"key file {path} is not encrypted; give no passphrase")
        if doc["kdf"] is not None or doc["check"] is not None:
            raise CorruptKeyFile(f"key file {path}: unencrypted but carries a passphrase check")
        return None
    if passphrase is None:
        raise WrongPassphrase(
            f"key file {path} is encrypted; give its passphrase (--passphrase-file)"
        )
    try:
        name, salt, n = _kdf_params(doc["kdf"])
        check = b64decode(doc["check"])
        if len(check) != 32:
            raise ValueError("check")
    except ValueError:
        raise CorruptKeyFile(f"key file {path}: invalid passphrase parameters") from None
    if name == HKDF_NAME:
        check_key, seal_key = derive_key_secret_keys(_key_secret_for(path, passphrase), salt)
    else:
        check_key, seal_key = _derive(passphrase, salt, n)
    if not hmac.compare_digest(_check_value(check_key, doc["public"]), check):
        what = "key secret" if name == HKDF_NAME else "passphrase"
        raise WrongPassphrase(f"wrong {what} for key file {path}")
    return seal_key


def _kdf_params(kdf: object) -> tuple[str, bytes, int]:
    """``(name, salt, scrypt n or 0)`` of a key file's ``kdf``; ``ValueError`` if malformed."""
    if not isinstance(kdf, dict):
        raise ValueError("kdf")
    name, n = kdf.get("name"), 0
    if name == HKDF_NAME and set(kdf) == {"name", "salt"}:
        pass
    elif name == "scrypt" and set(kdf) == {"name", "salt", "n", "r", "p"}:
        n = kdf["n"]
        if (kdf["r"], kdf["p"]) != (_SCRYPT_R, _SCRYPT_P):
            raise ValueError("kdf")
        if type(n) is not int or n not in {1 << k for k in range(14, 18)}:
            raise ValueError("kdf")  # bounded cost: at most 2**17 (128 MiB)
    else:
        raise ValueError("kdf")
    salt = b64decode(kdf["salt"])
    if len(salt) != _SALT_BYTES:
        raise ValueError("kdf")
    return name, salt, n


def _key_secret_for(path: Path, passphrase: bytes) -> bytes:
    """The 32 bytes of ``passphrase`` for the key-secret file ``path``; :class:`WrongPassphrase`
    if it is a person's passphrase or a malformed secret."""
    if not is_key_secret(passphrase):
        raise WrongPassphrase(
            f"key file {path} is sealed under a generated key secret, not a passphrase; give "
            f"the file from `fhe-agg keys new-secret` ({KEY_SECRET_PREFIX.decode()}...)"
        )
    try:
        return parse_key_secret(passphrase)
    except ValueError as exc:
        raise WrongPassphrase(f"key file {path}: the key secret given is unusable: {exc}") from None


def read_passphrase_file(path: str | Path) -> bytes:
    """The passphrase in ``path``: its bytes without one trailing newline (at most 1 KiB).

    A file holding a key secret (:func:`~fhe_agg.identity.write_key_secret`) is checked here:
    ``ValueError`` naming the file if its version is unknown or it is truncated or edited.
    """
    p = Path(path)
    with p.open("rb") as fh:
        raw = fh.read(_MAX_PASSPHRASE_BYTES + 3)
    if len(raw) > _MAX_PASSPHRASE_BYTES + 2:  # + a line ending
        raise ValueError(f"passphrase file {p}: longer than {_MAX_PASSPHRASE_BYTES} bytes")
    for ending in (b"\r\n", b"\n"):
        if raw.endswith(ending):
            raw = raw[: -len(ending)]
            break
    if not raw:
        raise ValueError(f"passphrase file {p} is empty")
    _check_passphrase(raw)
    if is_key_secret(raw):
        try:
            parse_key_secret(raw)
        except ValueError as exc:
            raise ValueError(f"passphrase file {p}: {exc}") from None
    return raw
