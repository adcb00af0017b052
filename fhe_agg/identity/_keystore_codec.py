"""Private-key components of a key file: each suite's seeds as PKCS#8 PEM (or sealed raw bytes).

Internal to :mod:`fhe_agg.identity._keystore`, whose docstring describes the file format. The
functions raise ``ValueError`` / ``TypeError`` for anything malformed; the caller turns them into
:class:`~fhe_agg.CorruptKeyFile` naming the file.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any, cast

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa, mlkem, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from fhe_agg.ckks._random import RandomSource
from fhe_agg.identity._encoding import b64decode, b64encode
from fhe_agg.identity._suites import Suite

__all__ = ["decode_components", "encode_components"]

_XWING_PARTS = (("ML-KEM-768", 64), ("X25519", 32))
#: (algorithm, seed length) of each component, in the order of the suite's private encoding.
_SIGNING_PARTS: dict[Suite, tuple[tuple[str, int], ...]] = {
    Suite.PQ_ONLY: (("ML-DSA-65", 32),),
    Suite.HYBRID: (("ML-DSA-65", 32), ("Ed25519", 32)),
    Suite.CNSA2: (("ML-DSA-87", 32),),
    Suite.SLH_DSA: (("SLH-DSA-SHA2-192s", 96),),
}
_SEALING_PARTS: dict[Suite, tuple[tuple[str, int], ...]] = {
    Suite.PQ_ONLY: _XWING_PARTS,
    Suite.HYBRID: _XWING_PARTS,
    Suite.CNSA2: (("ML-KEM-1024", 64), ("P-384", 48)),
    Suite.SLH_DSA: _XWING_PARTS,
}
_PEM_NAME = {False: b"-----BEGIN PRIVATE KEY-----", True: b"-----BEGIN ENCRYPTED PRIVATE KEY-----"}
_PBES2 = bytes.fromhex("2a864886f70d01050d")  # 1.2.840.113549.1.5.13 (RFC 8018 §A.4)
_PBKDF2 = bytes.fromhex("2a864886f70d01050c")  # 1.2.840.113549.1.5.12 (RFC 8018 §A.2)
#: Largest PBKDF2 iteration count decrypted (pyca writes 2048; 2**20 takes about a second).
MAX_PBKDF2_ITERATIONS = 1 << 20


def _tlv(der: bytes, pos: int, tag: int) -> tuple[int, int]:
    """``(start, end)`` of the DER value of tag ``tag`` at ``pos``; ``ValueError`` otherwise."""
    if pos + 2 > len(der) or der[pos] != tag:
        raise ValueError("unexpected DER structure")
    length, pos = der[pos + 1], pos + 2
    if length & 0x80:
        count = length & 0x7F
        if not 1 <= count <= 3 or pos + count > len(der):
            raise ValueError("unexpected DER length")
        length, pos = int.from_bytes(der[pos : pos + count], "big"), pos + count
    if pos + length > len(der):
        raise ValueError("truncated DER")
    return pos, pos + length


def _check_pbkdf2_cost(pem: bytes) -> None:
    """Refuse an encrypted PKCS#8 key that is not PBES2/PBKDF2 within the iteration bound.

    The cost is the file's to choose: without this bound an edited count (up to 2**31)
    would keep the loader busy for the better part of an hour.
    """
    lines = pem.strip().splitlines()
    try:
        der = base64.b64decode(b"".join(lines[1:-1]), validate=True)
    except binascii.Error:
        raise ValueError("PKCS#8 PEM is not base64") from None
    outer, end = _tlv(der, 0, 0x30)  # EncryptedPrivateKeyInfo
    algorithm, _ = _tlv(der, outer, 0x30)  # encryptionAlgorithm
    oid_start, oid_end = _tlv(der, algorithm, 0x06)
    params, _ = _tlv(der, oid_end, 0x30)  # PBES2-params
    kdf, _ = _tlv(der, params, 0x30)  # keyDerivationFunc
    kdf_oid, kdf_oid_end = _tlv(der, kdf, 0x06)
    if der[oid_start:oid_end] != _PBES2 or der[kdf_oid:kdf_oid_end] != _PBKDF2:
        raise ValueError("encrypted key is not PBES2 with PBKDF2")
    pbkdf2, _ = _tlv(der, kdf_oid_end, 0x30)
    _, salt_end = _tlv(der, pbkdf2, 0x04)
    count_start, count_end = _tlv(der, salt_end, 0x02)
    iterations = int.from_bytes(der[count_start:count_end], "big", signed=True)
    if not 1 <= iterations <= MAX_PBKDF2_ITERATIONS or end != len(der):
        raise ValueError(f"PBKDF2 iteration count must be 1..{MAX_PBKDF2_ITERATIONS}")


def _p384_from_scalar(raw: bytes) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP384R1())


#: ``alg -> (pyca private key type, loader from the seed form)`` for every algorithm pyca
#: writes as PKCS#8; the others (SLH-DSA) are kept raw or sealed.
_PYCA: dict[str, tuple[type, Callable[[bytes], Any]]] = {
    "ML-DSA-65": (mldsa.MLDSA65PrivateKey, mldsa.MLDSA65PrivateKey.from_seed_bytes),
    "ML-DSA-87": (mldsa.MLDSA87PrivateKey, mldsa.MLDSA87PrivateKey.from_seed_bytes),
    "Ed25519": (ed25519.Ed25519PrivateKey, ed25519.Ed25519PrivateKey.from_private_bytes),
    "ML-KEM-768": (mlkem.MLKEM768PrivateKey, mlkem.MLKEM768PrivateKey.from_seed_bytes),
    "ML-KEM-1024": (mlkem.MLKEM1024PrivateKey, mlkem.MLKEM1024PrivateKey.from_seed_bytes),
    "X25519": (x25519.X25519PrivateKey, x25519.X25519PrivateKey.from_private_bytes),
    "P-384": (ec.EllipticCurvePrivateKey, _p384_from_scalar),
}


def _from_pyca(alg: str, key: object) -> bytes:
    """The seed form of a loaded pyca key; ``ValueError`` if it is another algorithm."""
    if not isinstance(key, _PYCA[alg][0]):
        raise ValueError(f"{alg} component holds a {type(key).__name__}")
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if not isinstance(key.curve, ec.SECP384R1):
            raise ValueError(f"P-384 component holds a {key.curve.name} key")
        return key.private_numbers().private_value.to_bytes(48, "big")
    raw: bytes = cast(Any, key).private_bytes_raw()
    return raw


def _encode_parts(
    parts: tuple[tuple[str, int], ...],
    raw: bytes,
    *,
    passphrase: bytes | None,
    seal_key: bytes | None,
    aad: bytes,
    random: RandomSource,
) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    offset = 0
    encryption: serialization.KeySerializationEncryption = (
        serialization.NoEncryption()
        if passphrase is None
        else serialization.BestAvailableEncryption(passphrase)
    )
    for alg, size in parts:
        seed, offset = raw[offset : offset + size], offset + size
        if alg in _PYCA:
            pem = _PYCA[alg][1](seed).private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
            )
            out.append({"alg": alg, "pkcs8": pem.decode("ascii")})
        elif seal_key is None:
            out.append({"alg": alg, "raw": b64encode(seed)})
        else:
            nonce = random.bytes(12)
            sealed = AESGCM(seal_key).encrypt(nonce, seed, aad + b"|" + alg.encode())
            out.append({"alg": alg, "nonce": b64encode(nonce), "ciphertext": b64encode(sealed)})
    if offset != len(raw):
        raise ValueError("private key length does not match the suite's components")
    return out


def encode_components(
    suite: Suite,
    signing: bytes,
    sealing: bytes,
    *,
    passphrase: bytes | None,
    seal_key: bytes | None,
    aad: bytes,
    random: RandomSource,
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """``(signing components, sealing components)`` for the seed forms of both keys."""
    kw: dict[str, Any] = {
        "passphrase": passphrase,
        "seal_key": seal_key,
        "aad": aad,
        "random": random,
    }
    return (
        _encode_parts(_SIGNING_PARTS[suite], signing, **kw),
        _encode_parts(_SEALING_PARTS[suite], sealing, **kw),
    )


def _decode_parts(
    what: str,
    parts: tuple[tuple[str, int], ...],
    items: object,
    *,
    passphrase: bytes | None,
    seal_key: bytes | None,
    aad: bytes,
) -> bytes:
    names = [alg for alg, _ in parts]
    if (
        not isinstance(items, list)
        or len(items) != len(parts)
        or not all(
            isinstance(i, dict) and i.get("alg") == n for i, n in zip(items, names, strict=True)
        )
    ):
        raise ValueError(f"{what} keys: expected the components {names}")
    out = []
    for (alg, size), item in zip(parts, items, strict=True):
        if alg in _PYCA:
            if set(item) != {"alg", "pkcs8"} or not isinstance(item["pkcs8"], str):
                raise ValueError(f"{alg}: expected a PKCS#8 PEM")
            pem = item["pkcs8"].encode("ascii", errors="replace")
            if not pem.startswith(_PEM_NAME[passphrase is not None]):
                state = "encrypted" if passphrase is not None else "unencrypted"
                raise ValueError(f"{alg}: not an {state} PKCS#8 PEM")
            if passphrase is not None:
                _check_pbkdf2_cost(pem)
            try:
                key = serialization.load_pem_private_key(pem, password=passphrase)
            except (ValueError, TypeError, UnsupportedAlgorithm):
                raise ValueError(
                    f"{alg}: PKCS#8 key does not decode (truncated or edited)"
                ) from None
            seed = _from_pyca(alg, key)
        elif seal_key is None:
            if set(item) != {"alg", "raw"}:
                raise ValueError(f"{alg}: expected the raw key")
            seed = b64decode(item["raw"])
        else:
            if set(item) != {"alg", "nonce", "ciphertext"}:
                raise ValueError(f"{alg}: expected an encrypted key")
            nonce, sealed = b64decode(item["nonce"]), b64decode(item["ciphertext"])
            if len(nonce) != 12:
                raise ValueError(f"{alg}: nonce must be 12 bytes")
            seed = AESGCM(seal_key).decrypt(nonce, sealed, aad + b"|" + alg.encode())
        if len(seed) != size:
            raise ValueError(f"{alg}: key must be {size} bytes")
        out.append(seed)
    return b"".join(out)


def decode_components(
    suite: Suite,
    signing: object,
    sealing: object,
    *,
    passphrase: bytes | None,
    seal_key: bytes | None,
    aad: bytes,
) -> tuple[bytes, bytes]:
    """``(signing seed form, sealing seed form)``; ``ValueError``/``InvalidTag`` if malformed."""
    kw: dict[str, Any] = {"passphrase": passphrase, "seal_key": seal_key, "aad": aad}
    return (
        _decode_parts("signing", _SIGNING_PARTS[suite], signing, **kw),
        _decode_parts("sealing", _SEALING_PARTS[suite], sealing, **kw),
    )
