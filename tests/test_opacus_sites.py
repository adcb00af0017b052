"""DP-SGD at a site through real Opacus: the noise it adds, the clipping, and the refusals."""

from __future__ import annotations

import importlib
import math
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the torch extra is installed by make test")
pytest.importorskip("opacus", reason="the opacus extra is installed by make test")

import fhe_agg.opacus as fo  # noqa: E402
from fhe_agg import SeededRandom, ThresholdNotMet  # noqa: E402


def _zero_loss(output: torch.Tensor, _target: torch.Tensor) -> torch.Tensor:
    return (output * 0.0).sum()  # every per-record gradient is 0: the update is pure noise


def _flat(update: dict[str, torch.Tensor]) -> np.ndarray:
    return torch.cat([t.flatten() for t in update.values()]).double().numpy()


def _dataset(n: int, features: int, seed: int = 0) -> torch.utils.data.TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=g)
    return torch.utils.data.TensorDataset(x, (x[:, 0] > 0).float())


def test_site_noise_std_matches_what_the_accountant_assumes() -> None:
    # h = 4 honest sites, sigma = 2, C = 0.5: each site adds std sigma*C/sqrt(h) = 0.5 per
    # coordinate; the sum of the 4 sites' updates carries sigma*C = 1.0, the accounted noise.
    policy = fo.RecordDpPolicy(clip=0.5, noise_multiplier=2.0, sample_rate=0.25, honest_sites=4)
    model, data, lr = torch.nn.Linear(4000, 1), _dataset(40, 4000), 0.1
    updates = [
        _flat(
            fo.dp_sgd_update(
                model,
                data,
                policy=policy,
                sites=4,
                learning_rate=lr,
                loss=_zero_loss,
                random=SeededRandom(site),
            )
        )
        / -lr
        for site in range(4)
    ]
    site_std = policy.site_noise_multiplier * policy.clip
    assert site_std == pytest.approx(0.5)
    for noise in updates:
        assert noise.size == 4001
        assert abs(noise.std() / site_std - 1) < 0.10
        assert abs(noise.mean()) < 4 * site_std / math.sqrt(noise.size)
    total = np.sum(updates, axis=0)
    accounted = policy.accounted_noise_multiplier * policy.clip
    assert abs(total.std() / accounted - 1) < 0.10
    # the sites' noise is independent: no two updates are the same draw
    assert np.corrcoef(updates[0], updates[1])[0, 1] < 0.1


def test_one_step_is_minus_lr_times_the_clipped_gradient_sum() -> None:
    # q = 1 samples every record; a negligible sigma leaves the clipped sum itself.
    policy = fo.RecordDpPolicy(clip=0.1, noise_multiplier=1e-9, sample_rate=1.0)
    data = _dataset(24, 3, seed=1)
    model = torch.nn.Linear(3, 1)

    def loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.binary_cross_entropy_with_logits(
            output.squeeze(1), target, reduction="sum"
        )

    before = {k: v.clone() for k, v in model.state_dict().items()}
    update = fo.dp_sgd_update(
        model, data, policy=policy, sites=1, learning_rate=0.5, loss=loss, random=SeededRandom(3)
    )
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # untouched
    x, y = data.tensors
    with torch.no_grad():
        residual = torch.sigmoid(model(x).squeeze(1)) - y  # d loss / d logit per record
    per_record = torch.cat([residual[:, None] * x, residual[:, None]], dim=1).double()
    norms = per_record.norm(dim=1, keepdim=True)
    assert float(norms.min()) > 0.1  # every record is clipped: the test sees the clip
    clipped = per_record * torch.clamp(0.1 / (norms + 1e-6), max=1.0)
    expected = -0.5 * clipped.sum(dim=0).numpy()
    got = np.concatenate([update["weight"].flatten().numpy(), update["bias"].numpy()])
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


def test_refuses_more_honest_sites_than_sites() -> None:
    policy = fo.RecordDpPolicy(clip=1.0, noise_multiplier=1.0, sample_rate=0.5, honest_sites=3)
    with pytest.raises(ThresholdNotMet, match="honest_sites"):
        fo.dp_sgd_update(
            torch.nn.Linear(2, 1),
            _dataset(10, 2),
            policy=policy,
            sites=2,
            learning_rate=0.1,
            loss=_zero_loss,
        )


def test_refuses_a_mean_loss_and_a_bad_learning_rate() -> None:
    policy = fo.RecordDpPolicy(clip=1.0, noise_multiplier=1.0, sample_rate=0.5)
    args = (torch.nn.Linear(2, 1), _dataset(10, 2))
    with pytest.raises(ValueError, match="loss"):
        fo.dp_sgd_update(*args, policy=policy, sites=1, learning_rate=0.1, loss=torch.nn.MSELoss())
    with pytest.raises(ValueError, match="learning_rate"):
        fo.dp_sgd_update(*args, policy=policy, sites=1, learning_rate=0.0, loss=_zero_loss)


def test_several_local_steps_and_empty_poisson_batches() -> None:
    # q = 1/10 on 12 records: about a quarter of the batches are empty, and each still adds noise
    policy = fo.RecordDpPolicy(
        clip=1.0, noise_multiplier=1.0, sample_rate=0.1, honest_sites=2, local_steps=25
    )
    update = fo.dp_sgd_update(
        torch.nn.Linear(500, 1),
        _dataset(12, 500),
        policy=policy,
        sites=2,
        learning_rate=1.0,
        loss=_zero_loss,
        random=SeededRandom(5),
    )
    noise = _flat(update)  # 25 independent steps: std sqrt(25) * sigma / sqrt(2)
    assert abs(noise.std() / (5 * policy.site_noise_multiplier) - 1) < 0.10


def test_public_surface() -> None:
    defined = {name for name in dir(fo) if not name.startswith("_")}
    assert set(fo.__all__) <= defined
    for name in ("RecordDpPolicy", "RecordPrivacyAccountant", "dp_sgd_update"):
        assert getattr(fo, name).__module__ == "fhe_agg.opacus"
    assert fo.SITE_WEIGHT == 1.0


def test_import_without_opacus_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opacus", None)
    monkeypatch.delitem(sys.modules, "fhe_agg.opacus")
    with pytest.raises(ImportError, match=r"pip install 'fhe-agg\[opacus\]'"):
        importlib.import_module("fhe_agg.opacus")
