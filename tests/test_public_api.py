from __future__ import annotations

import fhe_agg

EXPECTED = {
    "CeremonyMember",
    "CeremonyMessage",
    "CeremonySpec",
    "HolderIdentity",
    "run_ceremony",
    "local_key_ceremony",
    "CeremonyError",
    "DecryptionAborted",
    "DecryptionFailed",
    "DecryptionSession",
    "DpPolicy",
    "Adjacency",
    "PrivacyAccountant",
    "FloodingPolicy",
    "PRESETS",
    "PROTOCOL_VERSION",
    "AggregateEvidence",
    "AggregateMismatch",
    "Aggregator",
    "AlreadyDecrypted",
    "BudgetExhausted",
    "Busy",
    "IngestQueue",
    "ChunkCountMismatch",
    "ChunkEvidence",
    "CkksPreset",
    "Client",
    "CorruptStore",
    "StoreError",
    "DecryptionRefused",
    "DuplicateUpdate",
    "EncryptedAggregate",
    "EncryptedUpdate",
    "FederationConfig",
    "FheAggError",
    "InvalidInput",
    "InvalidProof",
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
    "ParameterMismatch",
    "PartialDecryption",
    "PrivacyBudgetExceeded",
    "PublicKey",
    "RandomSource",
    "Rejected",
    "RoundMismatch",
    "RoundAborted",
    "RoundNotClosed",
    "AbortCertificate",
    "AbortVote",
    "SeededRandom",
    "SignedStatement",
    "SigningKey",
    "SystemRandom",
    "ThresholdNotMet",
    "UnsupportedParameters",
    "UpdateStatement",
    "VerifyKey",
    "__version__",
    "clip_l2",
    "combine",
    "flatten",
    "generate_single_key",
    "get_preset",
    "unflatten",
    "OutOfOrder",
    "RoundCoordinator",
    "HolderRound",
    "RoundPhase",
    "HolderPhase",
    "ChallengeRequest",
    "ChallengeReply",
    "PartialRequest",
    "PartialReply",
    "DecryptedReply",
    "VoteRequest",
    "VoteReply",
}


def test_exported_names_are_exactly_the_intended_ones() -> None:
    assert set(fhe_agg.__all__) == EXPECTED
    for name in fhe_agg.__all__:
        assert hasattr(fhe_agg, name), name


def test_every_error_derives_from_the_base_and_is_documented() -> None:
    doc = fhe_agg._errors.__doc__ or ""
    for name in fhe_agg.__all__:
        obj = getattr(fhe_agg, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, fhe_agg.FheAggError)
            assert name in doc, f"{name} missing from the hierarchy drawing"


def test_public_classes_and_functions_have_docstrings() -> None:
    for name in fhe_agg.__all__:
        obj = getattr(fhe_agg, name)
        if callable(obj):
            assert obj.__doc__, name
