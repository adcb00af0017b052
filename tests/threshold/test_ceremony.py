"""The dealerless ceremony: SEAL accepts its key, nothing holds the joint secret, bad messages fail."""

from __future__ import annotations

import dataclasses
import gc
import pickle

import numpy as np
import pytest

from fhe_agg import (
    CeremonyError,
    CeremonyMessage,
    CeremonySpec,
    InvalidSignature,
    MalformedMessage,
    run_ceremony,
)
from fhe_agg.ceremony._ceremony import CEREMONY_CONTEXT
from fhe_agg.ceremony._transcript import Transcript, confirmation_bytes
from fhe_agg.ckks._params import PRESETS
from fhe_agg.ckks._seal import backend_for
from fhe_agg.hazmat.rlwe import FixedOperand, add_polys, mul_fixed
from fhe_agg.hazmat.shamir import lagrange_coefficients, scale_share
from fhe_agg.identity import SealingError

from .conftest import Federation, Holders

PRESET = PRESETS["precise"]


def _spec(holders: Holders, threshold: int = 3, epoch: int = 42) -> CeremonySpec:
    return CeremonySpec(
        consortium="test-consortium",
        epoch=epoch,
        preset=PRESET,
        holders=holders.ids,
        threshold=threshold,
    )


def _to_reveals(members):
    commits = [m.seed_commitment() for m in members]
    seeds = [m.reveal_seed(commits) for m in members]
    key_commits = [m.key_commitment(seeds) for m in members]
    reveals = [m.reveal_public_share(key_commits) for m in members]
    return reveals


def _to_share_phase(members):
    """Run phases 1-5: every member's transcript confirmation."""
    reveals = _to_reveals(members)
    return [m.confirm(reveals) for m in members]


def test_the_joint_key_loads_into_seal_and_every_holder_agrees(fed: Federation) -> None:
    backend = backend_for(fed.config.preset)
    backend.encryptor(fed.public_key.blob)  # SEAL parses and validates the hand-built key
    assert [s.public_key_fingerprint for s in fed.shares.values()] == [
        fed.public_key.fingerprint
    ] * 5


def _joint_secret(fed: Federation) -> np.ndarray:
    primes = backend_for(fed.config.preset).key_primes
    members = (1, 2, 3)
    coefficients = lagrange_coefficients(members, primes)
    total = None
    for share in list(fed.shares.values())[:3]:
        part = scale_share(share._value, coefficients[share.holder_index], primes)
        total = part if total is None else add_polys(total, part, primes)
    assert total is not None
    return total


def test_nothing_holds_the_joint_secret(fed: Federation) -> None:
    secret = _joint_secret(fed)
    backend = backend_for(fed.config.preset)
    aggregate, _, expected = fed.round(900)
    c = backend.parse(aggregate.chunks[0], what="aggregate")
    primes = backend.data_primes
    key = FixedOperand.of(secret[: len(primes)], primes)
    exact = backend.decode(add_polys(c.data[0], mul_fixed(c.data[1], key, primes), primes), c.scale)
    assert np.max(np.abs(exact[: expected.size] - expected)) < 1e-9  # reconstruction is right
    del key
    gc.collect()
    data_level = secret[: len(backend.data_primes)]
    seen = 0
    for obj in gc.get_objects():
        for ref in gc.get_referents(obj):
            # type() rather than isinstance(): proxies of deprecated names (torch) warn on access
            if type(ref) is np.ndarray and ref is not secret and ref.dtype == np.uint64:
                seen += 1
                for target in (secret, data_level):
                    if ref.shape == target.shape:
                        assert not np.array_equal(ref, target), type(obj)
    assert seen > 5  # the scan did reach the holders' arrays
    for share in fed.shares.values():
        assert "<secret>" in repr(share)
        with pytest.raises(TypeError, match="pickle"):
            pickle.dumps(share)


def test_members_erase_their_polynomials(five_holders: Holders) -> None:
    members = five_holders.members(_spec(five_holders, epoch=5), seed=5)
    reveals = _to_share_phase(members)
    dealt = [msg for m in members for msg in m.deal(reveals)]
    for m in members:
        assert m._secret is None
        m.finish([d for d in dealt if d.recipient == m.index])
        assert m._own_share is None
        assert "<secret>" in repr(m)


def test_a_rogue_public_key_share_after_seeing_the_others_is_refused(five_holders: Holders) -> None:
    members = five_holders.members(_spec(five_holders, epoch=6), seed=6)
    reveals = _to_reveals(members)
    # holder 5 reveals something other than what it committed to (e.g. chosen to cancel others)
    rogue = dataclasses.replace(reveals[4], payload=reveals[0].payload)
    signer = five_holders.signing[five_holders.ids[4]]
    rogue = dataclasses.replace(
        rogue, signature=signer.sign(rogue.signed_bytes(), context=CEREMONY_CONTEXT)
    )
    with pytest.raises(CeremonyError, match=r"holder 5.*commitment"):
        members[0].confirm([*reveals[:4], rogue])
    members[0].confirm(reveals)  # state unchanged: the honest reveals still go through


def test_a_seed_that_does_not_match_its_commitment_is_refused(five_holders: Holders) -> None:
    members = five_holders.members(_spec(five_holders, epoch=7), seed=7)
    commits = [m.seed_commitment() for m in members]
    seeds = [m.reveal_seed(commits) for m in members]
    signer = five_holders.signing[five_holders.ids[1]]
    changed = dataclasses.replace(seeds[1], payload=bytes(32))
    changed = dataclasses.replace(
        changed, signature=signer.sign(changed.signed_bytes(), context=CEREMONY_CONTEXT)
    )
    with pytest.raises(CeremonyError, match="holder 2's seed") as caught:
        members[0].key_commitment([seeds[0], changed, *seeds[2:]])
    assert caught.value.holder_index == 2  # the holder it names, as a field


def test_ceremony_messages_are_checked(five_holders: Holders) -> None:
    members = five_holders.members(_spec(five_holders, epoch=8), seed=8)
    commits = [m.seed_commitment() for m in members]
    forged = dataclasses.replace(commits[2], payload=bytes(32))
    with pytest.raises(InvalidSignature, match="holder 3") as forged_by:
        members[0].reveal_seed([*commits[:2], forged, *commits[3:]])
    assert forged_by.value.holder_index == 3
    with pytest.raises(CeremonyError, match="missing holders"):
        members[0].reveal_seed(commits[:4])
    with pytest.raises(CeremonyError, match="sent twice"):
        members[0].reveal_seed([*commits, commits[1]])
    other = five_holders.members(_spec(five_holders, epoch=9), seed=9)
    with pytest.raises(CeremonyError, match="another ceremony"):
        members[0].reveal_seed([other[0].seed_commitment(), *commits[1:]])
    with pytest.raises(CeremonyError, match="out of order") as early:
        members[0].deal([])
    assert (early.value.party, early.value.holder_index) == (members[0].holder_id, 1)
    members[0].reveal_seed(commits)  # none of the refusals moved the member on


def test_a_tampered_or_unsealed_or_misdirected_share_is_rejected(five_holders: Holders) -> None:
    members = five_holders.members(_spec(five_holders, epoch=10), seed=10)
    reveals = _to_share_phase(members)
    dealt = [msg for m in members for msg in m.deal(reveals)]
    to_first = sorted((d for d in dealt if d.recipient == 1), key=lambda d: -d.sender)
    sender = to_first[0].sender
    signer = five_holders.signing[five_holders.ids[sender - 1]]

    def resigned(message: CeremonyMessage, payload: bytes) -> CeremonyMessage:
        m = dataclasses.replace(message, payload=payload)
        return dataclasses.replace(
            m, signature=signer.sign(m.signed_bytes(), context=CEREMONY_CONTEXT)
        )

    flipped = bytearray(to_first[0].payload)
    flipped[-1] ^= 1
    tampered_in_transit = dataclasses.replace(to_first[0], payload=bytes(flipped))
    with pytest.raises(InvalidSignature):
        members[0].finish([tampered_in_transit, *to_first[1:]])
    with pytest.raises(SealingError):
        members[0].finish([resigned(to_first[0], bytes(flipped)), *to_first[1:]])
    unsealed = resigned(to_first[0], bytes(8 * 3 * 8192))
    with pytest.raises(MalformedMessage):
        members[0].finish([unsealed, *to_first[1:]])
    # a share sealed for holder 2, re-addressed to holder 1, does not open
    for_second = next(d for d in dealt if d.recipient == 2 and d.sender == sender)
    readdressed = dataclasses.replace(for_second, recipient=1)
    readdressed = dataclasses.replace(
        readdressed, signature=signer.sign(readdressed.signed_bytes(), context=CEREMONY_CONTEXT)
    )
    with pytest.raises(SealingError):
        members[0].finish([readdressed, *to_first[1:]])
    public_key, share = members[0].finish(to_first)  # the honest shares still work
    assert share.holder_index == 1 and public_key.fingerprint == share.public_key_fingerprint


def test_a_share_replayed_into_another_epoch_does_not_open(five_holders: Holders) -> None:
    old = five_holders.members(_spec(five_holders, epoch=11), seed=11)
    old_reveals = _to_share_phase(old)
    old_dealt = [msg for m in old for msg in m.deal(old_reveals)]
    new = five_holders.members(_spec(five_holders, epoch=12), seed=12)
    new_reveals = _to_share_phase(new)
    new_dealt = [msg for m in new for msg in m.deal(new_reveals)]
    to_first = [d for d in new_dealt if d.recipient == 1]
    replay = next(d for d in old_dealt if d.recipient == 1 and d.sender == to_first[0].sender)
    signer = five_holders.signing[five_holders.ids[replay.sender - 1]]
    replay = dataclasses.replace(replay, ceremony_id=new[0].spec.ceremony_id)
    replay = dataclasses.replace(
        replay, signature=signer.sign(replay.signed_bytes(), context=CEREMONY_CONTEXT)
    )
    with pytest.raises(SealingError):
        new[0].finish([replay, *to_first[1:]])


def test_wire_decoding_refuses_garbage() -> None:
    rng = np.random.default_rng(3)
    for size in (0, 7, 300):
        with pytest.raises(MalformedMessage):
            CeremonyMessage.from_bytes(rng.bytes(size))


def test_three_of_five_ceremony_through_the_wire_yields_one_key(five_holders: Holders) -> None:
    public_key, shares = run_ceremony(five_holders.members(_spec(five_holders, epoch=13), seed=13))
    assert sorted(s.holder_index for s in shares) == [1, 2, 3, 4, 5]
    assert all(s.threshold == 3 and s.holders == 5 for s in shares)
    assert public_key.preset is PRESET


def test_a_confirmation_that_misreports_a_commitment_names_its_sender(
    five_holders: Holders,
) -> None:
    """Holder 2 confirms a seed commitment of holder 3 that holder 3 never signed (to frame
    it): the evidence does not verify, so holder 2 is the one named."""
    members = five_holders.members(_spec(five_holders, epoch=14), seed=14)
    confirmations = _to_share_phase(members)
    liar = members[1]
    assert liar._transcript is not None
    entries = {phase: dict(view) for phase, view in liar._transcript.entries.items()}
    entries["seed-commit"][3] = (bytes(32), entries["seed-commit"][3][1])
    lie = Transcript(entries=entries, public_key=liar._transcript.public_key)
    payload = confirmation_bytes(lie, liar.spec.ceremony_id)
    signer = five_holders.signing[five_holders.ids[1]]
    forged = dataclasses.replace(confirmations[1], payload=payload)
    forged = dataclasses.replace(
        forged, signature=signer.sign(forged.signed_bytes(), context=CEREMONY_CONTEXT)
    )
    with pytest.raises(CeremonyError, match=r"holder 2 .* reports a seed-commit of holder 3"):
        members[0].deal([confirmations[0], forged, *confirmations[2:]])
    # a confirmation of another joint key over the same commitments names its sender too
    other_key = Transcript(entries=liar._transcript.entries, public_key=bytes(32))
    forged = dataclasses.replace(
        confirmations[1], payload=confirmation_bytes(other_key, liar.spec.ceremony_id)
    )
    forged = dataclasses.replace(
        forged, signature=signer.sign(forged.signed_bytes(), context=CEREMONY_CONTEXT)
    )
    with pytest.raises(CeremonyError, match=r"holder 2 .* another public key"):
        members[0].deal([confirmations[0], forged, *confirmations[2:]])
    assert members[0].steps_done == 5
    members[0].deal(confirmations)  # the honest confirmations still go through


def test_a_share_sealed_in_another_ceremony_does_not_open(five_holders: Holders) -> None:
    """Two ceremonies of the same consortium, epoch and holders (another threshold): a share
    sealed in one, relayed into the other and signed by its sender, does not open there, as the
    ceremony id is in the HPKE info."""
    first = five_holders.members(_spec(five_holders, threshold=3, epoch=15), seed=15)
    first_confirmations = _to_share_phase(first)
    first_dealt = [msg for m in first for msg in m.deal(first_confirmations)]
    second = five_holders.members(_spec(five_holders, threshold=4, epoch=15), seed=16)
    second_confirmations = _to_share_phase(second)
    second_dealt = [msg for m in second for msg in m.deal(second_confirmations)]
    to_first = [d for d in second_dealt if d.recipient == 1]
    moved = next(d for d in first_dealt if d.recipient == 1 and d.sender == to_first[0].sender)
    signer = five_holders.signing[five_holders.ids[moved.sender - 1]]
    moved = dataclasses.replace(moved, ceremony_id=second[0].spec.ceremony_id)
    moved = dataclasses.replace(
        moved, signature=signer.sign(moved.signed_bytes(), context=CEREMONY_CONTEXT)
    )
    with pytest.raises(SealingError):
        second[0].finish([moved, *to_first[1:]])
    public_key, share = second[0].finish(to_first)
    assert share.threshold == 4 and public_key.fingerprint == share.public_key_fingerprint
