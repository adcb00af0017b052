"""A small, deterministic federation whose real messages seed the fuzzers and bound the parsers.

Every key comes from a fixed seed (``SeededRandom`` / ML-DSA seeds), so the corpus written by
``make_corpus.py`` verifies under the keys each harness rebuilds here. Ciphertexts and HPKE
blobs use fresh randomness (SEAL and OpenSSL draw their own), which does not matter: only the
keys have to match.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from fhe_agg import (
    PRESETS,
    AbortCertificate,
    Aggregator,
    CeremonyMember,
    CeremonyMessage,
    CeremonySpec,
    Client,
    EncryptedAggregate,
    EncryptedUpdate,
    FederationConfig,
    HolderIdentity,
    HolderRound,
    KeyHolder,
    KeyShare,
    Layout,
    PartialDecryption,
    PartialReply,
    PublicKey,
    RoundCoordinator,
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
from fhe_agg.protocol._round_messages import Reply, Request

# the world's keys are fixed test keys: allow SeededRandom for them (fhe_agg refuses it elsewhere)
os.environ["FHE_AGG_TEST_ONLY_SEEDED_KEYS"] = "1"

#: Passphrase of the encrypted key file in the corpus (a test value, not a secret).
PASSPHRASE = b"correct horse battery staple"
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
    layout = Layout.for_vector(5000)
    signing = {h: SigningKey.from_seed(_seed(h)) for h in HOLDERS}
    sealing = {
        h: SealingPrivateKey.generate(Suite.PQ_ONLY, random=SeededRandom(_seed("seal-" + h)))
        for h in HOLDERS
    }
    directory = {h: HolderIdentity(signing[h].verify_key, sealing[h].public_key) for h in HOLDERS}
    spec = SPEC
    members = [
        CeremonyMember(
            spec=spec,
            holder_id=h,
            signing_key=signing[h],
            sealing_key=sealing[h],
            directory=directory,
            rng=SeededRandom(_seed("ceremony-" + h)),
        )
        for h in HOLDERS
    ]
    messages = [m.seed_commitment() for m in members]
    messages += [m.reveal_seed(messages[-3:]) for m in members]
    messages += [m.key_commitment(messages[-3:]) for m in members]
    messages += [m.reveal_public_share(messages[-3:]) for m in members]
    messages += [m.confirm(messages[-3:]) for m in members]
    confirmations = messages[-3:]
    dealt = [d for m in members for d in m.deal(confirmations)]
    messages += dealt
    results = [m.finish([d for d in dealt if d.recipient == m.index]) for m in members]
    public_key = results[0][0]
    shares = tuple(share for _, share in results)

    client_keys = {c: SigningKey.from_seed(_seed(c)) for c in CLIENTS}
    roster = {c: k.verify_key for c, k in client_keys.items()}
    rng = np.random.default_rng(7)
    coordinator = RoundCoordinator(
        Aggregator(config=config, roster=roster, public_key=public_key, round_id=1, layout=layout)
    )
    updates = []
    for weight, (cid, key) in enumerate(client_keys.items(), start=2):
        client = Client(client_id=cid, signing_key=key, config=config, public_key=public_key)
        update = client.encrypt_update(rng.uniform(-1, 1, layout.length), round_id=1, weight=weight)
        coordinator.add(update.to_bytes())
        updates.append(update)
    holders = {
        j: KeyHolder(
            holder_id=HOLDERS[j - 1],
            config=config,
            public_key=public_key,
            key_share=shares[j - 1],
            roster=roster,
            rng=SeededRandom(_seed(f"holder-{j}")),
            signing_key=signing[HOLDERS[j - 1]],
        )
        for j in range(1, len(HOLDERS) + 1)
    }
    machines = {j: HolderRound(h, layout=layout) for j, h in holders.items()}
    partials: list[PartialDecryption] = []
    round_states = [coordinator.to_bytes()]

    def deliver(request: Request) -> Reply:
        reply = machines[request.holder_index].handle(request)
        if isinstance(reply, PartialReply):
            partials.append(reply.partial)
        return reply

    coordinator.finalize(DECRYPTING_SET)
    round_states.append(coordinator.to_bytes())  # waiting for every challenge
    coordinator.accept(deliver(coordinator.requests()[0]))
    round_states.append(coordinator.to_bytes())  # one challenge in
    coordinator.carry(deliver)
    round_states.append(coordinator.to_bytes())  # every partial in, not released
    aggregate = coordinator.aggregate
    holder_states = tuple(m.to_bytes() for m in machines.values())
    # round 2 aborted before any aggregate: holders 1 and 2 vote; n - t + 1 = 2
    closing = RoundCoordinator(
        Aggregator(config=config, roster=roster, public_key=public_key, round_id=2, layout=layout)
    )
    for request in closing.abort()[:2]:
        closing.accept(machines[request.holder_index].handle(request))
    round_states.append(closing.to_bytes())
    abort = closing.certificate()
    round_states.append(closing.to_bytes())
    return Federation(
        config=config,
        layout=layout,
        public_key=public_key,
        shares=shares,
        roster=roster,
        ceremony=tuple(messages),
        updates=tuple(updates),
        aggregate=aggregate,
        partials=tuple(partials),
        sealing_key=sealing["kh-2"],
        holder_keys={j: signing[h].verify_key for j, h in enumerate(HOLDERS, start=1)},
        abort=abort,
        round_states=tuple(round_states),
        holder_states=holder_states,
        spec=spec,
        directory=directory,
    )


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
