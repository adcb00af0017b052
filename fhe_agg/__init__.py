"""fhe_agg: post-quantum secure aggregation for federated learning.

Clients CKKS-encrypt their model updates under a joint public key and sign them with ML-DSA-65;
an aggregator sums ciphertexts without decrypting; ``t`` of ``n`` key holders, whose key comes
from a dealerless ceremony, decrypt only verified aggregates, adding noise flooding and their
share of the differential-privacy noise.
Raw CKKS / RNS / SEAL-format primitives live in :mod:`fhe_agg.hazmat`.
"""

from fhe_agg.ceremony._ceremony import CeremonyMember
from fhe_agg.ceremony._local import local_key_ceremony, run_ceremony
from fhe_agg.ceremony._messages import CeremonyMessage, CeremonySpec, HolderIdentity
from fhe_agg.ckks._dp import Adjacency, DpPolicy, PrivacyAccountant
from fhe_agg.ckks._flooding import FloodingPolicy
from fhe_agg.ckks._keys import KeyShare, PublicKey, generate_single_key
from fhe_agg.ckks._packing import Layout, LayoutEntry, flatten, unflatten
from fhe_agg.ckks._params import PRESETS, CkksPreset, get_preset
from fhe_agg.ckks._random import RandomSource, SeededRandom, SystemRandom
from fhe_agg.client._client import Client, clip_l2
from fhe_agg.errors import (
    AggregateMismatch,
    AlreadyDecrypted,
    AuditLogError,
    BudgetExhausted,
    Busy,
    CeremonyError,
    ChunkCountMismatch,
    CorruptKeyFile,
    CorruptStore,
    DecryptionAborted,
    DecryptionFailed,
    DecryptionRefused,
    DuplicateUpdate,
    FheAggError,
    InsecureKeyFile,
    InvalidInput,
    InvalidProof,
    InvalidRoster,
    InvalidSignature,
    InvalidWeight,
    LayoutMismatch,
    MalformedMessage,
    MessageTooLarge,
    NotInRoster,
    OutOfOrder,
    ParameterMismatch,
    PrivacyBudgetExceeded,
    Rejected,
    RevokedKey,
    RoundAborted,
    RoundMismatch,
    RoundNotClosed,
    SealingError,
    StoreError,
    ThresholdNotMet,
    UnsupportedParameters,
    WrongPassphrase,
    WrongSuite,
)
from fhe_agg.holder._abort import AbortCertificate, AbortVote
from fhe_agg.holder._combine import combine
from fhe_agg.holder._decryption import DecryptionSession
from fhe_agg.holder._keyholder import KeyHolder
from fhe_agg.holder._partial import PartialDecryption
from fhe_agg.holder._round import HolderRound
from fhe_agg.protocol._config import PROTOCOL_VERSION, FederationConfig
from fhe_agg.protocol._evidence import AggregateEvidence, ChunkEvidence
from fhe_agg.protocol._messages import (
    EncryptedAggregate,
    EncryptedUpdate,
    SignedStatement,
    UpdateStatement,
)
from fhe_agg.protocol._round_messages import (
    ChallengeReply,
    ChallengeRequest,
    DecryptedReply,
    HolderPhase,
    PartialReply,
    PartialRequest,
    RoundPhase,
    VoteReply,
    VoteRequest,
)
from fhe_agg.protocol._signing import SigningKey, VerifyKey
from fhe_agg.server._aggregator import Aggregator
from fhe_agg.server._coordinator import RoundCoordinator
from fhe_agg.server._ingest import IngestQueue

__version__ = "0.1.0"

__all__ = [
    "PRESETS",
    "PROTOCOL_VERSION",
    "AbortCertificate",
    "AbortVote",
    "Adjacency",
    "AggregateEvidence",
    "AggregateMismatch",
    "Aggregator",
    "AlreadyDecrypted",
    "AuditLogError",
    "BudgetExhausted",
    "Busy",
    "CeremonyError",
    "CeremonyMember",
    "CeremonyMessage",
    "CeremonySpec",
    "ChallengeReply",
    "ChallengeRequest",
    "ChunkCountMismatch",
    "ChunkEvidence",
    "CkksPreset",
    "Client",
    "CorruptKeyFile",
    "CorruptStore",
    "DecryptedReply",
    "DecryptionAborted",
    "DecryptionFailed",
    "DecryptionRefused",
    "DecryptionSession",
    "DpPolicy",
    "DuplicateUpdate",
    "EncryptedAggregate",
    "EncryptedUpdate",
    "FederationConfig",
    "FheAggError",
    "FloodingPolicy",
    "HolderIdentity",
    "HolderPhase",
    "HolderRound",
    "IngestQueue",
    "InsecureKeyFile",
    "InvalidInput",
    "InvalidProof",
    "InvalidRoster",
    "InvalidSignature",
    "InvalidWeight",
    "KeyHolder",
    "KeyShare",
    "Layout",
    "LayoutEntry",
    "LayoutMismatch",
    "MalformedMessage",
    "MessageTooLarge",
    "NotInRoster",
    "OutOfOrder",
    "ParameterMismatch",
    "PartialDecryption",
    "PartialReply",
    "PartialRequest",
    "PrivacyAccountant",
    "PrivacyBudgetExceeded",
    "PublicKey",
    "RandomSource",
    "Rejected",
    "RevokedKey",
    "RoundAborted",
    "RoundCoordinator",
    "RoundMismatch",
    "RoundNotClosed",
    "RoundPhase",
    "SealingError",
    "SeededRandom",
    "SignedStatement",
    "SigningKey",
    "StoreError",
    "SystemRandom",
    "ThresholdNotMet",
    "UnsupportedParameters",
    "UpdateStatement",
    "VerifyKey",
    "VoteReply",
    "VoteRequest",
    "WrongPassphrase",
    "WrongSuite",
    "__version__",
    "clip_l2",
    "combine",
    "flatten",
    "generate_single_key",
    "get_preset",
    "local_key_ceremony",
    "run_ceremony",
    "unflatten",
]
