"""The joint CKKS public key and a key holder's secret share of the matching secret key.

The secret key is never handed to SEAL: shares live as NTT-form arrays inside
:class:`KeyShare` objects whose repr hides them, and decryption is computed on raw arrays.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from fhe_agg.ckks._flooding import KEY_ERROR_SIGMA
from fhe_agg.ckks._params import CkksPreset
from fhe_agg.ckks._random import RandomSource, default_random, key_random
from fhe_agg.ckks._seal import backend_for
from fhe_agg.errors import MalformedMessage, ParameterMismatch
from fhe_agg.hazmat.rlwe import FixedOperand, public_key_share, to_ntt
from fhe_agg.hazmat.rns import U64
from fhe_agg.hazmat.sampling import KEY_ERROR_TAIL, expand_uniform, rounded_gaussian, ternary
from fhe_agg.hazmat.seal_format import RawCiphertext, build_ciphertext, parse_ciphertext
from fhe_agg.hazmat.shamir import lagrange_coefficients, scale_share
from fhe_agg.protocol._wire import pack, unpack

if TYPE_CHECKING:
    from fhe_agg.identity._sealing import SealInfo, SealingPrivateKey

__all__ = [
    "KEY_ERROR_SIGMA",
    "KeyShare",
    "PublicKey",
    "common_polynomial",
    "generate_single_key",
    "sample_secret",
]


@dataclass(frozen=True, eq=False)
class PublicKey:
    """The joint public key ``(b, a)`` in SEAL's serialization (uncompressed, canonical)."""

    preset: CkksPreset
    blob: bytes

    @functools.cached_property
    def fingerprint(self) -> bytes:
        """SHA3-256 of the serialization; every update signs it (computed once: every
        statement check asks for it)."""
        return hashlib.sha3_256(b"fhe_agg/public-key|" + self.blob).digest()

    @classmethod
    def from_arrays(cls, preset: CkksPreset, b: np.ndarray, a: np.ndarray) -> PublicKey:
        backend = backend_for(preset)
        raw = RawCiphertext(backend.key_parms_id, 1.0, np.stack([b, a]))
        return cls(preset, build_ciphertext(raw))

    @classmethod
    def from_bytes(cls, preset: CkksPreset, blob: bytes) -> PublicKey:
        """Validate a serialized public key for ``preset``; raises on anything else."""
        backend = backend_for(preset)
        raw = parse_ciphertext(
            blob,
            n=backend.n,
            primes=backend.key_primes,
            parms_id=backend.key_parms_id,
            what="public key",
        )
        if raw.scale != 1.0:
            raise MalformedMessage("public key: scale must be 1")
        return cls.from_arrays(preset, raw.data[0], raw.data[1])

    def __repr__(self) -> str:
        return f"PublicKey(preset={self.preset.name}, fingerprint={self.fingerprint[:8].hex()})"


class KeyShare:
    """One key holder's share of the secret key (NTT form, key level). Never printed.

    The share is kept as its residues; the Shoup quotients a decryption multiplies with are
    made when a decryption first asks (:meth:`data_level`, :meth:`decryption_operand`), not
    when the share is made or unsealed: a key holder node loads its share for messages that
    never decrypt, and with ``t < n`` only the Lagrange-scaled share is multiplied with."""

    __slots__ = (
        "_data_level",
        "_operands",
        "_value",
        "holder_index",
        "holders",
        "preset",
        "public_key_fingerprint",
        "threshold",
    )

    def __init__(
        self,
        *,
        preset: CkksPreset,
        holder_index: int,
        threshold: int,
        holders: int,
        public_key_fingerprint: bytes,
        value: U64,
    ) -> None:
        if not 1 <= threshold <= holders or not 1 <= holder_index <= holders:
            raise ValueError("holder_index/threshold/holders: need 1 <= t <= n and 1 <= index <= n")
        backend = backend_for(preset)
        rows = value.shape[0] if value.ndim == 2 else 0
        if (
            value.dtype != np.uint64
            or value.shape != (rows, backend.n)
            or not len(preset.data_prime_bits) <= rows <= len(backend.key_primes)
        ):
            raise ValueError(
                f"value: expected uint64 residues of shape (rows, {backend.n}) for at least the "
                "data-level primes"
            )
        moduli = np.array(backend.key_primes[:rows], dtype=np.uint64)[:, None]
        if not bool((value < moduli).all()):
            raise ValueError("value: a residue is not reduced modulo its prime")
        self.preset = preset
        self.holder_index = holder_index
        self.threshold = threshold
        self.holders = holders
        self.public_key_fingerprint = public_key_fingerprint
        self._value = value
        self._data_level: FixedOperand | None = None
        self._operands: dict[tuple[int, ...], FixedOperand] = {}  # by decrypting set

    def _data_values(self) -> U64:
        return self._value[: len(self.preset.data_prime_bits)]

    def data_level(self) -> FixedOperand:
        """The share restricted to the data-level primes (what decryption multiplies by),
        with its Shoup quotients (made at the first call)."""
        if self._data_level is None:
            primes = backend_for(self.preset).data_primes
            self._data_level = FixedOperand.of(self._data_values(), primes)
        return self._data_level

    def decryption_operand(self, decrypting_set: tuple[int, ...]) -> FixedOperand:
        """``lambda_j * share_j`` at the data level for ``decrypting_set`` (its Lagrange
        coefficient per prime; 1 for an additive n-of-n share). Multiplying the key share, not
        the output, keeps the flooding noise unscaled (threshold-ckks.md §4.4)."""
        if (
            len(set(decrypting_set)) != len(decrypting_set)
            or len(decrypting_set) != self.threshold
            or self.holder_index not in decrypting_set
            or not all(1 <= m <= self.holders for m in decrypting_set)
        ):
            raise ValueError(
                f"decrypting_set: needs {self.threshold} distinct holders in 1..{self.holders} "
                f"including {self.holder_index}, got {decrypting_set}"
            )
        if self.threshold == self.holders:
            return self.data_level()
        members = tuple(sorted(decrypting_set))
        if members not in self._operands:  # at most C(n-1, t-1) sets; Shoup quotients are slow
            primes = backend_for(self.preset).data_primes
            coefficient = lagrange_coefficients(members, primes)[self.holder_index]
            scaled = scale_share(self._data_values(), coefficient, primes)
            self._operands[members] = FixedOperand.of(scaled, primes)
        return self._operands[members]

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("KeyShare cannot be pickled: secret key material never leaves the holder")

    def seal(self, key: SealingPrivateKey, *, info: SealInfo) -> bytes:
        """This share sealed at rest to its own holder's ``key``, bound to ``info`` (consortium,
        epoch, holder id, purpose): the only form in which a share is written anywhere."""
        from fhe_agg.identity._at_rest import seal_at_rest

        value = np.ascontiguousarray(self._value, dtype=np.uint64)
        body = {
            "preset": self.preset.name,
            "index": self.holder_index,
            "threshold": self.threshold,
            "holders": self.holders,
            "public_key": self.public_key_fingerprint,
            "rows": int(value.shape[0]),
            "value": value.tobytes(),
        }
        return seal_at_rest(key, pack("key-share", body), info=info)

    @classmethod
    def unseal(
        cls, blob: bytes, key: SealingPrivateKey, *, info: SealInfo, preset: CkksPreset
    ) -> KeyShare:
        """The share :meth:`seal` wrote. :class:`~fhe_agg.identity.SealingError` for another
        key or ``info`` or an edited blob; :class:`MalformedMessage` for one that is not a share
        of ``preset``."""
        from fhe_agg.identity._at_rest import MAX_AT_REST_BYTES, open_at_rest

        plain = open_at_rest(key, blob, info=info)
        f = unpack(
            plain, "key-share", max_bytes=MAX_AT_REST_BYTES, max_bin=MAX_AT_REST_BYTES, max_array=0
        )
        f.expect_keys("preset", "index", "threshold", "holders", "public_key", "rows", "value")
        if f.text("preset") != preset.name:
            raise MalformedMessage(
                f"key share: made for preset {f.text('preset')!r}, not {preset.name!r}"
            )
        backend = backend_for(preset)
        primes = backend.key_primes
        rows = f.integer("rows", len(preset.data_prime_bits), len(primes))
        value = (
            np.frombuffer(f.blob("value", size=rows * backend.n * 8), dtype=np.uint64)
            .reshape(rows, backend.n)
            .copy()
        )
        try:
            return cls(
                preset=preset,
                holder_index=f.integer("index", 1, 2**16),
                threshold=f.integer("threshold", 1, 2**16),
                holders=f.integer("holders", 1, 2**16),
                public_key_fingerprint=f.blob("public_key", size=32),
                value=value,
            )
        except ValueError as exc:
            raise MalformedMessage(f"key share: {exc}") from None

    def check_for(self, public_key: PublicKey) -> None:
        if public_key.fingerprint != self.public_key_fingerprint:
            raise ParameterMismatch("key share belongs to another public key (key epoch)")

    def __repr__(self) -> str:
        return (
            f"KeyShare(holder={self.holder_index}, {self.threshold}-of-{self.holders}, "
            f"public_key={self.public_key_fingerprint[:8].hex()}, <secret>)"
        )


def common_polynomial(seed: bytes, n: int, primes: tuple[int, ...]) -> U64:
    """The public polynomial ``a`` of the key, expanded from ``seed`` uniformly per prime."""
    return np.stack([expand_uniform(seed, f"a/{i}".encode(), n, q) for i, q in enumerate(primes)])


def sample_secret(a: U64, n: int, primes: tuple[int, ...], rng: RandomSource) -> tuple[U64, U64]:
    """A fresh ternary secret ``s`` (NTT form) and its public-key share ``-(a*s + e)``.

    ``rng`` must not be a :class:`~fhe_agg.SeededRandom` outside tests (``ValueError``). The
    sampled coefficients and the error are overwritten with zeros once used."""
    rng = key_random(rng, "a CKKS secret key")
    coefficients = ternary(n, rng)
    secret = to_ntt(coefficients, n, primes)
    coefficients.fill(0)
    noise = rounded_gaussian(n, KEY_ERROR_SIGMA, rng, tail=KEY_ERROR_TAIL)
    error = to_ntt(noise, n, primes)
    noise.fill(0)
    share = public_key_share(a, FixedOperand.of(secret, primes), error, primes)
    error.fill(0)
    return secret, share


def generate_single_key(
    preset: CkksPreset, *, rng: RandomSource | None = None
) -> tuple[PublicKey, KeyShare]:
    """Key generation for one key holder (1-of-1): the secret stays inside the returned share."""
    rng = rng or default_random()
    backend = backend_for(preset)
    n, primes = backend.n, backend.key_primes
    a = common_polynomial(rng.bytes(32), n, primes)
    secret, b = sample_secret(a, n, primes, rng)
    public_key = PublicKey.from_arrays(preset, b, a)
    share = KeyShare(
        preset=preset,
        holder_index=1,
        threshold=1,
        holders=1,
        public_key_fingerprint=public_key.fingerprint,
        value=secret,
    )
    return public_key, share
