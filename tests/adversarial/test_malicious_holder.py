"""A malicious key holder: in the ceremony (rogue key, equivocation, wrong or tampered shares)
and in decryption (a garbage partial).

Commit-then-reveal stops a rogue public-key share; signatures and HPKE bindings stop tampered,
re-addressed and replayed shares (typed error, the member stays where it was, a signed
``ceremony.rejected`` entry). Shamir shares themselves are not verifiable (no lattice VSS): a
holder that deals a wrong share is not caught by the ceremony, but every decryption including
the victim then fails loudly with :class:`~fhe_agg.DecryptionFailed` instead of returning a
wrong mean, and the decrypting sets without the victim still work.
"""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from federation import Holders

from fhe_agg import (
    CeremonyError,
    CeremonyMember,
    CeremonyMessage,
    CeremonySpec,
    DecryptionFailed,
    DecryptionSession,
    FheAggError,
    InvalidSignature,
    MalformedMessage,
    SeededRandom,
    run_ceremony,
)
from fhe_agg.ceremony._ceremony import CEREMONY_CONTEXT
from fhe_agg.ckks._keys import sample_secret
from fhe_agg.ckks._seal import backend_for
from fhe_agg.hazmat.rlwe import add_polys
from fhe_agg.hazmat.shamir import share_polynomial
from fhe_agg.identity import SealingError

from .conftest import (
    SET,
    AuditTrail,
    Consortium,
    assert_refused,
    ceremony_members,
    ceremony_spec,
    config_for,
    consortium_from,
    partial,
    release,
    state_of,
)

PRESET = config_for("compact").preset


def _spec(holders: Holders, epoch: int) -> CeremonySpec:
    return CeremonySpec(
        consortium="adversarial", epoch=epoch, preset=PRESET, holders=holders.ids, threshold=3
    )


def _to_reveals(members: list[CeremonyMember]) -> list[CeremonyMessage]:
    """Run phases 1-4; every member's public-key reveal."""
    commits = [m.seed_commitment() for m in members]
    seeds = [m.reveal_seed(commits) for m in members]
    key_commits = [m.key_commitment(seeds) for m in members]
    return [m.reveal_public_share(key_commits) for m in members]


def _deal(members: list[CeremonyMember]) -> list[CeremonyMessage]:
    reveals = _to_reveals(members)
    confirmations = [m.confirm(reveals) for m in members]
    return [msg for m in members for msg in m.deal(confirmations)]


def _signed_by(holders: Holders, message: CeremonyMessage, **changes: object) -> CeremonyMessage:
    """``message`` changed and signed again by its (malicious) sender."""
    changed = dataclasses.replace(message, **changes)
    key = holders.signing[holders.ids[changed.sender - 1]]
    return dataclasses.replace(
        changed, signature=key.sign(changed.signed_bytes(), context=CEREMONY_CONTEXT)
    )


def _poly(blob: bytes, rows: int) -> np.ndarray:
    return np.frombuffer(blob, dtype="<u8").astype(np.uint64).reshape(rows, -1)


def test_a_rogue_public_key_share_chosen_after_the_others_is_refused(
    identities: Holders, trail: AuditTrail
) -> None:
    """Holder 5 picks its share after seeing the others' so that the joint key is one it alone
    knows the secret of. It had to commit first; every honest member refuses the reveal."""
    logs = {i: trail.log(f"member-{i}") for i in range(1, 5)}
    members = ceremony_members(identities, _spec(identities, 81), logs)
    reveals = _to_reveals(members)
    primes, n = backend_for(PRESET).key_primes, backend_for(PRESET).n
    attacker = members[4]
    assert attacker._a is not None
    _, wanted = sample_secret(attacker._a, n, primes, SeededRandom(666))  # its own key pair
    rogue_poly = wanted
    for honest in reveals[:4]:
        p = _poly(honest.payload, len(primes))
        negated = np.stack([(np.uint64(q) - p[i]) % np.uint64(q) for i, q in enumerate(primes)])
        rogue_poly = add_polys(rogue_poly, negated, primes)
    rogue = _signed_by(identities, reveals[4], payload=rogue_poly.astype("<u8").tobytes())
    total = rogue_poly
    for honest in reveals[:4]:
        total = add_polys(total, _poly(honest.payload, len(primes)), primes)
    assert np.array_equal(total, wanted)  # accepted, the joint key would be the attacker's
    for i, member in enumerate(members[:4], start=1):
        assert_refused(
            lambda m=member: m.confirm([*reveals[:4], rogue]),
            CeremonyError,
            state=state_of(members=members[:4]),
            trail=trail,
            actor=f"member-{i}",
            event="ceremony.rejected",
            match="holder 5's public-key share does not match its commitment",
        )
    members[0].confirm(reveals)  # the honest reveal still goes through
    assert members[0].steps_done == 5


def test_no_member_reveals_before_every_holder_committed(
    identities: Holders, trail: AuditTrail
) -> None:
    members = ceremony_members(identities, _spec(identities, 82), {1: trail.log("member-1")})
    commits = [m.seed_commitment() for m in members]
    seeds = [m.reveal_seed(commits) for m in members]
    key_commits = [m.key_commitment(seeds) for m in members]
    assert_refused(
        lambda: members[0].reveal_public_share(key_commits[:4]),
        CeremonyError,
        state=state_of(members=members),
        trail=trail,
        actor="member-1",
        event="ceremony.rejected",
        match=r"missing holders \[5\]",
    )


def test_an_equivocating_holder_is_named_before_any_share_is_dealt(
    identities: Holders, trail: AuditTrail
) -> None:
    """Holder 5 shows holders 1-2 one face (seed, key share) and holders 3-4 another. Every
    check up to the joint key passes, and the halves derive different public keys; but before
    any share is dealt the holders exchange signed confirmations of H(transcript, public key):
    the digests differ, and holder 5's two signed commitments of one phase prove who lied."""
    spec = _spec(identities, 83)
    logs = {i: trail.log(f"member-{i}") for i in range(1, 5)}
    honest = ceremony_members(identities, spec, logs)[:4]
    h5 = identities.ids[4]
    faces = [
        CeremonyMember(
            spec=spec,
            holder_id=h5,
            signing_key=identities.signing[h5],
            sealing_key=identities.sealing[h5],
            directory=identities.directory,
            rng=SeededRandom(500 + k),
        )
        for k in (0, 1)
    ]
    sees = {1: 0, 2: 0, 3: 1, 4: 1}  # which face each honest holder is shown
    commits = [m.seed_commitment() for m in honest]
    views = [[*commits, face.seed_commitment()] for face in faces]
    for step in ("reveal_seed", "key_commitment", "reveal_public_share", "confirm"):
        sent = [getattr(m, step)(views[sees[m.index]]) for m in honest]
        views = [[*sent, getattr(face, step)(views[k])] for k, face in enumerate(faces)]
    keys = [m._public_key for m in honest]
    assert keys[0] is not None and keys[2] is not None
    assert keys[0].fingerprint != keys[2].fingerprint  # without the check: a split federation
    for member in honest:
        assert_refused(
            lambda m=member: m.deal(views[sees[m.index]]),
            CeremonyError,
            state=state_of(members=honest),
            trail=trail,
            actor=f"member-{member.index}",
            event="ceremony.rejected",
            match=rf"holder 5 \({h5!r}\) equivocated: it signed two different seed-commit",
        )
    assert all(m.steps_done == 5 for m in honest)  # no share left any honest holder


def _ceremony_with_a_wrong_share(
    identities: Holders, monkeypatch: pytest.MonkeyPatch, trail: AuditTrail, root: Path
) -> Consortium:
    """A 3-of-5 epoch in which holder 2 deals holder 4 its share plus the constant 1."""
    calls = itertools.count(1)

    def dealer(secret: np.ndarray, **kw: Any) -> dict[int, np.ndarray]:
        shares = share_polynomial(secret, **kw)
        if next(calls) == 2:  # members deal in order: this is holder 2
            rows = zip(shares[4], kw["primes"], strict=True)
            shares[4] = np.stack([(row + np.uint64(1)) % np.uint64(q) for row, q in rows])
        return shares

    config = config_for("compact")
    logs = {i: trail.log(f"member-{i}") for i in range(1, 6)}
    with monkeypatch.context() as patch:
        patch.setattr("fhe_agg.ceremony._shares.share_polynomial", dealer)
        members = ceremony_members(identities, ceremony_spec(identities, config, 84), logs)
        outcome = run_ceremony(members)
    assert next(calls) == 6  # every holder dealt once
    return consortium_from(config, outcome, root, 84)


def test_a_wrong_shamir_share_fails_every_decryption_that_includes_its_victim(
    identities: Holders,
    monkeypatch: pytest.MonkeyPatch,
    trail: AuditTrail,
    tmp_path: Path,
) -> None:
    fed = _ceremony_with_a_wrong_share(identities, monkeypatch, trail, tmp_path)
    # the ceremony cannot see it: nobody recorded a refusal
    assert all(trail.entries(f"member-{i}") == [] for i in range(1, 6))
    holders = fed.key_holders()
    for round_id, members in enumerate(itertools.combinations(range(1, 6), 3), start=1):
        agg, aggregate = fed.collect(round_id, ("ana", "ben", "cy"))
        if 4 not in members:
            mean = release(fed, agg, holders, members)
            expected = fed.expected(("ana", "ben", "cy"))
            assert np.max(np.abs(mean - expected)) < fed.tolerance(aggregate.total_weight)
            continue
        session = DecryptionSession(
            aggregate, config=fed.config, layout=fed.layout, decrypting_set=members
        )
        for j in members:
            session.add(partial(holders[j], aggregate, agg.evidence, members))
        with pytest.raises(DecryptionFailed, match="no honest round"):
            session.release()
        assert session.state == "aborted", members


def test_tampered_misdirected_or_replayed_shares_are_refused(
    identities: Holders, trail: AuditTrail
) -> None:
    old = ceremony_members(identities, _spec(identities, 85))
    old_dealt = _deal(old)
    members = ceremony_members(identities, _spec(identities, 86), {1: trail.log("member-1")})
    dealt = _deal(members)
    inbox = sorted((d for d in dealt if d.recipient == 1), key=lambda d: d.sender)
    first, rest = inbox[0], inbox[1:]  # holder 2's share to holder 1, and the others
    flipped = bytearray(first.payload)
    flipped[-1] ^= 1
    for_holder_3 = next(d for d in dealt if d.recipient == 3 and d.sender == first.sender)
    replayed = next(d for d in old_dealt if d.recipient == 1 and d.sender == first.sender)
    cases: list[tuple[str, list[CeremonyMessage], type[FheAggError], str]] = [
        (
            "edited in transit",
            [dataclasses.replace(first, payload=bytes(flipped)), *rest],
            InvalidSignature,
            "holder 2",
        ),
        (
            "edited and re-signed by the sender",
            [_signed_by(identities, first, payload=bytes(flipped)), *rest],
            SealingError,
            "",
        ),
        (
            "sealed for holder 3, re-addressed to holder 1",
            [_signed_by(identities, for_holder_3, recipient=1), *rest],
            SealingError,
            "",
        ),
        ("replayed from the previous epoch", [replayed, *rest], CeremonyError, "another ceremony"),
        (
            "replayed from the previous epoch and re-signed for this one",
            [_signed_by(identities, replayed, ceremony_id=members[0].spec.ceremony_id), *rest],
            SealingError,
            "",
        ),
        (
            "not sealed at all",
            [_signed_by(identities, first, payload=bytes(8 * 2 * 8192)), *rest],
            MalformedMessage,
            "",
        ),
        ("sent twice", [first, *inbox], CeremonyError, "sent twice"),
        ("withheld", rest, CeremonyError, r"missing holders \[2\]"),
    ]
    for name, messages, error, match in cases:
        try:
            assert_refused(
                lambda msgs=messages: members[0].finish(msgs),
                error,
                state=state_of(members=members[:1]),
                trail=trail,
                actor="member-1",
                event="ceremony.rejected",
                match=match or None,
            )
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from exc
    public_key, share = members[0].finish(inbox)  # the honest shares still work
    assert share.public_key_fingerprint == public_key.fingerprint and members[0].steps_done == 7


def test_a_garbage_partial_fails_the_release_and_spends_no_privacy(noisy: Consortium) -> None:
    """A holder that sends noise instead of its partial is caught when the set combines (a
    small, well-formed offset would not be: partials carry no proof of correct decryption)."""
    holders = noisy.key_holders()
    accountant = noisy.accountant()
    assert accountant is not None
    agg, aggregate = noisy.collect(1, ("ana", "ben", "cy"))
    session = DecryptionSession(
        aggregate,
        config=noisy.config,
        layout=noisy.layout,
        decrypting_set=SET,
        accountant=accountant,
    )
    for j in SET:
        p = partial(holders[j], aggregate, agg.evidence)
        if j == 3:
            primes = backend_for(noisy.config.preset).data_primes
            noise = np.stack(
                [
                    np.random.default_rng(3).integers(0, q, p.data[:, i].shape, dtype=np.uint64)
                    for i, q in enumerate(primes)
                ],
                axis=1,
            )
            p = dataclasses.replace(p, data=noise)
        session.add(p)
    with pytest.raises(DecryptionFailed):
        session.release()
    assert session.state == "aborted" and accountant.rounds == 0
    # the round is re-run with fresh encryptions and a set without holder 3
    agg2, _again = noisy.collect(2, ("ana", "ben", "cy"))
    release(noisy, agg2, holders, (1, 2, 4), accountant)
    assert accountant.rounds == 1
