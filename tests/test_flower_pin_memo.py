"""A pinned node's memo of the roster it verified (fhe_agg.flower._pin_memo): it saves the
roster's checks only for exactly the files verified, and anything else is verified in full.

Real roster, admin and member key files (ML-DSA); the roster's full verification is counted by
wrapping ``Roster.from_bytes`` (it still runs)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("flwr")

from fhe_agg.errors import InvalidRoster, NotInRoster
from fhe_agg.flower import PinnedRoster
from fhe_agg.flower._pin_memo import MEMO_FILE, read_memo
from fhe_agg.flower._pinned import Pin
from fhe_agg.identity import Identity, Role, Roster, Suite, write_identity


@dataclass
class Consortium:
    keys: Path
    state: Path
    admin: Identity
    roster: Roster

    def files(self, member: str = "client-0") -> PinnedRoster:
        return PinnedRoster(
            roster=self.keys / "roster.json",
            admin_public=self.keys / "admin.pub.json",
            key=self.keys / f"{member}.key",
        )


@pytest.fixture
def consortium(tmp_path: Path) -> Consortium:
    keys, state = tmp_path / "keys", tmp_path / "state"
    keys.mkdir(mode=0o700)
    state.mkdir(mode=0o700)
    admin = Identity.generate(id="admin", role=Role.ADMIN, suite=Suite.PQ_ONLY)
    write_identity(admin, keys)
    members = []
    for name, role in (
        ("holder-1", Role.HOLDER),
        ("client-0", Role.CLIENT),
        ("client-1", Role.CLIENT),
    ):
        member = Identity.generate(id=name, role=role, suite=Suite.PQ_ONLY)
        write_identity(member, keys)
        members.append(member.public)
    roster = Roster.create(
        consortium="memo-test", admin=admin, members=members, min_clients=2, threshold=1
    )
    roster.save(keys / "roster.json")
    return Consortium(keys, state, admin, roster)


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """How many times a roster was verified in full (each call still runs)."""
    calls: list[int] = []
    original = Roster.from_bytes.__func__  # type: ignore[attr-defined]

    def counted(cls: type[Roster], data: bytes, *, admin: object) -> Roster:
        calls.append(1)
        return original(cls, data, admin=admin)  # type: ignore[no-any-return]

    monkeypatch.setattr(Roster, "from_bytes", classmethod(counted))
    yield calls


def test_the_second_message_skips_the_roster_checks_and_reads_the_same_roster(
    consortium: Consortium, verifications: list[int]
) -> None:
    first = Pin.load(consortium.files(), memo=consortium.state)
    assert len(verifications) == 1
    memo = read_memo(consortium.state)
    assert memo is not None and memo.member == "client-0" and memo.role is Role.CLIENT
    assert (consortium.state / MEMO_FILE).stat().st_mode & 0o777 == 0o600
    second = Pin.load(consortium.files(), memo=consortium.state)
    assert len(verifications) == 1  # nothing verified again
    assert "client-0" in repr(second) and len(verifications) == 1  # a repr verifies nothing
    assert second.identity.fingerprint == first.identity.fingerprint
    assert second.roster.digest == consortium.roster.digest  # verified when first read
    assert len(verifications) == 2


def test_a_new_roster_version_is_verified_and_a_revocation_refused(
    consortium: Consortium, verifications: list[int]
) -> None:
    Pin.load(consortium.files(), memo=consortium.state)
    revoked = consortium.roster.revoke(
        "client-0", from_round=1, reason="left", admin=consortium.admin
    )
    revoked.save(consortium.keys / "roster.json")
    with pytest.raises(NotInRoster, match="revoked"):
        Pin.load(consortium.files(), memo=consortium.state)
    assert len(verifications) == 2


def test_an_edited_roster_or_another_admin_is_refused_despite_the_memo(
    consortium: Consortium,
) -> None:
    Pin.load(consortium.files(), memo=consortium.state)
    path = consortium.keys / "roster.json"
    original = path.read_bytes()
    path.write_bytes(original.replace(b'"min_clients": 2', b'"min_clients": 1'))
    with pytest.raises(InvalidRoster, match="signature"):
        Pin.load(consortium.files(), memo=consortium.state)
    path.write_bytes(original)
    stranger = Identity.generate(id="admin", role=Role.ADMIN, suite=Suite.PQ_ONLY)
    (consortium.keys / "other").mkdir(mode=0o700)
    write_identity(stranger, consortium.keys / "other")
    (consortium.keys / "admin.pub.json").write_bytes(
        (consortium.keys / "other" / "admin.pub.json").read_bytes()
    )
    with pytest.raises(InvalidRoster, match="not the expected"):
        Pin.load(consortium.files(), memo=consortium.state)


def test_another_key_file_is_checked_against_the_roster(consortium: Consortium) -> None:
    Pin.load(consortium.files("client-0"), memo=consortium.state)
    other = Pin.load(consortium.files("holder-1"), memo=consortium.state)  # another member
    assert other.identity.id == "holder-1" and other.roster.holders == ("holder-1",)
    memo = read_memo(consortium.state)
    assert memo is not None and memo.member == "holder-1"
    foreign = Identity.generate(id="holder-1", role=Role.HOLDER, suite=Suite.PQ_ONLY)
    (consortium.keys / "foreign").mkdir(mode=0o700)
    write_identity(foreign, consortium.keys / "foreign")
    files = PinnedRoster(
        roster=consortium.keys / "roster.json",
        admin_public=consortium.keys / "admin.pub.json",
        key=consortium.keys / "foreign" / "holder-1.key",
    )
    with pytest.raises(ValueError, match="rotated or foreign key file"):
        Pin.load(files, memo=consortium.state)


@pytest.mark.parametrize(
    "damage",
    [
        b"",
        b"not json",
        b"[]",
        b"x" * 5000,
        b'{"format": "fhe_agg/flower/pin-memo/v1"}',
        b"\xff\xfe",
    ],
)
def test_a_damaged_memo_is_a_miss_and_is_written_anew(
    consortium: Consortium, verifications: list[int], damage: bytes
) -> None:
    Pin.load(consortium.files(), memo=consortium.state)
    (consortium.state / MEMO_FILE).write_bytes(damage)
    pin = Pin.load(consortium.files(), memo=consortium.state)
    assert pin.identity.id == "client-0" and len(verifications) == 2
    assert read_memo(consortium.state) is not None


def test_a_memo_with_wrong_field_types_or_digest_is_a_miss(
    consortium: Consortium, verifications: list[int]
) -> None:
    Pin.load(consortium.files(), memo=consortium.state)
    path = consortium.state / MEMO_FILE
    good = json.loads(path.read_text())
    for field, value in (("digest", "00" * 31), ("digest", 7), ("role", "admin"), ("role", "x")):
        path.write_text(json.dumps({**good, field: value}))
        Pin.load(consortium.files(), memo=consortium.state)
    assert len(verifications) == 5
