from __future__ import annotations

import numpy as np
import pytest

from fhe_agg import InvalidInput, Layout, flatten, unflatten
from fhe_agg.ckks._packing import chunk


def test_numpy_list_round_trip_keeps_shapes_and_dtypes() -> None:
    rng = np.random.default_rng(0)
    params = [
        rng.normal(size=(3, 4)).astype(np.float32),
        rng.normal(size=(5,)),
        rng.normal(size=(2, 2, 2)).astype(np.float16),
        np.float64(2.5),
    ]
    vector, layout = flatten(params)
    assert vector.dtype == np.float64 and vector.size == 12 + 5 + 8 + 1
    restored = unflatten(vector, layout)
    for i, original in enumerate(params):
        got = restored[str(i)]
        assert got.dtype == np.asarray(original).dtype and got.shape == np.shape(original)
        np.testing.assert_array_equal(got, original)


def test_integer_tensors_are_kept_local_not_averaged() -> None:
    params = {"w": np.ones(3), "count": np.array(7, dtype=np.int64)}
    vector, layout = flatten(params)
    assert vector.size == 3  # the integer is not in the encrypted vector
    with pytest.raises(InvalidInput, match="template"):
        unflatten(vector, layout)
    restored = unflatten(vector * 2, layout, template={"count": np.array(9, dtype=np.int64)})
    assert restored["count"].dtype == np.int64 and int(restored["count"]) == 9
    np.testing.assert_array_equal(restored["w"], 2 * np.ones(3))


def test_integer_policy_reject_and_bad_policy() -> None:
    with pytest.raises(InvalidInput, match="not floating point"):
        flatten({"n": np.array([1, 2])}, integer_policy="reject")
    with pytest.raises(ValueError, match="integer_policy"):
        flatten([np.ones(2)], integer_policy="average")  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_are_refused(bad: float) -> None:
    with pytest.raises(InvalidInput, match="NaN or Inf"):
        flatten([np.array([1.0, bad])])


def test_layout_digest_depends_on_structure() -> None:
    _, a = flatten({"x": np.zeros((2, 3))})
    _, b = flatten({"x": np.zeros((3, 2))})
    _, c = flatten({"y": np.zeros((2, 3))})
    assert len({a.digest, b.digest, c.digest}) == 3
    assert a.digest == flatten({"x": np.ones((2, 3))})[1].digest


def test_chunking_pads_the_last_chunk_with_zeros() -> None:
    parts = chunk(np.arange(10.0), 4)
    assert [p.tolist() for p in parts] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 0, 0]]
    assert Layout.for_vector(10).chunk_count(4) == 3
    assert Layout.for_vector(0).chunk_count(4) == 1


def test_unflatten_checks_vector_length() -> None:
    vector, layout = flatten([np.ones(4)])
    with pytest.raises(InvalidInput, match="shape"):
        unflatten(vector[:3], layout)


def test_wrong_types_raise_type_error() -> None:
    with pytest.raises(TypeError, match="params"):
        flatten(["not an array"])
