"""How errors are named in audit records, reports and replies: by their stable code and fields."""

from __future__ import annotations

import pickle

import pytest

from fhe_agg import AlreadyDecrypted, CeremonyError, FheAggError
from fhe_agg._errors import describe, error_code, error_fields, locate, located


class _Renamed(AlreadyDecrypted):
    code = "AlreadyDecrypted"  # a subclass that keeps its parent's meaning


def test_a_report_names_the_code_not_the_class() -> None:
    exc = _Renamed("round 7 was decrypted", round_id=7, holder_index=2)
    assert error_code(exc) == "AlreadyDecrypted" and type(exc).__name__ == "_Renamed"
    assert describe(exc) == "AlreadyDecrypted: round 7 was decrypted"
    assert error_fields(exc) == {
        "error": "AlreadyDecrypted",
        "reason": "round 7 was decrypted",
        "round_id": 7,
        "holder_index": 2,
    }
    assert describe(ValueError("x")) == "ValueError: x" and error_fields(KeyError("k"))[
        "error"
    ] == ("KeyError")


def test_locate_fills_only_what_the_raising_code_left_unset() -> None:
    exc = CeremonyError("holder 3 sent twice", holder_index=3)
    assert locate(exc, round_id=4, party="ana", holder_index=1) is exc
    assert (exc.round_id, exc.party, exc.holder_index) == (4, "ana", 3)
    with pytest.raises(FheAggError) as caught, located(round_id=9, party="ben"):
        raise CeremonyError("late", round_id=8)
    assert (caught.value.round_id, caught.value.party) == (8, "ben")


def test_a_refusal_reads_as_text_and_carries_the_fields() -> None:
    pytest.importorskip("flwr")
    from fhe_agg.flower._report import Refusal, RoundReport

    refusal = Refusal.of(_Renamed("round 7 was decrypted", round_id=7, holder_index=2))
    assert refusal == "AlreadyDecrypted: round 7 was decrypted" and isinstance(refusal, str)
    assert (refusal.code, refusal.round_id, refusal.party, refusal.holder_index) == (
        "AlreadyDecrypted",
        7,
        None,
        2,
    )
    again = pickle.loads(pickle.dumps(refusal))
    assert again == refusal and (again.code, again.holder_index) == ("AlreadyDecrypted", 2)
    other = Refusal.of(TimeoutError("no reply"))
    assert (other, other.code, other.round_id) == ("TimeoutError: no reply", "TimeoutError", None)
    report = RoundReport(round=1)
    assert report.reason == "" and not report.reason and report.reason.code == ""
