"""What a round of :class:`SecureAggregation` did, and the metrics it reports to Flower."""

from __future__ import annotations

from dataclasses import dataclass, field

from flwr.app import MetricRecord, RecordDict

__all__ = ["RoundReport", "round_metrics"]


@dataclass
class RoundReport:
    """What happened in one round (all public): who was accepted, refused, and why."""

    round: int
    accepted: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)  # party -> "ErrorClass: reason"
    decrypting_set: tuple[int, ...] = ()
    decrypted: bool = False
    closed: bool = False  # released nothing, and an abort certificate proves it never will
    reason: str = ""
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
