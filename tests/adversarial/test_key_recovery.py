"""A client colluding with the server recovers the joint key, unless key holders decrypt only
sums of ciphertexts proven well formed (issue "key safety").

Each test runs one craft of :mod:`attacker` end to end on a real federation (dealerless
ceremony, ML-DSA roster keys, SEAL ciphertexts, signed audit logs) and asserts the defended
outcome: the crafted update is refused with :class:`~fhe_agg.InvalidProof` by the aggregator and
by every key holder, no partial exists, no state moved, every refusal is in the signed audit
logs, and the attacker learns nothing. ``test_the_attackers_recovery_works`` shows the
attacker's recovery is real: given the partials ``t`` colluding holders would issue for the
crafted aggregate, it rounds out the key.

Without the proofs every craft succeeded on precise and dp, 1-of-1, 2-of-3 and 3-of-5: the
constant ``c1`` gave the key (``max |b + a*s|`` 12 / 20-22 / 26-28) and it decrypted a victim's
ciphertext; ``K`` just above the noise gave it through an honest release on precise; cancelling
released one victim's update; the copy counted a victim twice. Raising the flooding to the proven
bounds alone does not help: the attacker scales ``K`` with the (public) noise.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from federation import ceremony_federation, make_holders

from fhe_agg import (
    DpPolicy,
    InvalidProof,
    PartialDecryption,
    SeededRandom,
)
from fhe_agg.hazmat.rlwe import mul_fixed_plus_noise
from fhe_agg.hazmat.sampling import flooding_gaussian

from .attacker import (
    HONEST,
    PROOFS,
    Attacker,
    Outcome,
    one_shot_k,
    run_attack,
)
from .conftest import PARAMS, WEIGHTS, AuditTrail, Consortium, config_for

LAYOUTS = ((1, 1), (3, 2), (5, 3))  # (holders, threshold)
PRESETS = ("precise", "dp")
ROUND = 7  # one round per federation: the honest updates (and their proofs) are made once


Federations = Callable[[str, int, int], Consortium]


def _id(layout: tuple[int, int]) -> str:
    return f"{layout[1]}of{layout[0]}"


@pytest.fixture(scope="session")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Federations:
    """``federation(preset, holders, threshold)``: one ceremony per configuration, cached."""
    cache: dict[tuple[str, int, int], Consortium] = {}

    def make(preset: str, holders: int, threshold: int) -> Consortium:
        key = (preset, holders, threshold)
        if key not in cache:
            dp = DpPolicy(clip=1.0, noise_multiplier=1.0) if preset == "dp" else None
            config = config_for(preset, holders=holders, threshold=threshold, dp=dp)
            cache[key] = ceremony_federation(
                make_holders(holders),
                config,
                epoch=200 + len(cache),
                consortium="adversarial",
                weights=WEIGHTS,
                params=PARAMS,
                spool_root=tmp_path_factory.mktemp(f"keyrec-{preset}-{holders}"),
            )
        return cache[key]

    return make


def assert_defended(outcome: Outcome, fed: Consortium) -> None:
    """The defended outcome of every craft, with what leaked in the message if it did not hold."""
    story = outcome.describe()
    assert type(outcome.aggregator_error) is InvalidProof, story
    assert outcome.aggregator_state_kept, story
    assert [e["event"] for e in outcome.aggregator_events] == ["update.rejected"], story
    assert outcome.aggregator_events[0]["payload"]["error"] == "InvalidProof"
    assert set(outcome.holder_errors) == set(range(1, fed.config.holders + 1))
    for j, error in outcome.holder_errors.items():
        assert type(error) is InvalidProof, story
        events = outcome.holder_events[j]
        assert [e["event"] for e in events] == ["partial.refused"], story
        assert events[0]["payload"]["error"] == "InvalidProof"
    assert outcome.partials == {}, story
    assert outcome.holder_state_kept, story
    assert outcome.recovery is None or not outcome.recovery.is_key, story
    assert outcome.leaked is None, story


# every layout with a real proof of another ciphertext; the cheaper bogus proofs on 3-of-5
CONSTANT_CASES = [(layout, "other") for layout in LAYOUTS] + [
    ((5, 3), proof) for proof in PROOFS if proof != "other"
]


@pytest.mark.parametrize(
    ("layout", "proof"), CONSTANT_CASES, ids=[f"{_id(lay)}-{p}" for lay, p in CONSTANT_CASES]
)
@pytest.mark.parametrize("preset", PRESETS)
def test_a_constant_c1_is_refused_and_the_key_stays_secret(
    federation: Federations, tmp_path: Path, preset: str, layout: tuple[int, int], proof: str
) -> None:
    fed = federation(preset, *layout)
    outcome = run_attack(fed, "constant", AuditTrail(tmp_path), ROUND, proof)
    assert_defended(outcome, fed)


@pytest.mark.parametrize("variant", ["averaged", "cancel", "copy"])
@pytest.mark.parametrize("layout", LAYOUTS, ids=_id)
@pytest.mark.parametrize("preset", PRESETS)
def test_every_other_craft_is_refused_and_leaks_nothing(
    federation: Federations, tmp_path: Path, preset: str, layout: tuple[int, int], variant: str
) -> None:
    fed = federation(preset, *layout)
    outcome = run_attack(fed, variant, AuditTrail(tmp_path), ROUND)
    assert_defended(outcome, fed)


@pytest.mark.parametrize("layout", LAYOUTS, ids=_id)
@pytest.mark.parametrize("preset", PRESETS)
def test_the_attackers_recovery_works(
    federation: Federations, preset: str, layout: tuple[int, int]
) -> None:
    """The partials ``t`` colluding holders would issue for ``(0, K)`` give the attacker the key,
    and the key decrypts a victim's ciphertext: "recovery fails" above is not vacuous."""
    fed = federation(preset, *layout)
    attacker = Attacker(fed)
    round_id = ROUND
    honest = [fed.update(c, round_id) for c in HONEST]
    k = one_shot_k(fed.config)
    crafted = attacker.constant(honest, [k])
    total = attacker._sum(
        [*honest, attacker.sign(crafted[:1] + crafted[1:], round_id=round_id, weight=1.0)]
    )
    members = tuple(range(1, fed.config.threshold + 1))
    rng = SeededRandom(round_id)
    sigma = fed.config.holder_noise_sigma
    b = attacker.b
    partials = {}
    for j in members:
        operand = fed.shares[j].decryption_operand(members)
        data = mul_fixed_plus_noise(
            total[:1, 1],
            operand,
            lambda m: flooding_gaussian(m * b.n, sigma, rng).reshape(m, b.n),
            b.n,
            b.data_primes,
        )
        partials[j] = PartialDecryption(
            round_id=round_id,
            holder_index=j,
            aggregate_digest=b"\0" * 32,
            decrypting_set=members,
            data=data,
        )
    recovery = attacker.from_partials(partials, [k])
    assert recovery is not None and recovery.is_key, recovery
    assert recovery.key_error <= 19 * fed.config.holders
    victim = attacker.decrypt(recovery.secret, honest[0]) / WEIGHTS["ana"]
    np.testing.assert_allclose(victim, attacker.plain("ana")[: b.n], atol=1e-6)
    wrong = recovery.secret.copy()
    wrong[0] += 1
    assert attacker.key_error(wrong) > 2**40
