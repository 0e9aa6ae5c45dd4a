"""Server-rendered SVG line charts for round metrics: no chart library, nothing loaded from a CDN.

>>> svg = line_chart({"loss": [1.0, 0.5, 0.25]}, title="Loss")
>>> svg.startswith("<svg") and "polyline" in svg
True
"""

from __future__ import annotations

import math
from html import escape

PALETTE = ["#3b5bdb", "#c62828", "#2e7d32", "#b26a00", "#7048e8"]


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100 or abs(value) < 0.01:
        return f"{value:.2e}"
    return f"{value:.3g}"


def line_chart(series: dict[str, list[float]], *, title: str, width: int = 420, height: int = 180) -> str:
    """An SVG with one polyline per series, shared axes, min/max labels and a legend."""
    pad_left, pad_right, pad_top, pad_bottom = 56, 10, 26, 24
    points = [v for values in series.values() for v in values if math.isfinite(v)]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{escape(title)}">',
        f'<text x="{pad_left}" y="16" class="chart-title">{escape(title)}</text>',
    ]
    if not points:
        parts.append(
            f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" class="chart-empty">no data yet</text>'
        )
        return "".join(parts) + "</svg>"
    low, high = min(points), max(points)
    if high - low < 1e-12:
        low, high = low - 1, high + 1
    longest = max(len(values) for values in series.values())
    plot_w, plot_h = width - pad_left - pad_right, height - pad_top - pad_bottom

    def xy(index: int, value: float) -> str:
        x = pad_left + (plot_w * index / max(1, longest - 1))
        y = pad_top + plot_h * (1 - (value - low) / (high - low))
        return f"{x:.1f},{y:.1f}"

    parts.append(
        f'<rect x="{pad_left}" y="{pad_top}" width="{plot_w}" height="{plot_h}" class="chart-frame"/>'
        f'<text x="{pad_left - 4}" y="{pad_top + 4}" text-anchor="end" class="chart-axis">{_fmt(high)}</text>'
        f'<text x="{pad_left - 4}" y="{pad_top + plot_h}" text-anchor="end" class="chart-axis">{_fmt(low)}</text>'
        f'<text x="{pad_left + plot_w}" y="{height - 6}" text-anchor="end" class="chart-axis">step {longest - 1}</text>'
    )
    if low < 0 < high:
        parts.append(f'<polyline points="{xy(0, 0)} {xy(longest - 1, 0)}" class="chart-zero"/>')
    for n, (name, values) in enumerate(series.items()):
        color = PALETTE[n % len(PALETTE)]
        coords = " ".join(xy(i, v) for i, v in enumerate(values) if math.isfinite(v))
        parts.append(f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="1.6"/>')
        parts.append(
            f'<text x="{pad_left + 6 + 110 * n}" y="{height - 6}" fill="{color}" class="chart-legend">'
            f"{escape(name)}</text>"
        )
    return "".join(parts) + "</svg>"
