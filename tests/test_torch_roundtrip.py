"""A torch CNN state_dict with mixed dtypes survives flatten -> encrypt -> aggregate -> decrypt."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the torch extra is installed by make test")

from fhe_agg import Aggregator, Client  # noqa: E402
from fhe_agg.torch import flatten_state_dict, unflatten_state_dict  # noqa: E402


class SmallCnn(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 3)
        self.bn = torch.nn.BatchNorm2d(4)
        self.head = torch.nn.Linear(4 * 6 * 6, 3)
        self.head_half = torch.nn.Linear(3, 2).to(torch.float64)
        self.register_buffer("bf16_scale", torch.ones(5, dtype=torch.bfloat16))


def _models(n: int) -> list[SmallCnn]:
    out = []
    for seed in range(n):
        torch.manual_seed(seed)
        model = SmallCnn()
        model.bn.num_batches_tracked += seed + 1
        out.append(model)
    return out


def test_state_dict_round_trip_is_exact_without_encryption() -> None:
    state = _models(1)[0].state_dict()
    vector, layout = flatten_state_dict(state)
    restored = unflatten_state_dict(vector, layout, template=state)
    assert list(restored) == list(state)
    for name, tensor in state.items():
        assert restored[name].dtype == tensor.dtype and restored[name].shape == tensor.shape
        assert torch.equal(restored[name], tensor)


def test_encrypted_fedavg_of_state_dicts(
    config, keypair, signing_keys, roster, tmp_path, holder
) -> None:
    public_key, _ = keypair
    models = _models(3)
    states = [m.state_dict() for m in models]
    weights = [2.0, 5.0, 9.0]
    ids = ["alpha", "bravo", "charlie"]
    _, layout = flatten_state_dict(states[0])
    agg = Aggregator(
        config=config,
        roster=roster,
        public_key=public_key,
        round_id=1,
        layout=layout,
        spool_dir=tmp_path,
    )
    for cid, state, w in zip(ids, states, weights, strict=True):
        client = Client(
            client_id=cid, signing_key=signing_keys[cid], config=config, public_key=public_key
        )
        agg.add(client.encrypt_update(state, round_id=1, weight=w).to_bytes())
    aggregate = agg.finalize()
    mean = holder.decrypt(aggregate, agg.evidence(holder.challenge(aggregate)), layout=layout)
    local = states[0]
    averaged = unflatten_state_dict(mean, layout, template=local)
    for name, tensor in local.items():
        assert averaged[name].dtype == tensor.dtype
        if tensor.is_floating_point():
            expected = sum(
                w * s[name].double() for w, s in zip(weights, states, strict=True)
            ) / sum(weights)
            tol = 1e-2 if tensor.dtype == torch.bfloat16 else 1e-6
            np.testing.assert_allclose(averaged[name].double().numpy(), expected.numpy(), atol=tol)
    # num_batches_tracked is never averaged: it is the local model's own count
    assert int(averaged["bn.num_batches_tracked"]) == int(local["bn.num_batches_tracked"])
