"""The admin-signed roster: verification, rotation (old key AND admin), revocation, ceremonies."""

from __future__ import annotations

import base64
import dataclasses
import json
from typing import Any

import pytest

from fhe_agg.errors import InvalidSignature
from fhe_agg.identity import (
    Identity,
    InvalidRoster,
    KeyRotation,
    RevokedKey,
    Roster,
    WrongSuite,
    load_verified_roster,
    write_identity,
)
from fhe_agg.identity._encoding import canonical_json
from fhe_agg.identity._roster import ROSTER_CONTEXT
from fhe_agg.identity._rotation import ROTATION_CONTEXT, rotation_message
from fhe_agg.protocol._messages import UPDATE_CONTEXT
from fhe_agg.protocol._signing import VerifyKey


def _reload(roster: Roster, admin: Identity) -> Roster:
    return Roster.from_bytes(roster.to_bytes(), admin=admin.public)


def _edited(roster: Roster, change) -> bytes:
    doc = json.loads(roster.to_bytes())
    change(doc)
    return json.dumps(doc).encode()


def _resigned(doc: dict[str, Any], key: Identity) -> bytes:
    """``doc`` signed again by ``key``, as a dishonest admin (or a thief of its key) would."""
    body = {k: v for k, v in doc.items() if k != "signature"}
    sig = key.signing_key.sign(canonical_json(body), context=ROSTER_CONTEXT)
    return json.dumps({**body, "signature": base64.b64encode(sig).decode()}).encode()


def test_round_trip_and_properties(base_roster: Roster, members: dict[str, Identity]) -> None:
    again = _reload(base_roster, members["admin"])
    assert again == base_roster and again.digest == base_roster.digest
    assert base_roster.version == 1 and base_roster.key_epoch == 1
    assert base_roster.clients == ("alpha", "bravo", "charlie", "delta")
    assert base_roster.holders == ("h1", "h2")
    assert not base_roster.ceremony_required
    keys = base_roster.client_keys(0)
    assert set(keys) == set(base_roster.clients)
    signature = members["alpha"].update_signing_key().sign(b"u", context=UPDATE_CONTEXT)
    keys["alpha"].verify(signature, b"u", context=UPDATE_CONTEXT)
    with pytest.raises(InvalidSignature):
        keys["bravo"].verify(signature, b"u", context=UPDATE_CONTEXT)


def test_file_fields_are_exactly_the_signed_bytes(
    base_roster: Roster, members: dict[str, Identity]
) -> None:
    """``from_bytes`` verifies over the file's own fields before decoding any member: those
    must be the bytes the admin signed, for every kind of field (rotated keys with endorsements
    and end rounds, another suite, a revocation, the previous digest)."""
    admin, h1 = members["admin"], members["h1"]
    new = Identity.generate(id="h1", role="holder", suite="cnsa2")
    rotated = base_roster.rotate(
        KeyRotation.request(h1, new, consortium="acme-health", from_round=2), admin=admin
    )
    roster = rotated.revoke("bravo", from_round=3, reason="laptop stolen", admin=admin)
    assert roster.previous_digest is not None and roster.member("bravo").revoked
    for r in (base_roster, roster):
        file_fields = {k: v for k, v in json.loads(r.to_bytes()).items() if k != "signature"}
        assert canonical_json(file_fields) == canonical_json(r._document(signed=False))
        assert _reload(r, admin) == r


def test_wrong_admin_is_named(base_roster: Roster) -> None:
    stranger = Identity.generate(id="admin", role="admin", suite="pq-only")
    with pytest.raises(InvalidRoster, match="not the expected"):
        Roster.from_bytes(base_roster.to_bytes(), admin=stranger.public)


def test_substituted_signature_under_the_real_admin_name(
    base_roster: Roster, members: dict[str, Identity]
) -> None:
    stranger = Identity.generate(id="admin", role="admin", suite="pq-only")
    forged = _resigned(json.loads(base_roster.to_bytes()), stranger)
    with pytest.raises(InvalidRoster, match="signature does not verify"):
        Roster.from_bytes(forged, admin=members["admin"].public)


@pytest.mark.parametrize(
    "field, value",
    [
        ("min_clients", 4),
        ("threshold", 1),
        ("preset", "precise"),
        ("consortium", "acme-hea1th"),
        ("version", 2),
        ("key_epoch", 7),
        ("ceremony_required", True),
    ],
)
def test_every_edited_field_breaks_the_signature(
    base_roster: Roster, members: dict[str, Identity], field: str, value: object
) -> None:
    data = _edited(base_roster, lambda d: d.__setitem__(field, value))
    with pytest.raises(InvalidRoster, match="signature does not verify"):
        Roster.from_bytes(data, admin=members["admin"].public)


def test_edited_member_entries(base_roster: Roster, members: dict[str, Identity]) -> None:
    edits = [
        lambda d: d["members"][1].__setitem__("revoked_from_round", 5),
        lambda d: d["members"][1]["keys"][0].__setitem__("valid_from_round", 9),
        lambda d: d["members"].pop(2),
        lambda d: d["members"][1]["keys"][0].__setitem__(
            "identity", members["admin"].public.to_json()
        ),
    ]
    for edit in edits:
        with pytest.raises(InvalidRoster):
            Roster.from_bytes(_edited(base_roster, edit), admin=members["admin"].public)


def test_damaged_signature_truncation_and_junk(
    base_roster: Roster, members: dict[str, Identity]
) -> None:
    admin = members["admin"].public
    sig = bytearray(base_roster.signature)
    sig[17] ^= 0x40
    for bad in (bytes(sig), base_roster.signature[:-1], base_roster.signature + b"\0"):
        data = _edited(
            base_roster, lambda d, b=bad: d.__setitem__("signature", base64.b64encode(b).decode())
        )
        with pytest.raises(InvalidRoster):
            Roster.from_bytes(data, admin=admin)
    whole = base_roster.to_bytes()
    for cut in (0, 10, len(whole) // 2, len(whole) - 3):
        with pytest.raises(InvalidRoster, match="not valid JSON"):
            Roster.from_bytes(whole[:cut], admin=admin)
    with pytest.raises(InvalidRoster, match="not a roster"):
        Roster.from_bytes(b'{"format": "other"}', admin=admin)
    dup = whole.replace(b'"threshold":', b'"threshold": 1, "threshold":', 1)
    with pytest.raises(InvalidRoster, match="not valid JSON"):
        Roster.from_bytes(dup, admin=admin)


def test_create_validates_policy(members: dict[str, Identity]) -> None:
    publics = [m.public for n, m in members.items() if n != "admin"]
    common: dict[str, Any] = {"consortium": "c", "admin": members["admin"], "members": publics}
    with pytest.raises(ValueError, match="threshold"):
        Roster.create(**common, min_clients=3, threshold=3)
    with pytest.raises(ValueError, match="min_clients"):
        Roster.create(**common, min_clients=5, threshold=1)
    with pytest.raises(ValueError, match="preset"):
        Roster.create(**common, min_clients=1, threshold=1, preset="huge")
    with pytest.raises(ValueError, match="unique"):
        Roster.create(**{**common, "members": [*publics, publics[0]]}, min_clients=1, threshold=1)
    with pytest.raises(ValueError, match="not admin"):
        Roster.create(**{**common, "admin": members["alpha"]}, min_clients=1, threshold=1)
    with pytest.raises(ValueError, match="not a member"):
        Roster.create(
            **{
                **common,
                "members": [
                    *publics,
                    Identity.generate(id="root2", role="admin", suite="pq-only").public,
                ],
            },
            min_clients=1,
            threshold=1,
        )
    forged = dataclasses.replace(publics[0], proof=bytes(len(publics[0].proof)))
    with pytest.raises(InvalidSignature):
        Roster.create(**{**common, "members": [forged, *publics[1:]]}, min_clients=1, threshold=1)


def test_rotation_needs_the_old_key_and_the_admin(
    base_roster: Roster, members: dict[str, Identity]
) -> None:
    admin, alpha = members["admin"], members["alpha"]
    new = Identity.generate(id="alpha", role="client", suite="pq-only")
    request = KeyRotation.request(alpha, new, consortium="acme-health", from_round=5)
    rotated = base_roster.rotate(request, admin=admin)
    rotated.check_successor(base_roster)
    again = _reload(rotated, admin)
    old_sig = alpha.update_signing_key().sign(b"u", context=UPDATE_CONTEXT)
    new_sig = new.update_signing_key().sign(b"u", context=UPDATE_CONTEXT)
    again.client_keys(4)["alpha"].verify(old_sig, b"u", context=UPDATE_CONTEXT)
    again.client_keys(5)["alpha"].verify(new_sig, b"u", context=UPDATE_CONTEXT)
    with pytest.raises(InvalidSignature):
        again.client_keys(5)["alpha"].verify(old_sig, b"u", context=UPDATE_CONTEXT)

    # the admin alone: an endorsement by any key but the old one is refused ...
    for signer in (admin, members["bravo"], new):
        message = rotation_message(
            consortium="acme-health",
            member="alpha",
            old_fingerprint=alpha.public.fingerprint,
            new=new.public,
            from_round=5,
        )
        forged = dataclasses.replace(
            request, endorsement=signer.signing_key.sign(message, context=ROTATION_CONTEXT)
        )
        with pytest.raises(InvalidRoster, match="not signed by the previous key"):
            base_roster.rotate(forged, admin=admin)
    # ... also when the admin writes it into a roster by hand and signs that
    doc = json.loads(rotated.to_bytes())
    alpha_entry = next(m for m in doc["members"] if m["id"] == "alpha")
    alpha_entry["keys"][1]["endorsement"] = alpha_entry["keys"][1]["endorsement"][::-1]
    with pytest.raises(InvalidRoster, match="not signed by the previous key"):
        Roster.from_bytes(_resigned(doc, admin), admin=admin.public)
    # the old key alone: the roster edited without the admin's signature is refused
    with pytest.raises(InvalidRoster, match="signature does not verify"):
        Roster.from_bytes(
            _edited(base_roster, lambda d: d.update(members=doc["members"])), admin=admin.public
        )


def test_rotation_requests_that_do_not_apply(
    base_roster: Roster, members: dict[str, Identity]
) -> None:
    admin, alpha = members["admin"], members["alpha"]
    new = Identity.generate(id="alpha", role="client", suite="pq-only")
    elsewhere = KeyRotation.request(alpha, new, consortium="other", from_round=5)
    with pytest.raises(InvalidRoster, match="consortium"):
        base_roster.rotate(elsewhere, admin=admin)
    rotated = base_roster.rotate(
        KeyRotation.request(alpha, new, consortium="acme-health", from_round=5), admin=admin
    )
    newer = Identity.generate(id="alpha", role="client", suite="pq-only")
    stale = KeyRotation.request(alpha, newer, consortium="acme-health", from_round=9)
    with pytest.raises(InvalidRoster, match="current key"):
        rotated.rotate(stale, admin=admin)
    with pytest.raises(ValueError, match="id and role"):
        KeyRotation.request(alpha, members["bravo"], consortium="acme-health", from_round=5)
    revoked = base_roster.revoke("alpha", from_round=2, reason="compromised", admin=admin)
    with pytest.raises(InvalidRoster, match="revoked"):
        revoked.rotate(
            KeyRotation.request(alpha, new, consortium="acme-health", from_round=5), admin=admin
        )
    with pytest.raises(ValueError, match="another admin"):
        base_roster.rotate(
            KeyRotation.request(alpha, new, consortium="acme-health", from_round=5),
            admin=Identity.generate(id="admin", role="admin", suite="pq-only"),
        )


def test_rotation_can_change_suite(base_roster: Roster, members: dict[str, Identity]) -> None:
    h1 = members["h1"]
    new = Identity.generate(id="h1", role="holder", suite="cnsa2")
    request = KeyRotation.request(h1, new, consortium="acme-health", from_round=1)
    rotated = base_roster.rotate(request, admin=members["admin"])
    entry = _reload(rotated, members["admin"]).member("h1")
    assert [k.identity.suite.value for k in entry.keys] == ["pq-only", "cnsa2"]
    assert KeyRotation.from_json(json.loads(json.dumps(request.to_json()))) == request


def test_revoked_client_is_refused_from_its_round_on(
    base_roster: Roster, members: dict[str, Identity]
) -> None:
    revoked = base_roster.revoke(
        "bravo", from_round=3, reason="laptop stolen", admin=members["admin"]
    )
    revoked = _reload(revoked, members["admin"])
    assert not revoked.ceremony_required and "bravo" not in revoked.clients
    sig = members["bravo"].update_signing_key().sign(b"u", context=UPDATE_CONTEXT)
    revoked.client_keys(2)["bravo"].verify(sig, b"u", context=UPDATE_CONTEXT)  # still valid
    for round_id in (3, 4, 100):
        key = revoked.client_keys(round_id)["bravo"]
        assert isinstance(key, VerifyKey)
        with pytest.raises(RevokedKey, match=r"revoked from round 3 .*laptop stolen"):
            key.verify(sig, b"u", context=UPDATE_CONTEXT)
    with pytest.raises(ValueError, match="already revoked"):
        revoked.revoke("bravo", from_round=5, reason="again", admin=members["admin"])
    with pytest.raises(KeyError, match="zulu"):
        revoked.revoke("zulu", from_round=5, reason="x", admin=members["admin"])


def test_revoked_holder_requires_a_new_ceremony(
    base_roster: Roster, members: dict[str, Identity]
) -> None:
    admin = members["admin"]
    revoked = base_roster.revoke("h2", from_round=3, reason="left", admin=admin)
    assert revoked.ceremony_required and revoked.holders == ("h1",)
    assert _reload(revoked, admin).ceremony_required
    after = revoked.new_key_epoch(admin=admin)
    assert not after.ceremony_required and after.key_epoch == 2 and after.version == 3
    after.check_successor(revoked)
    with pytest.raises(InvalidRoster, match="does not follow"):
        after.check_successor(base_roster)


def test_added_member_joins_at_its_round(base_roster: Roster, members: dict[str, Identity]) -> None:
    echo = Identity.generate(id="echo", role="client", suite="pq-only")
    added = base_roster.add_member(echo.public, admin=members["admin"], from_round=4)
    assert "echo" not in added.client_keys(3) and "echo" in added.client_keys(4)
    with pytest.raises(ValueError, match="unique"):
        added.add_member(echo.public, admin=members["admin"], from_round=5)


def test_non_pq_only_clients_are_refused_by_the_update_path(
    members: dict[str, Identity],
) -> None:
    hybrid = Identity.generate(id="zed", role="client", suite="hybrid")
    roster = Roster.create(
        consortium="c",
        admin=members["admin"],
        members=[hybrid.public, members["h1"].public],
        min_clients=1,
        threshold=1,
    )
    with pytest.raises(WrongSuite, match="pq-only"):
        roster.client_keys(0)


def test_load_verified_roster_from_files(
    tmp_path, base_roster: Roster, members: dict[str, Identity], monkeypatch
) -> None:
    admin_files = write_identity(members["admin"], tmp_path / "keys")
    alpha_files = write_identity(members["alpha"], tmp_path / "keys")
    path = base_roster.save(tmp_path / "roster.json")
    assert load_verified_roster(path, admin_files.public) == base_roster
    with pytest.raises(ValueError, match="expected admin"):
        load_verified_roster(path, alpha_files.public)
    import fhe_agg.identity._roster as roster_module

    monkeypatch.setattr(roster_module, "MAX_ROSTER_BYTES", 1000)
    with pytest.raises(InvalidRoster, match="larger than 1000"):
        load_verified_roster(path, admin_files.public)
