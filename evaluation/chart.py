"""What the results page's charts show, as JSON for the browser's uPlot charts (``static/js/charts.js``,
the same module as the round page's): Bradley–Terry scores with their bootstrap intervals, and each
pair's win rate with a 95% interval. Numbers and plain labels only; the browser puts labels in as text.

>>> spec = win_rate_chart([])
>>> spec is None
True
>>> round(wilson_interval(0.5, 10)[0], 3), round(wilson_interval(0.5, 10)[1], 3)
(0.237, 0.763)
"""

from __future__ import annotations

import math


def standings_chart(standings: list) -> dict | None:
    """Points with interval bars, best first: one category per version, a reference line at 0."""
    if not standings:
        return None
    return {
        "kind": "intervals",
        "title": "Bradley–Terry scores",
        "x_label": "model version",
        "y_label": "score (log-strength)",
        "categories": [s.version.name for s in standings],
        "series_label": "Score",
        "values": [s.theta for s in standings],
        "lower": [s.lower for s in standings],
        "upper": [s.upper for s in standings],
        "interval_label": "95% bootstrap interval",
        "reference": 0.0,
        "count_label": "Judgements",
        "counts": [s.judgements for s in standings],
        "table": {
            "columns": ["Version", "Score", "95% interval", "Judgements"],
            "rows": [
                [s.version.name, f"{s.theta:.2f}", f"{s.lower:.2f} to {s.upper:.2f}", str(s.judgements)]
                for s in standings
            ],
        },
    }


def wilson_interval(rate: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion (ties count half, so it is approximate there).

    >>> wilson_interval(1.0, 4)[1]
    1.0
    """
    if n <= 0:
        return 0.0, 1.0
    denominator = 1 + z * z / n
    centre = (rate + z * z / (2 * n)) / denominator
    half = z * math.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def win_rate_chart(pairs: list) -> dict | None:
    """Each judged pair's win rate of its first version, with a Wilson 95% interval, against 0.5."""
    judged = [p for p in pairs if p.total]
    if not judged:
        return None
    intervals = [wilson_interval(p.first_win_rate, p.total) for p in judged]
    return {
        "kind": "intervals",
        "title": "Win rate by pair",
        "x_label": "pair (first vs second)",
        "y_label": "first version's win rate",
        "categories": [f"{p.first.name} vs {p.second.name}" for p in judged],
        "series_label": "Win rate",
        "values": [p.first_win_rate for p in judged],
        "lower": [low for low, _ in intervals],
        "upper": [high for _, high in intervals],
        "interval_label": "95% interval (Wilson)",
        "reference": 0.5,
        "y_range": [0.0, 1.0],
        "count_label": "Judgements",
        "counts": [p.total for p in judged],
        "table": {
            "columns": ["Pair", "Win rate", "95% interval", "Judgements"],
            "rows": [
                [
                    f"{p.first.name} vs {p.second.name}",
                    f"{p.first_win_rate:.2f}",
                    f"{low:.2f} to {high:.2f}",
                    str(p.total),
                ]
                for p, (low, high) in zip(judged, intervals, strict=True)
            ],
        },
    }
