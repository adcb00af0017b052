"""The test federation, written once: real keys, real clients, rounds through the coordinator.

Every suite builds its federation here: ``tests/conftest.py`` (a 1-of-1 key), ``tests/threshold``
and ``tests/adversarial`` (a dealerless 3-of-5 ceremony) and ``fuzz/world.py`` (a deterministic
2-of-3 ceremony whose messages seed the fuzzers). Everything is real: ML-DSA-65 and ML-KEM keys,
the ceremony's joint key, SEAL ciphertexts, proofs. Keys are drawn from ``SeededRandom`` where a
suite needs them reproducible, which fhe_agg refuses outside tests (``build`` allows it).

A round is carried by :class:`Round`: a :class:`~fhe_agg.RoundCoordinator` over the round's
aggregator and one :class:`~fhe_agg.HolderRound` per key holder, so the order of a round is
written in the library only. Its hooks let a test play a faulty or malicious party without
leaving that order: ``down`` (a holder that never answers), ``tamper`` (the server sends a holder
another request: a crafted aggregate, a replayed challenge) and ``hooks`` (stand between one kind
of request and one holder: a malicious partial, a replayed challenge reply, a lost request, or a
record of the replies). ``tests/threshold/test_round.py`` plays each. Tests that attack a role
class out of order on purpose call it directly.

Importable as ``federation``: pytest puts ``tests/`` on ``sys.path`` (the rootdir conftest), and
``fuzz/world.py`` adds it.
"""

from .build import (
    Federation,
    Holders,
    ceremony_federation,
    federation_from,
    make_holders,
    single_key_federation,
)
from .round import Hook, Round, decrypt

__all__ = [
    "Federation",
    "Holders",
    "Hook",
    "Round",
    "ceremony_federation",
    "decrypt",
    "federation_from",
    "make_holders",
    "single_key_federation",
]
