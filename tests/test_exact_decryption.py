"""Exact decryption gives away the key, so it is refused unless explicitly opted into.

The danger, shown with real SEAL ciphertexts: re-encoding an exact released mean at the
aggregate's scale reproduces ``m = c0 + c1*s`` bit for bit, and then ``s = (m - c0) / c1``
pointwise in NTT form (Li–Micciancio, EUROCRYPT'21). With the default flooding the re-encoded
release is off by the flooding noise and the recovered "key" is not the key.
"""

from __future__ import annotations

import numpy as np
import pytest
import tenseal.sealapi as sealapi

from fhe_agg import (
    PRESETS,
    Aggregator,
    CkksPreset,
    Client,
    DpPolicy,
    FederationConfig,
    FloodingPolicy,
    KeyHolder,
    Layout,
    SeededRandom,
    SigningKey,
    UnsupportedParameters,
    generate_single_key,
)
from fhe_agg.ckks._seal import backend_for
from fhe_agg.hazmat.rlwe import add_polys, mul_fixed

# The preset plain ``fhe-agg simulate`` picked for one holder before flooding became the default
# (one 60-bit data prime): at its 2^44..2^53 scales a float64 release holds every bit of the
# plaintext, so the attack is exact. (Today's presets carry two data primes; a release then
# rounds the plaintext, and the leak is approximate rather than bit for bit.)
BOUNDS = {"min_clients": 3, "max_clients": 8, "max_weight": 100.0, "value_bound": 4.0}
COMPACT = CkksPreset(
    name="one-prime", poly_modulus_degree=8192, data_prime_bits=(60,), special_prime_bits=40
)
CLIENTS = {"ana": 3.0, "ben": 11.0, "cy": 7.5}


def _release(config: FederationConfig) -> tuple[np.ndarray, bytes, object, object]:
    """One 1-of-1 round of three clients: the released mean, the aggregate's single chunk, the
    holder's key share and the SEAL backend."""
    public_key, share = generate_single_key(config.preset, rng=SeededRandom(41))
    backend = backend_for(config.preset)
    layout = Layout.for_vector(backend.n)  # one whole chunk: the release shows every slot
    keys = {cid: SigningKey.generate() for cid in CLIENTS}
    roster = {cid: key.verify_key for cid, key in keys.items()}
    aggregator = Aggregator(
        config=config, roster=roster, public_key=public_key, round_id=1, layout=layout
    )
    data = np.random.default_rng(5)
    for cid, weight in CLIENTS.items():
        client = Client(client_id=cid, signing_key=keys[cid], config=config, public_key=public_key)
        vector = data.uniform(-1, 1, backend.n)
        aggregator.add(client.encrypt_update(vector, round_id=1, weight=weight).to_bytes())
    aggregate = aggregator.finalize()
    holder = KeyHolder(
        holder_id="kh",
        config=config,
        public_key=public_key,
        key_share=share,
        roster=roster,
        rng=SeededRandom(3),
    )
    mean = holder.decrypt(
        aggregate, aggregator.evidence(holder.challenge(aggregate)), layout=layout
    )
    return mean, aggregate.chunks[0], share, backend


def _re_encode(backend, mean: np.ndarray, scale: float) -> np.ndarray:  # type: ignore[no-untyped-def]
    """What anyone holding the release computes: SEAL's encoding of it at ``scale`` (NTT form)."""
    plain = sealapi.Plaintext()
    packed = mean[0::2] + 1j * mean[1::2]
    backend.encoder.encode(packed.tolist(), backend.data_parms_id, scale, plain)
    primes = backend.data_primes
    flat = np.array([plain.data(i) for i in range(len(primes) * backend.n)], dtype=np.uint64)
    return flat.reshape(len(primes), backend.n)


def _attack(config: FederationConfig) -> tuple[bool, bool]:
    """(re-encoding equals c0 + c1*s, the key recovered from the release equals s)."""
    mean, chunk, share, backend = _release(config)
    raw = backend.parse(chunk, what="aggregate chunk")
    primes = backend.data_primes
    secret = share.data_level()  # type: ignore[attr-defined]
    truth = add_polys(raw.data[0], mul_fixed(raw.data[1], secret, primes), primes)
    encoded = _re_encode(backend, mean, raw.scale)
    recovered = np.empty_like(encoded)
    for i, q in enumerate(primes):  # s = (m - c0) / c1, pointwise mod q
        for k in range(backend.n):
            c0, c1 = int(raw.data[0][i, k]), int(raw.data[1][i, k])
            recovered[i, k] = (int(encoded[i, k]) - c0) * pow(c1, -1, q) % q
    return bool(np.array_equal(encoded, truth)), bool(np.array_equal(recovered, secret.value))


def test_the_exact_opt_in_really_gives_away_the_key() -> None:
    config = FederationConfig(**BOUNDS, preset=COMPACT, flooding=None, unsafe_exact_decryption=True)
    reproduces, key_recovered = _attack(config)
    assert reproduces and key_recovered


def test_the_default_floods_and_the_same_attack_fails() -> None:
    config = FederationConfig(**BOUNDS, preset=PRESETS["compact"])  # flooding by default
    assert config.flooding == FloodingPolicy() and config.flooding_security_bits >= 40
    reproduces, key_recovered = _attack(config)
    assert not reproduces and not key_recovered


def test_exact_decryption_needs_the_opt_in_and_a_single_holder() -> None:
    with pytest.raises(UnsupportedParameters, match="unsafe_exact_decryption=True"):
        FederationConfig(**BOUNDS, flooding=None)
    with pytest.raises(UnsupportedParameters, match="unsafe_exact_decryption=True"):
        # central DP adds its noise after decoding: the holder still decrypts exactly
        FederationConfig(
            **BOUNDS, flooding=None, dp=DpPolicy(clip=1.0, noise_multiplier=1.0, mode="central")
        )
    with pytest.raises(UnsupportedParameters, match="flooding"):
        FederationConfig(
            **BOUNDS, holders=3, threshold=2, flooding=None, unsafe_exact_decryption=True
        )
    with pytest.raises(ValueError, match="not exact"):
        FederationConfig(**BOUNDS, unsafe_exact_decryption=True)  # flooding is on
    with pytest.raises(TypeError, match="unsafe_exact_decryption"):
        FederationConfig(**BOUNDS, flooding=None, unsafe_exact_decryption=1)  # type: ignore[arg-type]
    assert FederationConfig(**BOUNDS, flooding=None, unsafe_exact_decryption=True).holders == 1
