"""Property tests of the round's wire parsers: valid objects round-trip; damaged bytes either
parse to a message that round-trips too, or raise only the documented errors.

Documented errors: :class:`MalformedMessage` (incl. :class:`MessageTooLarge`) for bytes that are
not a message; :class:`Rejected` subclasses (:class:`ParameterMismatch`, ``InvalidSignature``,
...) for well-formed messages the protocol refuses. Never ``struct.error``, ``KeyError``,
``IndexError``, numpy's ``ValueError``, ``MemoryError`` or ``RecursionError``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import msgpack
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fhe_agg import (
    AggregateEvidence,
    Aggregator,
    CeremonyMessage,
    ChunkEvidence,
    EncryptedAggregate,
    EncryptedUpdate,
    FederationConfig,
    Layout,
    LayoutEntry,
    MalformedMessage,
    ParameterMismatch,
    PartialDecryption,
    PublicKey,
    Rejected,
    SignedStatement,
    UpdateStatement,
)
from fhe_agg.ceremony._messages import poly_from_bytes as _poly_from_bytes
from fhe_agg.ckks._seal import backend_for
from fhe_agg.hazmat.seal_format import build_ciphertext, parse_ciphertext
from fhe_agg.identity import SealInfo, SealingError, SealingPrivateKey, Suite, open_sealed, seal
from fhe_agg.protocol._checks import check_statement
from fhe_agg.protocol._messages import MessageBounds
from fhe_agg.server._update_check import check_content

from .mutations import PARSER_SETTINGS, damaged, refuse_or_parse

ROUND = (MalformedMessage, Rejected)
CIPHERTEXT = (MalformedMessage, ParameterMismatch)


@pytest.fixture(scope="module")
def bounds(config, layout) -> MessageBounds:
    return MessageBounds.for_round(config, layout)


@pytest.fixture(scope="module")
def aggregate(config, keypair, roster, layout, updates, tmp_path_factory) -> EncryptedAggregate:
    agg = Aggregator(
        config=config,
        roster=roster,
        public_key=keypair[0],
        round_id=1,
        layout=layout,
        spool_dir=tmp_path_factory.mktemp("spool"),
    )
    for update in updates.values():
        agg.add(update.to_bytes())
    return agg.finalize()


@pytest.fixture(scope="module")
def fresh(config, keypair, roster, layout) -> Aggregator:
    """An aggregator of round 1 that never accepts an update: the checks of ``add`` that read no
    state (:func:`_aggregator_checks`) and ``_check_statement`` leave it unchanged, so one
    serves every example."""
    return Aggregator(
        config=config, roster=roster, public_key=keypair[0], round_id=1, layout=layout
    )


client_ids = st.text(
    st.characters(exclude_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs")),
    min_size=1,
    max_size=128,
)
statements = st.builds(
    UpdateStatement,
    protocol_version=st.integers(1, 255),
    params_id=st.binary(min_size=32, max_size=32),
    public_key_fingerprint=st.binary(min_size=32, max_size=32),
    round_id=st.integers(0, 2**63 - 1),
    client_id=client_ids,
    weight=st.floats(min_value=5e-324, allow_infinity=False),
    layout_hash=st.binary(min_size=32, max_size=32),
    chunk_count=st.integers(1, 2**31),
    merkle_root=st.binary(min_size=32, max_size=32),
    proofs_digest=st.binary(min_size=32, max_size=32),
)


@PARSER_SETTINGS
@given(stmt=statements, signature=st.binary(min_size=3309, max_size=3309))
def test_every_valid_statement_round_trips(stmt: UpdateStatement, signature: bytes) -> None:
    assert UpdateStatement.decode(msgpack.unpackb(stmt.encode())) == stmt
    signed = SignedStatement(stmt, signature)
    wire = msgpack.unpackb(msgpack.packb(signed.to_wire(), use_bin_type=True))
    assert SignedStatement.from_wire(wire) == signed


def _aggregator_checks(agg: Aggregator) -> Callable[[EncryptedUpdate], None]:
    """The checks the aggregator makes of a decoded update, without counting it."""

    def check(update: EncryptedUpdate) -> None:
        check_statement(update.signed, agg.context)
        check_content(update, agg.context, workers=1)

    return check


@PARSER_SETTINGS
@given(data=st.data())
def test_damaged_update_is_refused_or_round_trips(data, updates, bounds, fresh) -> None:
    seed = next(iter(updates.values())).to_bytes()
    blob = data.draw(damaged(seed, "msgpack"))
    update = refuse_or_parse(lambda b: EncryptedUpdate.from_bytes(b, bounds), blob, ROUND)
    if update is None:
        return
    again = EncryptedUpdate.from_bytes(update.to_bytes(), bounds)
    assert again.signed == update.signed and again.chunks == update.chunks
    refuse_or_parse(_aggregator_checks(fresh), update, ROUND)  # what the aggregator does next


@PARSER_SETTINGS
@given(data=st.data())
def test_damaged_statement_is_refused(data, updates, fresh) -> None:
    signed = next(iter(updates.values())).signed
    blob = data.draw(damaged(msgpack.packb(signed.to_wire(), use_bin_type=True), "msgpack"))
    try:
        raw = msgpack.unpackb(blob)
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.StackError):
        return  # not msgpack at all: the envelope parser refuses it before this point
    parsed = refuse_or_parse(SignedStatement.from_wire, raw, ROUND)
    if parsed is not None:
        refuse_or_parse(fresh._check_statement, parsed, ROUND)


@PARSER_SETTINGS
@given(data=st.data())
def test_damaged_aggregate_is_refused_or_round_trips(data, aggregate, bounds) -> None:
    blob = data.draw(damaged(aggregate.to_bytes(), "msgpack"))
    parsed = refuse_or_parse(lambda b: EncryptedAggregate.from_bytes(b, bounds), blob, ROUND)
    if parsed is not None:
        again = EncryptedAggregate.from_bytes(parsed.to_bytes(), bounds)
        assert (again.round_id, again.chunks, again.manifest) == (
            parsed.round_id,
            parsed.chunks,
            parsed.manifest,
        )


layout_entries = st.builds(
    LayoutEntry,
    name=st.text(max_size=40),
    shape=st.lists(st.integers(0, 2**40 - 1), max_size=4).map(tuple),
    dtype=st.sampled_from(["float32", "float64", "bfloat16", "int64", "bool"]),
    offset=st.integers(0, 2**40 - 1),
    encrypted=st.booleans(),
)


@PARSER_SETTINGS
@given(entries=st.lists(layout_entries, max_size=8), data=st.data())
def test_layouts_round_trip_and_damage_is_refused(entries: list[LayoutEntry], data) -> None:
    layout = Layout(tuple(entries))
    wire = layout.to_bytes()
    back = Layout.from_bytes(wire)
    assert back == layout and back.digest == layout.digest
    parsed = refuse_or_parse(
        Layout.from_bytes, data.draw(damaged(wire, "msgpack")), (MalformedMessage,)
    )
    if parsed is not None:
        again = Layout.from_bytes(parsed.to_bytes())
        assert again == parsed and again.digest == parsed.digest


def _evidence_rows(evidence: AggregateEvidence) -> object:
    return (
        evidence.round_id,
        {i: [(e.client_id, e.chunk, e.path) for e in row] for i, row in evidence.chunks.items()},
    )


@st.composite
def evidences(draw: st.DrawFn, chunks: int, clients: int) -> AggregateEvidence:
    depth = max(1, math.ceil(math.log2(chunks))) + 1
    entries = st.builds(
        ChunkEvidence,
        client_id=client_ids,
        chunk=st.binary(max_size=64),
        path=st.lists(st.binary(min_size=32, max_size=32), max_size=depth).map(tuple),
    )
    indices = draw(st.sets(st.integers(0, chunks - 1), min_size=1))
    return AggregateEvidence(
        round_id=draw(st.integers(0, 2**63 - 1)),
        chunks={i: tuple(draw(st.lists(entries, min_size=1, max_size=clients))) for i in indices},
    )


@PARSER_SETTINGS
@given(data=st.data())
def test_evidence_round_trips_and_damage_is_refused(data, config, layout) -> None:
    chunks = layout.chunk_count(config.preset.reals_per_ciphertext)
    evidence = data.draw(evidences(chunks, config.max_clients))
    wire = evidence.to_bytes()

    def parse(b: bytes) -> AggregateEvidence:
        return AggregateEvidence.from_bytes(b, config=config, layout=layout)

    assert _evidence_rows(parse(wire)) == _evidence_rows(evidence)
    parsed = refuse_or_parse(parse, data.draw(damaged(wire, "msgpack")), (MalformedMessage,))
    if parsed is not None:
        assert all(type(i) is int for i in parsed.chunks)
        assert _evidence_rows(parse(parsed.to_bytes())) == _evidence_rows(parsed)


@pytest.fixture(scope="module")
def threshold_config() -> FederationConfig:
    return FederationConfig(
        min_clients=2, max_clients=4, max_weight=10.0, value_bound=1.0, holders=5, threshold=3
    )


@st.composite
def partials(draw: st.DrawFn, config: FederationConfig, chunks: int) -> PartialDecryption:
    members = tuple(sorted(draw(st.sets(st.integers(1, 5), min_size=3, max_size=3))))
    primes = backend_for(config.preset).data_primes
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    data = np.stack(
        [rng.integers(0, q, size=(chunks, 8192), dtype=np.uint64) for q in primes], axis=1
    )
    return PartialDecryption(
        round_id=draw(st.integers(0, 2**63 - 1)),
        holder_index=draw(st.sampled_from(members)),
        aggregate_digest=draw(st.binary(min_size=32, max_size=32)),
        decrypting_set=members,
        data=data,
    )


@PARSER_SETTINGS
@given(data=st.data())
def test_partials_round_trip_and_damage_is_refused(data, threshold_config, layout) -> None:
    cfg = threshold_config
    partial = data.draw(partials(cfg, layout.chunk_count(cfg.preset.reals_per_ciphertext)))
    wire = partial.to_bytes(cfg)
    back = PartialDecryption.from_bytes(wire, config=cfg, layout=layout)
    assert np.array_equal(back.data, partial.data)
    assert (back.round_id, back.holder_index, back.decrypting_set, back.aggregate_digest) == (
        partial.round_id,
        partial.holder_index,
        partial.decrypting_set,
        partial.aggregate_digest,
    )
    blob = data.draw(damaged(wire, "msgpack"))
    parsed = refuse_or_parse(
        lambda b: PartialDecryption.from_bytes(b, config=cfg, layout=layout),
        blob,
        (MalformedMessage,),
    )
    if parsed is not None:
        assert all(type(m) is int for m in parsed.decrypting_set)
        again = PartialDecryption.from_bytes(parsed.to_bytes(cfg), config=cfg, layout=layout)
        assert np.array_equal(again.data, parsed.data)


@PARSER_SETTINGS
@given(data=st.data())
def test_packed_ciphertext_is_canonical(data, updates, config) -> None:
    backend = backend_for(config.preset)
    blob = data.draw(damaged(next(iter(updates.values())).chunks[0], "binary"))
    raw = refuse_or_parse(
        lambda b: backend.parse(b, what="chunk", max_bytes=backend.ciphertext_bytes),
        blob,
        CIPHERTEXT,
    )
    if raw is not None:
        assert backend.pack(raw) == blob  # one encoding per ciphertext


@PARSER_SETTINGS
@given(data=st.data(), compress=st.booleans())
def test_seal_format_parse_is_strict(data, updates, config, compress: bool) -> None:
    backend = backend_for(config.preset)
    raw = backend.parse(next(iter(updates.values())).chunks[0], what="chunk")
    blob = data.draw(damaged(build_ciphertext(raw, compress=compress), "binary"))

    def parse(b: bytes) -> object:
        return parse_ciphertext(
            b, n=backend.n, primes=backend.data_primes, parms_id=backend.data_parms_id
        )

    parsed = refuse_or_parse(parse, blob, CIPHERTEXT)
    if parsed is not None and blob[5] == 0:  # byte 5: compression mode
        assert build_ciphertext(parsed) == blob


@PARSER_SETTINGS
@given(data=st.data())
def test_damaged_public_key_is_refused(data, keypair, config) -> None:
    blob = data.draw(damaged(keypair[0].blob, "binary"))
    key = refuse_or_parse(lambda b: PublicKey.from_bytes(config.preset, b), blob, CIPHERTEXT)
    if key is not None:
        assert key.blob == blob


ceremony_messages = st.builds(
    CeremonyMessage,
    ceremony_id=st.binary(min_size=32, max_size=32),
    phase=st.sampled_from(["seed-commit", "seed-reveal", "key-commit", "key-reveal", "share"]),
    sender=st.integers(1, 2**20),
    recipient=st.integers(0, 2**20),
    payload=st.binary(max_size=256),
    signature=st.binary(max_size=3309),
)


@PARSER_SETTINGS
@given(message=ceremony_messages, data=st.data())
def test_ceremony_messages_round_trip_and_damage_is_refused(message, data) -> None:
    wire = message.to_bytes()
    assert CeremonyMessage.from_bytes(wire) == message
    parsed = refuse_or_parse(
        CeremonyMessage.from_bytes, data.draw(damaged(wire, "msgpack")), (MalformedMessage,)
    )
    if parsed is not None:
        assert CeremonyMessage.from_bytes(parsed.to_bytes()) == parsed


@pytest.fixture(scope="module")
def recipient() -> SealingPrivateKey:
    return SealingPrivateKey.generate(Suite.PQ_ONLY)


_INFO = SealInfo(consortium="c", epoch=1, sender="kh-1", recipient="kh-2", purpose="key-share")


@PARSER_SETTINGS
@given(data=st.data())
def test_damaged_sealed_share_is_refused(data, recipient, config) -> None:
    backend = backend_for(config.preset)
    n, primes = backend.n, backend.key_primes
    poly = np.stack([np.arange(n, dtype=np.uint64) % q for q in primes])
    sealed = seal(
        recipient.public_key, poly.astype("<u8").tobytes(), info=_INFO, suite=Suite.PQ_ONLY
    )
    blob = data.draw(damaged(sealed, "binary"))
    plain = refuse_or_parse(
        lambda b: open_sealed(recipient, b, info=_INFO, suite=Suite.PQ_ONLY),
        blob,
        (MalformedMessage, SealingError),
    )
    if plain is not None:  # only the untouched blob opens (AEAD)
        assert blob == sealed
    damaged_plain = data.draw(damaged(poly.astype("<u8").tobytes(), "binary"))
    refuse_or_parse(
        lambda b: _poly_from_bytes(b, primes, n, "share"), damaged_plain, (MalformedMessage,)
    )
