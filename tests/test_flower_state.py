"""Node state at rest: the key share and the ceremony state sealed to their holder, nodes that
keep nothing in memory, a second run on the same key, and only public flwr modules imported."""

from __future__ import annotations

import ast
import pickle
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("flwr")

from flwr.app import ConfigRecord, Context, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp.strategy import FedAvg

from fhe_agg import PRESETS, CeremonyMember, FederationConfig
from fhe_agg.ceremony._local import run_ceremony
from fhe_agg.ceremony._messages import CeremonySpec, HolderIdentity
from fhe_agg.flower import (
    SecureAggregation,
    enable_secure_aggregation,
    secure_update_mod,
)
from fhe_agg.flower._node_state import share_info
from fhe_agg.identity import SealInfo, SealingError, SealingPrivateKey, Suite
from fhe_agg.protocol._signing import SigningKey
from tests.flower_grid import LocalGrid, new_run_id, share_windows

ROOT = Path(__file__).resolve().parents[1]
PUBLIC_FLWR = {
    "flwr",
    "flwr.app",
    "flwr.clientapp",
    "flwr.clientapp.mod",
    "flwr.serverapp",
    "flwr.serverapp.strategy",
    "flwr.simulation",
    # the benchmark's Flower SecAgg+ baseline (fhe_agg/bench/_secaggplus.py): the public mod and
    # NumPyClient, and the functions SecAggPlusWorkflow's server arithmetic calls
    "flwr.client",
    "flwr.client.mod",
    "flwr.common",
    "flwr.common.secure_aggregation.crypto.shamir",
    "flwr.common.secure_aggregation.ndarrays_arithmetic",
    "flwr.common.secure_aggregation.quantization",
    "flwr.common.secure_aggregation.secaggplus_constants",
    "flwr.common.secure_aggregation.secaggplus_utils",
}


def _members(holders: int = 3, threshold: int = 2) -> list[CeremonyMember]:
    names = tuple(f"h{i}" for i in range(1, holders + 1))
    keys = {h: (SigningKey.generate(), SealingPrivateKey.generate(Suite.PQ_ONLY)) for h in names}
    directory = {h: HolderIdentity(s.verify_key, k.public_key) for h, (s, k) in keys.items()}
    spec = CeremonySpec(
        consortium="at-rest", epoch=4, preset=PRESETS["compact"], holders=names, threshold=threshold
    )
    return [
        CeremonyMember(
            spec=spec,
            holder_id=h,
            signing_key=keys[h][0],
            sealing_key=keys[h][1],
            directory=directory,
        )
        for h in names
    ]


def _resumed(member: CeremonyMember) -> CeremonyMember:
    return CeremonyMember.resume(
        member.save(),
        spec=member.spec,
        holder_id=member.holder_id,
        signing_key=member._signing_key,
        sealing_key=member._sealing_key,
        directory={member.spec.holders[j - 1]: d for j, d in member._directory.items()},
    )


def test_a_ceremony_saved_and_resumed_at_every_step_makes_one_key() -> None:
    members = _members()
    relay = list
    commits = relay([m.seed_commitment() for m in members])
    members = [_resumed(m) for m in members]
    seeds = relay([m.reveal_seed(commits) for m in members])
    members = [_resumed(m) for m in members]
    key_commits = relay([m.key_commitment(seeds) for m in members])
    members = [_resumed(m) for m in members]
    reveals = relay([m.reveal_public_share(key_commits) for m in members])
    members = [_resumed(m) for m in members]
    confirmations = relay([m.confirm(reveals) for m in members])
    members = [_resumed(m) for m in members]
    dealt = [msg for m in members for msg in m.deal(confirmations)]
    members = [_resumed(m) for m in members]
    results = [m.finish([d for d in dealt if d.recipient == m.index]) for m in members]
    assert len({pk.blob for pk, _ in results}) == 1
    # t of the shares rebuild one secret s, whichever t (the KeyShare's own Lagrange weighting)
    shares = [share for _, share in results]
    s12 = _secret(shares, (1, 2))
    assert np.array_equal(s12, _secret(shares, (2, 3)))
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(members[0])


def _secret(shares: list, members: tuple[int, ...]) -> np.ndarray:  # type: ignore[type-arg]
    from fhe_agg.ckks._seal import backend_for

    primes = backend_for(shares[0].preset).data_primes
    total = np.zeros_like(shares[0].data_level().value)
    for m in members:
        part = shares[m - 1].decryption_operand(members).value
        for i, q in enumerate(primes):
            total[i] = (total[i].astype(object) + part[i].astype(object)) % q
    return total


def test_a_member_state_opens_only_for_its_holder_and_ceremony() -> None:
    a, b, _ = _members()
    a.seed_commitment()
    saved = a.save()
    raw_seed = a._seed
    assert raw_seed not in saved
    with pytest.raises(SealingError):
        CeremonyMember.resume(
            saved,
            spec=b.spec,
            holder_id=b.holder_id,
            signing_key=b._signing_key,
            sealing_key=b._sealing_key,
            directory={b.spec.holders[j - 1]: d for j, d in b._directory.items()},
        )


def test_a_key_share_is_sealed_bound_to_consortium_epoch_holder_and_purpose() -> None:
    members = _members(2, 2)
    _, (share, _) = run_ceremony(members)
    key = members[0]._sealing_key
    info = share_info("acme", 3, "h1", b"\x01" * 32)
    blob = share.seal(key, info=info)
    assert share.data_level().value.tobytes()[:64] not in blob
    again = type(share).unseal(blob, key, info=info, preset=share.preset)
    assert np.array_equal(again.data_level().value, share.data_level().value)
    assert again.public_key_fingerprint == share.public_key_fingerprint
    for other in (
        share_info("acme", 4, "h1", b"\x01" * 32),  # another epoch
        share_info("other", 3, "h1", b"\x01" * 32),  # another consortium
        share_info("acme", 3, "h2", b"\x01" * 32),  # another holder
        SealInfo(consortium="acme", epoch=3, sender="h1", recipient="h1", purpose="x"),
    ):
        with pytest.raises(SealingError):
            type(share).unseal(blob, key, info=other, preset=share.preset)
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(SealingError):
        type(share).unseal(tampered, key, info=info, preset=share.preset)
    with pytest.raises(SealingError):  # another holder's key
        type(share).unseal(blob, members[1]._sealing_key, info=info, preset=share.preset)
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(share)


def test_an_unsealed_share_makes_its_multipliers_only_for_a_decryption() -> None:
    """A node loads its share for messages that never decrypt: unsealing checks the residues
    but leaves the Shoup quotients to the first decryption, which gives the same operand."""
    members = _members(3, 2)
    _, (share, _, _) = run_ceremony(members)
    key = members[0]._sealing_key
    info = share_info("acme", 3, "h1", b"\x01" * 32)
    again = type(share).unseal(share.seal(key, info=info), key, info=info, preset=share.preset)
    assert again._data_level is None and not again._operands
    for members_ in ((1, 2), (1, 3)):
        ours, theirs = again.decryption_operand(members_), share.decryption_operand(members_)
        assert np.array_equal(ours.value, theirs.value)
        assert np.array_equal(ours.quotient, theirs.quotient)
    assert again._data_level is None  # t < n multiplies only the Lagrange-scaled share

    def share_of(value: np.ndarray) -> object:
        return type(share)(
            preset=share.preset,
            holder_index=1,
            threshold=2,
            holders=3,
            public_key_fingerprint=share.public_key_fingerprint,
            value=value,
        )

    unreduced = again._value.copy()
    unreduced[0, 0] = np.uint64(2**63)
    with pytest.raises(ValueError, match="not reduced"):
        share_of(unreduced)
    with pytest.raises(ValueError, match="shape"):
        share_of(again._value[:, :7].copy())


APP = ClientApp(mods=[secure_update_mod])
enable_secure_aggregation(APP, key_holder=lambda ctx: int(ctx.node_config["partition-id"]) < 3)
CONFIG = FederationConfig(
    min_clients=3, max_clients=5, max_weight=100.0, value_bound=1.0, holders=3, threshold=2
)


def _strategy(first_round: int = 1) -> SecureAggregation:
    return SecureAggregation(
        FedAvg(fraction_evaluate=0.0, min_train_nodes=5, min_available_nodes=5),
        config=CONFIG,
        clip=1.0,
        timeout=30.0,
        first_round=first_round,
    )


def test_nodes_keep_nothing_in_memory_and_a_second_run_reuses_the_key(tmp_path: Path) -> None:
    import fhe_agg.flower._node as node_module

    assert not [n for n in vars(node_module) if n.startswith("_NODES")]
    first = LocalGrid(new_run_id(), app=APP, nodes=5, state_root=tmp_path)
    fed = _strategy().setup(first)
    assert not fed.key_reused
    windows = share_windows(first, 3)
    # nothing of any share, in any file of any node folder (SQLite files, WAL, key files)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name.endswith("-wal") or p.name == "node.db" for p in files)
    for window in windows:
        assert not [p for p in files if window in p.read_bytes()]
    # a new run (new run id, a new Grid object): the holders report their key, no ceremony
    second = LocalGrid(new_run_id(), app=APP, nodes=5, state_root=tmp_path)
    again = _strategy(first_round=5).setup(second)
    assert again.key_reused and again.public_key.blob == fed.public_key.blob


def _flwr_imports(tree: ast.AST) -> list[tuple[str, list[str]]]:
    """(module, names imported from it) of every flwr import, ``import_module`` included."""
    out: list[tuple[str, list[str]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Call) and node.args:
            name = getattr(node.func, "attr", getattr(node.func, "id", ""))
            arg = node.args[0]
            if name in ("import_module", "__import__") and isinstance(arg, ast.Constant):
                out.append((str(arg.value), []))
    return [(m, n) for m, n in out if m == "flwr" or m.startswith("flwr.")]


def test_no_private_flwr_module_is_imported_by_the_library_or_the_examples() -> None:
    found: dict[str, set[str]] = {}
    private_names: set[str] = set()
    for path in [*(ROOT / "fhe_agg").rglob("*.py"), *(ROOT / "examples").rglob("*.py")]:
        tree = ast.parse(path.read_text(), filename=str(path))
        for module, names in _flwr_imports(tree):
            found.setdefault(module, set()).add(str(path.relative_to(ROOT)))
            private_names |= {f"{module}.{n}" for n in names if n.startswith("_")}
    assert "flwr.app" in found and "flwr.client.mod" in found  # the scan sees the imports
    assert any(str(p).startswith("fhe_agg/bench/") for p in found["flwr.client.mod"])
    assert not [m for m in PUBLIC_FLWR if any(part.startswith("_") for part in m.split("."))]
    private = {name: files for name, files in found.items() if name not in PUBLIC_FLWR}
    assert private == {}
    assert private_names == set()


def test_the_refusal_error_code_is_flowers() -> None:
    from flwr.common.constant import ErrorCode

    from fhe_agg.flower._protocol import CLIENT_APP_RAISED_EXCEPTION

    assert ErrorCode.CLIENT_APP_RAISED_EXCEPTION == CLIENT_APP_RAISED_EXCEPTION


def test_a_node_without_a_state_folder_refuses_with_an_actionable_error() -> None:
    from flwr.app import Message
    from flwr.supercore.task_identity import TaskIdentity

    from fhe_agg.flower._protocol import ACTION_HELLO, RECORD

    TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, 1, 0  # as a run sets

    context = Context(
        run_id=1, node_id=7, node_config={"partition-id": 0}, state=RecordDict(), run_config={}
    )
    message = Message(
        RecordDict({RECORD: ConfigRecord({"hello": True})}),
        dst_node_id=7,
        message_type=ACTION_HELLO,
    )
    message.metadata.__dict__["_message_id"] = "no-folder"
    reply = APP(message, context)
    assert reply.has_error() and "fhe-state-dir" in reply.error.reason
