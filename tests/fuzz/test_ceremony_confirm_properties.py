"""Property test of the ceremony's transcript confirmations: a damaged confirmation is refused
with :class:`CeremonyError` naming its sender (never another exception), or, if the damage left
it meaning the same transcript, accepted."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given

from fhe_agg import CeremonyError
from fhe_agg.ceremony._transcript import (
    COMMIT_PHASES,
    Transcript,
    check_confirmation,
    confirmation_bytes,
)

from .mutations import PARSER_SETTINGS, damaged

NAMES = ("kh-1", "kh-2", "kh-3")
CEREMONY = hashlib.sha3_256(b"a ceremony").digest()


def _transcript() -> Transcript:
    entries = {
        phase: {
            j: (hashlib.sha3_256(f"{phase}{j}".encode()).digest(), bytes([j]) * 3309)
            for j in range(1, 4)
        }
        for phase in COMMIT_PHASES
    }
    return Transcript(entries=entries, public_key=hashlib.sha3_256(b"pk").digest())


MINE = _transcript()
VALID = confirmation_bytes(MINE, CEREMONY)


def _check(data: bytes) -> None:
    check_confirmation(
        MINE,
        data,
        sender=2,
        ceremony_id=CEREMONY,
        names=NAMES,
        signed_by=lambda *_: False,  # no damaged entry carries a valid signature
    )


def test_the_valid_confirmation_is_accepted() -> None:
    _check(VALID)


@PARSER_SETTINGS
@given(damaged(VALID, "msgpack"))
def test_a_damaged_confirmation_is_refused_naming_its_sender(data: bytes) -> None:
    try:
        _check(data)
    except CeremonyError as exc:
        assert "holder 2 ('kh-2')" in str(exc)
    else:
        pass  # the damage kept the same transcript, e.g. another signature of an entry


def test_a_confirmation_with_a_wrong_entry_count_is_refused() -> None:
    short = Transcript(
        entries={p: dict(list(v.items())[:2]) for p, v in MINE.entries.items()},
        public_key=MINE.public_key,
    )
    with pytest.raises(CeremonyError, match="malformed"):
        _check(confirmation_bytes(short, CEREMONY))
