"""The round coordinator: the order of a round, enforced, and its state saved and resumed.

Every wrong step in every phase raises :class:`OutOfOrder` (or the check's own leaf) with the
saved state bytes unchanged; no partial is asked or accepted before every member's challenge;
a coordinator saved after the challenges and resumed in a fresh Python process releases the
same mean, bit for bit, as the uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from federation import Round

from fhe_agg import (
    PRESETS,
    AggregateMismatch,
    Aggregator,
    ChallengeReply,
    ChallengeRequest,
    Client,
    FederationConfig,
    FheAggError,
    HolderPhase,
    HolderRound,
    KeyHolder,
    MalformedMessage,
    OutOfOrder,
    PartialReply,
    PartialRequest,
    RoundCoordinator,
    RoundPhase,
    SeededRandom,
    SigningKey,
    ThresholdNotMet,
    local_key_ceremony,
)
from fhe_agg.protocol._round_messages import Reply, Request
from fhe_agg.server._state import ServerState

from .conftest import CLIENTS, WEIGHTS, Federation

SET = (1, 2, 3)


class Scene(Round):
    """One 3-of-5 round of ``fed`` driven by a coordinator and five holder machines
    (:class:`federation.Round`), the holders' identity keys known to the coordinator."""

    def __init__(self, fed: Federation, round_id: int) -> None:
        # the ceremony federation's holders sign with their identity keys (abort votes need them)
        super().__init__(fed.aggregator(round_id), fed.key_holders(), holder_keys=fed.holder_keys)
        self.fed = fed
        rng = np.random.default_rng(round_id)
        for cid, weight in zip(CLIENTS, WEIGHTS, strict=True):
            update = fed.clients[cid].encrypt_update(
                rng.uniform(-1, 1, fed.layout.length), round_id=round_id, weight=weight
            )
            self.coord.add(update.to_bytes())

    def forged_partial(self, j: int, members: tuple[int, ...] = SET) -> PartialReply:
        return super().forged_partial(j, members)


def refused(coord: RoundCoordinator, step: Callable[[], object], error: type[FheAggError]) -> str:
    """``step`` raises exactly ``error`` and the coordinator's saved state is unchanged."""
    before = coord.to_bytes()
    with pytest.raises(error) as caught:
        step()
    assert type(caught.value) is error, repr(caught.value)
    assert coord.to_bytes() == before
    return str(caught.value)


_rounds = iter(range(500, 10_000))


@pytest.fixture
def scene(fed: Federation) -> Scene:
    return Scene(fed, next(_rounds))


def test_an_honest_round_releases_the_weighted_mean(fed: Federation, scene: Scene) -> None:
    challenges = scene.coord.finalize(SET)
    assert [type(r) for r in challenges] == [ChallengeRequest] * 3
    mean = scene.coord.run(scene.deliver)  # type: ignore[arg-type]
    assert mean is not None and scene.coord.phase is RoundPhase.RELEASED
    assert mean.shape == (fed.layout.length,)
    assert np.max(np.abs(mean)) < 1.0  # a weighted mean of values in [-1, 1]
    assert all(scene.machines[j].phase is HolderPhase.DECRYPTED for j in SET)
    assert all(scene.machines[j].phase is HolderPhase.IDLE for j in (4, 5))


def test_no_partial_before_every_members_challenge(scene: Scene) -> None:
    scene.coord.finalize(SET)
    scene.answer(2)  # holders 1 and 2 challenged, holder 3 not yet
    assert scene.coord.phase is RoundPhase.CHALLENGING
    outstanding = scene.coord.requests()
    assert [(type(r), r.holder_index) for r in outstanding] == [(ChallengeRequest, 3)]
    reason = refused(scene.coord, lambda: scene.coord.accept(scene.forged_partial(1)), OutOfOrder)
    assert "every member's challenge comes before anyone's partial" in reason
    refused(scene.coord, scene.coord.release, OutOfOrder)
    scene.answer(1)
    assert {type(r) for r in scene.coord.requests()} == {PartialRequest}


def test_a_holder_machine_issues_no_partial_before_its_challenge(scene: Scene) -> None:
    scene.coord.finalize(SET)
    scene.answer(3)
    request = scene.coord.requests()[0]
    fresh = HolderRound(scene.fed.key_holders()[request.holder_index], layout=scene.fed.layout)
    with pytest.raises(OutOfOrder, match="before this holder's challenge"):
        fresh.handle(request)
    assert fresh.phase is HolderPhase.IDLE
    with pytest.raises(OutOfOrder, match="reached holder"):
        scene.machines[4].handle(request)


def test_refusals_name_the_round_and_the_holder(scene: Scene) -> None:
    """Users branch on fields, not on messages: a refused reply carries its round and holder."""
    scene.coord.finalize(SET)
    digest = scene.coord.state().aggregate_digest
    with pytest.raises(OutOfOrder) as caught:
        scene.coord.accept(ChallengeReply(scene.coord.round_id, 4, digest, (0,)))
    assert (caught.value.round_id, caught.value.holder_index) == (scene.coord.round_id, 4)
    assert caught.value.code == "OutOfOrder"
    request = scene.coord.requests()[0]
    with pytest.raises(OutOfOrder) as caught:
        scene.machines[4].handle(request)
    assert (caught.value.round_id, caught.value.holder_index) == (request.round_id, 4)


_STEPS = {"challenging": 1, "decrypting": 3, "delivered-one": 4, "released": 6}


def _drive(scene: Scene, phase: str) -> None:
    """Drive ``scene`` to the named point of the round (one request carried per step)."""
    coord = scene.coord
    if phase == "collecting":
        return
    coord.finalize(SET)
    scene.answer(_STEPS.get(phase, 4))  # voting / closed: every challenge, holder 1's partial
    if phase == "released":
        coord.release()
    elif phase in ("voting", "closed"):
        coord.abort()
    if phase == "closed":
        for j in (4, 5, 2):
            coord.accept(scene.vote(j))
        coord.certificate()


@pytest.mark.parametrize("phase", ["collecting", *_STEPS, "voting", "closed"])
def test_every_wrong_step_is_refused_with_the_state_unchanged(fed: Federation, phase: str) -> None:
    scene = Scene(fed, next(_rounds))
    coord = scene.coord
    _drive(scene, phase)
    extra = np.random.default_rng(coord.round_id).uniform(-1, 1, fed.layout.length)
    update = fed.clients["ana"].encrypt_update(extra, round_id=coord.round_id, weight=1.0)
    wrong: list[tuple[str, Callable[[], object]]] = []
    if phase != "collecting":  # both are the expected steps of a collecting round
        wrong += [
            ("add", lambda: coord.add(update.to_bytes())),
            ("finalize", lambda: coord.finalize(SET)),
        ]
    if phase != "collecting":
        digest = coord.state().aggregate_digest
        again = ChallengeReply(coord.round_id, 1, digest, (0,))  # holder 1 answered already
        wrong += [
            ("repeated challenge", lambda: coord.accept(again)),
            (
                "challenge of a non-member",
                lambda: coord.accept(ChallengeReply(coord.round_id, 4, digest, (0,))),
            ),
            (
                "challenge of another round",
                lambda: coord.accept(dataclasses.replace(again, round_id=coord.round_id + 1)),
            ),
        ]
    wrong.append(("release", coord.release))  # never complete: released, or partials missing
    if phase != "voting":
        wrong.append(("vote", lambda: coord.accept(scene.vote(5))))
    if phase in ("released", "closed"):
        wrong.append(("abort a finished round", coord.abort))
    if phase not in ("voting", "closed"):
        wrong.append(("certificate", coord.certificate))
    if phase == "challenging":
        wrong.append(
            ("partial before the challenges", lambda: coord.accept(scene.forged_partial(1)))
        )
    for what, step in wrong:
        before = coord.to_bytes()
        with pytest.raises(OutOfOrder):
            step()
        assert coord.to_bytes() == before, what
    expected = {"delivered-one": "decrypting"}.get(phase, phase)
    assert coord.phase.name.lower() == expected


def test_wrong_partials_are_refused(scene: Scene) -> None:
    coord = scene.coord
    coord.finalize(SET)
    scene.answer(4)  # every challenge, then holder 1's partial
    assert coord.state().delivered == (1,)
    first = coord.state().partials[0]
    refused(coord, lambda: coord.accept(PartialReply(first)), OutOfOrder)  # a repeat
    other = dataclasses.replace(first, holder_index=2, round_id=first.round_id + 1)  # as combine()
    refused(coord, lambda: coord.accept(PartialReply(other)), AggregateMismatch)
    stray = dataclasses.replace(first, holder_index=4)
    refused(coord, lambda: coord.accept(PartialReply(stray)), OutOfOrder)
    request = coord.requests()[0]
    reply = scene.deliver(request)
    assert isinstance(reply, PartialReply)
    bad = dataclasses.replace(reply.partial, aggregate_digest=bytes(32))
    refused(coord, lambda: coord.accept(PartialReply(bad)), AggregateMismatch)
    coord.accept(reply)
    scene.answer(1)
    assert coord.release().shape == (scene.fed.layout.length,)


def test_votes_close_the_round_and_wrong_votes_are_refused(scene: Scene) -> None:
    coord = scene.coord
    coord.finalize(SET)
    scene.answer(4)  # holder 1 delivered; holder 2 "never answers"
    late = PartialReply(coord.state().partials[0])
    votes = coord.abort()
    assert [r.holder_index for r in votes] == [2, 3, 4, 5]  # holder 1 issued: it cannot vote
    refused(coord, coord.certificate, ThresholdNotMet)
    refused(coord, lambda: coord.accept(late), OutOfOrder)
    old = Scene(scene.fed, coord.round_id - 1)
    refused(coord, lambda: coord.accept(old.vote(4)), OutOfOrder)
    coord.accept(scene.vote(4))
    refused(coord, lambda: coord.accept(scene.vote(4)), OutOfOrder)  # a second vote
    coord.accept(scene.vote(5))
    coord.accept(scene.vote(2))
    certificate = coord.certificate()
    certificate.verify(scene.holder_keys, config=scene.fed.config, public_key=scene.fed.public_key)
    assert certificate.voters == (2, 4, 5) and coord.phase is RoundPhase.CLOSED


def test_a_holder_that_does_not_answer_its_challenge_leads_to_votes(scene: Scene) -> None:
    scene.hooks[(ChallengeRequest, 3)] = lambda request, handle: None  # down for its challenge
    assert scene.run(SET) is None
    assert scene.coord.phase is RoundPhase.VOTING
    certificate = scene.coord.certificate()
    assert certificate.voters == (1, 2, 3, 4, 5)  # nobody issued: every live holder voted
    assert all(not k.decrypted_rounds for k in scene.keys.values())


def test_hooked_parties_are_refused_in_the_coordinators_order(scene: Scene) -> None:
    """The transport's hooks play the attacks of a round without leaving its order: a replayed
    challenge reply, a substituted partial and a crafted aggregate are each refused (typed, the
    receiver's state unchanged); a holder that then goes down leaves the round to the votes."""
    coord = scene.coord
    coord.finalize(SET)
    seen = scene.record(ChallengeRequest, [1])
    scene.answer(1)
    scene.hooks[(ChallengeRequest, 2)] = lambda request, handle: seen[0]  # a replay
    replayed = scene.deliver(coord.requests()[0])
    assert replayed is seen[0]
    assert "holder 1" in refused(coord, lambda: coord.accept(replayed), OutOfOrder)
    del scene.hooks[(ChallengeRequest, 2)]
    scene.answer(2)
    assert coord.phase is RoundPhase.DECRYPTING

    def substitute(request: Request, handle: Callable[[Request], Reply]) -> Reply:
        honest = handle(request)
        assert isinstance(honest, PartialReply)
        return PartialReply(dataclasses.replace(honest.partial, aggregate_digest=bytes(32)))

    scene.hooks[(PartialRequest, 1)] = substitute
    substituted = scene.deliver(coord.requests()[0])
    refused(coord, lambda: coord.accept(substituted), AggregateMismatch)  # type: ignore[arg-type]
    crafted = dataclasses.replace(coord.aggregate, manifest=coord.aggregate.manifest[:2])
    scene.tamper = lambda r: dataclasses.replace(r, aggregate=crafted)  # a client dropped
    before = (scene.machines[2].to_bytes(), scene.keys[2].budget_left)
    with pytest.raises(ThresholdNotMet, match="2 clients"):  # the key holder's manifest check
        scene.deliver(coord.requests()[1])
    assert (scene.machines[2].to_bytes(), scene.keys[2].budget_left) == before
    scene.tamper = None
    scene.down.add(1)  # holder 1 issued (and was refused); it is now down
    assert scene.run() is None and coord.phase is RoundPhase.VOTING
    assert coord.certificate().voters == (2, 3, 4, 5)


def test_saved_states_round_trip_and_bad_ones_are_refused(scene: Scene) -> None:
    coord, fed = scene.coord, scene.fed
    coord.finalize(SET)
    scene.answer(4)
    data = coord.to_bytes()
    state = ServerState.from_bytes(data, config=fed.config, layout=fed.layout)
    assert state.to_bytes(fed.config) == data
    early = dataclasses.replace(state, challenges={1: (0,)}, phase=RoundPhase.CHALLENGING)
    with pytest.raises(MalformedMessage, match="before every member's challenge"):
        ServerState.from_bytes(early.to_bytes(fed.config), config=fed.config, layout=fed.layout)
    for cut in (0, 1, len(data) // 2, len(data) - 1):
        with pytest.raises(MalformedMessage):
            ServerState.from_bytes(data[:cut], config=fed.config, layout=fed.layout)
    again = RoundCoordinator.resume(
        data, aggregator=scene.aggregator, holder_keys=scene.holder_keys
    )
    assert again.to_bytes() == data
    holder_state = scene.machines[2].to_bytes()
    resumed = HolderRound.resume(holder_state, holder=scene.keys[2], layout=fed.layout)
    assert resumed.state == scene.machines[2].state
    with pytest.raises(OutOfOrder):
        HolderRound.resume(holder_state, holder=scene.keys[3], layout=fed.layout)


# -- saved mid-round, resumed in another process -------------------------------------------

_RESUME = """
import sys
from pathlib import Path
import numpy as np
from fhe_agg import HolderRound, RoundCoordinator
sys.path.insert(0, {tests!r})
from threshold.test_round import resume_world

work = Path(sys.argv[1])
config, layout, public_key, shares, roster = resume_world()
from threshold.test_round import resume_holders, resume_aggregator
keys = resume_holders(config, public_key, shares, roster)
machines = {{
    j: HolderRound.resume((work / f"holder-{{j}}.state").read_bytes(), holder=k, layout=layout)
    for j, k in keys.items()
}}
with resume_aggregator(config, layout, public_key, roster, work / "round.sqlite") as aggregator:
    coord = RoundCoordinator.resume((work / "round.state").read_bytes(), aggregator=aggregator)
    assert coord.phase.name == "DECRYPTING", coord
    mean = coord.run(lambda r: machines[r.holder_index].handle(r))
(work / "mean.bin").write_bytes(mean.tobytes())
print(coord.phase.name, len(mean))
"""


def resume_world() -> tuple[FederationConfig, object, object, list, dict]:
    """A 2-of-3 federation every process rebuilds identically from fixed seeds."""
    from fhe_agg import Layout

    config = FederationConfig(
        preset=PRESETS["compact"],
        min_clients=2,
        max_clients=4,
        max_weight=10.0,
        value_bound=1.0,
        holders=3,
        threshold=2,
    )
    public_key, shares = local_key_ceremony(config, SeededRandom(4242))
    roster = {c: SigningKey.from_seed(bytes([i]) * 32).verify_key for i, c in enumerate(CLIENTS)}
    return config, Layout.for_vector(3000), public_key, shares, roster


def resume_holders(config, public_key, shares, roster) -> dict[int, KeyHolder]:  # type: ignore[no-untyped-def]
    return {
        s.holder_index: KeyHolder(
            holder_id=f"holder-{s.holder_index}",
            config=config,
            public_key=public_key,
            key_share=s,
            roster=roster,
            rng=SeededRandom(70 + s.holder_index),  # the flooding noise, the same in both runs
        )
        for s in shares
    }


def resume_aggregator(config, layout, public_key, roster, store: Path) -> Aggregator:  # type: ignore[no-untyped-def]
    return Aggregator(
        config=config, roster=roster, public_key=public_key, round_id=1, layout=layout, store=store
    )


def test_a_coordinator_saved_after_the_challenges_finishes_in_a_fresh_process(
    tmp_path: Path,
) -> None:
    config, layout, public_key, shares, roster = resume_world()
    keys = resume_holders(config, public_key, shares, roster)
    machines = {j: HolderRound(k, layout=layout) for j, k in keys.items()}
    rng = np.random.default_rng(5)
    with resume_aggregator(config, layout, public_key, roster, tmp_path / "round.sqlite") as agg:
        coord = RoundCoordinator(agg)
        for i, (cid, weight) in enumerate(zip(CLIENTS, WEIGHTS, strict=True)):
            client = Client(
                client_id=cid,
                signing_key=SigningKey.from_seed(bytes([i]) * 32),
                config=config,
                public_key=public_key,
            )
            coord.add(client.encrypt_update(rng.uniform(-1, 1, 3000), round_id=1, weight=weight))
        for request in coord.finalize((1, 3)):
            coord.accept(machines[request.holder_index].handle(request))
        assert coord.phase is RoundPhase.DECRYPTING  # every challenge in, no partial yet
        (tmp_path / "round.state").write_bytes(coord.to_bytes())
        for j, machine in machines.items():
            (tmp_path / f"holder-{j}.state").write_bytes(machine.to_bytes())
        uninterrupted = coord.run(lambda r: machines[r.holder_index].handle(r))
    assert uninterrupted is not None
    tests = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), tests])}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_RESUME.format(tests=tests)), str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["RELEASED", "3000"]
    resumed = np.frombuffer((tmp_path / "mean.bin").read_bytes(), dtype=np.float64)
    assert resumed.tobytes() == uninterrupted.tobytes()  # bit for bit


@pytest.mark.parametrize("phase", ["collecting", *_STEPS, "voting", "closed"])
def test_every_phase_resumes_to_the_same_state(fed: Federation, phase: str) -> None:
    scene = Scene(fed, next(_rounds))
    _drive(scene, phase)
    data = scene.coord.to_bytes()
    again = RoundCoordinator.resume(
        data, aggregator=scene.aggregator, holder_keys=scene.holder_keys
    )
    assert again.to_bytes() == data and again.phase is scene.coord.phase
    if again.phase is RoundPhase.DECRYPTING:  # the resumed machine finishes the round
        mean = again.run(scene.deliver)  # type: ignore[arg-type]
        assert mean is not None and again.phase is RoundPhase.RELEASED
