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


def calibration_chart(bins: list[dict], *, title: str, size: int = 220) -> str:
    """A reliability diagram: observed frequency against mean predicted probability per bin (circles
    sized by count), with the diagonal of perfect calibration.

    >>> svg = calibration_chart([{"predicted": 0.1, "observed": 0.2, "count": 5}], title="P(poor)")
    >>> "circle" in svg and "P(poor)" in svg
    True
    """
    pad, top = 34, 24
    plot = size - pad - 10
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {size} {size + top - 10}" '
        f'role="img" aria-label="{escape(title)}">',
        f'<text x="{pad}" y="16" class="chart-title">{escape(title)}</text>',
        f'<rect x="{pad}" y="{top}" width="{plot}" height="{plot}" class="chart-frame"/>',
        f'<polyline points="{pad},{top + plot} {pad + plot},{top}" class="chart-zero"/>',
        f'<text x="{pad - 4}" y="{top + 8}" text-anchor="end" class="chart-axis">1</text>',
        f'<text x="{pad - 4}" y="{top + plot}" text-anchor="end" class="chart-axis">0</text>',
        f'<text x="{pad + plot}" y="{top + plot + 12}" text-anchor="end" class="chart-axis">predicted</text>',
    ]
    filled = [b for b in bins if b.get("count")]
    if not filled:
        parts.append(
            f'<text x="{size / 2}" y="{size / 2}" text-anchor="middle" class="chart-empty">no data</text>'
        )
        return "".join(parts) + "</svg>"
    biggest = max(b["count"] for b in filled)
    points = []
    for b in filled:
        x = pad + plot * float(b["predicted"])
        y = top + plot * (1 - float(b["observed"]))
        radius = 2 + 5 * math.sqrt(b["count"] / biggest)
        points.append(f"{x:.1f},{y:.1f}")
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{radius:.1f}" fill="{PALETTE[0]}" fill-opacity="0.55">'
            f"<title>{int(b['count'])} tokens: predicted {float(b['predicted']):.2f}, "
            f"observed {float(b['observed']):.2f}</title></circle>"
        )
    parts.append(
        f'<polyline points="{" ".join(points)}" fill="none" stroke="{PALETTE[0]}" stroke-width="1.2"/>'
    )
    return "".join(parts) + "</svg>"
