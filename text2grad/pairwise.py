"""Pairwise evaluation maths: Bradley–Terry strengths from judgements, with bootstrap intervals.

A judgement compares two items (model versions) ``i`` and ``j`` and scores ``i``: 1 (``i`` better),
0 (``j`` better) or 0.5 (a tie; "both bad" is counted as a tie too). Under the Bradley–Terry model
``P(i beats j) = 1 / (1 + exp(theta_j - theta_i))``; ties count as half a win each way, the usual
practice of public leaderboards. The fit is Hunter's (2004) minorise–maximise iteration, vectorised over
bootstrap replicates; strengths are reported as ``theta`` centred to mean 0 (natural-log scale).

Intervals are percentile bootstrap intervals. Judgements on the same prompt are not independent (one
hard prompt moves all of them), so the bootstrap can resample *clusters* (prompts) instead of single
judgements.

>>> fit = bradley_terry([(0, 1, 1.0), (0, 1, 1.0), (0, 1, 0.0)], n_items=2, prior=0.0)
>>> round(float(fit[0] - fit[1]), 4)  # 2 wins to 1: exp(d) = 2
0.6931
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

Judgement = tuple[int, int, float]  # (i, j, score of i in {0, 0.5, 1})


def _check(judgements: Sequence[Judgement], n_items: int) -> np.ndarray:
    data = np.asarray(judgements, dtype=float).reshape(-1, 3)
    if n_items < 2:
        raise ValueError("Bradley–Terry needs at least two items")
    if data.size and (
        (data[:, :2] < 0).any()
        or (data[:, :2] >= n_items).any()
        or (data[:, :2] != np.round(data[:, :2])).any()
        or (data[:, 0] == data[:, 1]).any()
    ):
        raise ValueError("every judgement compares two different items in range(n_items)")
    if data.size and not np.isin(data[:, 2], (0.0, 0.5, 1.0)).all():
        raise ValueError("a judgement's score is 0, 0.5 or 1")
    return data


def win_matrix(judgements: Sequence[Judgement], n_items: int) -> np.ndarray:
    """``W[i, j]``: wins of ``i`` over ``j``, ties counting half to each."""
    data = _check(judgements, n_items)
    wins = np.zeros((n_items, n_items))
    i, j, s = data[:, 0].astype(int), data[:, 1].astype(int), data[:, 2]
    np.add.at(wins, (i, j), s)
    np.add.at(wins, (j, i), 1.0 - s)
    return wins


def fit_wins(
    wins: np.ndarray, *, prior: float = 0.5, tol: float = 1e-10, max_iter: int = 20_000
) -> np.ndarray:
    """Centred log-strengths from win matrices ``(..., k, k)`` (a batch is fitted at once).

    ``prior`` adds that many virtual ties to every pair: it keeps strengths finite when an item won or
    lost everything (common in bootstrap replicates of small campaigns) and ties together items never
    compared. With ``prior=0`` the fit is the maximum-likelihood estimate and needs every item to have
    won and lost at least once within a connected comparison graph.
    """
    wins = np.asarray(wins, dtype=float)
    k = wins.shape[-1]
    off_diagonal = 1.0 - np.eye(k)
    wins = wins * off_diagonal + (prior / 2.0) * off_diagonal
    games = wins + np.swapaxes(wins, -1, -2)
    total_wins = wins.sum(-1)
    if prior == 0 and (total_wins <= 0).any():
        raise ValueError("an item with no win has no finite maximum-likelihood strength: use prior > 0")
    strength = np.ones(wins.shape[:-1])
    for _ in range(max_iter):
        pair_sum = strength[..., :, None] + strength[..., None, :]
        denominator = (games / pair_sum).sum(-1)
        updated = np.where(denominator > 0, total_wins / np.where(denominator > 0, denominator, 1), strength)
        updated /= np.exp(np.log(updated).mean(-1, keepdims=True))
        change = np.abs(np.log(updated) - np.log(strength)).max()
        strength = updated
        if change < tol:
            break
    theta = np.log(strength)
    return theta - theta.mean(-1, keepdims=True)


def bradley_terry(judgements: Sequence[Judgement], *, n_items: int, prior: float = 0.5) -> np.ndarray:
    """Centred log-strengths ``theta`` of ``n_items`` items from judgements ``(i, j, score_i)``."""
    return fit_wins(win_matrix(judgements, n_items), prior=prior)


def win_probability(theta: np.ndarray) -> np.ndarray:
    """``P[i, j]``: the fitted probability that ``i`` beats ``j``."""
    theta = np.asarray(theta, dtype=float)
    return 1.0 / (1.0 + np.exp(theta[None, :] - theta[:, None]))


@dataclass
class BootstrapFit:
    """Point estimates, percentile intervals and the replicates (for intervals of differences)."""

    theta: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    replicates: np.ndarray = field(repr=False)
    level: float = 0.95

    def difference(self, i: int, j: int) -> tuple[float, float, float]:
        """``theta_i - theta_j`` with its percentile interval; ``i`` is significantly stronger than
        ``j`` at this level when the lower bound is above 0."""
        diffs = self.replicates[:, i] - self.replicates[:, j]
        alpha = (1.0 - self.level) / 2.0
        low, high = np.quantile(diffs, [alpha, 1.0 - alpha])
        return float(self.theta[i] - self.theta[j]), float(low), float(high)


def _resample_weights(rng: np.random.Generator, n_units: int, n_boot: int) -> np.ndarray:
    """How often each unit is drawn in each replicate: ``(n_boot, n_units)``."""
    return rng.multinomial(n_units, np.full(n_units, 1.0 / n_units), size=n_boot).astype(float)


def _unit_wins(
    data: np.ndarray, n_items: int, clusters: Sequence | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Win matrices per resampling unit: one per cluster, or one per distinct judgement kind
    (iid resampling of n judgements is a multinomial over their distinct kinds, weighted by count)."""
    if clusters is None:
        kinds, counts = np.unique(data, axis=0, return_counts=True)
        units = np.zeros((len(kinds), n_items, n_items))
        for index, (i, j, s) in enumerate(kinds):
            units[index, int(i), int(j)] += s
            units[index, int(j), int(i)] += 1.0 - s
        return units, counts
    labels, inverse = np.unique(np.asarray(clusters), return_inverse=True)
    units = np.zeros((len(labels), n_items, n_items))
    i, j, s = data[:, 0].astype(int), data[:, 1].astype(int), data[:, 2]
    np.add.at(units, (inverse, i, j), s)
    np.add.at(units, (inverse, j, i), 1.0 - s)
    return units, None


def bootstrap_bradley_terry(
    judgements: Sequence[Judgement],
    *,
    n_items: int,
    clusters: Sequence | None = None,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    prior: float = 0.5,
) -> BootstrapFit:
    """Fit, and resample judgements (or whole ``clusters``, e.g. prompts) ``n_boot`` times with a seeded
    generator; the interval of each ``theta`` is the central ``level`` share of its replicates."""
    data = _check(judgements, n_items)
    if len(data) == 0:
        raise ValueError("no judgements to fit")
    if clusters is not None and len(clusters) != len(data):
        raise ValueError("one cluster label per judgement")
    rng = np.random.default_rng(seed)
    units, counts = _unit_wins(data, n_items, clusters)
    if counts is None:
        weights = _resample_weights(rng, len(units), n_boot)
    else:
        weights = rng.multinomial(int(counts.sum()), counts / counts.sum(), size=n_boot).astype(float)
    replicates = fit_wins(np.einsum("bu,uij->bij", weights, units), prior=prior)
    theta = fit_wins(win_matrix(judgements, n_items), prior=prior)
    alpha = (1.0 - level) / 2.0
    lower, upper = np.quantile(replicates, [alpha, 1.0 - alpha], axis=0)
    return BootstrapFit(theta=theta, lower=lower, upper=upper, replicates=replicates, level=level)


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact binomial p-value of ``wins`` against ``losses`` under "equally good" (ties left
    out). A check the percentile bootstrap needs on small samples: 3 wins out of 3 resample to 3 out of 3
    every time, a zero-width interval, yet p = 0.25.

    >>> round(sign_test(3, 0), 3), round(sign_test(9, 1), 4)
    (0.25, 0.0215)
    """
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2.0**n
    return min(1.0, 2.0 * tail)


def bootstrap_mean(
    values: Sequence[float],
    *,
    clusters: Sequence | None = None,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Mean of ``values`` (e.g. one version's per-judgement score, ties 0.5: its win rate) and a
    percentile bootstrap interval, resampling ``clusters`` when given."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        raise ValueError("no values")
    rng = np.random.default_rng(seed)
    if clusters is None:
        sums, sizes = values, np.ones_like(values)
    else:
        labels, inverse = np.unique(np.asarray(clusters), return_inverse=True)
        sums = np.bincount(inverse, weights=values, minlength=len(labels))
        sizes = np.bincount(inverse, minlength=len(labels)).astype(float)
    weights = _resample_weights(rng, len(sums), n_boot)
    means = (weights @ sums) / (weights @ sizes)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(values.mean()), float(low), float(high)


def paired_scores(baseline: Sequence[float], candidate: Sequence[float], *, tie: float = 1e-6) -> dict:
    """Two versions scored on the same prompts (e.g. a critic's mean token reward of each answer): both
    means, the candidate's wins, losses and ties prompt by prompt (within ``tie`` counts as a tie), and the
    sign test's two-sided p-value of wins against losses.

    >>> paired_scores([0.1, 0.2, 0.0], [0.3, 0.2, -0.1])
    {'n': 3, 'baseline_mean': 0.1, 'candidate_mean': 0.133333, 'wins': 1, 'losses': 1, 'ties': 1, 'p_value': 1.0}
    """
    if len(baseline) != len(candidate):
        raise ValueError("both versions must be scored on the same prompts")
    if not baseline:
        raise ValueError("no scores")
    differences = [c - b for b, c in zip(baseline, candidate, strict=True)]
    wins = sum(d > tie for d in differences)
    losses = sum(d < -tie for d in differences)
    return {
        "n": len(differences),
        "baseline_mean": round(float(np.mean(baseline)), 6),
        "candidate_mean": round(float(np.mean(candidate)), 6),
        "wins": wins,
        "losses": losses,
        "ties": len(differences) - wins - losses,
        "p_value": round(sign_test(wins, losses), 6),
    }
