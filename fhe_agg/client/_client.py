"""A federation client: clip, weight, encrypt under the joint public key, prove, sign.

A client never holds a secret CKKS key: it encrypts asymmetrically under the joint public key,
at the data level itself (:func:`~fhe_agg.hazmat.encrypt.encrypt_with_witness`, the plaintext
from SEAL's CKKS encoder), so that each chunk's ``c1 = a*u + e1`` holds exactly and the client
can prove it knows the short ``u, e1`` (:mod:`fhe_agg.protocol._wellformed`): one zero-knowledge proof per
batch of chunks, made right after encrypting the batch; the witnesses are dropped as soon as the
proof exists and are never stored or logged. Each chunk is hashed into a Merkle tree whose root
goes into the signed statement, with the digest of the proofs, so the aggregator and key holders
can check any chunk on its own and no proof can be swapped.

A client also refuses to encrypt the same vector for two rounds, at any weight
(:class:`~fhe_agg.RoundNotClosed`), unless the first round is proven closed by an
:class:`~fhe_agg.AbortCertificate`: two decrypted sums of the same updates (re-weighted or not),
one with a client fewer, would reveal that client's update. It remembers the SHA-256 digest of
the last :data:`REMEMBERED_UPDATES` *unweighted* vectors it encrypted, in memory or, with
``state=``, in an SQLite file that survives a restart (:mod:`fhe_agg.client._store`). Not
covered: a client that trains again after a claimed abort, or clips the same data to another
norm, sends a different vector; differential privacy is what bounds that leak.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from fhe_agg._errors import InvalidInput, ParameterMismatch
from fhe_agg._parallel import check_workers
from fhe_agg.ckks._keys import PublicKey
from fhe_agg.ckks._packing import IntegerPolicy, Layout, chunk, flatten
from fhe_agg.ckks._random import RandomSource, default_random
from fhe_agg.ckks._seal import backend_for
from fhe_agg.client._batches import encrypt_and_prove
from fhe_agg.client._store import REMEMBERED_UPDATES, SentMemory
from fhe_agg.holder._abort import AbortCertificate
from fhe_agg.protocol._config import PROTOCOL_VERSION, FederationConfig
from fhe_agg.protocol._merkle import leaf_hash, merkle_root
from fhe_agg.protocol._messages import (
    UPDATE_CONTEXT,
    EncryptedUpdate,
    SignedStatement,
    UpdateStatement,
)
from fhe_agg.protocol._signing import SigningKey, VerifyKey
from fhe_agg.protocol._wellformed import data_level_key, proof_batches, proof_context, proofs_digest

__all__ = ["REMEMBERED_UPDATES", "Client", "ProvenChunks", "clip_l2"]


def clip_l2(vector: NDArray[np.float64], bound: float) -> NDArray[np.float64]:
    """Scale ``vector`` down so its L2 norm is at most ``bound`` (a zero vector stays zero)."""
    if not (math.isfinite(bound) and bound > 0):
        raise ValueError(f"bound: must be a positive finite number, got {bound!r}")
    norm = float(np.linalg.norm(vector))
    if norm <= bound or norm == 0.0:
        return vector
    return vector * (bound / norm)


def _check_round(round_id: object) -> None:
    if not isinstance(round_id, int) or isinstance(round_id, bool) or not 0 <= round_id < 2**63:
        raise ValueError(f"round_id: expected an integer in 0..2**63-1, got {round_id!r}")


@dataclass(frozen=True, eq=False)
class ProvenChunks:
    """One round's encrypted chunks of one client and the well-formedness proof of each batch
    of chunks (bound to that round and client): what :meth:`Client.sign_update` signs."""

    chunks: tuple[bytes, ...]
    proofs: tuple[bytes, ...]
    #: the chunks' Merkle leaves, made with the proofs (whose transcripts bind them), so that
    #: :meth:`Client.sign_update` does not hash the chunks again; empty: it hashes them
    leaves: tuple[bytes, ...] = ()


class Client:
    """Encrypts and signs one member's model updates.

    >>> client = Client(client_id="hospital-a", signing_key=key, config=cfg, public_key=pk)
    >>> update = client.encrypt_update(state_dict, round_id=7, weight=1200)

    ``holder_keys`` (holder index -> ML-DSA verify key, from the key ceremony's directory) lets
    the client check abort certificates (:meth:`accept_abort`). ``state`` (a file path, one
    per client and key epoch; recommended ``./fhe_agg_state/client-<client_id>.sqlite``) keeps
    the memory of sent vectors across restarts; ``None`` keeps it in memory only. ``rng``
    draws the encryption randomness and the proofs' masks (default: the operating system's
    CSPRNG). ``workers`` > 1 encrypts and proves on that many processes
    (:mod:`fhe_agg.client._batches`): the same bytes as with one, for the same ``rng``.
    """

    def __init__(
        self,
        *,
        client_id: str,
        signing_key: SigningKey,
        config: FederationConfig,
        public_key: PublicKey,
        holder_keys: Mapping[int, VerifyKey] | None = None,
        state: str | os.PathLike[str] | None = None,
        rng: RandomSource | None = None,
        workers: int = 1,
    ) -> None:
        self.workers = check_workers(workers)
        if (
            not isinstance(client_id, str)
            or not 0 < len(client_id) <= 128
            or not client_id.isprintable()
        ):
            raise ValueError(
                f"client_id: expected a printable string of 1..128 characters, got {client_id!r}"
            )
        if not isinstance(signing_key, SigningKey):
            raise TypeError(f"signing_key: expected SigningKey, got {type(signing_key).__name__}")
        if public_key.preset != config.preset:
            raise ParameterMismatch("public_key: made for another preset than config.preset")
        self.client_id = client_id
        self.config = config
        self.public_key = public_key
        self._signing_key = signing_key
        self._backend = backend_for(config.preset)
        self._key = data_level_key(public_key)
        self._rng = rng or default_random()
        if holder_keys is not None and not all(
            isinstance(j, int) and isinstance(k, VerifyKey) for j, k in holder_keys.items()
        ):
            raise TypeError("holder_keys: expected a mapping of holder index -> VerifyKey")
        self._holder_keys = None if holder_keys is None else dict(holder_keys)
        self._sent = SentMemory(
            state, client_id=client_id, public_key_fingerprint=public_key.fingerprint
        )

    def accept_abort(self, certificate: AbortCertificate) -> None:
        """Verify ``certificate`` and from then on allow re-sending the updates of its round.

        Raises what :meth:`AbortCertificate.verify` raises (nothing is remembered then), and
        ``ValueError`` if the client was built without ``holder_keys``.
        """
        if not isinstance(certificate, AbortCertificate):
            raise TypeError(
                f"certificate: expected AbortCertificate, got {type(certificate).__name__}"
            )
        if self._holder_keys is None:
            raise ValueError(
                "holder_keys: this Client was made without the key holders' verify keys, so it "
                "cannot check an abort certificate; pass holder_keys= to Client"
            )
        certificate.verify(self._holder_keys, config=self.config, public_key=self.public_key)
        self._sent.close_round(certificate.round_id)

    def _claim(self, vector: NDArray[np.float64], round_id: int) -> None:
        """Refuse (:class:`RoundNotClosed`) an unweighted vector already sent for another round
        that is not proven closed; else remember it (durably, with ``state``) for ``round_id``."""
        _check_round(round_id)
        # SHA-256, not SHA3: this digest only recognises the client's own vector again, and
        # SHA-256 is hardware-accelerated (5 ms for 1e6 parameters against 31 ms)
        digest = hashlib.sha256(
            b"fhe_agg/update-vector|" + np.ascontiguousarray(vector, dtype="<f8").tobytes()
        ).digest()
        self._sent.claim(digest, round_id)

    def close(self) -> None:
        """Close the ``state`` file (if any); the memory itself is kept there."""
        self._sent.close()

    def prepare(
        self,
        params: Sequence[object] | Mapping[str, object] | NDArray[np.float64],
        *,
        clip: float | None = None,
        integer_policy: IntegerPolicy = "keep-local",
    ) -> tuple[NDArray[np.float64], Layout]:
        """Flatten, clip and range-check ``params`` without encrypting.

        ``clip`` is an L2 bound; with DP it defaults to (and may not exceed) ``config.dp.clip``.
        """
        dp = self.config.dp
        if dp is not None:
            if clip is None:
                clip = dp.clip
            elif clip > dp.clip:
                raise ValueError(f"clip: {clip} exceeds the federation's DP clip norm {dp.clip}")
        if isinstance(params, np.ndarray) and params.ndim == 1 and params.dtype.kind == "f":
            vector = params.astype(np.float64)
            if not np.all(np.isfinite(vector)):
                raise InvalidInput("params: contains NaN or Inf")
            layout = Layout.for_vector(vector.size)
        else:
            vector, layout = flatten(params, integer_policy=integer_policy)  # type: ignore[arg-type]
        if clip is not None:
            vector = clip_l2(vector, clip)
        peak = float(np.max(np.abs(vector))) if vector.size else 0.0
        if peak > self.config.value_bound:
            raise InvalidInput(
                f"params: |value| reaches {peak:.4g}, beyond the safe range ±{self.config.value_bound} "
                "of this federation (clip the update or raise FederationConfig.value_bound)"
            )
        return vector, layout

    def encrypt_update(
        self,
        params: Sequence[object] | Mapping[str, object] | NDArray[np.float64],
        *,
        round_id: int,
        weight: float,
        clip: float | None = None,
        integer_policy: IntegerPolicy = "keep-local",
    ) -> EncryptedUpdate:
        """Encrypt ``weight * params`` chunk by chunk and sign the statement describing it.

        Raises :class:`InvalidInput` for NaN/Inf, values beyond ``config.value_bound`` (after
        clipping) and a weight outside ``[config.min_weight, config.max_weight]``, and :class:`RoundNotClosed`
        for the same vector (at any weight) sent before for another round that is not proven
        closed.
        """
        _check_round(round_id)
        if not (isinstance(weight, int | float) and math.isfinite(weight)) or not (
            self.config.min_weight <= weight <= self.config.max_weight
        ):
            raise InvalidInput(
                f"weight: {weight!r} outside [{self.config.min_weight}, {self.config.max_weight}]"
                " (min_weight: the fewest samples one update may stand for)",
                round_id=round_id,
                party=self.client_id,
            )
        vector, layout = self.prepare(params, clip=clip, integer_policy=integer_policy)
        chunks = self.encrypt_chunks(vector, round_id=round_id, weight=float(weight))
        return self.sign_update(chunks, layout=layout, round_id=round_id, weight=float(weight))

    def encrypt_chunks(
        self, vector: NDArray[np.float64], *, round_id: int, weight: float = 1.0
    ) -> ProvenChunks:
        """Encrypt ``weight * vector`` for ``round_id``, ``N`` reals per ciphertext (packed wire
        format), and prove every batch of chunks well formed for this client and round (sign
        them for that round). :class:`RoundNotClosed` for a ``vector`` sent before, at any
        weight, for another round that is not proven closed: pass the unweighted vector and its
        ``weight``, not their product, or the memory cannot recognise it."""
        self._claim(vector, round_id)
        weighted = vector * float(weight) if weight != 1.0 else vector
        parts = chunk(weighted, self.config.preset.reals_per_ciphertext)
        contexts = [
            proof_context(
                params_id=self.config.params_id,
                public_key_fingerprint=self.public_key.fingerprint,
                round_id=round_id,
                client_id=self.client_id,
                indices=indices,
            )
            for indices in proof_batches(len(parts))
        ]
        chunks, leaves, proofs = encrypt_and_prove(
            self.config.preset,
            self._key,
            self.config.scale,
            parts,
            contexts,
            self._rng,
            workers=self.workers,
        )
        return ProvenChunks(tuple(chunks), tuple(proofs), tuple(leaves))

    def sign_update(
        self,
        chunks: ProvenChunks | tuple[bytes, ...],
        *,
        layout: Layout,
        round_id: int,
        weight: float,
        proofs: tuple[bytes, ...] = (),
    ) -> EncryptedUpdate:
        """Hash the chunks into a Merkle root and sign the round's statement over it and over
        the digest of the proofs. ``chunks`` is normally :meth:`encrypt_chunks`' result; raw
        chunk bytes with their ``proofs`` (e.g. made elsewhere) are signed as given."""
        leaves: tuple[bytes, ...] = ()
        if isinstance(chunks, ProvenChunks):
            if proofs:
                raise ValueError("proofs: already part of the ProvenChunks given")
            proofs, leaves, chunks = chunks.proofs, chunks.leaves, chunks.chunks
        if len(leaves) != len(chunks):
            leaves = tuple(leaf_hash(i, c) for i, c in enumerate(chunks))
        statement = UpdateStatement(
            protocol_version=PROTOCOL_VERSION,
            params_id=self.config.params_id,
            public_key_fingerprint=self.public_key.fingerprint,
            round_id=round_id,
            client_id=self.client_id,
            weight=float(weight),
            layout_hash=layout.digest,
            chunk_count=len(chunks),
            merkle_root=merkle_root(list(leaves)),
            proofs_digest=proofs_digest(proofs),
        )
        signature = self._signing_key.sign(statement.encode(), context=UPDATE_CONTEXT)
        return EncryptedUpdate(SignedStatement(statement, signature), chunks, tuple(proofs))

    def __repr__(self) -> str:
        return f"Client(client_id={self.client_id!r}, preset={self.config.preset.name})"
