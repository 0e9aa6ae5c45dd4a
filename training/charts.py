"""What the round page's charts show: series of round metrics with human names, as JSON for uPlot.

The browser draws them (``static/js/charts.js`` with uPlot, vendored from its npm package): legends with
the value under the cursor, labelled axes with ticks. Missing values are ``None`` (a gap, not a zero).

>>> specs = chart_specs([{"kl": 0.5}, {"kl": 0.25, "policy_loss": 1.0}])
>>> [spec["title"] for spec in specs][:2]
['Mean token reward', 'KL to the base model']
>>> specs[1]["series"][0]
{'label': 'KL per token', 'values': [0.5, 0.25]}
>>> specs[0]["series"][0]["values"]
[None, None]
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

# (title, y-axis label, [(metric key, human name)])
CHARTS: list[tuple[str, str, list[tuple[str, str]]]] = [
    (
        "Mean token reward",
        "reward per token",
        [
            ("mean_token_reward", "Human token reward"),
            ("mean_shaped_reward", "Shaped reward (after KL penalty)"),
        ],
    ),
    ("KL to the base model", "nats per token", [("kl", "KL per token")]),
    ("Losses", "loss", [("policy_loss", "Policy loss"), ("value_loss", "Value loss")]),
    ("Clipping", "fraction / ratio", [("clipfrac", "Clipped fraction"), ("ratio", "Mean policy ratio")]),
]


def _number(value: Any) -> float | None:
    return value if isinstance(value, int | float) and math.isfinite(value) else None


def chart_specs(metrics: list[dict]) -> list[dict]:
    """One spec per chart: ``{title, y_label, x_label, steps, series: [{label, values}]}``."""
    steps = list(range(1, len(metrics) + 1))
    return [
        {
            "title": title,
            "y_label": y_label,
            "x_label": "optimizer step",
            "steps": steps,
            "series": [
                {"label": name, "values": [_number(m.get(key)) for m in metrics]} for key, name in series
            ],
        }
        for title, y_label, series in CHARTS
    ]


# The round's config, as a table a person reads: words for the keys, acronyms spelled as people write them.
_WORDS = {
    "kl": "KL",
    "lora": "LoRA",
    "ppo": "PPO",
    "lr": "LR",
    "eps": "ε",
    "lam": "GAE λ",
    "vf": "value-function",
}


def config_label(key: str) -> str:
    """>>> config_label("lora_target_modules")
    'LoRA target modules'
    """
    words = [_WORDS.get(word, word) for word in key.split("_")]
    text = " ".join(words)
    return text[0].upper() + text[1:] if text else key


def config_rows(config: dict) -> list[tuple[str, str]]:
    rows = []
    for key, value in sorted((config or {}).items()):
        if isinstance(value, list):
            shown = ", ".join(str(item) for item in value) or "—"
        elif isinstance(value, bool):
            shown = "yes" if value else "no"
        elif value is None:
            shown = "—"
        else:
            shown = str(value)
        rows.append((config_label(key), shown))
    return rows


PALETTE = ["#3b5bdb", "#c62828", "#2e7d32", "#b26a00", "#7048e8"]  # calibration plot colours


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
