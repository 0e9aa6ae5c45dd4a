"""Geometry for the standings chart (Bradley–Terry scores with intervals), drawn by
``templates/evaluation/_standings_chart.html`` as server-side SVG: numbers only, the template escapes
every label."""

from __future__ import annotations

WIDTH, ROW, LEFT, RIGHT, TOP = 640, 34, 150, 30, 30


def standings_chart(standings: list) -> dict | None:
    """Positions of each version's point and interval on a shared axis, best first."""
    if not standings:
        return None
    low = min(min(s.lower for s in standings), 0.0)
    high = max(max(s.upper for s in standings), 0.0)
    span = (high - low) or 1.0
    low, high = low - 0.05 * span, high + 0.05 * span

    def x(value: float) -> float:
        return round(LEFT + (value - low) / (high - low) * (WIDTH - LEFT - RIGHT), 1)

    rows = [
        {
            "name": s.version.name,
            "y": TOP + index * ROW + ROW // 2,
            "cx": x(s.theta),
            "x1": x(s.lower),
            "x2": x(s.upper),
            "theta": s.theta,
            "lower": s.lower,
            "upper": s.upper,
        }
        for index, s in enumerate(standings)
    ]
    height = TOP + len(rows) * ROW + 24
    ticks = [{"x": x(value), "label": f"{value:+.1f}" if value else "0"} for value in _ticks(low, high)]
    return {
        "width": WIDTH,
        "height": height,
        "rows": rows,
        "zero": x(0.0),
        "left": LEFT,
        "right": WIDTH - RIGHT,
        "axis_y": height - 20,
        "ticks": ticks,
    }


def _ticks(low: float, high: float) -> list[float]:
    step = next(s for s in (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 1e9) if (high - low) / s <= 8)
    first = int(low // step) + 1
    return [round(k * step, 6) for k in range(first, int(high // step) + 1)]
