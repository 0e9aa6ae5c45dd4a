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


# Above this mean KL per token (nats) a round has moved the policy far from its base: outputs drift.
KL_WARN_NATS = 1.0
# A human-token-reward series whose range stays under this is flat: the updates did not change it.
FLAT_REWARD = 1e-3
TREND_MIN_POINTS = 3


def _known(metrics: list[dict], key: str) -> list[float]:
    return [value for value in (_number(m.get(key)) for m in metrics) if value is not None]


def round_warnings(metrics: list[dict]) -> list[str]:
    """What the round's curves say went wrong, in words for the round page (empty when nothing did).

    >>> round_warnings([{"kl": 0.2}, {"kl": 2.2}])[0].split(":")[0]
    'KL to the base model reached 2.2 nats per token'
    >>> round_warnings([{"mean_shaped_reward": r, "mean_token_reward": 0.5} for r in (0.3, 0.1, -0.2)])[0][:40]
    'The shaped reward fell at every update ('
    >>> round_warnings([{"kl": 0.05, "mean_token_reward": r, "mean_shaped_reward": r} for r in (0.1, 0.2, 0.4)])
    []
    """
    warnings = []
    kl = _known(metrics, "kl")
    if kl and max(kl) > KL_WARN_NATS:
        warnings.append(
            f"KL to the base model reached {max(kl):.1f} nats per token: the policy moved far from its base "
            f"(above {KL_WARN_NATS:g} the outputs often drift or degenerate). Compare this version with its "
            "parent before promoting it; for the next round lower the learning rate or raise the KL coefficient."
        )
    shaped = _known(metrics, "mean_shaped_reward")
    if (
        len(shaped) >= TREND_MIN_POINTS
        and all(b <= a for a, b in zip(shaped, shaped[1:], strict=False))
        and shaped[-1] < shaped[0]
    ):
        warnings.append(
            f"The shaped reward fell at every update ({shaped[0]:.3g} → {shaped[-1]:.3g}): the KL penalty "
            "outweighed what the policy gained from the human rewards. Training did not help on its own terms."
        )
    human = _known(metrics, "mean_token_reward")
    if len(human) >= TREND_MIN_POINTS and max(human) - min(human) < FLAT_REWARD:
        warnings.append(
            f"The human token reward stayed flat at {human[-1]:.3g}: the updates did not change what the "
            "annotations reward (too few annotations, or a learning rate too small to move the policy)."
        )
    return warnings


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
    """A config key as people write it.

    >>> config_label("lora_target_modules")
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


def _shown(value: Any) -> str:
    number = _number(value)
    return "—" if number is None else f"{number:.2f}"


def calibration_chart(bins: list[dict], *, label: str) -> dict:
    """A reliability diagram for uPlot (``static/js/charts.js``, kind "reliability"): observed frequency
    against mean predicted probability per bin, beside the diagonal of perfect calibration.

    >>> spec = calibration_chart([{"predicted": 0.1, "observed": 0.2, "count": 5}], label="poor")
    >>> spec["title"], spec["predicted"], spec["observed"], spec["counts"]
    ('P(poor) calibration', [0.1], [0.2], [5])
    >>> spec["table"]["rows"]
    [['0.10', '0.20', '5']]
    """
    filled = sorted(
        (b for b in bins if b.get("count") and _number(b.get("predicted")) is not None),
        key=lambda b: b["predicted"],
    )
    return {
        "kind": "reliability",
        "title": f"P({label}) calibration",
        "x_label": f"predicted P({label})",
        "y_label": f"observed share {label}",
        "series_label": "Observed share",
        "reference_label": "Perfect calibration",
        "count_label": "Tokens in bin",
        "predicted": [float(b["predicted"]) for b in filled],
        "observed": [_number(b.get("observed")) for b in filled],
        "counts": [int(b["count"]) for b in filled],
        "empty": "" if filled else "No held-out tokens to calibrate on.",
        "table": {
            "columns": ["Mean predicted", "Observed share", "Tokens"],
            "rows": [
                [f"{float(b['predicted']):.2f}", _shown(b.get("observed")), str(int(b["count"]))]
                for b in filled
            ],
        },
    }
