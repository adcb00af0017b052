"""What a round of :class:`SecureAggregation` did, and the metrics it reports to Flower."""

from __future__ import annotations

from dataclasses import dataclass, field

from flwr.app import MetricRecord, RecordDict

from fhe_agg._errors import FheAggError, describe, error_code

__all__ = ["Refusal", "RoundReport", "round_metrics"]


class Refusal(str):
    """Why a party was refused, or a round released nothing: reads as ``"<code>: <message>"``
    (a ``str``, as reports always were) and carries the error's stable :attr:`code` and the
    ``round_id``, ``party`` and ``holder_index`` it names, for code that branches on them
    instead of parsing the text."""

    code: str = ""
    round_id: int | None = None
    party: str | None = None
    holder_index: int | None = None

    @classmethod
    def of(cls, exc: BaseException) -> Refusal:
        """The refusal ``exc`` stands for (its code and fields if an :class:`FheAggError`)."""
        refusal = cls(describe(exc))
        refusal.code = error_code(exc)
        if isinstance(exc, FheAggError):
            refusal.round_id, refusal.party = exc.round_id, exc.party
            refusal.holder_index = exc.holder_index
        return refusal


@dataclass
class RoundReport:
    """What happened in one round (all public): who was accepted, refused, and why."""

    round: int
    accepted: list[str] = field(default_factory=list)
    refused: dict[str, Refusal] = field(default_factory=dict)  # party -> "<code>: <message>"
    decrypting_set: tuple[int, ...] = ()
    decrypted: bool = False
    closed: bool = False  # released nothing, and an abort certificate proves it never will
    reason: Refusal = field(default_factory=Refusal)  # empty unless nothing was released
    seconds: dict[str, float] = field(default_factory=dict)


def round_metrics(contents: list[RecordDict], weight_key: str, report: RoundReport) -> MetricRecord:
    """Weighted mean of the accepted replies' scalar metrics, plus fhe_agg's counts."""
    sums: dict[str, float] = {}
    total = 0.0
    for content in contents:
        values = {k: v for m in content.metric_records.values() for k, v in m.items()}
        weight = values.get(weight_key)
        if not isinstance(weight, int | float):
            continue
        total += float(weight)
        for key, value in values.items():
            if key != weight_key and isinstance(value, int | float):
                sums[key] = sums.get(key, 0.0) + float(weight) * float(value)
    metrics = MetricRecord({k: v / total for k, v in sums.items()} if total else {})
    metrics["fhe-accepted"] = len(report.accepted)
    metrics["fhe-refused"] = sum(1 for party in report.refused if not party.endswith("-vote"))
    return metrics
