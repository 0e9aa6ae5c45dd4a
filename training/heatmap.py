"""Token heatmap cells: the output cut at token boundaries, each piece with its reward and critiques.

Pure: takes the text, the stored offsets/rewards/token ids and the spans as plain values. Tokens that
share one character (a byte-level tokenizer splits an emoji over several tokens) become one cell listing
all of them; characters no token covers (WordPiece drops whitespace) become plain cells.

>>> cells = heatmap_cells("ab c", [[0, 2], [2, 4]], [-1.0, 0.0], [7, 8], [(0, 2, "poor", "typo")])
>>> [(c["text"], c["reward"], c["critiques"]) for c in cells]
[('ab', -1.0, ['poor: typo']), (' c', 0.0, [])]
"""

from __future__ import annotations

from collections.abc import Sequence


def _color(reward: float, scale: float) -> str:
    if reward == 0 or scale <= 0:
        return "transparent"
    # At most 0.55: the darkest cell still keeps the text at WCAG AA contrast (4.5:1; axe checks it).
    alpha = min(1.0, abs(reward) / scale) * 0.45 + 0.1
    rgb = "198,40,40" if reward < 0 else "46,125,50"
    return f"rgba({rgb},{alpha:.2f})"


def heatmap_cells(
    text: str,
    offsets: Sequence[Sequence[int]],
    rewards: Sequence[float],
    token_ids: Sequence[int],
    spans: Sequence[tuple[int, int, str, str]],
    token_strings: Sequence[str] | None = None,
) -> list[dict]:
    """Cells in text order. ``spans`` are (start, end, label, critique) for the hover text."""
    if not (len(offsets) == len(rewards) == len(token_ids)):
        raise ValueError("offsets, rewards and token_ids must have one entry per token")
    scale = max((abs(r) for r in rewards), default=1.0) or 1.0
    cells: list[dict] = []
    cursor = 0
    index = 0
    while index < len(offsets):
        start, end = offsets[index]
        group = [index]
        while index + 1 < len(offsets) and list(offsets[index + 1]) == [start, end]:
            index += 1
            group.append(index)
        index += 1
        if end <= start:
            continue  # a special token: no characters to show
        if start > cursor:
            cells.append(_plain(text[cursor:start]))
        start = max(start, cursor)  # byte-level offsets may overlap a leading space already shown
        if end <= start:
            continue
        reward = (
            min(rewards[i] for i in group)
            if any(rewards[i] < 0 for i in group)
            else max(rewards[i] for i in group)
        )
        critiques = [
            f"{label}: {critique}" if critique else label
            for s, e, label, critique in spans
            if s < end and start < e
        ]
        cells.append(
            {
                "text": text[start:end],
                "reward": reward,
                "token_ids": [token_ids[i] for i in group],
                "tokens": [token_strings[i] for i in group] if token_strings else [],
                "critiques": critiques,
                "color": _color(reward, scale),
            }
        )
        cursor = end
    if cursor < len(text):
        cells.append(_plain(text[cursor:]))
    return cells


def _plain(text: str) -> dict:
    return {
        "text": text,
        "reward": None,
        "token_ids": [],
        "tokens": [],
        "critiques": [],
        "color": "transparent",
    }
