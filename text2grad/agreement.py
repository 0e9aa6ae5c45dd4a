"""Inter-annotator agreement, the way annotation research measures it (no Django, plain numpy).

Three measures:

* **Krippendorff's alpha over the response's units** (characters, or tokens): every unit gets one value
  per annotator, ``none`` / ``poor`` / ``good`` (a unit under a negative span is ``poor``, under a positive
  one ``good``, both: ``poor``, as the rewards resolve conflicts; otherwise ``none``). Nominal metric.
* **Pairwise span F1**: two spans match when their labels are equal and their intersection over union is at
  least 0.5; each span matches at most one span of the other annotator (greedy, best IoU first).
  ``F1 = 2·matches / (|A| + |B|)``; two annotators who drew no spans agree (F1 = 1).
* **Ordinal alpha for ratings** (1–5): the outputs are the units.

Alpha is computed from a *coincidence matrix* ``o[c, k]`` (Krippendorff 2011, "Computing Krippendorff's
alpha-reliability"): each unit with ``m >= 2`` values adds ``1/(m-1)`` for each ordered pair of values from
different coders. Coincidence matrices add up, so an output's matrix is stored once and a project's (or a
pair's, a label's, a week's) alpha is the alpha of the summed matrices, exact and incremental. When every
pairable value is the same, the expected disagreement is 0 and alpha is undefined: ``nan`` here (the
observed agreement is then perfect).

>>> alpha_from_coincidence(coincidence_matrix(np.array([[1, 2, 0, 1], [1, 2, 0, 1]]), 3))
1.0
>>> round(alpha_from_coincidence(coincidence_matrix(np.array([[1, 2, 1, 2], [2, 1, 2, 1]]), 3)), 3)
-0.75
>>> span_f1([(0, 10, "poor")], [(2, 10, "poor"), (20, 30, "good")])
0.6666666666666666
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "CATEGORIES",
    "GOOD",
    "IOU_THRESHOLD",
    "MISSING",
    "NONE",
    "POOR",
    "RATING_VALUES",
    "BatchAgreement",
    "OutputInput",
    "alpha_from_coincidence",
    "batch_agreement",
    "binary_coincidence",
    "coincidence_matrix",
    "iou",
    "krippendorff_alpha",
    "rating_coincidence",
    "span_f1",
    "token_labels",
    "unit_labels",
]

NONE, POOR, GOOD = 0, 1, 2
CATEGORIES = ("none", "poor", "good")
MISSING = -1
IOU_THRESHOLD = 0.5
RATING_VALUES = 5  # ratings 1..5 are values 0..4


# --- units and their values -------------------------------------------------------------------------
def unit_labels(length: int, spans: Iterable[tuple[int, int, int]]) -> np.ndarray:
    """One value per character: ``spans`` are ``(start, end, polarity)``; negative wins over positive.

    >>> unit_labels(6, [(0, 3, 1), (2, 4, -1)]).tolist()
    [2, 2, 1, 1, 0, 0]
    """
    good = np.zeros(length + 1, dtype=np.int32)
    poor = np.zeros(length + 1, dtype=np.int32)
    for start, end, polarity in spans:
        start, end = max(0, start), min(length, end)
        if start >= end or polarity == 0:
            continue
        target = poor if polarity < 0 else good
        target[start] += 1
        target[end] -= 1
    labels = np.where(np.cumsum(good)[:length] > 0, GOOD, NONE)
    return np.where(np.cumsum(poor)[:length] > 0, POOR, labels).astype(np.int8)


def token_labels(char_values: np.ndarray, offsets: Sequence[Sequence[int]]) -> np.ndarray:
    """Character values to token values: a token is ``poor`` if any of its characters is, else ``good`` if
    any is, else ``none`` (the token reward's rule). Zero-width tokens carry no character: ``none``.

    >>> token_labels(np.array([2, 2, 1, 0, 0]), [(0, 2), (2, 3), (3, 5), (5, 5)]).tolist()
    [2, 1, 0, 0]
    """
    n = len(char_values)
    bounds = np.asarray(offsets, dtype=np.int64).reshape(-1, 2).clip(0, n)
    poor = np.concatenate([[0], np.cumsum(char_values == POOR)])
    good = np.concatenate([[0], np.cumsum(char_values == GOOD)])
    has_poor = poor[bounds[:, 1]] - poor[bounds[:, 0]] > 0
    has_good = good[bounds[:, 1]] - good[bounds[:, 0]] > 0
    return np.where(has_poor, POOR, np.where(has_good, GOOD, NONE)).astype(np.int8)


# --- coincidences and alpha ----------------------------------------------------------------------------
def coincidence_matrix(data: np.ndarray, n_values: int, missing: int = MISSING) -> np.ndarray:
    """The coincidence matrix of reliability data ``(coders, units)`` holding values ``0..n_values-1``
    (``missing`` where a coder gave none). Units with fewer than two values add nothing."""
    data = np.asarray(data)
    valid = data != missing
    pairable = valid.sum(axis=0)
    weight = np.where(pairable >= 2, 1.0 / np.maximum(pairable - 1, 1), 0.0)
    matrix = np.zeros(n_values * n_values)
    coders = data.shape[0]
    for first in range(coders):
        for second in range(coders):
            if first == second:
                continue
            both = valid[first] & valid[second] & (weight > 0)
            index = data[first, both].astype(np.int64) * n_values + data[second, both]
            matrix += np.bincount(index, weights=weight[both], minlength=n_values * n_values)
    return matrix.reshape(n_values, n_values)


def _delta_squared(marginals: np.ndarray, level: str) -> np.ndarray:
    """Squared distances between values ``c`` and ``k`` under the metric of ``level`` (``marginals`` are
    the value frequencies ``n_c``, needed by the ordinal metric)."""
    n_values = marginals.shape[-1]
    values = np.arange(n_values)
    if level == "nominal":
        return (values[:, None] != values[None, :]).astype(float)
    if level == "interval":
        return (values[:, None] - values[None, :]).astype(float) ** 2
    if level == "ordinal":
        cumulative = np.concatenate([np.zeros(marginals.shape[:-1] + (1,)), np.cumsum(marginals, -1)], -1)
        low = np.minimum(values[:, None], values[None, :])
        high = np.maximum(values[:, None], values[None, :])
        # sum of n_g for g from min(c,k) to max(c,k), minus half of n_c + n_k
        between = cumulative[..., high + 1] - cumulative[..., low]
        half = (marginals[..., :, None] + marginals[..., None, :]) / 2
        return (between - half) ** 2
    raise ValueError(f"Unknown level of measurement {level!r}; use nominal, ordinal or interval")


def alpha_from_coincidence(matrix: np.ndarray, level: str = "nominal") -> float | np.ndarray:
    """Krippendorff's alpha of a coincidence matrix ``(V, V)``, or of a stack ``(..., V, V)`` (one alpha
    each). ``nan`` where alpha is undefined (fewer than two pairable values, or no variation)."""
    matrix = np.asarray(matrix, dtype=float)
    marginals = matrix.sum(axis=-1)
    total = marginals.sum(axis=-1)
    delta = _delta_squared(marginals, level)
    observed = (matrix * delta).sum(axis=(-2, -1))
    expected = (marginals[..., :, None] * marginals[..., None, :] * delta).sum(axis=(-2, -1))
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = 1.0 - (total - 1.0) * observed / expected
    alpha = np.where((expected > 0) & (total > 1), alpha, np.nan)
    return float(alpha) if alpha.ndim == 0 else alpha


def krippendorff_alpha(data: np.ndarray, n_values: int, level: str = "nominal") -> float:
    """Alpha of reliability data ``(coders, units)`` with values ``0..n_values-1`` and ``MISSING``."""
    return alpha_from_coincidence(coincidence_matrix(data, n_values), level)


def binary_coincidence(matrix: np.ndarray, value: int) -> np.ndarray:
    """Collapse a coincidence matrix to ``value`` versus everything else: the per-label alpha."""
    matrix = np.asarray(matrix, dtype=float)
    inside = matrix[..., value, value]
    row = matrix[..., value, :].sum(axis=-1) - inside
    column = matrix[..., :, value].sum(axis=-1) - inside
    rest = matrix.sum(axis=(-2, -1)) - inside - row - column
    return np.stack([np.stack([rest, column], -1), np.stack([row, inside], -1)], -2)


def rating_coincidence(ratings: Sequence[int | None]) -> np.ndarray:
    """The 5×5 coincidence matrix of one output's ratings (1–5; ``None`` for unrated)."""
    values = np.array([[r - 1 if r else MISSING] for r in ratings], dtype=np.int64)
    if values.size == 0:
        return np.zeros((RATING_VALUES, RATING_VALUES))
    return coincidence_matrix(values, RATING_VALUES)


# --- span F1 -------------------------------------------------------------------------------------------
def iou(first: tuple[int, int], second: tuple[int, int]) -> float:
    """Intersection over union of two ``[start, end)`` ranges."""
    inter = max(0, min(first[1], second[1]) - max(first[0], second[0]))
    union = max(first[1], second[1]) - min(first[0], second[0])
    return inter / union if union > 0 else 0.0


def span_f1(
    first: Sequence[tuple[int, int, str]],
    second: Sequence[tuple[int, int, str]],
    threshold: float = IOU_THRESHOLD,
) -> float:
    """F1 of two annotators' spans ``(start, end, label)``: one-to-one matches, equal label, IoU >= threshold."""
    if not first and not second:
        return 1.0
    candidates = sorted(
        (
            (iou(a[:2], b[:2]), i, j)
            for i, a in enumerate(first)
            for j, b in enumerate(second)
            if a[2] == b[2] and iou(a[:2], b[:2]) >= threshold
        ),
        reverse=True,
    )
    used_first: set[int] = set()
    used_second: set[int] = set()
    for _score, i, j in candidates:
        if i not in used_first and j not in used_second:
            used_first.add(i)
            used_second.add(j)
    return 2 * len(used_first) / (len(first) + len(second))


# --- many outputs at once --------------------------------------------------------------------------------
@dataclass
class OutputInput:
    """One output's annotations: ``coders`` lists, per annotator, their spans ``(start, end, polarity,
    label)``; ``reference`` is the gold annotation's index in ``coders`` (or None); ``ratings`` one per coder.
    ``token_offsets``, when given, adds token-level alpha."""

    length: int
    coders: list[list[tuple[int, int, int, str]]]
    reference: int | None = None
    ratings: list[int | None] = field(default_factory=list)
    token_offsets: list[tuple[int, int]] | None = None


@dataclass
class BatchAgreement:
    """What ``batch_agreement`` measures, per output and per pair of coders (indices into each output's
    ``coders``; a pair with the reference measures accuracy against gold)."""

    coincidence: np.ndarray  # (n, 3, 3) character coincidences among annotators (reference left out)
    alpha: np.ndarray  # (n,) nominal alpha over characters, nan where undefined
    token_alpha: np.ndarray  # (n,) over tokens where offsets were given, else nan
    span_f1: np.ndarray  # (n,) mean pairwise F1 among annotators, nan with fewer than two
    rating_coincidence: np.ndarray  # (n, 5, 5)
    pair_output: np.ndarray  # (P,) output index of each pair
    pair_first: np.ndarray  # (P,) coder index
    pair_second: np.ndarray  # (P,) coder index (the reference, for gold pairs)
    pair_f1: np.ndarray  # (P,)
    pair_coincidence: np.ndarray  # (P, 3, 3)


def _pairs(outputs: Sequence[OutputInput]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows = []
    for index, output in enumerate(outputs):
        count = len(output.coders)
        for first in range(count):
            for second in range(first + 1, count):
                if output.reference == first:
                    rows.append((index, second, first))  # the reference always second
                else:
                    rows.append((index, first, second))
    if not rows:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    table = np.array(rows, dtype=np.int64)
    return table[:, 0], table[:, 1], table[:, 2]


def _char_matrix(outputs: Sequence[OutputInput], width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every output's characters side by side: values ``(width, total)`` (MISSING where an output has fewer
    coders), the output index of each character, and each output's first character."""
    lengths = np.array([o.length for o in outputs], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]) if len(lengths) else np.zeros(0, np.int64)
    total = int(lengths.sum())
    owner = np.repeat(np.arange(len(outputs)), lengths)
    coder_counts = np.array([len(o.coders) for o in outputs], dtype=np.int64)
    # Difference arrays: +1 at a span's start, -1 at its end, per coder row; a cumulative sum paints them.
    good = np.zeros((width, total + 1), dtype=np.int16)
    poor = np.zeros((width, total + 1), dtype=np.int16)
    rows, firsts, lasts, signs = [], [], [], []
    for index, output in enumerate(outputs):
        base = starts[index]
        for coder, spans in enumerate(output.coders):
            for start, end, polarity, _label in spans:
                start, end = max(0, start), min(output.length, end)
                if start < end and polarity:
                    rows.append(coder)
                    firsts.append(base + start)
                    lasts.append(base + end)
                    signs.append(polarity)
    if rows:
        rows_a, firsts_a, lasts_a = np.array(rows), np.array(firsts), np.array(lasts)
        negative = np.array(signs) < 0
        for target, chosen in ((poor, negative), (good, ~negative)):
            np.add.at(target, (rows_a[chosen], firsts_a[chosen]), 1)
            np.add.at(target, (rows_a[chosen], lasts_a[chosen]), -1)
    values = np.where(np.cumsum(good, axis=1, dtype=np.int16)[:, :total] > 0, GOOD, NONE).astype(np.int8)
    values[np.cumsum(poor, axis=1, dtype=np.int16)[:, :total] > 0] = POOR
    present = np.arange(width)[:, None] < coder_counts[owner][None, :]
    return np.where(present, values, MISSING).astype(np.int8), owner, starts


def _span_f1_pairs(outputs: Sequence[OutputInput], pair_output, pair_first, pair_second) -> np.ndarray:
    """Pairwise span F1 for every listed pair, vectorised over all span pairs of all outputs."""
    table = [
        (index, coder, start, end, label)
        for index, output in enumerate(outputs)
        for coder, spans in enumerate(output.coders)
        for start, end, _polarity, label in spans
    ]
    count = len(outputs)
    width = max((len(o.coders) for o in outputs), default=0)
    spans_per = np.zeros((count, max(width, 1)), dtype=np.int64)
    if table:
        labels = {name: number for number, name in enumerate(sorted({row[4] for row in table}))}
        s_out = np.array([row[0] for row in table], dtype=np.int64)
        s_coder = np.array([row[1] for row in table], dtype=np.int64)
        s_start = np.array([row[2] for row in table], dtype=np.int64)
        s_end = np.array([row[3] for row in table], dtype=np.int64)
        s_label = np.array([labels[row[4]] for row in table], dtype=np.int64)
        np.add.at(spans_per, (s_out, s_coder), 1)
        # Every ordered pair of spans within one output (the table is grouped by output).
        per_output = np.bincount(s_out, minlength=count)
        first_of_output = np.concatenate([[0], np.cumsum(per_output)[:-1]])
        repeat = per_output[s_out]
        left = np.repeat(np.arange(len(table)), repeat)
        within = np.arange(len(left)) - np.repeat(np.cumsum(repeat) - repeat, repeat)
        right = first_of_output[s_out[left]] + within
        keep = (s_coder[left] != s_coder[right]) & (s_label[left] == s_label[right])
        left, right = left[keep], right[keep]
        inter = np.minimum(s_end[left], s_end[right]) - np.maximum(s_start[left], s_start[right])
        union = np.maximum(s_end[left], s_end[right]) - np.minimum(s_start[left], s_start[right])
        score = np.clip(inter, 0, None) / np.maximum(union, 1)
        keep = score >= IOU_THRESHOLD
        left, right, score = left[keep], right[keep], score[keep]
        # Greedy one-to-one matching, best IoU first, within each (output, coder, other coder).
        order = np.lexsort((right, left, -score))
        used: set[tuple[int, int]] = set()
        matches: dict[tuple[int, int, int], int] = {}
        coder_l, coder_r, out_l = s_coder[left].tolist(), s_coder[right].tolist(), s_out[left].tolist()
        left_l, right_l = left.tolist(), right.tolist()
        for position in order.tolist():
            a, b = left_l[position], right_l[position]
            ca, cb = coder_l[position], coder_r[position]
            if ca > cb:
                continue  # each unordered pair once
            if (a, cb) in used or (b, ca) in used:
                continue
            used.add((a, cb))
            used.add((b, ca))
            key = (out_l[position], ca, cb)
            matches[key] = matches.get(key, 0) + 1
    else:
        matches = {}
    result = np.empty(len(pair_output))
    for row, (index, first, second) in enumerate(
        zip(pair_output.tolist(), pair_first.tolist(), pair_second.tolist(), strict=True)
    ):
        low, high = min(first, second), max(first, second)
        drawn = spans_per[index, first] + spans_per[index, second]
        result[row] = 1.0 if drawn == 0 else 2 * matches.get((index, low, high), 0) / drawn
    return result


def _grouped_coincidence(
    values: np.ndarray, owner: np.ndarray, excluded: np.ndarray, count: int, n_values: int
) -> np.ndarray:
    """One coincidence matrix per group: ``values`` is ``(coders, units)``, ``owner`` the group of each unit,
    ``excluded`` the coder slot left out at each unit (the reference; -1 for none)."""
    values = np.where(np.arange(values.shape[0])[:, None] == excluded[None, :], MISSING, values)
    valid = values != MISSING
    pairable = valid.sum(axis=0)
    weight = np.where(pairable >= 2, 1.0 / np.maximum(pairable - 1, 1), 0.0)
    cells = n_values * n_values
    base = owner.astype(np.int64) * cells
    matrix = np.zeros(count * cells)
    for first in range(values.shape[0]):
        for second in range(values.shape[0]):
            if first == second:
                continue
            both = np.flatnonzero(valid[first] & valid[second] & (weight > 0))
            index = base[both] + values[first, both].astype(np.int64) * n_values + values[second, both]
            matrix += np.bincount(index, weights=weight[both], minlength=count * cells)
    return matrix.reshape(count, n_values, n_values)


def batch_agreement(outputs: Sequence[OutputInput]) -> BatchAgreement:
    """Agreement of many outputs at once: characters of all outputs in one array, coincidences by one
    ``bincount`` per pair of coder slots, span pairs by one vectorised join."""
    count = len(outputs)
    width = max((len(o.coders) for o in outputs), default=0)
    values, owner, _starts = _char_matrix(outputs, width) if count else (np.zeros((0, 0)), None, None)
    reference = np.array([o.reference if o.reference is not None else -1 for o in outputs], dtype=np.int64)
    pair_output, pair_first, pair_second = _pairs(outputs)
    cells = len(CATEGORIES) ** 2

    # One bincount per pair of coder slots, over the characters both coded: the pair's coincidences (weight
    # 1, both orders: the matrix plus its transpose). Every character of an output has the same coders, so
    # an output's coincidences among its m annotators are the sum of its annotator pairs' over (m - 1).
    pair_coincidence = np.zeros((len(pair_output), 3, 3))
    slot_of = {}
    for row, (first, second) in enumerate(zip(pair_first.tolist(), pair_second.tolist(), strict=True)):
        slot_of.setdefault((min(first, second), max(first, second)), []).append(row)
    for (first, second), rows in slot_of.items():
        rows = np.array(rows)
        both = np.flatnonzero((values[first] != MISSING) & (values[second] != MISSING))
        index = owner[both] * cells + values[first, both].astype(np.int64) * 3 + values[second, both]
        per_output = np.bincount(index, minlength=count * cells).reshape(count, 3, 3).astype(float)
        per_output = per_output + per_output.transpose(0, 2, 1)
        pair_coincidence[rows] = per_output[pair_output[rows]]
    annotator_counts = np.array([len(o.coders) - (o.reference is not None) for o in outputs], dtype=np.int64)
    among = pair_second != reference[pair_output] if len(pair_output) else np.zeros(0, bool)
    coincidence = np.zeros((count, 3, 3))
    if len(pair_output):
        np.add.at(coincidence, pair_output[among], pair_coincidence[among])
    coincidence /= np.maximum(annotator_counts - 1, 1)[:, None, None]

    pair_f1 = _span_f1_pairs(outputs, pair_output, pair_first, pair_second)
    f1_sum = np.bincount(pair_output[among], weights=pair_f1[among], minlength=count)
    f1_count = np.bincount(pair_output[among], minlength=count)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_f1 = np.where(f1_count > 0, f1_sum / np.maximum(f1_count, 1), np.nan)

    rating_table = np.full((max(width, 1), count), MISSING, dtype=np.int8)
    for index, output in enumerate(outputs):
        for coder, rating in enumerate(output.ratings[: len(output.coders)]):
            if rating:
                rating_table[coder, index] = rating - 1
    ratings = _grouped_coincidence(rating_table, np.arange(count), reference, count, RATING_VALUES)

    token_alpha = np.full(count, np.nan)
    for index, output in enumerate(outputs):
        annotators = [c for c in range(len(output.coders)) if c != output.reference]
        if output.token_offsets is not None and len(annotators) >= 2:
            start = _starts[index]
            rows = values[annotators, start : start + output.length]
            tokens = np.stack([token_labels(row, output.token_offsets) for row in rows])
            token_alpha[index] = alpha_from_coincidence(coincidence_matrix(tokens, 3))

    return BatchAgreement(
        coincidence=coincidence,
        alpha=np.asarray(alpha_from_coincidence(coincidence)) if count else np.zeros(0),
        token_alpha=token_alpha,
        span_f1=mean_f1,
        rating_coincidence=ratings,
        pair_output=pair_output,
        pair_first=pair_first,
        pair_second=pair_second,
        pair_f1=pair_f1,
        pair_coincidence=pair_coincidence,
    )
