"""Every key holder enforces max_epsilon on its own persisted accountant, not only the combiner.

In distributed DP the combiner is trusted with nothing: a coordinator that never opens a
``DecryptionSession`` (so no combiner-side accountant is asked) still cannot get a partial
beyond the budget, and a restarted holder remembers what it spent.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from fhe_agg import (
    PRESETS,
    DpPolicy,
    FederationConfig,
    KeyHolder,
    PrivacyAccountant,
    PrivacyBudgetExceeded,
)
from fhe_agg.identity import AuditLog, Suite, SuiteSigningKey

from .conftest import Federation, Holders, make_federation, make_holders, threshold_config

MEMBERS = (1, 2)


@pytest.fixture(scope="module")
def holders() -> Holders:
    return make_holders(3)


def _config(max_epsilon: float | None) -> FederationConfig:
    policy = DpPolicy(clip=1.0, noise_multiplier=1.0, max_epsilon=max_epsilon)
    return threshold_config(3, 2, preset=PRESETS["dp"], dp=policy)


def _one_release_epsilon() -> float:
    config = _config(None)
    assert config.dp is not None and config.noise_multiplier is not None
    return PrivacyAccountant.for_policy(config.dp).epsilon_after(config.noise_multiplier)


@pytest.fixture(scope="module")
def fed(holders: Holders) -> Federation:
    """2-of-3 with distributed DP and room for one release, not two."""
    return make_federation(holders, _config(1.2 * _one_release_epsilon()), seed=31)


def _holder(fed: Federation, index: int, store: Path, **extra: object) -> KeyHolder:
    return KeyHolder(
        holder_id=f"holder-{index}",
        config=fed.config,
        public_key=fed.public_key,
        key_share=fed.shares[index],
        roster=fed.roster,  # type: ignore[arg-type]
        store=store,
        **extra,  # type: ignore[arg-type]
    )


def test_a_holder_refuses_the_partial_that_would_cross_max_epsilon(
    fed: Federation, tmp_path: Path
) -> None:
    store = tmp_path / "keyholder-1.sqlite"
    key = SuiteSigningKey.generate(Suite.PQ_ONLY)
    audit = AuditLog(tmp_path / "audit.jsonl", key=key, actor="holder-1")
    holder = _holder(fed, 1, store, audit=audit)
    assert holder.privacy_spent == 0.0
    first, first_evidence, _ = fed.round(1)
    fed.partial(holder, first, first_evidence, MEMBERS)  # no combiner, no session: just asked
    spent = holder.privacy_spent
    assert spent == pytest.approx(_one_release_epsilon(), rel=1e-9)
    budget = holder.budget_left

    second, second_evidence, _ = fed.round(2)
    with pytest.raises(PrivacyBudgetExceeded, match=r"holder-1.*max_epsilon"):
        fed.partial(holder, second, second_evidence, MEMBERS)
    # state unchanged: no round, no budget, no privacy spent; the refusal is audited
    assert holder.decrypted_rounds == (1,) and holder.budget_left == budget
    assert holder.privacy_spent == spent
    assert '"partial.refused"' in (tmp_path / "audit.jsonl").read_text()
    assert "PrivacyBudgetExceeded" in (tmp_path / "audit.jsonl").read_text()
    holder.close()

    # a restart remembers: the reopened store refuses the same partial
    restarted = _holder(fed, 1, store)
    assert restarted.privacy_spent == spent
    with pytest.raises(PrivacyBudgetExceeded, match="1 partials issued"):
        fed.partial(restarted, second, second_evidence, MEMBERS)
    assert restarted.decrypted_rounds == (1,)
    restarted.close()

    # another holder's accountant is its own: holder 2 has issued nothing yet
    other = _holder(fed, 2, tmp_path / "keyholder-2.sqlite")
    fed.partial(other, second, second_evidence, MEMBERS)
    assert other.privacy_spent == pytest.approx(spent)
    other.close()


def test_a_store_made_before_the_accountant_gains_it_and_counts_old_partials(
    fed: Federation, tmp_path: Path
) -> None:
    store = tmp_path / "keyholder-1.sqlite"
    holder = _holder(fed, 1, store)
    first, first_evidence, _ = fed.round(1)
    fed.partial(holder, first, first_evidence, MEMBERS)
    holder.close()
    with sqlite3.connect(store) as conn:  # what a store of the previous release looks like
        conn.execute("DROP TABLE releases")
    conn.close()
    reopened = _holder(fed, 1, store)  # gains the table when opened
    tables = {r[0] for r in sqlite3.connect(store).execute("SELECT name FROM sqlite_master")}
    assert "releases" in tables
    # the partial logged before the table existed counts at the configuration's multiplier
    assert reopened.privacy_spent == pytest.approx(_one_release_epsilon(), rel=1e-9)
    second, second_evidence, _ = fed.round(2)
    with pytest.raises(PrivacyBudgetExceeded):
        fed.partial(reopened, second, second_evidence, MEMBERS)
    reopened.close()


def test_without_max_epsilon_holders_only_account(holders: Holders, tmp_path: Path) -> None:
    fed = make_federation(holders, _config(None), seed=32)
    holder = _holder(fed, 1, tmp_path / "kh.sqlite")
    for round_id in (1, 2):
        aggregate, evidence, _ = fed.round(round_id)
        fed.partial(holder, aggregate, evidence, MEMBERS)
    accountant = PrivacyAccountant(delta=1e-5)
    for _ in range(2):
        accountant.spend(fed.config.noise_multiplier)  # type: ignore[arg-type]
    assert holder.privacy_spent == pytest.approx(accountant.epsilon, rel=1e-9)
    holder.close()
