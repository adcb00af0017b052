"""SecureAggregation's refusals, with real keys and ciphertexts over an in-process transport.

``LocalGrid`` is the transport seam: it hands each message to the node's ``ClientApp`` in this
process (node state keyed by node id) and lets a test replace a node's reply, as a faulty or
malicious node would. Everything else is real: the ceremony, ML-DSA, CKKS, the holders' checks.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np
import pytest

pytest.importorskip("flwr")

from flower_grid import Hook, LocalGrid, new_run_id, share_windows
from flwr.app import (
    Array,
    ArrayRecord,
    ConfigRecord,
    Context,
    Message,
    MetricRecord,
    RecordDict,
)
from flwr.clientapp import ClientApp
from flwr.serverapp.strategy import FedAdam, FedAvg, Strategy

from fhe_agg import PRESETS, DpPolicy, FederationConfig, PrivacyAccountant
from fhe_agg.flower import (
    SecureAggregation,
    enable_secure_aggregation,
    secure_update_mod,
)
from fhe_agg.flower._node import node_state, refuse
from fhe_agg.flower._protocol import (
    ACTION_ABORT,
    ACTION_CHALLENGE,
    ACTION_DECRYPT,
    ROUND_RECORD,
    UPDATE_RECORD,
)

NODES = 5
CLIP = 1.0
# Distinct per-node updates; nodes 1 and 3 exceed the clip bound and get scaled down.
STEPS = {
    i: np.random.default_rng(100 + i).normal(0, 0.25 if i % 2 == 0 else 0.9, 7) for i in range(5)
}


def _factor(b: float) -> float:
    """Training depends on the global model: the same model gives the same update."""
    return 1.0 + abs(b)


def _train(message: Message, context: Context) -> Message:
    i = int(context.node_config["partition-id"])
    arrays = message.content["arrays"]
    step = STEPS[i] * _factor(float(arrays["b"].numpy()[0]))
    w = arrays["w"].numpy() + step[:6]
    b = arrays["b"].numpy() + step[6:]
    trained = {"w": w, "b": b, "count": arrays["count"].numpy() + 1}
    return Message(
        RecordDict(
            {
                "arrays": ArrayRecord({k: Array(np.asarray(v)) for k, v in trained.items()}),
                "metrics": MetricRecord({"num-examples": 10 * (i + 1), "loss": float(i)}),
            }
        ),
        reply_to=message,
    )


APP = ClientApp(mods=[secure_update_mod])
enable_secure_aggregation(APP, key_holder=lambda ctx: int(ctx.node_config["partition-id"]) < 3)
APP.train()(_train)


def _start(model: int = 0) -> ArrayRecord:
    """Global model number ``model``: another model, other updates."""
    return ArrayRecord(
        {
            "w": Array(np.linspace(-0.5, 0.5, 6)),
            "b": Array(np.array([0.25 + model / 64])),
            "count": Array(np.array([3], dtype=np.int64)),
        }
    )


def _expected(start: ArrayRecord, partitions: Iterable[int]) -> np.ndarray:
    vector = np.concatenate([start["w"].numpy(), start["b"].numpy()])
    total, acc = 0.0, np.zeros(7)
    for i in partitions:
        raw = STEPS[i] * _factor(float(start["b"].numpy()[0]))
        step = raw * min(1.0, CLIP / np.linalg.norm(raw))
        acc += 10 * (i + 1) * step
        total += 10 * (i + 1)
    return vector + acc / total


def _round(strategy: SecureAggregation, grid: LocalGrid, number: int, arrays: ArrayRecord):  # type: ignore[no-untyped-def]
    messages = strategy.configure_train(number, arrays, ConfigRecord(), grid)
    return strategy.aggregate_train(number, grid.send_and_receive(messages))


def _replace_update(data: bytes) -> Hook:
    def hook(message: Message, _reply: Message) -> Message:
        content = RecordDict({UPDATE_RECORD: ConfigRecord({"update": data})})
        content["metrics"] = MetricRecord({"num-examples": 20})
        return Message(content, reply_to=message)

    return hook


def _set_up(inner: Strategy | None = None) -> tuple[SecureAggregation, LocalGrid]:
    """A fresh 2-of-3 federation of NODES nodes (the first three hold keys), set up, wrapping
    ``inner`` (default: FedAvg)."""
    grid = LocalGrid(new_run_id(), app=APP, nodes=NODES)
    config = FederationConfig(
        min_clients=3,
        max_clients=NODES,
        max_weight=1000.0,
        value_bound=CLIP,
        holders=3,
        threshold=2,
    )
    if inner is None:
        inner = FedAvg(fraction_evaluate=0.0, min_train_nodes=NODES, min_available_nodes=NODES)
    strategy = SecureAggregation(
        inner,
        config=config,
        clip=CLIP,
        timeout=30.0,
    )
    strategy.setup(grid)
    return strategy, grid


@pytest.fixture(scope="module")
def federation() -> tuple[SecureAggregation, LocalGrid]:
    return _set_up()


def test_setup_picks_volunteers_and_a_joint_key(
    federation: tuple[SecureAggregation, LocalGrid],
) -> None:
    strategy, grid = federation
    fed = strategy.federation
    assert fed is not None
    assert fed.holders == tuple(grid.node(i) for i in range(3))
    assert sorted(fed.roster) == sorted(f"node-{n}" for n in grid.contexts)
    with pytest.raises(TypeError):
        SecureAggregation(object(), config=strategy.config)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="decrypting_set"):
        SecureAggregation(FedAvg(), config=strategy.config, decrypting_set=(1, 4))


def test_refused_updates_are_logged_and_the_round_goes_on(
    federation: tuple[SecureAggregation, LocalGrid], caplog: pytest.LogCaptureFixture
) -> None:
    strategy, grid = federation
    start = _start()
    garbage, impostor = grid.node(1), grid.node(4)
    grid.hooks[("train", garbage)] = _replace_update(b"\x93garbage" * 40)
    captured: dict[str, bytes] = {}

    def steal(_message: Message, reply: Message) -> Message:  # node 3's update, resent by node 4
        captured["update"] = reply.content[UPDATE_RECORD]["update"]  # type: ignore[assignment]
        return reply

    grid.hooks[("train", grid.node(3))] = steal
    grid.hooks[("train", impostor)] = lambda m, r: _replace_update(captured["update"])(m, r)
    with caplog.at_level(logging.WARNING, logger="fhe_agg.flower"):
        arrays, metrics = _round(strategy, grid, 1, start)
    grid.hooks.clear()
    report = strategy.history[-1]
    assert report.refused[f"node-{garbage}"].startswith("MalformedMessage")
    assert report.refused[f"node-{impostor}"].startswith("NotInRoster")
    # the refusal carries the error's code and fields: nothing to parse from the text
    garbled, stolen = report.refused[f"node-{garbage}"], report.refused[f"node-{impostor}"]
    assert (garbled.code, garbled.party, garbled.round_id) == (
        "MalformedMessage",
        f"node-{garbage}",
        report.round,
    )
    assert (stolen.code, stolen.party) == ("NotInRoster", f"node-{impostor}")
    assert f"node-{garbage}" in caplog.text and f"node-{impostor}" in caplog.text
    assert report.accepted == [f"node-{grid.node(i)}" for i in (0, 2, 3)] and report.decrypted
    assert arrays is not None and metrics is not None
    got = np.concatenate([arrays["w"].numpy(), arrays["b"].numpy()])
    np.testing.assert_allclose(got, _expected(start, (0, 2, 3)), rtol=0, atol=1e-6)
    assert arrays["count"].numpy().tolist() == [3]  # integer tensors stay the global ones
    assert metrics["fhe-refused"] == 2 and metrics["fhe-accepted"] == 3


def test_a_holder_replaying_a_partial_of_another_aggregate_aborts_the_round(
    federation: tuple[SecureAggregation, LocalGrid], caplog: pytest.LogCaptureFixture
) -> None:
    strategy, grid = federation
    holder = strategy.federation.holders[0]  # type: ignore[union-attr]
    saved: dict[str, Message] = {}

    def keep(_message: Message, reply: Message) -> Message:
        saved["partial"] = reply
        return reply

    grid.hooks[(ACTION_DECRYPT, holder)] = keep
    arrays, _ = _round(strategy, grid, 2, _start(2))
    assert arrays is not None and strategy.history[-1].decrypted
    old = saved["partial"].content["fhe"]["partial"]

    def replay(message: Message, _reply: Message) -> Message:
        return Message(RecordDict({"fhe": ConfigRecord({"partial": old})}), reply_to=message)

    grid.hooks[(ACTION_DECRYPT, holder)] = replay
    with caplog.at_level(logging.WARNING, logger="fhe_agg.flower"):
        arrays, metrics = _round(strategy, grid, 3, _start(3))
    grid.hooks.clear()
    report = strategy.history[-1]
    assert arrays is None and not report.decrypted
    assert report.refused["holder-1"].startswith("AggregateMismatch")
    assert report.reason.startswith("DecryptionAborted")
    replayed = report.refused["holder-1"]
    assert (replayed.code, replayed.holder_index, replayed.round_id) == (
        "AggregateMismatch",
        1,
        report.round,
    )
    assert (report.reason.code, report.reason.round_id) == ("DecryptionAborted", report.round)
    assert "holder 1" in caplog.text or "holder-1" in caplog.text
    assert metrics is not None and metrics["fhe-accepted"] == NODES
    # both holders of the set issued, so round 3 cannot be closed (one vote of two needed):
    # the clients will not send their round-3 updates again
    assert not report.closed and "AlreadyDecrypted" in report.refused["holder-1-vote"]
    # the next round, with a new model (so new updates), decrypts again
    arrays, _ = _round(strategy, grid, 4, _start(4))
    assert arrays is not None and strategy.history[-1].decrypted


def test_too_few_valid_updates_leave_the_model_unchanged(
    federation: tuple[SecureAggregation, LocalGrid],
) -> None:
    strategy, grid = federation
    for i in (0, 1, 2):
        grid.hooks[("train", grid.node(i))] = _replace_update(b"")
    arrays, metrics = _round(strategy, grid, 5, _start(5))
    grid.hooks.clear()
    report = strategy.history[-1]
    assert arrays is None and not report.decrypted
    assert report.reason.startswith("ThresholdNotMet")
    assert report.closed  # nobody decrypted anything: every holder voted
    assert metrics is not None and metrics["fhe-refused"] == 3


def test_the_mod_never_sends_plaintext(federation: tuple[SecureAggregation, LocalGrid]) -> None:
    _, grid = federation
    node = grid.node(2)
    plain = Message(RecordDict({"arrays": _start(), "config": ConfigRecord()}), node, "train")
    (reply,) = grid.send_and_receive([plain])  # no fhe_agg round in the message
    assert reply.has_error() and "plaintext update refused" in reply.error.reason
    strategy_round = federation[0].configure_train(6, _start(6), ConfigRecord(), grid)
    (with_round,) = [m for m in strategy_round if m.metadata.dst_node_id == node]
    (reply,) = grid.send_and_receive([with_round])
    assert not reply.has_error()
    assert not reply.content.array_records  # the trained arrays were replaced by ciphertexts
    assert isinstance(reply.content[UPDATE_RECORD]["update"], bytes)


def test_distributed_dp_flows_through_the_strategy() -> None:
    config = FederationConfig(
        preset=PRESETS["dp"],
        min_clients=3,
        max_clients=NODES,
        max_weight=100.0,
        value_bound=CLIP,
        holders=3,
        threshold=2,
        dp=DpPolicy(clip=CLIP, noise_multiplier=1.0),
    )
    assert config.dp is not None and config.noise_multiplier is not None
    one_release = PrivacyAccountant.for_policy(config.dp).epsilon_after(config.noise_multiplier)
    grid = LocalGrid(new_run_id(), app=APP, nodes=NODES)
    strategy = SecureAggregation(
        FedAvg(fraction_evaluate=0.0, min_train_nodes=NODES, min_available_nodes=NODES),
        config=config,
        max_epsilon=1.2 * one_release,  # room for one release, not two
        timeout=30.0,
    )
    assert strategy.accountant is not None and strategy.accountant.epsilon == 0.0
    start = _start()
    arrays, _ = _round(strategy, grid, 1, start)
    assert arrays is not None and strategy.history[-1].decrypted
    assert strategy.accountant.epsilon > 0.0  # the release was accounted
    # the holders' Gaussian noise is on the released mean, at the stated scale (7 samples of
    # it: the bounds hold with probability > 0.999)
    got = np.concatenate([arrays["w"].numpy(), arrays["b"].numpy()])
    deviation = got - _expected(start, range(NODES))
    expected_std = config.released_noise_std / sum(10 * (i + 1) for i in range(NODES))
    assert 0.25 * expected_std < float(np.std(deviation, ddof=1)) < 2.0 * expected_std
    # a second release would exceed max_epsilon: no partial is asked for, the model stays
    arrays, _ = _round(strategy, grid, 2, _start(2))
    assert arrays is None and strategy.history[-1].reason.startswith("PrivacyBudgetExceeded")
    assert strategy.accountant.rounds == 1


def test_the_constructor_refuses_what_would_fail_every_round() -> None:
    dp = FederationConfig(
        max_weight=1.0,
        value_bound=1.0,
        holders=3,
        threshold=2,
        dp=DpPolicy(clip=CLIP, noise_multiplier=1.0),
    )
    assert SecureAggregation(FedAvg(), config=dp, clip=CLIP / 2).clip == CLIP / 2
    with pytest.raises(ValueError, match="clip"):  # every node's Client would refuse it
        SecureAggregation(FedAvg(), config=dp, clip=2 * CLIP)
    for bad in (0.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="clip"):
            SecureAggregation(FedAvg(), config=dp, clip=bad)
    with pytest.raises(TypeError, match="clip"):
        SecureAggregation(FedAvg(), config=dp, clip="1.0")  # type: ignore[arg-type]
    too_many = FederationConfig(holders=65, threshold=33)
    with pytest.raises(ValueError, match="at most 64"):
        SecureAggregation(FedAvg(), config=too_many)


def test_the_strategy_and_its_nodes_never_run_unflooded() -> None:
    from fhe_agg import MalformedMessage, UnsupportedParameters
    from fhe_agg.flower._records import decode_config, encode_config

    default = SecureAggregation(FedAvg(), config=FederationConfig())
    assert default.config.flooding is not None and default.config.flooding_security_bits >= 40
    exact = FederationConfig(flooding=None, unsafe_exact_decryption=True)
    with pytest.raises(UnsupportedParameters, match="unsafe_exact_decryption"):
        SecureAggregation(FedAvg(), config=exact)
    # a node sent an unflooded 1-of-1 federation by a lying server refuses it
    with pytest.raises(MalformedMessage, match="unsafe_exact_decryption=True"):
        decode_config(encode_config(exact, clip=None))


def test_a_federation_may_have_more_nodes_than_clients_per_round() -> None:
    grid = LocalGrid(new_run_id(), app=APP, nodes=NODES)
    config = FederationConfig(
        min_clients=2, max_clients=3, max_weight=1000.0, value_bound=CLIP, holders=3, threshold=2
    )
    strategy = SecureAggregation(FedAvg(), config=config, clip=CLIP, timeout=30.0)
    fed = strategy.setup(grid)  # the key holders accept a roster of all NODES nodes
    assert len(fed.roster) == NODES > config.max_clients


def test_a_holder_node_that_drops_is_left_out_and_the_next_round_completes() -> None:
    """Holder 1 stops answering: nobody decrypts round 1, holders 2 and 3 vote to abort it, and
    round 2 (the same model, so the same updates) is decrypted by holders 2 and 3."""
    strategy, grid = _set_up()
    down = grid.node(0)
    for action in (ACTION_CHALLENGE, ACTION_DECRYPT, ACTION_ABORT):
        grid.hooks[(action, down)] = lambda m, _r: refuse(m, ConnectionError("node down"))
    start = _start(9)
    arrays, _ = _round(strategy, grid, 1, start)
    report = strategy.history[-1]
    assert arrays is None and report.reason.startswith("DecryptionAborted")
    assert report.closed and "holder-1" in report.refused
    for i in (1, 2):  # the voters never decrypt round 1
        state = node_state(grid.contexts[grid.node(i)])
        assert state is not None and state.key_holder is not None
        assert state.key_holder.aborted_rounds == (1,) and state.key_holder.decrypted_rounds == ()
    # round 2 carries the certificate; without it a client refuses to send the same update
    (bare, *_) = [
        m
        for m in strategy.configure_train(2, start, ConfigRecord(), grid)
        if m.metadata.dst_node_id == grid.node(4)
    ]
    assert isinstance(bare.content[ROUND_RECORD]["abort-certificates"], bytes)
    del bare.content[ROUND_RECORD]["abort-certificates"]
    (reply,) = grid.send_and_receive([bare])
    assert reply.has_error() and "RoundNotClosed" in reply.error.reason
    arrays, _ = _round(strategy, grid, 2, start)
    report = strategy.history[-1]
    assert arrays is not None and report.decrypted and report.decrypting_set == (2, 3)
    assert report.accepted == [f"node-{grid.node(i)}" for i in range(NODES)]
    got = np.concatenate([arrays["w"].numpy(), arrays["b"].numpy()])
    np.testing.assert_allclose(got, _expected(start, range(NODES)), rtol=0, atol=1e-6)


def _float_start() -> ArrayRecord:
    """A global model whose arrays are all floating point, so every one of them is aggregated."""
    return ArrayRecord({k: Array(v.numpy().astype(np.float64)) for k, v in _start().items()})


def _plain_replies(start: ArrayRecord) -> list[Message]:
    """What the nodes would send without fhe_agg: the model plus their clipped update (``_train``
    also counts one more round in ``count``), in the clear."""
    vector = np.concatenate([start[k].numpy() for k in ("w", "b", "count")])
    replies = []
    for i in range(NODES):
        raw = np.append(STEPS[i] * _factor(float(start["b"].numpy()[0])), 1.0)
        trained = vector + raw * min(1.0, CLIP / np.linalg.norm(raw))
        arrays = ArrayRecord(
            {"w": Array(trained[:6]), "b": Array(trained[6:7]), "count": Array(trained[7:])}
        )
        metrics = MetricRecord({"num-examples": 10 * (i + 1)})
        content = RecordDict({"arrays": arrays, "metrics": metrics})
        replies.append(Message(content, dst_node_id=0, message_type="train"))
    return replies


def test_a_wrapped_fedadam_keeps_its_server_optimiser() -> None:
    """The decrypted mean goes through the inner strategy's aggregation: two rounds of a wrapped
    FedAdam give the model that FedAdam gives on the same plaintext updates (within CKKS
    precision), not the FedAvg model (old + mean)."""

    def fedadam() -> FedAdam:
        return FedAdam(
            fraction_evaluate=0.0, min_train_nodes=NODES, min_available_nodes=NODES, eta=0.05
        )

    secure, grid = _set_up(fedadam())
    plain = fedadam()
    secure_model, plain_model = _float_start(), _float_start()
    for number in (1, 2):
        fedavg = FedAvg().aggregate_train(number, _plain_replies(secure_model))[0]
        secure_model, _ = _round(secure, grid, number, secure_model)
        assert secure_model is not None and secure.history[-1].decrypted
        plain.configure_train(number, plain_model, ConfigRecord(), grid)
        plain_model, _ = plain.aggregate_train(number, _plain_replies(plain_model))
        assert plain_model is not None and fedavg is not None
        for key in ("w", "b", "count"):
            np.testing.assert_allclose(
                secure_model[key].numpy(), plain_model[key].numpy(), rtol=0, atol=1e-7
            )
        assert np.max(np.abs(secure_model["w"].numpy() - fedavg["w"].numpy())) > 1e-3


def _round_state(grid: LocalGrid, node: int) -> bytes | None:
    """A holder node's saved round state."""
    state = node_state(grid.contexts[node])
    assert state is not None and state.setup is not None
    try:
        return state.store.get(state.setup.consortium, state.setup.epoch, "round")
    finally:
        state.close()


def _deliver_with(
    app: ClientApp, grid: LocalGrid, node: int, message: Message, aggregate: object
) -> Message:
    """``node``'s reply to ``message`` (a partial request) carrying ``aggregate`` instead."""
    original = message.content
    values = {k: v for k, v in original["fhe"].items() if k != "aggregate"}
    if aggregate is not None:  # None: the request carries no aggregate at all
        values["aggregate"] = aggregate
    message.content = RecordDict({"fhe": ConfigRecord(values)})  # type: ignore[arg-type]
    try:
        return app(message, grid.contexts[node])
    finally:
        message.content = original


def test_a_holder_decrypts_only_the_aggregate_it_challenged_and_refuses_replays() -> None:
    """Between challenge and partial, holder 1 keeps only its round state (the challenged
    aggregate's digest; no aggregate file, no piece of any key share in any file of any node).
    A partial request carrying another aggregate (a ciphertext bit flipped, cut or extended by
    a byte) is refused and nothing changes; the request as sent then gets the partial. That
    request sent again in the next round, between its challenge and its partial, is refused
    before anything is parsed (no aggregate of that round was challenged here)."""
    strategy, grid = _set_up()
    holder = grid.node(0)
    windows = share_windows(grid, 3)
    seen: dict[str, object] = {}

    def challenged(message: Message, reply: Message) -> Message:
        assert not reply.has_error() and _round_state(grid, holder) is not None
        files = [p for p in grid.state_root.rglob("*") if p.is_file()]
        assert not [p for p in files if p.suffix == ".aggregate"]
        assert not [p for p in files for w in windows if w in p.read_bytes()]
        seen["round"] = _round_state(grid, holder)
        seen["aggregate"] = message.content["fhe"]["aggregate"]
        return reply

    app = grid.app

    def deliver(message: Message, context: Context) -> Message:
        if (message.metadata.message_type, context.node_id) != (ACTION_DECRYPT, holder):
            return app(message, context)
        good = message.content["fhe"]["aggregate"]
        assert isinstance(good, bytes) and good == seen["aggregate"]  # carried again
        middle = len(good) // 2
        for error, data in (
            ("OutOfOrder", good[:middle] + bytes([good[middle] ^ 0x01]) + good[middle + 1 :]),
            ("MalformedMessage", good[:-1]),
            ("MalformedMessage", good + b"\0"),
            ("MalformedMessage", None),
        ):
            refused = _deliver_with(app, grid, holder, message, data)
            assert refused.has_error() and refused.error.reason.startswith(error), error
            assert _round_state(grid, holder) == seen["round"]  # nothing changed
        reply = app(message, context)
        assert not reply.has_error() and isinstance(reply.content["fhe"]["partial"], bytes)
        seen["request"] = message
        return reply

    grid.app = deliver  # type: ignore[assignment]
    grid.hooks[(ACTION_CHALLENGE, holder)] = challenged
    arrays, _ = _round(strategy, grid, 1, _start(1))
    assert arrays is not None and strategy.history[-1].decrypted

    def replayed(message: Message, reply: Message) -> Message:
        state = _round_state(grid, holder)
        request = seen["request"]
        assert isinstance(request, Message)
        for aggregate in (seen["aggregate"], message.content["fhe"]["aggregate"]):
            old = _deliver_with(app, grid, holder, request, aggregate)
            assert old.has_error()
            assert old.error.reason == "OutOfOrder: no aggregate of round 1 was challenged here"
        assert _round_state(grid, holder) == state  # round 2's challenge, untouched
        return reply

    grid.app = app
    grid.hooks.clear()
    grid.hooks[(ACTION_CHALLENGE, holder)] = replayed
    arrays, _ = _round(strategy, grid, 2, _start(2))
    grid.hooks.clear()
    assert arrays is not None and strategy.history[-1].decrypted
