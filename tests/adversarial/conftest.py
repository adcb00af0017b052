"""The attacker's view: a real 3-of-5 federation and one assertion every refused attack must pass.

Everything is real: the holders' keys come from the dealerless ceremony, clients sign with
ML-DSA-65, ciphertexts are SEAL's, audit logs are signed and hash-chained. Two federations
share the holders' identities: ``plain`` (``compact`` preset, 40-bit flooding, no DP: precise
enough to tell which clients a mean contains) and ``noisy`` (``dp`` preset, distributed DP, so a
privacy accountant is part of the state an attack must not move).

:func:`assert_refused` is the contract of the suite: the attack raises exactly the expected
:class:`~fhe_agg.FheAggError` subclass, the observable state (running sum bytes, accepted
clients, each holder's budget and decrypted rounds, the accountant, ceremony progress) is the
same afterwards, and, when the victim keeps an audit log, exactly one signed entry names the
refusal and its error class.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from federation import (
    Federation,
    Holders,
    ceremony_federation,
    decrypt,
    federation_from,
    make_holders,
)

from fhe_agg import (
    AggregateEvidence,
    Aggregator,
    CeremonyMember,
    CeremonySpec,
    DpPolicy,
    EncryptedAggregate,
    EncryptedUpdate,
    FederationConfig,
    FheAggError,
    KeyHolder,
    KeyShare,
    Layout,
    PartialDecryption,
    PrivacyAccountant,
    PublicKey,
    SeededRandom,
    SignedStatement,
    SigningKey,
)
from fhe_agg.ckks._params import PRESETS
from fhe_agg.ckks._seal import backend_for
from fhe_agg.hazmat.rlwe import add_polys
from fhe_agg.hazmat.rns import U64
from fhe_agg.hazmat.seal_format import RawCiphertext
from fhe_agg.identity import AuditLog, Suite, SuiteSigningKey, SuiteVerifyKey, verify_log
from fhe_agg.protocol._messages import UPDATE_CONTEXT

PARAMS = 10_000  # two chunks at N = 8192: one can be tampered with while the other stays honest
CLIENTS = ("ana", "ben", "cy", "dee")
WEIGHTS = {"ana": 2.0, "ben": 5.0, "cy": 9.0, "dee": 4.0}
SET = (1, 2, 3)  # the decrypting set used unless a test says otherwise


# -- the federation (built by :mod:`federation`) ------------------------------------------------

#: One key epoch: config, joint key, the holders' shares, four signing clients.
Consortium = Federation


def partial(
    holder: KeyHolder,
    aggregate: EncryptedAggregate,
    evidence: Callable[[tuple[int, ...]], AggregateEvidence],
    members: tuple[int, ...] = SET,
) -> PartialDecryption:
    """``holder``'s partial of ``aggregate``, given the evidence it challenges for."""
    return holder.partial_decrypt(
        aggregate,
        evidence(holder.challenge(aggregate)),
        layout=Layout.for_vector(PARAMS),
        decrypting_set=members,
    )


def release(
    fed: Consortium,
    aggregator: Aggregator,
    holders: Mapping[int, KeyHolder],
    members: tuple[int, ...] = SET,
    accountant: PrivacyAccountant | None = None,
) -> np.ndarray:
    """A whole honest decryption of ``aggregator``'s round (under its own configuration) by
    ``members``, in the coordinator's order (:func:`federation.decrypt`)."""
    _, mean = decrypt(aggregator, holders, members=members, accountant=accountant)
    assert mean is not None
    return mean


def ceremony_spec(holders: Holders, config: FederationConfig, epoch: int) -> CeremonySpec:
    return holders.spec(config, epoch, "adversarial")


def consortium_from(
    config: FederationConfig,
    ceremony: tuple[PublicKey, Sequence[KeyShare]],
    root: Path,
    seed: int,
) -> Consortium:
    """Four fresh clients (data drawn from ``seed``) around the outcome of a ceremony."""
    return federation_from(
        config, ceremony, weights=WEIGHTS, params=PARAMS, data_seed=seed, spool_root=root
    )


def _consortium(holders: Holders, config: FederationConfig, epoch: int, root: Path) -> Consortium:
    return ceremony_federation(
        holders,
        config,
        epoch=epoch,
        consortium="adversarial",
        weights=WEIGHTS,
        params=PARAMS,
        spool_root=root,
    )


def config_for(preset: str, **kw: Any) -> FederationConfig:
    args: dict[str, Any] = {
        "preset": PRESETS[preset],
        "min_clients": 3,
        "max_clients": 4,
        "max_weight": 10.0,
        "value_bound": 1.0,
        "holders": 5,
        "threshold": 3,
        **kw,
    }
    return FederationConfig(**args)


@pytest.fixture(scope="session")
def identities() -> Holders:
    return make_holders(5)


@pytest.fixture(scope="session")
def plain(identities: Holders, tmp_path_factory: pytest.TempPathFactory) -> Consortium:
    """3-of-5, ``compact`` preset, flooding only: releases are precise to ~1e-3."""
    return _consortium(identities, config_for("compact"), 71, tmp_path_factory.mktemp("plain"))


@pytest.fixture(scope="session")
def noisy(identities: Holders, tmp_path_factory: pytest.TempPathFactory) -> Consortium:
    """3-of-5, ``dp`` preset, distributed DP (z = 1): every release spends privacy budget."""
    config = config_for("dp", dp=DpPolicy(clip=1.0, noise_multiplier=1.0))
    return _consortium(identities, config, 72, tmp_path_factory.mktemp("noisy"))


def ceremony_members(
    holders: Holders, spec: CeremonySpec, audits: Mapping[int, AuditLog] | None = None
) -> list[CeremonyMember]:
    """Ceremony members with (optionally) an audit log each."""
    return holders.members(spec, seed=spec.epoch, first=1, audits=audits)


# -- audit logs --------------------------------------------------------------------------------


class AuditTrail:
    """One signed, hash-chained log per actor, and their verified entries."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._keys: dict[str, SuiteVerifyKey] = {}
        self._logs: dict[str, AuditLog] = {}

    def log(self, actor: str) -> AuditLog:
        if actor not in self._logs:
            key = SuiteSigningKey.generate(Suite.PQ_ONLY, random=SeededRandom(len(self._keys)))
            self._keys[actor] = key.verify_key
            self._logs[actor] = AuditLog(self._root / f"{actor}.jsonl", key=key, actor=actor)
        return self._logs[actor]

    def holder_logs(self, count: int = 5) -> dict[int, AuditLog]:
        return {j: self.log(f"holder-{j}") for j in range(1, count + 1)}

    def entries(self, actor: str) -> list[dict[str, Any]]:
        """Every entry of ``actor``'s log, after checking signatures and chain."""
        path = self._root / f"{actor}.jsonl"
        if not path.exists():
            return []
        verify_log(path, {actor: self._keys[actor]}, expected_head=self._logs[actor].head)
        return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def trail(tmp_path: Path) -> AuditTrail:
    return AuditTrail(tmp_path)


# -- the contract of a refused attack ----------------------------------------------------------


def state_of(
    *,
    aggregator: Aggregator | None = None,
    holders: Iterable[KeyHolder] = (),
    accountant: PrivacyAccountant | None = None,
    members: Iterable[CeremonyMember] = (),
) -> Callable[[], tuple[object, ...]]:
    """A function taking a comparable snapshot of everything an attack must not change."""
    holders, members = tuple(holders), tuple(members)

    def snapshot() -> tuple[object, ...]:
        total = None if aggregator is None else aggregator.running_sum()
        return (
            None if total is None else (total.dtype.str, total.shape, total.tobytes()),
            None if aggregator is None else aggregator.accepted_clients,
            tuple(
                (h.holder_id, h.budget_left, h.decrypted_rounds, h.aborted_rounds) for h in holders
            ),
            None if accountant is None else (accountant.rounds, accountant.epsilon),
            tuple(m.steps_done for m in members),
        )

    return snapshot


def assert_refused(
    attack: Callable[[], object],
    error: type[FheAggError],
    *,
    state: Callable[[], tuple[object, ...]],
    trail: AuditTrail | None = None,
    actor: str | None = None,
    event: str | None = None,
    match: str | None = None,
) -> FheAggError:
    """Run ``attack``: it must raise exactly ``error``, leave ``state()`` as it was and, given
    an audit ``trail``, add exactly one ``event`` entry to ``actor``'s log naming ``error``."""
    assert issubclass(error, FheAggError)
    before = state()
    logged = len(trail.entries(actor)) if trail is not None and actor is not None else 0
    with pytest.raises(error, match=match) as caught:
        attack()
    assert type(caught.value) is error, f"{type(caught.value).__name__}: {caught.value}"
    assert state() == before, "the refused attack changed the state"
    if trail is not None and actor is not None:
        new = trail.entries(actor)[logged:]
        assert [e["event"] for e in new] == [event], new
        assert new[0]["payload"]["error"] == error.code  # the stable code, not a class name
        assert new[0]["payload"]["reason"] == str(caught.value)
    return caught.value


# -- crafting ciphertexts and statements -------------------------------------------------------


def resign(
    update: EncryptedUpdate,
    key: SigningKey,
    chunks: tuple[bytes, ...] | None = None,
    **changes: Any,
) -> EncryptedUpdate:
    """``update`` with its statement changed and signed again by ``key`` (a malicious signer)."""
    statement = replace(update.statement, **changes)
    signature = key.sign(statement.encode(), context=UPDATE_CONTEXT)
    return EncryptedUpdate(SignedStatement(statement, signature), chunks or update.chunks)


def polys(config: FederationConfig, chunks: Sequence[bytes]) -> U64:
    """Parsed chunks ``[chunk, poly, prime, coefficient]``."""
    b = backend_for(config.preset)
    return np.stack([b.parse(c, what="chunk").data for c in chunks])


def add_chunks(config: FederationConfig, *operands: Sequence[bytes]) -> U64:
    """The homomorphic sum of several chunk sequences, as arrays."""
    primes = backend_for(config.preset).data_primes
    total = polys(config, operands[0])
    for other in operands[1:]:
        total = add_polys(total, polys(config, other), primes)
    return total


def pack(config: FederationConfig, data: U64, scale: float) -> tuple[bytes, ...]:
    """Chunks ``data`` with any ``scale`` the attacker likes."""
    b = backend_for(config.preset)
    return tuple(b.pack(RawCiphertext(b.data_parms_id, scale, d)) for d in data)


def evidence_for(
    aggregator: Aggregator, clients: Sequence[str]
) -> Callable[[tuple[int, ...]], AggregateEvidence]:
    """The best evidence an attacker can offer for a manifest of ``clients``: their real signed
    chunks from ``aggregator``'s spool, in manifest order."""

    def evidence(indices: tuple[int, ...]) -> AggregateEvidence:
        full = aggregator.evidence(indices)
        return AggregateEvidence(
            full.round_id,
            {
                i: tuple(e for c in clients for e in items if e.client_id == c)
                for i, items in full.chunks.items()
            },
        )

    return evidence
