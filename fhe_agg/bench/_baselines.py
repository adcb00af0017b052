"""The systems we are compared with, run in the same process on the same data.

* NVIDIA FLARE's homomorphic aggregation: TenSEAL ``CKKSVector`` at N = 8192, primes
  [60, 40, 40], scale 2**40; clients encrypt, the server multiplies each vector by its plain
  weight and adds, a client decrypts and divides by the total weight. TenSEAL splits a long
  vector into ciphertexts of N/2 values; we make those pieces ourselves (same ciphertexts, same
  bytes) because TenSEAL prints a warning on stdout for a vector longer than one ciphertext.
* Raw SEAL through ``tenseal.sealapi`` at our preset, with a fresh key pair.
* Plaintext FedAvg in numpy, float32 on the wire (the physical floor).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tenseal as ts
import tenseal.sealapi as sealapi
from numpy.typing import NDArray

from fhe_agg.ckks._params import CkksPreset
from fhe_agg.ckks._seal import SealBackend, backend_for

__all__ = ["NvflareCkks", "RawSeal", "plaintext_round"]

_NVFLARE_N = 8192
_NVFLARE_PRIMES = [60, 40, 40]
_NVFLARE_SCALE = 2.0**40


class NvflareCkks:
    """NVFlare-style TenSEAL CKKS: one context (with its secret key, as NVFlare clients hold)."""

    def __init__(self) -> None:
        self.context = ts.context(
            ts.SCHEME_TYPE.CKKS,
            poly_modulus_degree=_NVFLARE_N,
            coeff_mod_bit_sizes=_NVFLARE_PRIMES,
        )
        self.context.global_scale = _NVFLARE_SCALE
        self.slots = _NVFLARE_N // 2

    def encrypt(self, vector: NDArray[np.float64]) -> list[Any]:
        return [
            ts.ckks_vector(self.context, vector[i : i + self.slots].tolist())
            for i in range(0, vector.size, self.slots)
        ]

    def serialize(self, pieces: list[Any]) -> list[bytes]:
        return [p.serialize() for p in pieces]

    def encrypt_serialize(self, vector: NDArray[np.float64]) -> list[bytes]:
        """What an NVFlare client does per update: encrypt and serialize."""
        return self.serialize(self.encrypt(vector))

    def weighted_mean(
        self, vectors: list[NDArray[np.float64]], weights: list[float]
    ) -> tuple[NDArray[np.float64], int]:
        """The server's ``sum(w_i * Enc(x_i))``, decrypted and divided by ``sum(w)``; also the
        bytes of the serialized encrypted sum (what each client downloads)."""
        total: list[Any] | None = None
        for vector, weight in zip(vectors, weights, strict=True):
            pieces = [
                ts.ckks_vector_from(self.context, blob) for blob in self.encrypt_serialize(vector)
            ]
            scaled = [p * weight for p in pieces]
            total = scaled if total is None else [a + b for a, b in zip(total, scaled, strict=True)]
        assert total is not None
        download = sum(len(blob) for blob in self.serialize(total))
        decrypted = np.concatenate([np.asarray(p.decrypt(), dtype=np.float64) for p in total])
        return decrypted[: vectors[0].size] / sum(weights), download


class RawSeal:
    """Raw SEAL at one of our presets, with its own key pair."""

    def __init__(self, preset: CkksPreset, scale: float) -> None:
        self.backend: SealBackend = backend_for(preset)
        self.scale = scale
        context = self.backend.context
        keygen = sealapi.KeyGenerator(context)
        public_key = sealapi.PublicKey()
        keygen.create_public_key(public_key)
        self.encryptor = sealapi.Encryptor(context, public_key)
        self.decryptor = sealapi.Decryptor(context, keygen.secret_key())

    def encrypt(self, vector: NDArray[np.float64], *, packed: bool) -> list[Any]:
        """Encode and encrypt; ``packed`` puts two reals per complex slot (N reals per
        ciphertext, as we do), otherwise one real per slot (N/2, the usual SEAL use)."""
        b = self.backend
        per = b.n if packed else b.n // 2
        out = []
        for start in range(0, vector.size, per):
            part = vector[start : start + per]
            plain, cipher = sealapi.Plaintext(), sealapi.Ciphertext()
            values = (part[0::2] + 1j * part[1::2]).tolist() if packed else part.tolist()
            b.encoder.encode(values, b.data_parms_id, self.scale, plain)
            self.encryptor.encrypt(plain, cipher)
            out.append(cipher)
        return out

    def encrypt_serialize(self, vector: NDArray[np.float64]) -> list[bytes]:
        """Packed encryption and SEAL's own serialization (what a raw SEAL client would send)."""
        return [self.backend.save(c) for c in self.encrypt(vector, packed=True)]

    def decrypt_decode(self, ciphers: list[Any]) -> None:
        """SEAL's own decryption and complex decoding of every ciphertext."""
        plain = sealapi.Plaintext()
        for cipher in ciphers:
            self.decryptor.decrypt(cipher, plain)
            self.backend.encoder.decode_complex(plain)


def plaintext_round(vectors: list[NDArray[np.float64]], weights: list[float]) -> dict[str, float]:
    """A plaintext FedAvg round in numpy with float32 on the wire, timed by phase.

    Each client converts its update to float32 bytes; the server decodes each message and adds
    ``w * x`` into a float64 running sum, then divides by the total weight. Returns the
    seconds of the slowest client, of all clients, and of the server.
    """
    import time

    client_times = []
    messages = []
    for vector in vectors:
        t0 = time.process_time()
        messages.append(vector.astype(np.float32).tobytes())
        client_times.append(time.process_time() - t0)
    t0 = time.process_time()
    total = np.zeros(vectors[0].size)
    for blob, weight in zip(messages, weights, strict=True):
        total += weight * np.frombuffer(blob, dtype=np.float32)
    mean = total / sum(weights)
    server = time.process_time() - t0
    del mean
    return {
        "client_max_s": max(client_times),
        "clients_s": sum(client_times),
        "server_s": server,
    }
