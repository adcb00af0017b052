"""torch adapters: a ``state_dict`` in, a ``state_dict`` out (extra ``fhe-agg[torch]``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

try:
    import torch
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("fhe_agg.torch needs PyTorch: pip install 'fhe-agg[torch]'") from exc

import numpy as np
from numpy.typing import NDArray

from fhe_agg.ckks._packing import IntegerPolicy, Layout, flatten, unflatten

__all__ = ["flatten_state_dict", "unflatten_state_dict"]


def flatten_state_dict(
    state_dict: Mapping[str, Any], *, integer_policy: IntegerPolicy = "keep-local"
) -> tuple[NDArray[np.float64], Layout]:
    """Flatten a torch ``state_dict`` (see :func:`fhe_agg.flatten`)."""
    return flatten(dict(state_dict), integer_policy=integer_policy)


def unflatten_state_dict(
    vector: NDArray[np.float64], layout: Layout, *, template: Mapping[str, Any]
) -> dict[str, torch.Tensor]:
    """Rebuild a ``state_dict`` of tensors with the original dtypes; non-float tensors (e.g.
    ``num_batches_tracked``) come from ``template``, normally the local model's state_dict."""
    arrays = unflatten(vector, layout, template=dict(template))
    out: dict[str, torch.Tensor] = {}
    for entry in layout.entries:
        source = template.get(entry.name)
        dtype = source.dtype if isinstance(source, torch.Tensor) else None
        tensor = torch.from_numpy(arrays[entry.name].copy(order="C"))
        out[entry.name] = tensor.to(dtype) if dtype is not None else tensor
    return out
