"""Transcript agreement of the key ceremony: no holder deals a share before all agree on the key.

Commitments are broadcast through an untrusted relay, so a holder can *equivocate*: sign one
seed or key commitment for some holders and another for the rest. Every later check passes
(each reveal matches the commitment its receiver saw), and the federation splits into groups
holding different joint keys. So before dealing, each holder broadcasts a signed confirmation of
its view: the SHA3-256 transcript digest over every holder's two commitments and the joint
public key, together with the commitments and their signatures (the evidence). A holder deals
only when every confirmation carries its own digest. Otherwise it names the culprit from the
evidence: two valid signatures of holder ``j`` over different commitments of one phase prove
that ``j`` equivocated; a reported commitment that ``j`` did not sign proves that the reporter
lies. Reveals need no confirmation of their own: each is checked against a commitment that all
holders now agree on. (A broadcast-with-echo in the sense of Bracha's reliable broadcast,
reduced to one echo because the ceremony aborts instead of tolerating faults.)

Size: per holder two commitments (32 B) and two ML-DSA-65 signatures (3,309 B), about 6.7 kB,
so a 200-holder confirmation is 1.3 MB.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from fhe_agg.errors import CeremonyError, MalformedMessage
from fhe_agg.protocol._wire import Fields, pack, unpack

__all__ = ["COMMIT_PHASES", "Transcript", "check_confirmation", "confirmation_bytes"]

#: The broadcast phases whose messages every holder must have seen alike.
COMMIT_PHASES = ("seed-commit", "key-commit")
_KIND = "ceremony-confirm"
_MAX_SIGNATURE = 8192
_ENTRY_BYTES = 32 + _MAX_SIGNATURE + 16

#: ``signed_by(sender, phase, payload, signature)``: does ``signature`` verify as ``sender``'s
#: broadcast of ``payload`` in ``phase`` of this ceremony?
SignedBy = Callable[[int, str, bytes, bytes], bool]


@dataclass(frozen=True)
class Transcript:
    """One holder's view: for each commit phase and holder, the commitment and its signature,
    and the SHA3-256 of the joint public key it derived."""

    entries: Mapping[str, Mapping[int, tuple[bytes, bytes]]]
    public_key: bytes

    def digest(self, ceremony_id: bytes) -> bytes:
        """H(transcript, joint public key): what every holder's confirmation must carry."""
        h = hashlib.sha3_256(b"fhe_agg/ceremony-transcript|" + ceremony_id + self.public_key)
        for phase in COMMIT_PHASES:
            for j in sorted(self.entries[phase]):
                payload = self.entries[phase][j][0]
                h.update(phase.encode() + j.to_bytes(4, "big") + len(payload).to_bytes(4, "big"))
                h.update(payload)
        return h.digest()


def confirmation_bytes(transcript: Transcript, ceremony_id: bytes) -> bytes:
    """The payload of a ``confirm`` message: the digest, the key hash and the evidence."""
    body: dict[str, object] = {
        "digest": transcript.digest(ceremony_id),
        "pk": transcript.public_key,
    }
    for phase in COMMIT_PHASES:
        entries = transcript.entries[phase]
        body[phase] = [[p, s] for _, (p, s) in sorted(entries.items())]
    return pack(_KIND, body)


def _parse(data: bytes, holders: int) -> tuple[bytes, Transcript]:
    f = unpack(
        data,
        _KIND,
        max_bytes=2 * holders * _ENTRY_BYTES + 1024,
        max_bin=_MAX_SIGNATURE,
        max_array=max(holders, 2),
    )
    f.expect_keys("digest", "pk", *COMMIT_PHASES)
    entries: dict[str, dict[int, tuple[bytes, bytes]]] = {}
    for phase in COMMIT_PHASES:
        items = f.items(phase, max_len=holders)
        if len(items) != holders:
            raise MalformedMessage(f"{_KIND}.{phase}: expected {holders} entries")
        entries[phase] = {}
        for j, item in enumerate(items, start=1):
            if not isinstance(item, list) or len(item) != 2:
                raise MalformedMessage(f"{_KIND}.{phase}: entry {j} is not [payload, signature]")
            g = Fields(f"{_KIND}.{phase}[{j}]", {"payload": item[0], "sig": item[1]})
            entries[phase][j] = (g.blob("payload", size=32), g.blob("sig"))
    return f.blob("digest", size=32), Transcript(entries, f.blob("pk", size=32))


def check_confirmation(
    mine: Transcript,
    data: bytes,
    *,
    sender: int,
    ceremony_id: bytes,
    names: tuple[str, ...],
    signed_by: SignedBy,
) -> None:
    """Accept holder ``sender``'s confirmation ``data`` if it carries this holder's digest.

    Raises :class:`CeremonyError` naming the culprit otherwise: the holder whose two signed
    commitments of one phase differ (it equivocated), or ``sender`` if its confirmation is
    malformed, inconsistent or reports a commitment its holder never signed.
    """

    def who(j: int) -> str:
        return f"holder {j} ({names[j - 1]!r})"

    try:
        digest, theirs = _parse(data, len(names))
    except MalformedMessage as exc:
        raise CeremonyError(
            f"confirm: {who(sender)} sent a malformed confirmation ({exc})"
        ) from None
    if digest != theirs.digest(ceremony_id):
        raise CeremonyError(f"confirm: {who(sender)}'s digest does not match its own transcript")
    if digest == mine.digest(ceremony_id):
        return
    for phase in COMMIT_PHASES:
        for j, (payload, signature) in sorted(theirs.entries[phase].items()):
            if payload == mine.entries[phase][j][0]:
                continue
            if signed_by(j, phase, payload, signature):
                raise CeremonyError(
                    f"confirm: {who(j)} equivocated: it signed two different {phase} messages, "
                    f"one seen here and one seen by {who(sender)}; the ceremony is void (run "
                    f"it again without {who(j)})"
                )
            raise CeremonyError(
                f"confirm: {who(sender)} reports a {phase} of {who(j)} that {who(j)} did not sign"
            )
    raise CeremonyError(
        f"confirm: {who(sender)} derived another public key from the same transcript"
    )
