"""Client-side figures: encode+encrypt throughput, sign+hash time, bytes on the wire per parameter.

Ours runs the real :class:`~fhe_agg.Client` path (flatten/check, pack two reals per slot,
encrypt under the public key, bit-packed serialization; Merkle hashing and ML-DSA-65 signing),
twice: with the well-formedness proofs (:meth:`~fhe_agg.Client.encrypt_chunks`, no signature),
and before the proof, signed and serialized (:mod:`._before_proof`), both in the same
:func:`paired_medians` call as raw SEAL.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, Generic, TypeVar

import numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from numpy.typing import NDArray

from fhe_agg.bench._baselines import NvflareCkks, RawSeal
from fhe_agg.bench._before_proof import BEFORE_PROOF_NOTE, before_proof_update
from fhe_agg.bench._harness import Figure, Target, figure, paired_medians
from fhe_agg.ckks._keys import generate_single_key
from fhe_agg.ckks._packing import Layout
from fhe_agg.ckks._params import PRESETS
from fhe_agg.ckks._random import default_random
from fhe_agg.client._client import Client, ProvenChunks
from fhe_agg.protocol._config import FederationConfig
from fhe_agg.protocol._merkle import leaf_hash, merkle_root
from fhe_agg.protocol._messages import UPDATE_CONTEXT, EncryptedUpdate
from fhe_agg.protocol._signing import SigningKey
from fhe_agg.protocol._wellformed import DataLevelKey, data_level_key, proofs_digest

__all__ = ["client_figures"]

Source = NDArray[np.float64] | Mapping[str, Any]
T = TypeVar("T")


_SIGNING_KEY = SigningKey.generate()


def _client(preset_name: str) -> Client:
    # a single holder without flooding: the client's work does not depend on the holders
    config = FederationConfig(
        preset=PRESETS[preset_name],
        max_clients=64,
        max_weight=100.0,
        value_bound=4.0,
        flooding=None,
        unsafe_exact_decryption=True,
    )
    public_key, _ = generate_single_key(config.preset)
    return Client(client_id="bench", signing_key=_SIGNING_KEY, config=config, public_key=public_key)


class _KeepLast(Generic[T]):
    """``fn`` that keeps what its latest call returned (to reuse a timed call's output)."""

    def __init__(self, fn: Callable[[], T]) -> None:
        self.fn = fn
        self.value: T | None = None

    def __call__(self) -> None:
        self.value = self.fn()


def client_figures(
    workload: str,
    source: Source,
    vector: NDArray[np.float64],
    layout: Layout,
    repeats: int,
    nvflare: NvflareCkks,
) -> list[Figure]:
    """Every client-side figure for one workload: ``source`` (a flat vector or a torch
    ``state_dict``) goes through the client's whole path, ``vector`` (flattened) and ``layout``
    are what it flattens to."""
    clients = {name: _client(name) for name in ("dp", "precise")}
    params = vector.size
    chunks: dict[str, ProvenChunks] = {}
    nvflare_bytes = 0
    out: list[Figure] = []

    for name, client in clients.items():
        rates, chunks[name], nvflare_bytes = _encrypt_rates(
            client, source, vector, repeats, nvflare
        )
        out += _encrypt_figures(workload, name, params, rates)

    out += _sign_figures(workload, clients["dp"], chunks["dp"], layout, repeats)
    out += _wire_figures(workload, clients, chunks, layout, nvflare_bytes / params)
    return out


def _encrypt_rates(
    client: Client,
    source: Source,
    vector: NDArray[np.float64],
    repeats: int,
    nvflare: NvflareCkks,
) -> tuple[dict[str, float], ProvenChunks, int]:
    """Parameters per second of our client's encryption with the proofs (``ours``) and before
    them, signed and serialized (``before``), and of raw SEAL's (packed, saved, plain) and
    NVFlare-style TenSEAL's, measured together; our proven chunks and the bytes of NVFlare's
    ciphertexts."""
    params = vector.size
    raw = RawSeal(client.config.preset, client.config.scale)
    ours = _KeepLast(partial(_encrypt_ours, client, source))
    # the data-level key is made once, as the client makes it when built: outside the timing
    key = data_level_key(client.public_key)
    before = _KeepLast(partial(_before_proof_ours, client, key, source))
    theirs = _KeepLast(partial(nvflare.encrypt_serialize, vector))
    seconds = paired_medians(
        {
            "ours": ours,
            "before": before,
            "packed": partial(raw.encrypt, vector, packed=True),
            "saved": partial(raw.encrypt_serialize, vector),
            "plain": partial(raw.encrypt, vector, packed=False),
            "nvflare": theirs,
        },
        repeats,
        warmup=True,
    )
    assert ours.value is not None and before.value is not None and theirs.value is not None
    # the same chunks, signed without proofs: all of the proven update but its proofs
    assert len(before.value.chunks) == len(ours.value.chunks) and not before.value.proofs
    keys = ("ours", "before", "packed", "saved", "plain", "nvflare")
    rates = {k: params / seconds[k] for k in keys}
    return rates, ours.value, sum(len(b) for b in theirs.value)


def _encrypt_figures(
    workload: str, name: str, params: int, rates: dict[str, float]
) -> list[Figure]:
    """Encode+encrypt with the ``name`` preset, with the proofs and before them (then signed),
    against raw SEAL and NVFlare-style TenSEAL."""
    ours_rate, packed_rate, saved_rate, plain_rate, nvflare_rate = (
        rates[k] for k in ("ours", "packed", "saved", "plain", "nvflare")
    )
    common: dict[str, Any] = {
        "workload": workload,
        "params": params,
        "unit": "params/s (1 core)",
        "higher_is_better": True,
    }
    label = f"client encode+encrypt+prove ({name} preset)"
    return [
        *_before_proof_figures(name, rates, common),
        figure(
            "client_encrypt",
            label,
            ours=ours_rate,
            baseline=packed_rate,
            baseline_name=f"raw sealapi encode+encrypt, {name} preset, 2 reals/slot",
            target=Target("ratio", ">=", 0.9),
            note="same packing and preset; ours also serializes (bit-packed) and proves every "
            "batch of chunks well formed (no signature)",
            **common,
        ),
        figure(
            "client_encrypt",
            label,
            ours=ours_rate,
            baseline=saved_rate,
            baseline_name=f"raw sealapi encode+encrypt+save, {name} preset, 2 reals/slot",
            note="SEAL's own serialization (through a file, zstd)",
            **common,
        ),
        figure(
            "client_encrypt",
            label,
            ours=ours_rate,
            baseline=plain_rate,
            baseline_name=f"raw sealapi encode+encrypt, {name} preset, 1 real/slot",
            **common,
        ),
        figure(
            "client_encrypt",
            label,
            ours=ours_rate,
            baseline=nvflare_rate,
            baseline_name="TenSEAL CKKSVector, NVFlare params (N=8192, [60,40,40], 2^40)",
            target=Target("ratio", ">=", 3.0),
            note="NVFlare: encrypt + serialize",
            **common,
        ),
    ]


def _before_proof_figures(
    name: str, rates: dict[str, float], common: dict[str, Any]
) -> list[Figure]:
    """The client before the proof (encrypt + sign, the issue's figure) against raw SEAL."""
    label = f"client encode+encrypt+sign, before the proof ({name} preset)"
    return [
        figure(
            "client_encrypt",
            label,
            ours=rates["before"],
            baseline=rates["packed"],
            baseline_name=f"raw sealapi encode+encrypt, {name} preset, 2 reals/slot",
            target=Target("ratio", ">=", 1.0),
            note=BEFORE_PROOF_NOTE,
            **common,
        ),
        figure(
            "client_encrypt",
            label,
            ours=rates["before"],
            baseline=rates["saved"],
            baseline_name=f"raw sealapi encode+encrypt+save, {name} preset, 2 reals/slot",
            note="SEAL's own serialization (through a file, zstd); ours signed, no proofs",
            **common,
        ),
    ]


def _encrypt_ours(client: Client, source: Source) -> ProvenChunks:
    """The client's path: flatten/check (a no-op copy for a flat vector), encrypt at the data
    level, serialize, prove every batch of chunks well formed."""
    return client.encrypt_chunks(client.prepare(source)[0], round_id=1)


def _before_proof_ours(client: Client, key: DataLevelKey, source: Source) -> EncryptedUpdate:
    """The client's path before the proof (:mod:`._before_proof`): flatten/check, encrypt at
    the data level, serialize, Merkle root, ML-DSA-65 signature, the update's bytes."""
    update = before_proof_update(client, key, source, round_id=1, weight=1.0, rng=default_random())
    update.to_bytes()
    return update


def _sign_figures(
    workload: str, client: Client, chunks: ProvenChunks, layout: Layout, repeats: int
) -> list[Figure]:
    """Merkle root + proofs digest + ML-DSA-65 (ours) vs ECDSA-P256/SHA-256 and Ed25519 over
    the same bytes (chunks and proofs)."""
    message = b"".join(chunks.chunks + chunks.proofs)
    ecdsa_key = ec.generate_private_key(ec.SECP256R1())
    ed_key = ed25519.Ed25519PrivateKey.generate()
    update = client.sign_update(chunks, layout=layout, round_id=1, weight=1.0)
    verify_key = _SIGNING_KEY.verify_key
    encoded = update.statement.encode()
    ecdsa_sig = ecdsa_key.sign(message, ec.ECDSA(hashes.SHA256()))
    ed_sig = ed_key.sign(message)

    def ours_sign() -> None:
        client.sign_update(chunks, layout=layout, round_id=1, weight=1.0)

    def ours_verify() -> None:
        leaves = [leaf_hash(i, c) for i, c in enumerate(chunks.chunks)]
        assert merkle_root(leaves) == update.statement.merkle_root
        assert proofs_digest(chunks.proofs) == update.statement.proofs_digest
        verify_key.verify(update.signed.signature, encoded, context=UPDATE_CONTEXT)

    baselines = {
        "ECDSA-P256/SHA-256": (
            lambda: ecdsa_key.sign(message, ec.ECDSA(hashes.SHA256())),
            lambda: ecdsa_key.public_key().verify(ecdsa_sig, message, ec.ECDSA(hashes.SHA256())),
        ),
        "Ed25519": (
            lambda: ed_key.sign(message),
            lambda: ed_key.public_key().verify(ed_sig, message),
        ),
    }
    fns: dict[str, Callable[[], object]] = {"sign": ours_sign, "verify": ours_verify}
    for name, (sign, verify) in baselines.items():
        fns[f"{name} sign"], fns[f"{name} verify"] = sign, verify
    ms = {k: 1e3 * v for k, v in paired_medians(fns, repeats, warmup=True).items()}
    out = []
    note = f"{len(message):,} ciphertext bytes (dp preset); ours: SHA-256 Merkle tree + ML-DSA-65"
    for name in baselines:
        for what, key in (("sign + hash", "sign"), ("verify + hash", "verify")):
            out.append(
                figure(
                    "client_sign",
                    f"update {what}",
                    workload=workload,
                    params=layout.length,
                    unit="ms per update",
                    ours=ms[key],
                    baseline=ms[f"{name} {key}"],
                    baseline_name=f"{name} over the same bytes (classical)",
                    higher_is_better=False,
                    note=note,
                )
            )
    return out


def _wire_figures(
    workload: str,
    clients: dict[str, Client],
    chunks: dict[str, ProvenChunks],
    layout: Layout,
    nvflare_bytes: float,
) -> list[Figure]:
    """Upload bytes per parameter of each preset's signed ``chunks``, vs float32 and NVFlare's
    serialized vectors (``nvflare_bytes`` per parameter)."""
    params = layout.length
    out = []
    for name, client in clients.items():
        update = client.sign_update(chunks[name], layout=layout, round_id=1, weight=1.0)
        ours = len(update.to_bytes()) / params
        dp = name == "dp"
        common: dict[str, Any] = {
            "workload": workload,
            "params": params,
            "unit": "bytes/param",
            "higher_is_better": False,
            "ours": ours,
            # The two parts of the upload: ciphertexts, and well-formedness proofs (a fixed size
            # per batch of up to PROOF_BATCH chunks, so they dominate small updates).
            "ciphertext_bytes_per_param": sum(map(len, chunks[name].chunks)) / params,
            "proof_bytes_per_param": sum(map(len, chunks[name].proofs)) / params,
        }
        out += [
            figure(
                "upload_bytes",
                f"upload ({name} preset)",
                baseline=4.0,
                baseline_name="float32 plaintext",
                target=Target("ratio", "<=", 4.25) if dp else None,
                note="signed update: chunks + proofs + statement + ML-DSA-65 signature",
                **common,
            ),
            figure(
                "upload_bytes",
                f"upload ({name} preset)",
                baseline=nvflare_bytes,
                baseline_name="NVFlare-style serialized CKKSVector",
                target=Target("ratio", "<=", 1 / 3) if dp else None,
                **common,
            ),
        ]
    return out
