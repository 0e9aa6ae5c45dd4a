"""How good a span critic is, token by token: precision/recall/F1, AUROC, calibration (numpy only).

A critic labels every response token ``neutral`` (0), ``poor`` (1) or ``good`` (2) and gives a
probability for each. These functions take the true labels and the predicted probabilities of many
responses (ragged lists, one array per response) and score them pooled over tokens, which is what the
reward the policy receives is made of. Baselines that need no training live here too.

>>> true = [np.array([0, 1, 1, 0])]
>>> probs = [np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.8, 0.1, 0.1]])]
>>> report = evaluate(true, probs)
>>> report["labels"]["poor"]["precision"], report["labels"]["poor"]["recall"]
(1.0, 0.5)
>>> report["labels"]["poor"]["auroc"]
1.0
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence

import numpy as np

LABELS = ("neutral", "poor", "good")
NEUTRAL, POOR, GOOD = 0, 1, 2

__all__ = [
    "GOOD",
    "LABELS",
    "NEUTRAL",
    "POOR",
    "all_neutral_probs",
    "auroc",
    "calibration_bins",
    "evaluate",
    "f1_threshold",
    "precision_recall_f1",
    "similarity_poor_scores",
    "threshold_probs",
    "token_prior_fit",
    "token_prior_probs",
]


def precision_recall_f1(y_true: np.ndarray, y_pred: np.ndarray, label: int) -> dict:
    """Precision, recall and F1 of ``label`` (one-vs-rest); 0.0 where undefined (nothing predicted/true).

    >>> precision_recall_f1(np.array([1, 1, 0]), np.array([1, 0, 1]), 1)
    {'precision': 0.5, 'recall': 0.5, 'f1': 0.5, 'support': 2, 'predicted': 2}
    """
    true_pos = int(np.sum((y_true == label) & (y_pred == label)))
    predicted = int(np.sum(y_pred == label))
    support = int(np.sum(y_true == label))
    precision = true_pos / predicted if predicted else 0.0
    recall = true_pos / support if support else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "support": support, "predicted": predicted}


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks with ties sharing their mean rank (what the Mann-Whitney statistic needs)."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    ranks = np.empty(len(values), dtype=np.float64)
    # Boundaries of runs of equal values in sorted order.
    boundaries = np.flatnonzero(np.diff(sorted_values)) + 1
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [len(values)]))
    for start, end in zip(starts, ends, strict=True):
        ranks[order[start:end]] = (start + 1 + end) / 2
    return ranks


def auroc(is_positive: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve: P(score of a random positive > that of a random negative), ties 1/2.

    None when one class is absent (the area is undefined).

    >>> auroc(np.array([True, False, True, False]), np.array([0.9, 0.1, 0.5, 0.5]))
    0.875
    """
    is_positive = np.asarray(is_positive, dtype=bool)
    positives = int(is_positive.sum())
    negatives = len(is_positive) - positives
    if positives == 0 or negatives == 0:
        return None
    ranks = _average_ranks(np.asarray(scores, dtype=np.float64))
    rank_sum = ranks[is_positive].sum()
    return float((rank_sum - positives * (positives + 1) / 2) / (positives * negatives))


def calibration_bins(is_positive: np.ndarray, scores: np.ndarray, n_bins: int = 10) -> dict:
    """Reliability diagram data: equal-width probability bins, each with its mean prediction and the
    observed frequency, plus the expected calibration error (bin-size-weighted mean gap).

    >>> out = calibration_bins(np.array([1, 0, 1, 1]), np.array([0.05, 0.15, 0.95, 0.85]), n_bins=2)
    >>> [(b["count"], b["observed"]) for b in out["bins"]], out["ece"]
    ([(2, 0.5), (2, 1.0)], 0.25)
    """
    is_positive = np.asarray(is_positive, dtype=np.float64)
    scores = np.clip(np.asarray(scores, dtype=np.float64), 0.0, 1.0)
    # Bin k holds [k/n, (k+1)/n); a score of exactly 1.0 belongs to the last bin.
    index = np.minimum((scores * n_bins).astype(int), n_bins - 1)
    bins, gap = [], 0.0
    for k in range(n_bins):
        inside = index == k
        count = int(inside.sum())
        mean_pred = float(scores[inside].mean()) if count else None
        observed = float(is_positive[inside].mean()) if count else None
        if count:
            gap += count * abs(mean_pred - observed)
        bins.append(
            {"low": k / n_bins, "high": (k + 1) / n_bins, "count": count, "predicted": mean_pred,
             "observed": observed}
        )  # fmt: skip
    total = len(scores)
    return {"bins": bins, "ece": round(gap / total, 12) if total else None}


def _stack(true_labels: Sequence[np.ndarray], probs: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    if len(true_labels) != len(probs):
        raise ValueError(f"{len(true_labels)} label arrays for {len(probs)} probability arrays")
    for labels, p in zip(true_labels, probs, strict=True):
        if len(labels) != len(p):
            raise ValueError(f"a response has {len(labels)} labels but {len(p)} probability rows")
    if not true_labels:
        return np.zeros(0, dtype=int), np.zeros((0, len(LABELS)))
    y = np.concatenate([np.asarray(labels, dtype=int) for labels in true_labels])
    p = np.concatenate([np.asarray(x, dtype=np.float64).reshape(-1, len(LABELS)) for x in probs])
    return y, p


def evaluate(true_labels: Sequence[np.ndarray], probs: Sequence[np.ndarray], n_bins: int = 10) -> dict:
    """Pooled token metrics: per label precision/recall/F1/AUROC (argmax prediction, probability score),
    accuracy, macro F1 over poor and good, and the calibration of P(poor) and P(good)."""
    y, p = _stack(true_labels, probs)
    predicted = p.argmax(axis=1) if len(p) else np.zeros(0, dtype=int)
    labels = {}
    for index, name in enumerate(LABELS):
        stats = precision_recall_f1(y, predicted, index)
        stats["auroc"] = auroc(y == index, p[:, index]) if len(y) else None
        labels[name] = stats
    return {
        "tokens": int(len(y)),
        "responses": len(true_labels),
        "accuracy": float((predicted == y).mean()) if len(y) else 0.0,
        "macro_f1": (labels["poor"]["f1"] + labels["good"]["f1"]) / 2,
        "labels": labels,
        "calibration": {
            "poor": calibration_bins(y == POOR, p[:, POOR], n_bins),
            "good": calibration_bins(y == GOOD, p[:, GOOD], n_bins),
        },
    }


# -- baselines ------------------------------------------------------------------------------------------
def all_neutral_probs(lengths: Sequence[int]) -> list[np.ndarray]:
    """Every token neutral with certainty: the floor any critic must beat (F1 0 on poor and good)."""
    return [np.tile(np.array([1.0, 0.0, 0.0]), (n, 1)) for n in lengths]


def token_prior_fit(
    token_ids: Sequence[Sequence[int]], true_labels: Sequence[np.ndarray], smoothing: float = 1.0
) -> dict:
    """P(label | token id) from training data, Laplace-smoothed towards the overall label frequencies.

    A cheap, context-blind baseline: it learns that digits are often poor, names often good, and cannot
    tell an invented number from a copied one.
    """
    overall = np.full(len(LABELS), smoothing)
    counts: dict[int, np.ndarray] = {}
    for ids, labels in zip(token_ids, true_labels, strict=True):
        for token, label in zip(ids, labels, strict=True):
            counts.setdefault(int(token), np.zeros(len(LABELS)))[int(label)] += 1
            overall[int(label)] += 1
    prior = overall / overall.sum()
    table = {
        token: (count + smoothing * len(LABELS) * prior) / (count.sum() + smoothing * len(LABELS))
        for token, count in counts.items()
    }
    return {"prior": prior, "table": table}


def token_prior_probs(model: dict, token_ids: Sequence[Sequence[int]]) -> list[np.ndarray]:
    prior, table = model["prior"], model["table"]
    return [np.array([table.get(int(t), prior) for t in ids]).reshape(-1, len(LABELS)) for ids in token_ids]


def f1_threshold(is_positive: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """The score threshold (predict positive when ``score >= threshold``) with the best F1, and that F1.

    >>> f1_threshold(np.array([0, 1, 1]), np.array([0.1, 0.7, 0.9]))
    (0.7, 1.0)
    """
    is_positive = np.asarray(is_positive, dtype=bool)
    best = (math.inf, 0.0)
    for threshold in np.unique(scores):
        predicted = scores >= threshold
        true_pos = int(np.sum(predicted & is_positive))
        if not true_pos:
            continue
        precision, recall = true_pos / int(predicted.sum()), true_pos / int(is_positive.sum())
        f1 = 2 * precision * recall / (precision + recall)
        if f1 > best[1]:
            best = (float(threshold), f1)
    return best


_WORD_RE = re.compile(r"[A-Za-z][A-Za-z'’\-]*|\d[\d,.]*\d|\d")


def similarity_poor_scores(
    texts: Sequence[str],
    sources: Sequence[str],
    offsets: Sequence[Sequence[tuple[int, int]]],
    encode: Callable[[list[str]], np.ndarray],
) -> list[np.ndarray]:
    """The MiniLM-similarity baseline's score per token: 1 − the largest cosine similarity between the
    token's word and any word of the source (the prompt). ``encode`` maps words to L2-normalised rows
    (``MiniLMEmbedder().encode``). Words the source supports score near 0, invented ones near 1."""
    vocabulary = sorted(
        {w for t, s in zip(texts, sources, strict=True) for w in _WORD_RE.findall(t + " " + s)}
    )
    vectors = dict(zip(vocabulary, encode(vocabulary), strict=True)) if vocabulary else {}
    scores = []
    for text, source, token_offsets in zip(texts, sources, offsets, strict=True):
        source_words = _WORD_RE.findall(source)
        matrix = np.stack([vectors[w] for w in source_words]) if source_words else None
        per_token = np.zeros(len(token_offsets))
        for match in _WORD_RE.finditer(text):
            score = 1.0 if matrix is None else 1.0 - float((matrix @ vectors[match.group()]).max())
            for t, (a, b) in enumerate(token_offsets):
                if a < match.end() and match.start() < b:
                    per_token[t] = max(per_token[t], score)
        scores.append(per_token)
    return scores


def threshold_probs(scores: Sequence[np.ndarray], threshold: float) -> list[np.ndarray]:
    """Poor-vs-neutral probabilities from scores: the argmax is poor exactly when ``score >= threshold``
    (a monotone map, so the AUROC is the scores')."""
    out = []
    for s in scores:
        s = np.clip(np.asarray(s, dtype=np.float64), 0.0, 1.0)
        upper = 0.5 + 1e-6 + 0.4999 * (s - threshold) / max(1.0 - threshold, 1e-9)
        lower = 0.5 * s / max(threshold, 1e-9)
        p_poor = np.clip(np.where(s >= threshold, upper, np.minimum(lower, 0.4999)), 0.0, 1.0)
        out.append(np.stack([1 - p_poor, p_poor, np.zeros_like(p_poor)], axis=1))
    return out
