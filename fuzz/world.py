"""A small, deterministic federation whose real messages seed the fuzzers and bound the parsers.

Every key comes from a fixed seed (``SeededRandom`` / ML-DSA seeds), so the corpus written by
``make_corpus.py`` verifies under the keys each harness rebuilds here. Ciphertexts and HPKE
blobs use fresh randomness (SEAL and OpenSSL draw their own), which does not matter: only the
keys have to match.
"""

from __future__ import annotations

import atexit
import base64
import hashlib
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from fhe_agg import (
    PRESETS,
    AbortCertificate,
    CeremonyMember,
    CeremonyMessage,
    CeremonySpec,
    EncryptedAggregate,
    EncryptedUpdate,
    FederationConfig,
    HolderIdentity,
    KeyShare,
    Layout,
    PartialDecryption,
    PartialReply,
    PublicKey,
    SeededRandom,
    SigningKey,
    VerifyKey,
)
from fhe_agg.identity import (
    AuditLog,
    Identity,
    KeyRotation,
    Roster,
    SealInfo,
    SealingPrivateKey,
    Suite,
    SuiteVerifyKey,
    write_identity,
)
from fhe_agg.protocol._round_messages import PartialRequest

# the shared test federation (tests/federation/); it allows SeededRandom for the world's fixed
# test keys (fhe_agg refuses it elsewhere)
sys.path.append(str(Path(__file__).resolve().parents[1] / "tests"))
from federation import Round, federation_from, make_holders

#: Passphrase of the encrypted key file in the corpus (a test value, not a secret).
PASSPHRASE = b"correct horse battery staple"
#: Key secret of the key file sealed under HKDF in the corpus (a test value, not a secret).
KEY_SECRET = b"fhe-agg/key-secret/v1:" + base64.urlsafe_b64encode(bytes(range(32))).rstrip(b"=")
HOLDERS = ("kh-1", "kh-2", "kh-3")
CLIENTS = ("alpha", "bravo", "charlie")
DECRYPTING_SET = (1, 3)
#: The world's ceremony (its id binds the sealed shares, as the HPKE info's purpose).
SPEC = CeremonySpec(
    consortium="fuzz-net", epoch=1, preset=PRESETS["precise"], holders=HOLDERS, threshold=2
)
SEAL_INFO = SealInfo(
    consortium="fuzz-net",
    epoch=1,
    sender="kh-1",
    recipient="kh-2",
    purpose=f"key-share/{SPEC.ceremony_id.hex()}",
)


def _seed(label: str) -> bytes:
    return hashlib.sha3_256(b"fhe_agg/fuzz|" + label.encode()).digest()


@dataclass(frozen=True)
class Federation:
    """A 2-of-3 federation of three clients, one round, with every message kind."""

    config: FederationConfig
    layout: Layout
    public_key: PublicKey
    shares: tuple[KeyShare, ...]
    roster: dict[str, VerifyKey]
    ceremony: tuple[CeremonyMessage, ...]
    updates: tuple[EncryptedUpdate, ...]
    aggregate: EncryptedAggregate
    partials: tuple[PartialDecryption, ...]
    sealing_key: SealingPrivateKey
    holder_keys: dict[int, VerifyKey]
    abort: AbortCertificate
    spec: CeremonySpec
    directory: dict[str, HolderIdentity]
    round_states: tuple[bytes, ...]  # the coordinator's saved state at each step of the round
    holder_states: tuple[bytes, ...]  # each holder machine's saved state after the round


@cache
def federation() -> Federation:
    """Run the ceremony and one round with the ``precise`` preset (two data primes)."""
    config = FederationConfig(
        preset=PRESETS["precise"],
        min_clients=2,
        max_clients=4,
        max_weight=10.0,
        value_bound=1.0,
        holders=len(HOLDERS),
        threshold=len(DECRYPTING_SET),
    )
    holders = make_holders(HOLDERS, seed=_seed)
    rngs = {h: SeededRandom(_seed("ceremony-" + h)) for h in HOLDERS}
    messages, public_key, shares = _ceremony(holders.members(SPEC, rngs=rngs))
    fed = federation_from(
        config,
        (public_key, shares),
        weights={c: float(w) for w, c in enumerate(CLIENTS, start=2)},
        params=5000,
        data_seed=7,
        signing={c: SigningKey.from_seed(_seed(c)) for c in CLIENTS},
        holders=holders,
    )
    keys = {
        j: fed.key_holder(j, holder_id=h, rng=SeededRandom(_seed(f"holder-{j}")))
        for j, h in enumerate(HOLDERS, start=1)
    }
    carried = Round(fed.aggregator(1), keys)
    updates = [fed.update(c, 1) for c in CLIENTS]
    for update in updates:
        carried.coord.add(update.to_bytes())
    replies = carried.record(PartialRequest, DECRYPTING_SET)  # in the order they came
    round_states = [carried.coord.to_bytes()]
    carried.coord.finalize(DECRYPTING_SET)
    round_states.append(carried.coord.to_bytes())  # waiting for every challenge
    carried.answer(1)
    round_states.append(carried.coord.to_bytes())  # one challenge in
    carried.coord.carry(carried.deliver)
    round_states.append(carried.coord.to_bytes())  # every partial in, not released
    holder_states = tuple(m.to_bytes() for m in carried.machines.values())
    # round 2 aborted before any aggregate: holders 1 and 2 vote; n - t + 1 = 2
    closing = Round(fed.aggregator(2), keys, machines=carried.machines)
    closing.coord.abort()
    closing.answer(2)  # the vote requests go out in holder order: holders 1 and 2
    round_states.append(closing.coord.to_bytes())
    abort = closing.coord.certificate()
    round_states.append(closing.coord.to_bytes())
    return Federation(
        config=config,
        layout=fed.layout,
        public_key=public_key,
        shares=shares,
        roster=fed.roster,
        ceremony=messages,
        updates=tuple(updates),
        aggregate=carried.coord.aggregate,
        partials=tuple(r.partial for r in replies if isinstance(r, PartialReply)),
        sealing_key=holders.sealing["kh-2"],
        holder_keys=fed.holder_keys,
        abort=abort,
        round_states=tuple(round_states),
        holder_states=holder_states,
        spec=SPEC,
        directory=holders.directory,
    )


def _ceremony(
    members: list[CeremonyMember],
) -> tuple[tuple[CeremonyMessage, ...], PublicKey, tuple[KeyShare, ...]]:
    """The ceremony step by step, keeping every message (the corpus of the ceremony parsers):
    kept here because :func:`fhe_agg.run_ceremony` returns only the outcome."""
    messages = [m.seed_commitment() for m in members]
    messages += [m.reveal_seed(messages[-3:]) for m in members]
    messages += [m.key_commitment(messages[-3:]) for m in members]
    messages += [m.reveal_public_share(messages[-3:]) for m in members]
    messages += [m.confirm(messages[-3:]) for m in members]
    confirmations = messages[-3:]
    dealt = [d for m in members for d in m.deal(confirmations)]
    messages += dealt
    results = [m.finish([d for d in dealt if d.recipient == m.index]) for m in members]
    return tuple(messages), results[0][0], tuple(share for _, share in results)


@dataclass(frozen=True)
class Consortium:
    """Identities, key files, three roster versions and an audit log on disk."""

    directory: Path
    admin: Identity
    members: dict[str, Identity]
    rosters: tuple[Roster, ...]
    rotation: KeyRotation
    log_keys: dict[str, SuiteVerifyKey]
    audit_log: Path


_ROLES = {
    "alpha": "client",
    "bravo": "client",
    "kh-1": "holder",
    "kh-2": "holder",
    "agg": "aggregator",
}
_SUITES = {"bravo": Suite.HYBRID, "kh-2": Suite.CNSA2}


def identity(member_id: str, role: str, suite: Suite = Suite.PQ_ONLY, label: str = "") -> Identity:
    """The deterministic identity ``member_id`` (``label`` picks another key of the same id)."""
    rng = SeededRandom(_seed(f"identity-{member_id}-{label}"))
    return Identity.generate(id=member_id, role=role, suite=suite, random=rng)


@cache
def consortium() -> Consortium:
    """Write key files (with and without passphrase), rosters and an audit log to a temp dir."""
    directory = Path(
        tempfile.mkdtemp(prefix="fhe_agg-fuzz-world-", dir=os.environ.get("FHE_AGG_FUZZ_SCRATCH"))
    )
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    keys = directory / "keys"
    admin = identity("admin", "admin")
    members = {i: identity(i, r, _SUITES.get(i, Suite.PQ_ONLY)) for i, r in _ROLES.items()}
    write_identity(admin, keys, passphrase=PASSPHRASE, random=SeededRandom(_seed("kf-admin")))
    write_identity(
        admin,
        directory / "keys-secret",
        passphrase=KEY_SECRET,
        random=SeededRandom(_seed("kf-admin-secret")),
    )
    for member_id, member in members.items():
        write_identity(member, keys, random=SeededRandom(_seed("kf-" + member_id)))
    v1 = Roster.create(
        consortium="fuzz-net",
        admin=admin,
        members=[m.public for m in members.values()],
        min_clients=2,
        threshold=2,
    )
    new_alpha = identity("alpha", "client", label="rotated")
    rotation = KeyRotation.request(members["alpha"], new_alpha, consortium="fuzz-net", from_round=5)
    v2 = v1.rotate(rotation, admin=admin)
    v3 = v2.revoke("bravo", from_round=9, reason="laptop stolen", admin=admin)
    log_path = directory / "audit.jsonl"
    log = AuditLog(log_path, key=members["agg"].signing_key, actor="agg")
    log.record("update-accepted", {"round": 1, "client": "alpha", "weight": 2.5})
    log.record("update-rejected", {"round": 1, "client": "mallory", "error": "InvalidSignature"})
    AuditLog(log_path).append(
        members["bravo"].signing_key,
        actor="bravo",
        event="note",
        payload={"nested": {"k": [1, None]}},
    )
    log_keys = {
        "agg": members["agg"].public.signing_key,
        "bravo": members["bravo"].public.signing_key,
    }
    return Consortium(
        directory=directory,
        admin=admin,
        members=members,
        rosters=(v1, v2, v3),
        rotation=rotation,
        log_keys=log_keys,
        audit_log=log_path,
    )
