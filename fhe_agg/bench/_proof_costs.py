"""Well-formedness proof figures: prove and verify time next to the encryption they cover, and
proof bytes next to the ciphertext bytes (docs/key-safety.md §proof).

Ours encrypts at the data level with :mod:`fhe_agg.hazmat.encrypt` (SEAL's encoder, the project's
NTT kernels) and proves every batch of at most ``PROOF_BATCH`` chunks with
:mod:`fhe_agg.hazmat.zkproof`; raw SEAL encryption (special prime, no witness) is the reference
for the encryption itself.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fhe_agg.bench._baselines import RawSeal
from fhe_agg.bench._harness import Figure, Target, figure, paired_medians
from fhe_agg.ckks._keys import generate_single_key
from fhe_agg.ckks._packing import chunk
from fhe_agg.ckks._params import PRESETS
from fhe_agg.ckks._random import default_random
from fhe_agg.ckks._seal import backend_for
from fhe_agg.hazmat.encrypt import encode_plaintext, encrypt_with_witness, public_key_data_level
from fhe_agg.hazmat.zkproof import PROOF_BATCH, ProofStatement, prove, verify

__all__ = ["proof_figures"]

#: Any scale the presets hold does: encoding and proof costs do not depend on it.
_SCALE = 2.0**30


class _Update:
    """One client's data-level encryption of ``vector`` and its proofs, step by step."""

    def __init__(self, preset_name: str, vector: NDArray[np.float64]) -> None:
        preset = PRESETS[preset_name]
        self.backend = backend_for(preset)
        self.scale = _SCALE
        public_key, _ = generate_single_key(preset)
        self.pk0, self.a = public_key_data_level(public_key)
        self.parts = chunk(vector, self.backend.n)
        self.statement = ProofStatement(
            context=b"bench", a_ntt=self.a, primes=self.backend.data_primes, n=self.backend.n
        )
        self.rng = default_random()
        self.cts: list[Any] = []
        self.proofs: list[bytes] = []

    def encrypt(self) -> None:
        primes = self.backend.data_primes
        self.cts = [
            encrypt_with_witness(
                encode_plaintext(self.backend, part, self.scale), self.pk0, self.a, primes, self.rng
            )
            for part in self.parts
        ]

    def _batches(self) -> list[tuple[NDArray[np.uint64], list[Any]]]:
        return [
            (
                np.stack([c[1] for c in self.cts[start : start + PROOF_BATCH]]),
                [c[2] for c in self.cts[start : start + PROOF_BATCH]],
            )
            for start in range(0, len(self.cts), PROOF_BATCH)
        ]

    def prove(self) -> None:
        self.proofs = [prove(self.statement, c1, w, self.rng) for c1, w in self._batches()]

    def verify(self) -> None:
        for (c1, _), proof in zip(self._batches(), self.proofs, strict=True):
            verify(self.statement, c1, proof)


def proof_figures(workload: str, vector: NDArray[np.float64], repeats: int) -> list[Figure]:
    """Prove/verify seconds per 1e6 parameters against the data-level encryption of the same
    update, the encryption against raw SEAL's, and proof bytes against ciphertext bytes."""
    out: list[Figure] = []
    for name in ("dp", "precise"):
        update = _Update(name, vector)
        raw = RawSeal(update.backend.preset, update.scale)
        update.encrypt()  # warm the caches (NTT tables, Shoup quotients of the key)
        seconds = paired_medians(
            {
                "seal": partial(raw.encrypt, vector, packed=True),
                "encrypt": update.encrypt,
                "prove": update.prove,
                "verify": update.verify,
            },
            repeats,
        )
        out += _preset_figures(workload, name, vector.size, update, seconds)
    return out


def _preset_figures(
    workload: str, name: str, params: int, update: _Update, seconds: dict[str, float]
) -> list[Figure]:
    """The figures of the ``name`` preset from its measured ``seconds`` and its proofs."""
    per_million = 1e6 / params
    out: list[Figure] = []
    common: dict[str, Any] = {"workload": workload, "params": params}
    encrypt_s = seconds["encrypt"] * per_million
    out.append(
        figure(
            "proof",
            f"data-level encode+encrypt ({name} preset)",
            unit="s per 1e6 params (1 core)",
            ours=encrypt_s,
            baseline=seconds["seal"] * per_million,
            baseline_name=f"raw sealapi encode+encrypt, {name} preset (special prime)",
            higher_is_better=False,
            note="encrypting at Q keeps the witness (u, e1) of c1 = a*u + e1",
            **common,
        )
    )
    for what, limit in (("prove", 2.0), ("verify", 1.0)):
        out.append(
            figure(
                "proof",
                f"{what} well-formedness ({name} preset)",
                unit="s per 1e6 params (1 core)",
                ours=seconds[what] * per_million,
                baseline=encrypt_s,
                baseline_name="data-level encode+encrypt of the same update",
                higher_is_better=False,
                target=Target("ratio", "<=", limit),
                note=f"{len(update.proofs)} batch(es) of <= {PROOF_BATCH} chunks",
                **common,
            )
        )
    proof_bytes = sum(len(p) for p in update.proofs)
    out.append(
        figure(
            "proof",
            f"proof bytes ({name} preset)",
            unit="bytes per update",
            ours=proof_bytes,
            baseline=len(update.parts) * update.backend.ciphertext_bytes,
            baseline_name="the update's ciphertext bytes",
            higher_is_better=False,
            target=Target("ratio", "<=", 0.5) if name == "precise" else None,
            note="fixed per batch: a final partial batch costs a full one",
            **common,
        )
    )
    return out
