"""Threshold decryption cost: partial decryption and combine per million parameters, next to
single-key SEAL decryption of the same number of ciphertexts, measured in the same run."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import tenseal.sealapi as sealapi

from fhe_agg import (
    Aggregator,
    Client,
    DecryptionSession,
    FederationConfig,
    KeyHolder,
    Layout,
    SigningKey,
)
from fhe_agg._seal import backend_for
from fhe_agg._simulate import local_key_ceremony

Figure = Callable[..., dict[str, Any]]


def bench_threshold_decryption(params: int, repeats: int, figure: Figure) -> list[dict[str, Any]]:
    """3-of-5 at the precise preset: one holder's partial decryption (with and without recomputing
    every chunk sum) and the combiner, each per million parameters, vs SEAL's Decryptor+decode."""
    config = FederationConfig(
        min_clients=3, max_clients=8, max_weight=10.0, value_bound=1.0, holders=5, threshold=3
    )
    public_key, shares = local_key_ceremony(config)
    signing = {f"c{i}": SigningKey.generate() for i in range(3)}
    roster = {c: k.verify_key for c, k in signing.items()}
    layout = Layout.for_vector(params)
    rng = np.random.default_rng(0)
    agg = Aggregator(config=config, roster=roster, public_key=public_key, round_id=1, layout=layout)
    for c, key in signing.items():
        client = Client(client_id=c, signing_key=key, config=config, public_key=public_key)
        agg.add(
            client.encrypt_update(rng.uniform(-1, 1, params), round_id=1, weight=1.0).to_bytes()
        )
    aggregate = agg.finalize()
    members = (1, 2, 3)
    per_million = 1e6 / params

    def holder(index: int, spot_check: int | None) -> KeyHolder:
        return KeyHolder(
            holder_id=f"holder-{index}",
            config=config,
            public_key=public_key,
            key_share=shares[index - 1],
            roster=roster,
            spot_check=spot_check,
        )

    def timed_partial(spot_check: int | None) -> float:
        times = []
        for _ in range(repeats):
            h = holder(1, spot_check)  # a fresh decryption log: one partial per aggregate, ever
            evidence = agg.evidence(h.challenge(aggregate))
            t0 = time.perf_counter()
            h.partial_decrypt(aggregate, evidence, layout=layout, decrypting_set=members)
            times.append(time.perf_counter() - t0)
        return float(np.median(times)) * per_million

    partial_spot = timed_partial(1)
    partial_full = timed_partial(None)

    combine_times = []
    for _ in range(repeats):
        session = DecryptionSession(aggregate, config=config, layout=layout, decrypting_set=members)
        for j in members:
            h = holder(j, 1)
            session.add(
                h.partial_decrypt(
                    aggregate,
                    agg.evidence(h.challenge(aggregate)),
                    layout=layout,
                    decrypting_set=members,
                )
            )
        t0 = time.perf_counter()
        session.release()
        combine_times.append(time.perf_counter() - t0)
    combine_s = float(np.median(combine_times)) * per_million

    backend = backend_for(config.preset)
    keygen = sealapi.KeyGenerator(backend.context)
    seal_pk = sealapi.PublicKey()
    keygen.create_public_key(seal_pk)
    encryptor = sealapi.Encryptor(backend.context, seal_pk)
    decryptor = sealapi.Decryptor(backend.context, keygen.secret_key())
    plain = sealapi.Plaintext()
    backend.encoder.encode([0.5] * (backend.n // 2), backend.data_parms_id, config.scale, plain)
    ciphers = []
    for _ in aggregate.chunks:
        cipher = sealapi.Ciphertext()
        encryptor.encrypt(plain, cipher)
        ciphers.append(cipher)

    def seal_decrypt() -> None:
        out = sealapi.Plaintext()
        for cipher in ciphers:
            decryptor.decrypt(cipher, out)
            backend.encoder.decode_complex(out)

    seal_times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        seal_decrypt()
        seal_times.append(time.perf_counter() - t0)
    seal_s = float(np.median(seal_times)) * per_million
    base = "single-key SEAL decrypt+decode"
    return [
        figure(
            "partial decryption per holder (1 chunk spot-checked)",
            "s per 1M params",
            partial_spot,
            seal_s,
            base,
            False,
        ),
        figure(
            "partial decryption per holder (every chunk sum recomputed)",
            "s per 1M params",
            partial_full,
            seal_s,
            base,
            False,
        ),
        figure("combine 3 partials + decode", "s per 1M params", combine_s, seal_s, base, False),
    ]
