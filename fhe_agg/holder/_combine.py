"""Combine partial decryptions into the released weighted mean.

``m = c0 + sum_j d_j (mod q)`` in NTT form, wrapped as a SEAL plaintext at the aggregate's scale
(``scale * total_weight``) and decoded by SEAL's ``CKKSEncoder``: the result is the weighted mean.

Shamir shares and partials are not verifiable, so a wrong key share or partial is caught here:
it adds ``lambda_j * c1 * delta`` with ``c1`` uniform mod ``q``, which decodes to reals spread
uniformly over ``+-q / (2 * scale * total_weight)``, at least 4 times ``value_bound`` as the
scale keeps the largest sum below ``q / 8``. Every decoded real, padding included (``N`` per
chunk), must lie within :func:`release_bound`, else :class:`DecryptionFailed`: a wrong
decryption would have to land all of them in that narrow band. A holder that shifts its partial
by a small, well-formed offset is *not* caught (partials carry no proof).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from fhe_agg.ckks._flooding import slot_noise_std
from fhe_agg.ckks._packing import Layout
from fhe_agg.ckks._seal import backend_for
from fhe_agg.errors import AggregateMismatch, DecryptionFailed, ThresholdNotMet
from fhe_agg.hazmat.rlwe import add_polys
from fhe_agg.holder._partial import PartialDecryption
from fhe_agg.protocol._config import FederationConfig
from fhe_agg.protocol._messages import EncryptedAggregate, aggregate_digest

__all__ = ["combine", "release_bound"]

_NOISE_TAILS = 8.0  # an honest real exceeds this many standard deviations with prob. ~1e-15
_ROUNDING_SLACK = 2.0**-10  # CKKS encoding and encryption error, relative to value_bound


def release_bound(config: FederationConfig, total_weight: float) -> float:
    """Largest ``|value|`` an honest decryption of a weighted mean of ``total_weight`` can
    show: ``value_bound`` plus 8 standard deviations of the decrypting holders' noise."""
    noise = 0.0
    if config.holder_noise_sigma > 0.0:
        n = config.preset.poly_modulus_degree
        noise = slot_noise_std(config.holder_noise_sigma, n, config.threshold) / config.scale
    return config.value_bound * (1.0 + _ROUNDING_SLACK) + _NOISE_TAILS * noise / total_weight


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
    """``c0 + sum of partials`` decoded, for partials already checked with :func:`check_partial`.

    Raises :class:`DecryptionFailed` if any decoded real exceeds :func:`release_bound`.
    """
    b = backend_for(config.preset)
    out = np.empty(len(aggregate.chunks) * b.n, dtype=np.float64)
    for i, blob in enumerate(aggregate.chunks):
        raw = b.parse(blob, what=f"aggregate chunk {i}")
        message = raw.data[0]
        for p in partials:
            message = add_polys(message, p.data[i], b.data_primes)
        out[i * b.n : (i + 1) * b.n] = b.decode(message, raw.scale)
    bound = release_bound(config, aggregate.total_weight)
    if not np.all(np.abs(out) <= bound):
        members = sorted(p.holder_index for p in partials)
        raise DecryptionFailed(
            f"round {aggregate.round_id}: the partials of holders {members} decode beyond "
            f"+-{bound:.4g}, which no honest round reaches: a key share or partial of one of "
            "them is wrong (sets without it decrypt; its key needs a new ceremony), or a client "
            "encrypted values beyond value_bound"
        )
    return out[: layout.length]
