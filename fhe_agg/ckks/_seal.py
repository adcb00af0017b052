"""The one adapter over ``tenseal.sealapi``: types are pinned down here and nowhere else.

SEAL's Python binding reads and writes objects only through file paths, so serialization goes
through a private directory (``/dev/shm`` when available, mode 0700). Only public objects pass
through it: public keys, ciphertexts and released (already-noised) plaintexts. Secret keys never
touch SEAL at all; decryption is done on raw arrays by :mod:`fhe_agg.hazmat`.
"""

from __future__ import annotations

import atexit
import itertools
import os
import shutil
import stat
import tempfile
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import tenseal.sealapi as sealapi
from numpy.typing import NDArray

from fhe_agg.ckks._params import CkksPreset
from fhe_agg.hazmat.packed_format import pack_ciphertext, packed_size, unpack_ciphertext
from fhe_agg.hazmat.rns import U64
from fhe_agg.hazmat.seal_format import (
    ParmsId,
    RawCiphertext,
    build_ciphertext,
    build_plaintext,
    parse_ciphertext,
)

__all__ = ["SealBackend", "backend_for", "seal_version"]

_counter = itertools.count()
_lock = threading.Lock()
_scratch: Path | None = None


def _scratch_dir() -> Path:
    global _scratch
    with _lock:
        if _scratch is None:
            base = Path("/dev/shm" if os.access("/dev/shm", os.W_OK) else tempfile.gettempdir())
            remove_stale_scratch(base)
            _scratch = Path(tempfile.mkdtemp(prefix=f"fhe_agg-{os.getpid()}-", dir=base))
            _scratch.chmod(0o700)
            atexit.register(shutil.rmtree, _scratch, True)
        return _scratch


def remove_stale_scratch(base: Path) -> None:
    """Remove this user's scratch folders left by processes that are gone (a SIGKILL or SIGTERM
    skips ``atexit``); each holds at most a half-written ciphertext, but they pile up."""
    for folder in base.glob("fhe_agg-*-*"):
        pid = folder.name.split("-")[1]
        try:
            info = folder.lstat()  # never follows a symlink
        except OSError:  # removed meanwhile by another process starting up
            continue
        if not pid.isdigit() or not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except (PermissionError, OverflowError):  # alive under another user, or no such pid
            continue


def _scratch_path() -> str:
    return str(_scratch_dir() / f"{os.getpid()}-{threading.get_ident()}-{next(_counter)}.seal")


def _save(obj: Any) -> bytes:
    path = _scratch_path()
    try:
        obj.save(path)
        return Path(path).read_bytes()
    finally:
        Path(path).unlink(missing_ok=True)


def _load(obj: Any, context: Any, blob: bytes) -> None:
    path = _scratch_path()
    try:
        Path(path).write_bytes(blob)
        obj.load(context, path)
    finally:
        Path(path).unlink(missing_ok=True)


class SealBackend:
    """A SEAL context for one preset, with encoder, encryption and decoding helpers."""

    def __init__(self, preset: CkksPreset) -> None:
        self.preset = preset
        n = preset.poly_modulus_degree
        parms = sealapi.EncryptionParameters(sealapi.SCHEME_TYPE.CKKS)
        parms.set_poly_modulus_degree(n)
        parms.set_coeff_modulus(sealapi.CoeffModulus.Create(n, list(preset.key_prime_bits)))
        self.context = sealapi.SEALContext(parms, True, sealapi.SEC_LEVEL_TYPE.TC128)
        if not self.context.parameters_set():
            raise ValueError(
                f"SEAL rejected preset {preset.name}: {self.context.parameters_error_message()}"
            )
        key_data = self.context.key_context_data()
        data_level = self.context.first_context_data()
        self.n = n
        self.key_primes: tuple[int, ...] = tuple(
            m.value() for m in key_data.parms().coeff_modulus()
        )
        self.data_primes: tuple[int, ...] = tuple(
            m.value() for m in data_level.parms().coeff_modulus()
        )
        self.key_parms_id: ParmsId = tuple(key_data.parms_id())
        self.data_parms_id: ParmsId = tuple(data_level.parms_id())
        self.encoder = sealapi.CKKSEncoder(self.context)

    def encryptor(self, public_key_blob: bytes) -> Any:
        """A SEAL ``Encryptor`` for a serialized public key (asymmetric encryption only)."""
        pk = sealapi.PublicKey()
        _load(pk, self.context, public_key_blob)
        return sealapi.Encryptor(self.context, pk)

    def encrypt(self, encryptor: Any, reals: NDArray[np.float64], scale: float) -> bytes:
        """Encrypt ``N`` reals packed two per complex slot; returns the packed wire format."""
        packed = reals[0::2] + 1j * reals[1::2]
        plain = sealapi.Plaintext()
        self.encoder.encode(packed.tolist(), self.data_parms_id, scale, plain)
        cipher = sealapi.Ciphertext()
        encryptor.encrypt(plain, cipher)
        raw = parse_ciphertext(
            _save(cipher), n=self.n, primes=self.data_primes, parms_id=self.data_parms_id
        )
        return self.pack(raw)

    def pack(self, raw: RawCiphertext) -> bytes:
        """Encode a data-level ciphertext in the packed wire format."""
        return pack_ciphertext(raw, self.data_primes)

    @property
    def ciphertext_bytes(self) -> int:
        """Exact wire size of one data-level ciphertext."""
        return packed_size(self.n, self.data_primes)

    def decode(self, data: U64, scale: float) -> NDArray[np.float64]:
        """Decode an NTT-form plaintext ``data[prime, coefficient]`` at the data level into N reals."""
        plain = sealapi.Plaintext()
        _load(plain, self.context, build_plaintext(self.data_parms_id, scale, data))
        packed = np.asarray(self.encoder.decode_complex(plain), dtype=np.complex128)
        out = np.empty(self.n, dtype=np.float64)
        out[0::2], out[1::2] = packed.real, packed.imag
        return out

    def parse(
        self, blob: bytes, *, what: str, max_bytes: int | None = None, out: U64 | None = None
    ) -> RawCiphertext:
        """Strictly parse a packed data-level ciphertext of this preset (``unpack_ciphertext``),
        into ``out`` (``(2, L, N)``) when given."""
        return unpack_ciphertext(
            blob,
            n=self.n,
            primes=self.data_primes,
            parms_id=self.data_parms_id,
            max_bytes=max_bytes,
            what=what,
            out=out,
        )

    def save(self, obj: Any) -> bytes:
        """Serialize a public SEAL object."""
        return _save(obj)

    def load_ciphertext(self, blob: bytes) -> Any:
        """Load a packed ciphertext into SEAL (SEAL validates it against the context)."""
        cipher = sealapi.Ciphertext()
        _load(cipher, self.context, build_ciphertext(self.parse(blob, what="ciphertext")))
        return cipher


@lru_cache(maxsize=8)
def backend_for(preset: CkksPreset) -> SealBackend:
    """The cached :class:`SealBackend` of ``preset``."""
    return SealBackend(preset)


def seal_version() -> str:
    """The version, ``major.minor``, of the SEAL library inside TenSEAL (which does not say it).

    Every SEAL serialization starts with a ``SEALHeader`` whose bytes 3 and 4 are the major and
    minor version of the SEAL that wrote it (``native/src/seal/serialization.h``).
    """
    header = _save(sealapi.EncryptionParameters(sealapi.SCHEME_TYPE.CKKS))
    return f"{header[3]}.{header[4]}"
