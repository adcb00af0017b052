"""Combine partial decryptions into the released weighted mean.

``m = c0 + sum_j d_j (mod q)`` in NTT form, wrapped as a SEAL plaintext at the aggregate's scale
(``scale * total_weight``) and decoded by SEAL's ``CKKSEncoder``: the result is the weighted mean.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from fhe_agg._config import FederationConfig
from fhe_agg._errors import AggregateMismatch, ThresholdNotMet
from fhe_agg._messages import EncryptedAggregate, aggregate_digest
from fhe_agg._packing import Layout
from fhe_agg._partial import PartialDecryption
from fhe_agg._seal import backend_for
from fhe_agg.hazmat.rlwe import add_polys

__all__ = ["combine"]


def check_partial(
    partial: PartialDecryption,
    aggregate: EncryptedAggregate,
    *,
    digest: bytes,
    members: tuple[int, ...],
) -> None:
    """Refuse a partial of another aggregate (``digest``), round or decrypting set, or of the
    wrong number of chunks (:class:`AggregateMismatch`)."""
    if (
        partial.aggregate_digest != digest
        or partial.round_id != aggregate.round_id
        or partial.decrypting_set != members
    ):
        raise AggregateMismatch(
            f"partial of holder {partial.holder_index} belongs to another aggregate or set"
        )
    if partial.data.shape[0] != len(aggregate.chunks):
        raise AggregateMismatch(
            f"partial of holder {partial.holder_index} has the wrong number of chunks"
        )


def combine(
    aggregate: EncryptedAggregate,
    partials: Sequence[PartialDecryption],
    *,
    config: FederationConfig,
    layout: Layout,
) -> NDArray[np.float64]:
    """Add ``c0`` and the partial decryptions of one decrypting set; decode the weighted mean."""
    if not partials:
        raise ThresholdNotMet("no partial decryptions to combine")
    members = partials[0].decrypting_set
    if sorted(p.holder_index for p in partials) != list(members):
        raise ThresholdNotMet(f"need one partial from each of holders {members}")
    digest = aggregate_digest(aggregate)
    for p in partials:
        check_partial(p, aggregate, digest=digest, members=members)
    return decode_partials(aggregate, partials, config=config, layout=layout)


def decode_partials(
    aggregate: EncryptedAggregate,
    partials: Sequence[PartialDecryption],
    *,
    config: FederationConfig,
    layout: Layout,
) -> NDArray[np.float64]:
    """``c0 + sum of partials`` decoded, for partials already checked with :func:`check_partial`."""
    b = backend_for(config.preset)
    out = np.empty(len(aggregate.chunks) * b.n, dtype=np.float64)
    for i, blob in enumerate(aggregate.chunks):
        raw = b.parse(blob, what=f"aggregate chunk {i}")
        message = raw.data[0]
        for p in partials:
            message = add_polys(message, p.data[i], b.data_primes)
        out[i * b.n : (i + 1) * b.n] = b.decode(message, raw.scale)
    return out[: layout.length]
