"""Small helpers shared by the benchmarks: percentiles and aligned printing."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "n": float(len(values)),
        "p50": statistics.median(values) if values else float("nan"),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "max": max(values) if values else float("nan"),
    }


def row(label: str, values: Sequence[float], unit: str) -> str:
    s = summary(values)
    return (
        f"  {label:<38} n={int(s['n']):>5}  p50={s['p50']:9.3f} {unit}  p90={s['p90']:9.3f} {unit}"
        f"  p99={s['p99']:9.3f} {unit}  max={s['max']:9.3f} {unit}"
    )
