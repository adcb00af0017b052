"""The public surface: each public module's ``__all__`` is what the module really holds (httpx's
export test), every error lives in :mod:`fhe_agg.errors`, and the intended names are pinned."""

from __future__ import annotations

import contextlib
import importlib
import pickle
from types import ModuleType

import pytest

import fhe_agg
import fhe_agg.errors
import fhe_agg.hazmat
import fhe_agg.identity

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
    "AuditLogError",
    "CorruptKeyFile",
    "InsecureKeyFile",
    "InvalidRoster",
    "RevokedKey",
    "SealingError",
    "WrongPassphrase",
    "WrongSuite",
}

# Package facades: they only import, so everything they hold that is not private must be exported.
_FACADES = ("fhe_agg", "fhe_agg.errors", "fhe_agg.identity", "fhe_agg.hazmat")
# Private names a facade exports on purpose.
_DUNDER_EXPORTS = {"__version__"}


def _held(module: ModuleType) -> set[str]:
    """What ``module`` really holds for a user: its public names, less its own subpackages
    (Python binds ``pkg.sub`` once ``pkg.sub`` is imported anywhere; that is not an export)."""
    prefix = module.__name__ + "."
    return {
        name
        for name, value in vars(module).items()
        if (not name.startswith("_") or name in _DUNDER_EXPORTS)
        and not (isinstance(value, ModuleType) and value.__name__ == prefix + name)
    }


@pytest.mark.parametrize("name", _FACADES)
def test_all_is_exactly_what_the_module_holds(name: str) -> None:
    module = importlib.import_module(name)
    exported = list(getattr(module, "__all__", []))
    assert len(exported) == len(set(exported)), "a name is exported twice"
    leaked = _held(module) - set(exported)
    assert not leaked, f"{name} holds names it does not export: {sorted(leaked)}"
    missing = set(exported) - set(vars(module))
    assert not missing, f"{name}.__all__ names what it does not hold: {sorted(missing)}"


def test_a_leaked_import_fails_the_export_test() -> None:
    fake = ModuleType("fhe_agg_fake")
    exec("from __future__ import annotations\nimport os\n__all__ = []", vars(fake))
    assert _held(fake) == {"annotations", "os"}


def _all_errors() -> set[type[fhe_agg.FheAggError]]:
    for name in ("fhe_agg.flower", "fhe_agg.torch", "fhe_agg.opacus", "fhe_agg.cli"):
        with contextlib.suppress(ImportError):  # an optional extra not installed here
            importlib.import_module(name)
    seen: set[type[fhe_agg.FheAggError]] = set()
    todo = [fhe_agg.FheAggError]
    while todo:
        cls = todo.pop()
        seen.add(cls)
        todo.extend(c for c in cls.__subclasses__() if c.__module__.startswith("fhe_agg"))
    return seen


def test_every_error_is_defined_in_the_public_errors_module() -> None:
    errors = _all_errors()
    assert {cls.__name__ for cls in errors} == set(fhe_agg.errors.__all__)
    for cls in errors:
        assert cls.__module__ == "fhe_agg.errors", cls
        assert getattr(fhe_agg.errors, cls.__name__) is cls
        assert getattr(fhe_agg, cls.__name__) is cls
    for name in fhe_agg.identity.__all__:
        obj = getattr(fhe_agg.identity, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert obj is getattr(fhe_agg.errors, name)


def test_every_error_has_a_distinct_stable_code() -> None:
    codes = {cls: cls.code for cls in _all_errors()}
    assert len(set(codes.values())) == len(codes)
    # The code is what logs and audit records store: it must not follow a rename silently.
    assert all(code == cls.__name__ for cls, code in codes.items())
    assert fhe_agg.RevokedKey.code == "RevokedKey"
    assert fhe_agg.RevokedKey("x").code != fhe_agg.NotInRoster("x").code


def test_structured_fields_survive_pickling() -> None:
    exc = fhe_agg.OutOfOrder("late", round_id=7, party="c1", holder_index=2)
    back = pickle.loads(pickle.dumps(exc))
    assert (type(back), back.args) == (fhe_agg.OutOfOrder, ("late",))
    assert (back.round_id, back.party, back.holder_index) == (7, "c1", 2)
    plain = fhe_agg.Rejected("no fields")
    assert (plain.round_id, plain.party, plain.holder_index) == (None, None, None)
    audit = pickle.loads(pickle.dumps(fhe_agg.AuditLogError(3, "edited")))
    assert (audit.line, str(audit)) == (3, "audit log line 3: edited")


def test_exported_names_are_exactly_the_intended_ones() -> None:
    assert set(fhe_agg.__all__) == EXPECTED
    for name in fhe_agg.__all__:
        assert hasattr(fhe_agg, name), name


def test_every_error_derives_from_the_base_and_is_documented() -> None:
    doc = fhe_agg.errors.__doc__ or ""
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
