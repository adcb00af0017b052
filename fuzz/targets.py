"""The fuzz targets: every parser of network or disk bytes, its documented errors and invariants.

Each :class:`Target` builds a ``run(data)`` callable that parses ``data`` the way the library
does in production and checks an invariant on success (round trip, canonical re-encoding). A
documented error (``errors``) is the expected outcome for bad bytes; anything else escaping
``run`` — another exception type or a failed invariant — is a bug. ``seeds`` are real messages
of the kind, which ``make_corpus.py`` writes so the fuzzer starts from valid structures.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import world

from fhe_agg import (
    AbortCertificate,
    AbortVote,
    AggregateEvidence,
    Aggregator,
    CeremonyMessage,
    ChunkEvidence,
    Client,
    DpPolicy,
    EncryptedAggregate,
    EncryptedUpdate,
    FederationConfig,
    HolderRound,
    KeyHolder,
    Layout,
    MalformedMessage,
    PartialDecryption,
    PublicKey,
    Rejected,
    RoundCoordinator,
    SignedStatement,
    SigningKey,
    ThresholdNotMet,
    UnsupportedParameters,
    UpdateStatement,
    VerifyKey,
    flatten,
)
from fhe_agg.ceremony._messages import poly_bytes as _poly_bytes
from fhe_agg.ceremony._messages import poly_from_bytes as _poly_from_bytes
from fhe_agg.ckks._seal import backend_for
from fhe_agg.errors import (
    CorruptKeyFile,
    InvalidRoster,
    ParameterMismatch,
    StoreError,
    WrongPassphrase,
)
from fhe_agg.flower import _records as records
from fhe_agg.flower._node_state import Setup as NodeSetup
from fhe_agg.flower._pin_memo import MEMO_FILE, PinMemo, read_memo, write_memo
from fhe_agg.hazmat.seal_format import build_ciphertext, parse_ciphertext
from fhe_agg.identity import (
    AuditLog,
    AuditLogError,
    KeyRotation,
    Roster,
    SealingError,
    SealingPrivateKey,
    SealingPublicKey,
    Suite,
    SuiteSigningKey,
    SuiteVerifyKey,
    WrongSuite,
    _keystore,
    load_identity,
    load_inventory,
    load_public_identity,
    open_sealed,
    verify_log,
)
from fhe_agg.identity._encoding import strict_json
from fhe_agg.identity._key_secret import KEY_SECRET_PREFIX, parse_key_secret
from fhe_agg.identity._roster import _parse as parse_roster_unverified
from fhe_agg.protocol._checks import check_statement
from fhe_agg.protocol._context import RoundContext
from fhe_agg.protocol._messages import MessageBounds
from fhe_agg.protocol._wellformed import check_proof_set, proofs_digest
from fhe_agg.server._state import HolderState, ServerState

Run = Callable[[bytes], None]
Errors = tuple[type[BaseException], ...]


@dataclass(frozen=True)
class Target:
    """One parser under test."""

    name: str
    parses: str
    errors: Errors
    build: Callable[[], Run]
    seeds: Callable[[], list[bytes]]
    format: str = "binary"  # "msgpack", "json" or "json-lines": picks a structured mutator


def _scratch() -> Path:
    base = os.environ.get("FHE_AGG_FUZZ_SCRATCH")  # set (and removed) by run_all.py
    if base is None and os.access("/dev/shm", os.W_OK):
        base = "/dev/shm"
    folder = Path(tempfile.mkdtemp(prefix="fhe_agg-fuzz-", dir=base))
    folder.chmod(0o700)
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def _bounded_msgpack(data: bytes) -> Any:
    """The harness's own decoding of a bare msgpack object (not under test)."""
    try:
        return msgpack.unpackb(data, raw=False, max_bin_len=1 << 16, max_array_len=64)
    except Exception:  # bytes that are not msgpack never reach the parser
        return None


# --- round messages -----------------------------------------------------------------------


def _check_signed(signed: SignedStatement) -> None:
    fed = world.federation()
    context = RoundContext(
        config=fed.config,
        public_key=fed.public_key,
        roster=fed.roster,
        layout=fed.layout,
        round_id=1,
    )
    check_statement(signed, context)


def _update() -> Run:
    fed = world.federation()
    # A fresh aggregator of the round: its private _check is every check of add() and leaves
    # the aggregator unchanged, so one serves every input.
    aggregator = _round_aggregator(fed)

    def run(data: bytes) -> None:
        update = EncryptedUpdate.from_bytes(data, aggregator.bounds)
        again = EncryptedUpdate.from_bytes(update.to_bytes(), aggregator.bounds)
        assert again.signed == update.signed and again.chunks == update.chunks
        assert again.proofs == update.proofs
        aggregator._check(update)

    return run


# Proofs of a few dozen bytes stand in for the real 8.6 MB ones: the framing (count and size
# bounds, the signed digest) is what this target explores, fast; `update` runs the real proofs.
_SHORT_PROOF_BYTES = 256


def _update_proofs() -> Run:
    fed = world.federation()
    bounds = replace(
        MessageBounds.for_round(fed.config, fed.layout), proof_bytes=_SHORT_PROOF_BYTES
    )

    def run(data: bytes) -> None:
        update = EncryptedUpdate.from_bytes(data, bounds)
        assert len(update.proofs) <= bounds.proof_count
        assert all(len(p) <= bounds.proof_bytes for p in update.proofs)
        again = EncryptedUpdate.from_bytes(update.to_bytes(), bounds)
        assert (again.signed, again.chunks, again.proofs) == (
            update.signed,
            update.chunks,
            update.proofs,
        )
        _check_signed(update.signed)
        stmt = update.statement
        check_proof_set(
            update.proofs,
            chunk_count=stmt.chunk_count,
            signed_digest=stmt.proofs_digest,
            bound=bounds.proof_bytes,
            who=stmt.client_id,
        )
        assert proofs_digest(update.proofs) == stmt.proofs_digest

    return run


def _update_proofs_seeds() -> list[bytes]:
    """The round's updates re-signed by their clients over short stand-in proofs (one per
    batch), and one without any proof."""
    fed = world.federation()
    out = []
    for update, proofs in zip(fed.updates, ((b"\x07" * 40,), (b"\x01" * 256,), ()), strict=False):
        cid = update.statement.client_id
        client = Client(
            client_id=cid,
            signing_key=SigningKey.from_seed(world._seed(cid)),
            config=fed.config,
            public_key=fed.public_key,
        )
        signed = client.sign_update(
            update.chunks, layout=fed.layout, round_id=1, weight=update.statement.weight,
            proofs=proofs,
        )  # fmt: skip
        out.append(signed.to_bytes())
    return out


def _aggregate() -> Run:
    fed = world.federation()
    bounds = MessageBounds.for_round(fed.config, fed.layout)
    backend = backend_for(fed.config.preset)

    def run(data: bytes) -> None:
        aggregate = EncryptedAggregate.from_bytes(data, bounds)
        again = EncryptedAggregate.from_bytes(aggregate.to_bytes(), bounds)
        assert (again.round_id, again.chunks, again.manifest) == (
            aggregate.round_id,
            aggregate.chunks,
            aggregate.manifest,
        )
        for signed in aggregate.manifest:
            _check_signed(signed)
        for chunk in aggregate.chunks:
            backend.parse(chunk, what="aggregate chunk")

    return run


def _statement() -> Run:
    world.federation()  # built here, not under the first input's -timeout

    def run(data: bytes) -> None:
        raw = _bounded_msgpack(data)
        signed = SignedStatement.from_wire(raw)
        stmt = signed.statement
        assert UpdateStatement.decode(msgpack.unpackb(stmt.encode())) == stmt
        _check_signed(signed)

    return run


def _partial() -> Run:
    fed = world.federation()

    def run(data: bytes) -> None:
        p = PartialDecryption.from_bytes(data, config=fed.config, layout=fed.layout)
        q = PartialDecryption.from_bytes(
            p.to_bytes(fed.config), config=fed.config, layout=fed.layout
        )
        assert (p.round_id, p.holder_index, p.aggregate_digest) == (
            q.round_id,
            q.holder_index,
            q.aggregate_digest,
        )
        assert p.decrypting_set == q.decrypting_set and np.array_equal(p.data, q.data)
        assert all(type(m) is int for m in p.decrypting_set)

    return run


def _abort_certificate() -> Run:
    fed = world.federation()

    def run(data: bytes) -> None:
        cert = AbortCertificate.from_bytes(data, config=fed.config)
        assert AbortCertificate.from_bytes(cert.to_bytes(), config=fed.config) == cert
        assert len(set(cert.voters)) == len(cert.votes)
        try:
            cert.verify(fed.holder_keys, config=fed.config, public_key=fed.public_key)
        except (Rejected, ThresholdNotMet):
            return
        # accepted: only genuine votes (signed by the seeds' process; ML-DSA is hedged, so not
        # byte-equal to this process's) of enough holders for the one aborted round can do that
        assert cert.round_id == fed.abort.round_id
        assert all(v.public_key_fingerprint == fed.public_key.fingerprint for v in cert.votes)
        assert len(cert.voters) >= fed.config.holders - fed.config.threshold + 1

    return run


def _abort_vote() -> Run:
    fed = world.federation()

    def run(data: bytes) -> None:
        vote = AbortVote.from_bytes(data, config=fed.config)
        assert AbortVote.from_bytes(vote.to_bytes(), config=fed.config) == vote
        key = fed.holder_keys.get(vote.holder_index)
        assert key is not None  # from_bytes bounds the index by the federation's holders
        try:
            vote.verify(key)
        except Rejected:
            return
        assert vote.round_id == fed.abort.round_id  # only the seeds' genuine votes verify

    return run


def _node_setup_of(fed: world.Federation) -> NodeSetup:
    return NodeSetup(
        consortium="fuzz",
        epoch=1,
        config=fed.config,
        clip=0.5,
        public_key=fed.public_key,
        ceremony_id=bytes(range(32)),
        holders={f"holder-{j}": key for j, key in fed.holder_keys.items()},
        order=tuple(f"holder-{j}" for j in sorted(fed.holder_keys)),
        roster=dict(fed.roster),
    )


def _node_setup() -> Run:
    """What a stateless Flower node accepted at setup, as read back from its state folder."""

    def run(data: bytes) -> None:
        setup = NodeSetup.from_bytes(data)
        again = NodeSetup.from_bytes(setup.to_bytes())
        assert (again.consortium, again.epoch, again.clip, again.ceremony_id, again.order) == (
            setup.consortium,
            setup.epoch,
            setup.clip,
            setup.ceremony_id,
            setup.order,
        )
        assert again.config.params_id == setup.config.params_id
        assert again.public_key.fingerprint == setup.public_key.fingerprint
        assert (again.holders, again.roster) == (setup.holders, setup.roster)

    return run


def _round_state() -> Run:
    """A saved coordinator state: parsed, re-encoded, and resumed over the world's round."""
    fed = world.federation()
    aggregator = _round_aggregator(fed)
    for update in fed.updates:
        aggregator.add(update.to_bytes())
    aggregator.finalize()

    def run(data: bytes) -> None:
        state = ServerState.from_bytes(data, config=fed.config, layout=fed.layout)
        canonical = state.to_bytes(fed.config)
        again = ServerState.from_bytes(canonical, config=fed.config, layout=fed.layout)
        assert again.to_bytes(fed.config) == canonical
        if state.round_id != 1 or not state.aggregate_digest:
            return  # the world's aggregator is of round 1, finalized
        coord = RoundCoordinator.resume(data, aggregator=aggregator)
        assert coord.to_bytes() == canonical and coord.phase is state.phase
        assert all(type(j) is int for j in coord.decrypting_set)

    return run


def _federation_config() -> Run:
    """FederationConfig.from_bytes: canonical, and params_id is the hash of that encoding."""

    def run(data: bytes) -> None:
        config = FederationConfig.from_bytes(data)
        again = FederationConfig.from_bytes(config.to_bytes())
        assert again == config and again.params_id == config.params_id

    return run


def _holder_state() -> Run:
    """A saved key-holder round state, resumed around the world's holder 1."""
    fed = world.federation()
    holder = KeyHolder(
        holder_id="kh-1",
        config=fed.config,
        public_key=fed.public_key,
        key_share=fed.shares[0],
        roster=fed.roster,
    )

    def run(data: bytes) -> None:
        state = HolderState.from_bytes(data, config=fed.config, layout=fed.layout)
        again = HolderState.from_bytes(state.to_bytes(), config=fed.config, layout=fed.layout)
        assert again == state
        machine = HolderRound.resume(data, holder=holder, layout=fed.layout)
        assert machine.state == state
        holder._challenges.clear()  # the next input starts from a fresh holder

    return run


def _layout() -> Run:
    def run(data: bytes) -> None:
        layout = Layout.from_bytes(data)
        again = Layout.from_bytes(layout.to_bytes())
        assert again == layout and again.digest == layout.digest
        assert layout.length >= 0

    return run


def _evidence_rows(evidence: AggregateEvidence) -> object:
    return (
        evidence.round_id,
        {i: [(e.client_id, e.chunk, e.path) for e in row] for i, row in evidence.chunks.items()},
        evidence.proofs,
    )


def _evidence() -> Run:
    fed = world.federation()

    def run(data: bytes) -> None:
        evidence = AggregateEvidence.from_bytes(data, config=fed.config, layout=fed.layout)
        again = AggregateEvidence.from_bytes(
            evidence.to_bytes(), config=fed.config, layout=fed.layout
        )
        assert _evidence_rows(again) == _evidence_rows(evidence)
        assert all(type(i) is int for i in evidence.chunks)

    return run


def _flower_records() -> Run:
    """Every decoder of :mod:`fhe_agg.flower._records` on each input, with the bounds the
    node and the relay use; the envelope's kind picks the one that can succeed."""
    relay = ("relay", len(world.HOLDERS), records.CEREMONY_BLOB_BYTES)
    endorsements = ("endorsements", records.MAX_HOLDERS, 8192)

    def config(data: bytes) -> None:
        decoded = records.decode_config(data)
        again = records.decode_config(records.encode_config(decoded[0], clip=decoded[1]))
        assert again == decoded

    def blobs(data: bytes) -> None:
        for kind, items, size in (relay, endorsements):
            with contextlib.suppress(MalformedMessage):
                got = records.decode_blobs(data, kind, max_items=items, max_item=size)
                assert len(got) <= items and all(len(b) <= size for b in got)
                again = records.encode_blobs(kind, got)
                assert records.decode_blobs(again, kind, max_items=items, max_item=size) == got

    def roster(data: bytes) -> None:
        got = records.decode_roster(data, max_members=records.MAX_NODES)
        again = records.encode_roster(got)
        assert records.decode_roster(again, max_members=records.MAX_NODES) == got

    def spec(data: bytes) -> None:
        got, directory = records.decode_spec(data)
        again, again_directory = records.decode_spec(records.encode_spec(got, directory))
        assert again == got and again.ceremony_id == got.ceremony_id
        assert {h: (d.verify_key, d.sealing_key.to_bytes()) for h, d in directory.items()} == {
            h: (d.verify_key, d.sealing_key.to_bytes()) for h, d in again_directory.items()
        }

    def run(data: bytes) -> None:
        for decode in (config, blobs, roster, spec):
            with contextlib.suppress(MalformedMessage):
                decode(data)

    return run


def _packed_ciphertext() -> Run:
    backend = backend_for(world.federation().config.preset)

    def run(data: bytes) -> None:
        raw = backend.parse(data, what="ciphertext", max_bytes=backend.ciphertext_bytes)
        assert backend.pack(raw) == data  # the packed format is canonical

    return run


def _seal_ciphertext() -> Run:
    backend = backend_for(world.federation().config.preset)

    def run(data: bytes) -> None:
        raw = parse_ciphertext(
            data, n=backend.n, primes=backend.data_primes, parms_id=backend.data_parms_id
        )
        if (
            data[5] == 0
        ):  # uncompressed (byte 5 is the compression mode): the serialization is canonical
            assert build_ciphertext(raw) == data

    return run


def _public_key() -> Run:
    preset = world.federation().config.preset

    def run(data: bytes) -> None:
        key = PublicKey.from_bytes(preset, data)
        if data[5] == 0:
            assert key.blob == data

    return run


def _ceremony() -> Run:
    def run(data: bytes) -> None:
        message = CeremonyMessage.from_bytes(data)
        assert CeremonyMessage.from_bytes(message.to_bytes()) == message

    return run


def _key_primes() -> tuple[int, tuple[int, ...]]:
    backend = backend_for(world.federation().config.preset)
    return backend.n, backend.key_primes


def _sealed_share() -> Run:
    key = world.federation().sealing_key
    n, primes = _key_primes()

    def run(data: bytes) -> None:
        plain = open_sealed(key, data, info=world.SEAL_INFO, suite=Suite.PQ_ONLY)
        _poly_from_bytes(plain, primes, n, "share")

    return run


def _share_poly() -> Run:
    n, primes = _key_primes()

    def run(data: bytes) -> None:
        poly = _poly_from_bytes(data, primes, n, "key-reveal")
        assert _poly_bytes(poly) == data

    return run


# --- state stores (disk) -----------------------------------------------------------------


_STORE_ERRORS: Errors = (StoreError, Rejected)  # CorruptStore is a StoreError


def _store_path(folder: Path) -> Path:
    """A fresh store path in ``folder``: no file, no leftover WAL or shared-memory file."""
    path = folder / "state.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return path


def _holder(fed: world.Federation, store: Path | None = None) -> KeyHolder:
    j = world.DECRYPTING_SET[0]
    return KeyHolder(
        holder_id=world.HOLDERS[j - 1],
        config=fed.config,
        public_key=fed.public_key,
        key_share=fed.shares[j - 1],
        roster=fed.roster,
        store=store,
    )


def _round_aggregator(fed: world.Federation, store: Path | None = None) -> Aggregator:
    return Aggregator(
        config=fed.config,
        roster=fed.roster,
        public_key=fed.public_key,
        round_id=1,
        layout=fed.layout,
        store=store,
    )


def _stores() -> Run:
    """The first byte picks the store kind; the rest is the SQLite file, opened (resumed)."""
    fed = world.federation()
    folder = _scratch()

    def aggregator(path: Path) -> None:
        with _round_aggregator(fed, path) as agg:
            assert set(agg.accepted_clients) <= set(fed.roster)
            if agg.finalized:
                aggregate = agg.finalize()
                assert aggregate.total_weight > 0
                agg.evidence(range(len(aggregate.chunks)))  # every chunk checked on read

    def holder(path: Path) -> None:
        keyholder = _holder(fed, path)
        try:
            left = keyholder.budget_left
            assert left is None or left >= 0
            assert all(isinstance(r, int) for r in keyholder.decrypted_rounds)
        finally:
            keyholder.close()

    def run(data: bytes) -> None:
        if not data:
            return
        path = _store_path(folder)
        path.write_bytes(data[1:])
        path.chmod(0o600)
        (holder if data[0] & 1 else aggregator)(path)

    return run


def _store_seeds() -> list[bytes]:
    fed = world.federation()
    folder = _scratch()
    out = []
    for finalize in (False, True):
        path = _store_path(folder)
        with _round_aggregator(fed, path) as agg:
            for update in fed.updates[: 2 + finalize]:
                agg.add(update.to_bytes())
            if finalize:
                aggregate = agg.finalize()
                keyholder = _holder(fed)
                evidence = agg.evidence(keyholder.challenge(aggregate))
        out.append(b"\x00" + path.read_bytes())
    path = _store_path(folder)
    keyholder = _holder(fed, path)
    keyholder.partial_decrypt(
        aggregate, evidence, layout=fed.layout, decrypting_set=world.DECRYPTING_SET
    )
    keyholder.close()
    out.append(b"\x01" + path.read_bytes())
    return out


# --- identity files -----------------------------------------------------------------------


def _file_runner(load: Callable[[Path], None], suffix: str = "") -> Run:
    folder = _scratch()
    path = folder / f"input{suffix}"

    def run(data: bytes) -> None:
        path.write_bytes(data)
        path.chmod(0o600)
        load(path)

    return run


def _public_identity() -> Run:
    def load(path: Path) -> None:
        public = load_public_identity(path)
        path.write_bytes(_keystore.public_identity_text(public))
        assert load_public_identity(path) == public

    return _file_runner(load)


def _private_key(passphrase: bytes | None) -> Callable[[], Run]:
    def build() -> Run:
        # scrypt is a pure function of its inputs: memoising it lets the fuzzer spend its time
        # in the parser rather than in the KDF (the file's salt rarely changes).
        _keystore._derive = lru_cache(maxsize=64)(_keystore._derive)  # type: ignore[assignment]

        def load(path: Path) -> None:
            ident = load_identity(path, passphrase=passphrase)
            assert ident.public.signing_key == ident.signing_key.verify_key

        return _file_runner(load)

    return build


def _key_secret() -> Run:
    """A passphrase file as a node reads it at every message (a key secret or a passphrase)."""

    def load(path: Path) -> None:
        raw = _keystore.read_passphrase_file(path)
        if raw.startswith(KEY_SECRET_PREFIX):
            secret = parse_key_secret(raw)
            assert KEY_SECRET_PREFIX + base64.urlsafe_b64encode(secret).rstrip(b"=") == raw

    return _file_runner(load)


def _pin_memo() -> Run:
    """A pinned node's ``pin.json``: anything unusable is a miss (``None``), never an error."""
    folder = _scratch()

    def run(data: bytes) -> None:
        (folder / MEMO_FILE).write_bytes(data)
        memo = read_memo(folder)
        if memo is not None:
            write_memo(folder, memo)
            assert read_memo(folder) == memo

    return run


def _roster() -> Run:
    admin = world.consortium().admin.public

    def run(data: bytes) -> None:
        unverified = parse_roster_unverified(data)
        roster = Roster.from_bytes(data, admin=admin)
        assert roster.digest == unverified.digest
        assert Roster.from_bytes(roster.to_bytes(), admin=admin).digest == roster.digest

    return run


def _key_rotation() -> Run:
    def run(data: bytes) -> None:
        rotation = KeyRotation.from_json(strict_json(data))
        assert KeyRotation.from_json(rotation.to_json()) == rotation

    return run


def _audit_log() -> Run:
    keys = world.consortium().log_keys

    def load(path: Path) -> None:
        AuditLog(path)  # resuming the chain reads every line
        verify_log(path, keys)

    return _file_runner(load, ".jsonl")


def _inventory() -> Run:
    yaml_run = _file_runner(load_inventory, ".yaml")
    json_run = _file_runner(load_inventory, ".json")

    def run(data: bytes) -> None:
        (yaml_run if data[:1] == b"y" else json_run)(data[1:])

    return run


_SUITES = list(Suite)


def _raw_keys() -> Run:
    loaders: list[Callable[[Suite, bytes], object]] = [
        SuiteVerifyKey.from_bytes,
        SealingPublicKey.from_bytes,
        SuiteSigningKey.from_private_bytes,
        SealingPrivateKey.from_private_bytes,
        lambda _suite, raw: VerifyKey.from_bytes(raw),
    ]

    def run(data: bytes) -> None:
        if not data:
            return
        suite, load = _SUITES[data[0] % 4], loaders[(data[0] >> 2) % len(loaders)]
        load(suite, data[1:])

    return run


# --- seeds --------------------------------------------------------------------------------


def _fed_seeds(kind: str) -> list[bytes]:
    fed = world.federation()
    backend = backend_for(fed.config.preset)
    raw_chunk = backend.parse(fed.updates[0].chunks[0], what="seed")
    if kind == "update":
        return [u.to_bytes() for u in fed.updates]
    if kind == "aggregate":
        return [fed.aggregate.to_bytes()]
    if kind == "statement":
        return [msgpack.packb(u.signed.to_wire(), use_bin_type=True) for u in fed.updates]
    if kind == "partial":
        return [p.to_bytes(fed.config) for p in fed.partials]
    if kind == "node_setup":
        return [_node_setup_of(fed).to_bytes()]
    if kind == "abort_vote":
        return [vote.to_bytes() for vote in fed.abort.votes]
    if kind == "abort_certificate":
        short = AbortCertificate(fed.abort.round_id, fed.abort.votes[:1])
        return [fed.abort.to_bytes(), short.to_bytes()]
    if kind == "federation_config":
        return [fed.config.to_bytes(), FederationConfig().to_bytes()]
    if kind == "round_state":
        return list(fed.round_states)
    if kind == "holder_state":
        return list(fed.holder_states)
    if kind == "layout":
        _, mixed = flatten({"conv.weight": np.zeros((4, 3, 2)), "bn.steps": np.array(7)})
        return [fed.layout.to_bytes(), mixed.to_bytes()]
    if kind == "evidence":
        with _round_aggregator(fed) as aggregator:
            for update in fed.updates:
                aggregator.add(update.to_bytes())
            aggregator.finalize()
            real = aggregator.evidence([0])
        # one chunk only: real paths are empty, so also a short entry with a full-depth path
        short = ChunkEvidence(client_id="alpha", chunk=b"\x01" * 64, path=(b"\x02" * 32,) * 2)
        return [real.to_bytes(), AggregateEvidence(round_id=1, chunks={0: (short,)}).to_bytes()]
    if kind == "flower_records":
        dp = FederationConfig(
            preset=fed.config.preset,
            max_clients=4,
            max_weight=1.0,
            value_bound=1.0,
            holders=3,
            threshold=2,
            dp=DpPolicy(clip=1.0, noise_multiplier=0.8),
        )
        relayed = [m.to_bytes() for m in fed.ceremony if m.phase == "seed-commit"]
        return [
            records.encode_config(fed.config, clip=0.5),
            records.encode_config(dp, clip=None),
            records.encode_blobs("relay", relayed),
            records.encode_blobs("endorsements", [b"\x01" * 3309, b"\x02" * 3309]),
            records.encode_roster(fed.roster),
            records.encode_spec(fed.spec, fed.directory),
        ]
    if kind == "packed_ciphertext":
        return [fed.updates[0].chunks[0], fed.aggregate.chunks[0]]
    if kind == "seal_ciphertext":
        return [build_ciphertext(raw_chunk), build_ciphertext(raw_chunk, compress=True)]
    if kind == "public_key":
        raw = parse_ciphertext(
            fed.public_key.blob,
            n=backend.n,
            primes=backend.key_primes,
            parms_id=backend.key_parms_id,
        )
        return [fed.public_key.blob, build_ciphertext(raw, compress=True)]
    if kind == "ceremony":
        return [m.to_bytes() for m in fed.ceremony]
    if kind == "sealed_share":
        return [
            m.payload
            for m in fed.ceremony
            if m.phase == "share" and (m.sender, m.recipient) == (1, 2)
        ][:1]
    if kind == "share_poly":
        return [m.payload for m in fed.ceremony if m.phase == "key-reveal"][:1]
    raise KeyError(kind)


def _files(pattern: str, folder: str = "keys") -> list[bytes]:
    return [p.read_bytes() for p in sorted((world.consortium().directory / folder).glob(pattern))]


def _identity_seeds(kind: str) -> list[bytes]:
    c = world.consortium()
    if kind == "public_identity":
        return _files("*.pub.json")
    if kind == "private_key":
        return [d for d in _files("*.key") if b'"encrypted":false' in d]
    if kind == "private_key_pass":
        return [d for d in _files("*.key") if b'"encrypted":true' in d]
    if kind == "private_key_secret":
        return _files("*.key", "keys-secret")
    if kind == "key_secret":
        return [world.KEY_SECRET + b"\n", world.PASSPHRASE, b"fhe-agg/key-secret/v2:x\r\n"]
    if kind == "roster":
        return [r.to_bytes() for r in c.rosters]
    if kind == "pin_memo":
        folder = _scratch()
        member = c.members["alpha"]
        memo = PinMemo(b"\x07" * 32, member.id, member.role, member.fingerprint)
        write_memo(folder, memo)
        return [(folder / MEMO_FILE).read_bytes()]
    if kind == "key_rotation":
        import json

        return [json.dumps(c.rotation.to_json(), indent=1).encode()]
    if kind == "audit_log":
        return [c.audit_log.read_bytes()]
    if kind == "inventory":
        example = Path(__file__).resolve().parent.parent / "examples" / "inventory_legacy.yaml"
        return [b"y" + example.read_bytes(), b'j{"RSA-2048": "TLS", "ML-KEM-768": "sealing"}']
    if kind == "raw_keys":
        out = []
        for code, suite in enumerate(_SUITES):
            m = c.members[
                "kh-2" if suite is Suite.CNSA2 else "bravo" if suite is Suite.HYBRID else "alpha"
            ]
            if suite is Suite.SLH_DSA:
                continue  # pqcrypto keys are not seeded; lengths alone are covered below
            out.append(bytes([code]) + m.public.signing_key.to_bytes())
            out.append(bytes([code | 4]) + m.public.sealing_key.to_bytes())
            out.append(bytes([code | 8]) + m.signing_key.private_bytes())
            out.append(bytes([code | 12]) + m.sealing_key.private_bytes())
        out.append(bytes([16]) + c.members["alpha"].public.signing_key.to_bytes())
        return out
    raise KeyError(kind)


_MALFORMED: Errors = (MalformedMessage,)
_ROUND: Errors = (MalformedMessage, Rejected)
_KEY_FILE: Errors = (CorruptKeyFile, WrongSuite, WrongPassphrase)

TARGETS: dict[str, Target] = {
    t.name: t
    for t in [
        Target(
            "update",
            "EncryptedUpdate.from_bytes + Aggregator._check",
            _ROUND,
            _update,
            lambda: _fed_seeds("update"),
            "msgpack",
        ),
        Target(
            "update_proofs",
            "EncryptedUpdate.from_bytes (proof bounds) + signature + check_proof_set",
            _ROUND,
            _update_proofs,
            _update_proofs_seeds,
            "msgpack",
        ),
        Target(
            "aggregate",
            "EncryptedAggregate.from_bytes + manifest + chunks",
            _ROUND,
            _aggregate,
            lambda: _fed_seeds("aggregate"),
            "msgpack",
        ),
        Target(
            "statement",
            "SignedStatement.from_wire / UpdateStatement.decode",
            _ROUND,
            _statement,
            lambda: _fed_seeds("statement"),
            "msgpack",
        ),
        Target(
            "partial",
            "PartialDecryption.from_bytes",
            _MALFORMED,
            _partial,
            lambda: _fed_seeds("partial"),
            "msgpack",
        ),
        Target(
            "node_setup",
            "flower node state: Setup.from_bytes (federation record, key, rosters)",
            (MalformedMessage, ParameterMismatch),
            _node_setup,
            lambda: _fed_seeds("node_setup"),
            "msgpack",
        ),
        Target(
            "abort_vote",
            "AbortVote.from_bytes + verify",
            _ROUND,
            _abort_vote,
            lambda: _fed_seeds("abort_vote"),
            "msgpack",
        ),
        Target(
            "abort_certificate",
            "AbortCertificate.from_bytes + verify",
            (MalformedMessage, Rejected, ThresholdNotMet),
            _abort_certificate,
            lambda: _fed_seeds("abort_certificate"),
            "msgpack",
        ),
        Target(
            "layout",
            "Layout.from_bytes",
            _MALFORMED,
            _layout,
            lambda: _fed_seeds("layout"),
            "msgpack",
        ),
        Target(
            "evidence",
            "AggregateEvidence.from_bytes",
            _MALFORMED,
            _evidence,
            lambda: _fed_seeds("evidence"),
            "msgpack",
        ),
        Target(
            "flower_records",
            "flower._records decode_config / decode_blobs / decode_roster / decode_spec",
            _MALFORMED,
            _flower_records,
            lambda: _fed_seeds("flower_records"),
            "msgpack",
        ),
        Target(
            "packed_ciphertext",
            "hazmat.packed_format.unpack_ciphertext",
            (MalformedMessage, ParameterMismatch),
            _packed_ciphertext,
            lambda: _fed_seeds("packed_ciphertext"),
        ),
        Target(
            "seal_ciphertext",
            "hazmat.seal_format.parse_ciphertext",
            (MalformedMessage, ParameterMismatch),
            _seal_ciphertext,
            lambda: _fed_seeds("seal_ciphertext"),
        ),
        Target(
            "public_key",
            "PublicKey.from_bytes (SEAL format, key level)",
            (MalformedMessage, ParameterMismatch),
            _public_key,
            lambda: _fed_seeds("public_key"),
        ),
        Target(
            "ceremony",
            "CeremonyMessage.from_bytes",
            _MALFORMED,
            _ceremony,
            lambda: _fed_seeds("ceremony"),
            "msgpack",
        ),
        Target(
            "sealed_share",
            "open_sealed + ceremony share polynomial",
            (MalformedMessage, SealingError),
            _sealed_share,
            lambda: _fed_seeds("sealed_share"),
        ),
        Target(
            "share_poly",
            "ceremony key-reveal / share polynomial",
            _MALFORMED,
            _share_poly,
            lambda: _fed_seeds("share_poly"),
        ),
        Target(
            "stores",
            "Aggregator(store=) resume + evidence / KeyHolder(store=) log (SQLite files)",
            _STORE_ERRORS,
            _stores,
            _store_seeds,
        ),
        Target(
            "public_identity",
            "load_public_identity (.pub.json)",
            (CorruptKeyFile, WrongSuite),
            _public_identity,
            lambda: _identity_seeds("public_identity"),
            "json",
        ),
        Target(
            "private_key",
            "load_identity (.key, no passphrase)",
            _KEY_FILE,
            _private_key(None),
            lambda: _identity_seeds("private_key"),
            "json",
        ),
        Target(
            "private_key_pass",
            "load_identity (.key, passphrase)",
            _KEY_FILE,
            _private_key(world.PASSPHRASE),
            lambda: _identity_seeds("private_key_pass"),
            "json",
        ),
        Target(
            "private_key_secret",
            "load_identity (.key sealed under a key secret, HKDF)",
            _KEY_FILE,
            _private_key(world.KEY_SECRET),
            lambda: _identity_seeds("private_key_secret"),
            "json",
        ),
        Target(
            "key_secret",
            "read_passphrase_file / parse_key_secret (a node's key secret file)",
            (ValueError,),
            _key_secret,
            lambda: _identity_seeds("key_secret"),
        ),
        Target(
            "pin_memo",
            "read_memo (a pinned node's pin.json)",
            (),
            _pin_memo,
            lambda: _identity_seeds("pin_memo"),
            "json",
        ),
        Target(
            "roster",
            "Roster.from_bytes (+ unverified parse)",
            (InvalidRoster,),
            _roster,
            lambda: _identity_seeds("roster"),
            "json",
        ),
        Target(
            "key_rotation",
            "KeyRotation.from_json(strict_json(...))",
            (MalformedMessage, ValueError),
            _key_rotation,
            lambda: _identity_seeds("key_rotation"),
            "json",
        ),
        Target(
            "audit_log",
            "AuditLog resume + verify_log",
            (AuditLogError,),
            _audit_log,
            lambda: _identity_seeds("audit_log"),
            "json-lines",
        ),
        Target(
            "round_state",
            "ServerState.from_bytes + RoundCoordinator.resume over the world's round",
            _ROUND,
            _round_state,
            lambda: _fed_seeds("round_state"),
            "msgpack",
        ),
        Target(
            "federation_config",
            "FederationConfig.from_bytes (the encoding params_id hashes)",
            (MalformedMessage, UnsupportedParameters),
            _federation_config,
            lambda: _fed_seeds("federation_config"),
            "msgpack",
        ),
        Target(
            "holder_state",
            "HolderState.from_bytes + HolderRound.resume",
            _ROUND,
            _holder_state,
            lambda: _fed_seeds("holder_state"),
            "msgpack",
        ),
        Target(
            "inventory",
            "load_inventory (YAML / JSON)",
            (ValueError,),
            _inventory,
            lambda: _identity_seeds("inventory"),
            "text",
        ),
        Target(
            "raw_keys",
            "SuiteVerifyKey / SealingPublicKey / VerifyKey.from_bytes, private from_private_bytes",
            _MALFORMED,
            _raw_keys,
            lambda: _identity_seeds("raw_keys"),
        ),
    ]
}


#: Every declared message of the library (a class with its own ``from_bytes``, ``from_wire`` or
#: ``decode`` classmethod) and the target that parses it. ``tests/fuzz/test_registry.py``
#: enumerates the declared messages from the package and fails for one missing here, so no new
#: message escapes fuzzing.
MESSAGES: dict[str, str] = {
    "fhe_agg.holder._abort.AbortCertificate": "abort_certificate",
    "fhe_agg.holder._abort.AbortVote": "abort_vote",
    "fhe_agg.ceremony._messages.CeremonyMessage": "ceremony",
    "fhe_agg.protocol._config.FederationConfig": "federation_config",
    "fhe_agg.protocol._evidence.AggregateEvidence": "evidence",
    "fhe_agg.ckks._keys.PublicKey": "public_key",
    "fhe_agg.protocol._messages.EncryptedAggregate": "aggregate",
    "fhe_agg.protocol._messages.EncryptedUpdate": "update",
    "fhe_agg.protocol._messages.SignedStatement": "statement",
    "fhe_agg.protocol._messages.UpdateStatement": "statement",
    "fhe_agg.ckks._packing.Layout": "layout",
    "fhe_agg.holder._partial.PartialDecryption": "partial",
    "fhe_agg.server._state.HolderState": "holder_state",
    "fhe_agg.server._state.ServerState": "round_state",
    "fhe_agg.protocol._signing.VerifyKey": "raw_keys",
    "fhe_agg.flower._node_state.Setup": "node_setup",
    "fhe_agg.identity._roster.Roster": "roster",
    "fhe_agg.identity._sealing.SealingPublicKey": "raw_keys",
    "fhe_agg.identity._suites.SuiteVerifyKey": "raw_keys",
}
