"""The one exception hierarchy of fhe_agg: every error is defined here and nowhere else.

Import errors from here or from :mod:`fhe_agg` (``fhe_agg.RoundMismatch is
fhe_agg.errors.RoundMismatch``). Every failure a caller can act on is a subclass of
:class:`FheAggError`::

    FheAggError
    ├── UnsupportedParameters    parameters fail the security check or cannot hold the data
    ├── InvalidInput             local data cannot be encrypted (NaN/Inf, beyond the safe range)
    ├── MalformedMessage         bytes are not a valid message (truncated, random, wrong types)
    │   ├── MessageTooLarge      bytes exceed the bound derived from the parameters and layout
    │   ├── CorruptKeyFile       a key or identity file is truncated, edited or inconsistent
    │   └── WrongSuite           a key, signature or blob of another crypto suite (identity)
    ├── Rejected                 a well-formed message that the protocol refuses
    │   ├── InvalidSignature     a signature does not verify under the sender's roster key
    │   ├── NotInRoster          the sender is not a member of the roster
    │   │   └── RevokedKey       the sender's key is revoked from this round on
    │   ├── InvalidRoster        a roster fails verification (wrong admin, edited, bad signature)
    │   ├── SealingError         a sealed secret does not open (identity)
    │   ├── AuditLogError        an audit-log line is edited, dropped, reordered or forged (identity)
    │   ├── RoundMismatch        the message belongs to another round
    │   ├── DuplicateUpdate      the client already contributed to this round
    │   ├── ParameterMismatch    other CKKS parameters, scale or public key
    │   ├── LayoutMismatch       the model layout differs from the round's
    │   ├── ChunkCountMismatch   the number of ciphertext chunks differs from the layout's
    │   ├── InvalidWeight        a signed weight outside (0, max_weight]
    │   ├── AggregateMismatch    an aggregate is not the sum of the signed updates it claims
    │   ├── InvalidProof         a ciphertext's well-formedness proof is missing or does not verify
    │   ├── CeremonyError        a key-ceremony message breaks the protocol (commitment, phase)
    │   └── OutOfOrder           a round step out of order, or a reply that answers no
    │                            outstanding request (round coordinator)
    ├── ThresholdNotMet          fewer clients or key holders than the policy requires
    │   └── DecryptionAborted    a holder of the decrypting set dropped: re-run the round
    ├── DecryptionRefused        a key holder will not produce a partial decryption
    │   ├── AlreadyDecrypted     this round (or ciphertext) was already decrypted
    │   ├── RoundAborted         this holder voted to abort the round: it is closed for good
    │   └── BudgetExhausted      the key epoch's decryption budget is spent
    ├── RoundNotClosed           a client will not send an update it already sent for an
    │                            earlier round until shown that round's abort certificate
    ├── DecryptionFailed         combined partials decode outside the federation's bounds
    ├── PrivacyBudgetExceeded    the release would exceed the configured (epsilon, delta)
    ├── Busy                     the ingest queue is full: retry later (ingest)
    ├── InsecureKeyFile          a private key file or its directory is open to other users
    ├── StoreError               a crash-safe state store cannot be used (held by another
    │   │                        process, of another kind, disk full or I/O error)
    │   └── CorruptStore         a state store is truncated, edited, not a store or of an
    │                            unknown version: never silently restarted
    └── WrongPassphrase          a key file's passphrase is missing, wrong or not expected

A store opened for another round, configuration, layout, key or key holder raises the
matching :class:`Rejected` leaf (``RoundMismatch``, ``ParameterMismatch``, ``LayoutMismatch``).
Errors marked (identity) are also exported by :mod:`fhe_agg.identity`, (ingest) by the
ingest queue's module.

Branch on the type or on the fields, never on the message text: every error has a stable
:attr:`FheAggError.code` (its public class name, pinned by a test, so logs and reports keep
their meaning when a subclass is raised or a module moves), and the errors about one round,
party or key holder carry ``round_id``, ``party`` (a client or member id) and
``holder_index`` where the raising code knows them (``None`` otherwise).
Wrong argument types or values at the API raise ``TypeError``/``ValueError`` naming the argument.
Messages never contain key material.
"""

import typing as _typing

__all__ = [
    "AggregateMismatch",
    "AlreadyDecrypted",
    "AuditLogError",
    "BudgetExhausted",
    "Busy",
    "CeremonyError",
    "ChunkCountMismatch",
    "CorruptKeyFile",
    "CorruptStore",
    "DecryptionAborted",
    "DecryptionFailed",
    "DecryptionRefused",
    "DuplicateUpdate",
    "FheAggError",
    "InsecureKeyFile",
    "InvalidInput",
    "InvalidProof",
    "InvalidRoster",
    "InvalidSignature",
    "InvalidWeight",
    "LayoutMismatch",
    "MalformedMessage",
    "MessageTooLarge",
    "NotInRoster",
    "OutOfOrder",
    "ParameterMismatch",
    "PrivacyBudgetExceeded",
    "Rejected",
    "RevokedKey",
    "RoundAborted",
    "RoundMismatch",
    "RoundNotClosed",
    "SealingError",
    "StoreError",
    "ThresholdNotMet",
    "UnsupportedParameters",
    "WrongPassphrase",
    "WrongSuite",
]


class FheAggError(Exception):
    """Base class of every error fhe_agg raises on purpose.

    ``code`` names the error for logs, audit records and reports (the public class name);
    ``round_id``, ``party`` and ``holder_index`` say which round, client or member, and key
    holder the error is about, where the raising code knows them.
    """

    code: _typing.ClassVar[str] = "FheAggError"

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "code" not in vars(cls):  # a class may pin its code explicitly
            cls.code = cls.__name__

    def __init__(
        self,
        *args: object,
        round_id: int | None = None,
        party: str | None = None,
        holder_index: int | None = None,
    ) -> None:
        super().__init__(*args)
        self.round_id = round_id
        self.party = party
        self.holder_index = holder_index


class UnsupportedParameters(FheAggError):
    """CKKS parameters are insecure (above the quantum limit) or too small for the data."""


class InvalidInput(FheAggError):
    """Local model data cannot be encrypted as given (NaN, Inf, out of range, bad structure)."""


class MalformedMessage(FheAggError):
    """Bytes from the network or disk do not decode to a valid message."""


class MessageTooLarge(MalformedMessage):
    """Bytes exceed the size bound derived from the parameters and layout."""


class Rejected(FheAggError):
    """A well-formed message that the protocol refuses; state is left unchanged."""


class InvalidSignature(Rejected):
    """A signature does not verify under the sender's roster key."""


class NotInRoster(Rejected):
    """The sender is not a member of the consortium roster (or not in that role)."""


class RoundMismatch(Rejected):
    """The message was made for another round."""


class DuplicateUpdate(Rejected):
    """The client already contributed an update to this round."""


class ParameterMismatch(Rejected):
    """The message uses other CKKS parameters, another scale or another public key."""


class LayoutMismatch(Rejected):
    """The model layout hash differs from the round's layout."""


class ChunkCountMismatch(Rejected):
    """The number of ciphertext chunks differs from what the layout requires."""


class InvalidWeight(Rejected):
    """A signed weight outside ``(0, max_weight]``."""


class AggregateMismatch(Rejected):
    """An aggregate is not the homomorphic sum of the signed updates its manifest lists."""


class InvalidProof(Rejected):
    """A chunk's zero-knowledge proof of well-formedness is missing or does not verify: the
    ciphertext may be crafted to make key holders decrypt a multiple of the secret key."""


class CeremonyError(Rejected):
    """A key-ceremony message breaks the protocol: a reveal that does not match its commitment,
    a missing, repeated or unknown holder, or a message of another phase or ceremony."""


class OutOfOrder(Rejected):
    """A step of a round taken out of its order (a partial before every member's challenge, a
    release before every partial), or a reply that answers no outstanding request: another
    round, holder or aggregate, a repeat, or a kind not asked for. The round's state is
    unchanged (:class:`~fhe_agg.RoundCoordinator`, :class:`~fhe_agg.HolderRound`)."""


class ThresholdNotMet(FheAggError):
    """Fewer distinct clients or key holders than the policy requires."""


class DecryptionAborted(ThresholdNotMet):
    """A member of the decrypting set did not deliver its partial decryption.

    The round is aborted: its ciphertexts are never decrypted by another set. Run the round
    again with fresh encryptions (a new round id).
    """


class DecryptionRefused(FheAggError):
    """A key holder refuses to produce a partial decryption."""


class AlreadyDecrypted(DecryptionRefused):
    """A partial decryption was already produced for this round or ciphertext."""


class RoundAborted(DecryptionRefused):
    """This holder voted to abort the round (:meth:`~fhe_agg.KeyHolder.vote_abort`): it never
    decrypts that round again. Run the round again under a new round id."""


class RoundNotClosed(FheAggError):
    """The client already encrypted this very update for an earlier round that is not proven
    closed. Sending it again for another round would let whoever can still decrypt the earlier
    round learn another client's update by differencing. Show the client the earlier round's
    :class:`~fhe_agg.AbortCertificate` (:meth:`~fhe_agg.Client.accept_abort`) first."""


class BudgetExhausted(DecryptionRefused):
    """The key epoch's decryption budget is spent; a new key ceremony is needed."""


class DecryptionFailed(FheAggError):
    """The partials of a complete decrypting set decode to values no honest round can produce.

    A key share (a wrong Shamir share dealt in the ceremony) or a partial decryption of one of
    the set's holders is wrong. Nothing is released; decrypting sets that leave the suspect
    holder out tell which one, and its key epoch must be replaced by a new ceremony.
    """


class PrivacyBudgetExceeded(FheAggError):
    """Releasing another aggregate would exceed the configured privacy budget."""


class CorruptKeyFile(MalformedMessage):
    """A key or public identity file is truncated, edited or does not match its fingerprint."""


class RevokedKey(NotInRoster):
    """The sender's key was revoked by the roster from this round on."""


class InvalidRoster(Rejected):
    """A roster fails verification: another admin, an edited field or a bad signature."""


class InsecureKeyFile(FheAggError):
    """A private key file, or its directory, can be read or replaced by other users."""


class WrongPassphrase(FheAggError):
    """A key file's passphrase is missing or wrong, or one was given for an unencrypted file."""


class StoreError(FheAggError):
    """A crash-safe state store cannot be used: another process holds it, it is a store of
    another kind, or the disk refused a write (full, I/O error). Nothing was committed."""


class CorruptStore(StoreError):
    """A state store is truncated, edited, not a store or of an unknown version.

    Raised instead of starting afresh: restore the file (and its ``-wal`` log) from a backup,
    or move it aside deliberately to start the round over.
    """


class WrongSuite(MalformedMessage):
    """A key, signature or blob belongs to another crypto suite than the one expected."""


class SealingError(Rejected):
    """A sealed blob does not open: wrong recipient key, mismatched SealInfo, or tampering."""


class AuditLogError(Rejected):
    """The audit log was edited, truncated, reordered or forged; ``line`` is 1-based."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"audit log line {line}: {reason}")
        self.line = line

    def __reduce__(self) -> tuple[object, ...]:
        return (_audit_log_error, (self.line, str(self)), self.__dict__)


def _audit_log_error(line: int, message: str) -> AuditLogError:
    error = AuditLogError(line, "")
    error.args = (message,)
    return error


class Busy(FheAggError):
    """The ingest queue is full: nothing was queued; retry later (back-pressure)."""
