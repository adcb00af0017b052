"""The one exception hierarchy of fhe_agg.

Every failure a caller can act on is a subclass of :class:`FheAggError`::

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
    │   └── CeremonyError        a key-ceremony message breaks the protocol (commitment, phase)
    ├── ThresholdNotMet          fewer clients or key holders than the policy requires
    │   └── DecryptionAborted    a holder of the decrypting set dropped: re-run the round
    ├── DecryptionRefused        a key holder will not produce a partial decryption
    │   ├── AlreadyDecrypted     this round (or ciphertext) was already decrypted
    │   └── BudgetExhausted      the key epoch's decryption budget is spent
    ├── PrivacyBudgetExceeded    the release would exceed the configured (epsilon, delta)
    ├── Busy                     the ingest queue is full: retry later (ingest)
    ├── InsecureKeyFile          a private key file or its directory is open to other users
    └── WrongPassphrase          a key file's passphrase is missing, wrong or not expected

Errors marked (identity) are defined in :mod:`fhe_agg.identity`, (ingest) in ``fhe_agg._ingest``,
beside the code that raises them.
Wrong argument types or values at the API raise ``TypeError``/``ValueError`` naming the argument.
Messages never contain key material.
"""

from __future__ import annotations

__all__ = [
    "AggregateMismatch",
    "AlreadyDecrypted",
    "BudgetExhausted",
    "CeremonyError",
    "ChunkCountMismatch",
    "CorruptKeyFile",
    "DecryptionAborted",
    "DecryptionRefused",
    "DuplicateUpdate",
    "FheAggError",
    "InsecureKeyFile",
    "InvalidInput",
    "InvalidRoster",
    "InvalidSignature",
    "InvalidWeight",
    "LayoutMismatch",
    "MalformedMessage",
    "MessageTooLarge",
    "NotInRoster",
    "ParameterMismatch",
    "PrivacyBudgetExceeded",
    "Rejected",
    "RevokedKey",
    "RoundMismatch",
    "ThresholdNotMet",
    "UnsupportedParameters",
    "WrongPassphrase",
]


class FheAggError(Exception):
    """Base class of every error fhe_agg raises on purpose."""


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


class CeremonyError(Rejected):
    """A key-ceremony message breaks the protocol: a reveal that does not match its commitment,
    a missing, repeated or unknown holder, or a message of another phase or ceremony."""


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


class BudgetExhausted(DecryptionRefused):
    """The key epoch's decryption budget is spent; a new key ceremony is needed."""


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
