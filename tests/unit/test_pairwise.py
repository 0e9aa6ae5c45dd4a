"""Bradley–Terry fit and bootstrap intervals: against choix, a hand check, and synthetic strengths."""

from __future__ import annotations

import numpy as np
import pytest

from text2grad import pairwise


def _simulate(theta, per_pair, rng):
    judgements = []
    k = len(theta)
    for i in range(k):
        for j in range(i + 1, k):
            p = 1.0 / (1.0 + np.exp(theta[j] - theta[i]))
            for win in rng.random(per_pair) < p:
                judgements.append((i, j, 1.0 if win else 0.0))
    return judgements


def test_hand_check_two_items():
    # 3 wins, 1 loss and 2 ties: 4 wins to 2, so exp(theta_0 - theta_1) = 2.
    judgements = [(0, 1, 1.0)] * 3 + [(0, 1, 0.0)] + [(1, 0, 0.5)] * 2
    theta = pairwise.bradley_terry(judgements, n_items=2, prior=0.0)
    assert theta[0] - theta[1] == pytest.approx(np.log(2.0), abs=1e-8)
    assert theta.sum() == pytest.approx(0.0, abs=1e-12)


def test_matches_choix_with_ties_as_half_wins():
    choix = pytest.importorskip("choix")
    rng = np.random.default_rng(3)
    truth = np.array([0.8, 0.1, -0.3, -0.6])
    judgements = _simulate(truth, 40, rng)
    judgements += [(0, 2, 0.5)] * 5 + [(1, 3, 0.5)] * 7  # ties
    ours = pairwise.bradley_terry(judgements, n_items=4, prior=0.0)
    # choix takes (winner, loser) pairs; doubling every count leaves the estimate unchanged and lets a tie
    # be one win each way.
    pairs = []
    for i, j, s in judgements:
        if s == 0.5:
            pairs += [(i, j), (j, i)]
        else:
            pairs += [(i, j) if s == 1.0 else (j, i)] * 2
    reference = choix.mm_pairwise(4, pairs, alpha=0.0, tol=1e-12, max_iter=100_000)
    reference = reference - reference.mean()
    np.testing.assert_allclose(ours, reference, atol=1e-6)


def test_prior_keeps_a_clean_sweep_finite_and_prior_zero_refuses_it():
    sweep = [(0, 1, 1.0)] * 10
    theta = pairwise.bradley_terry(sweep, n_items=2)
    assert np.isfinite(theta).all() and theta[0] > theta[1]
    with pytest.raises(ValueError, match="no win"):
        pairwise.bradley_terry(sweep, n_items=2, prior=0.0)


@pytest.mark.parametrize(
    "bad", [[(0, 0, 1.0)], [(0, 2, 1.0)], [(0, 1, 0.3)], [(-1, 1, 1.0)], [(0.5, 1, 1.0)]]
)
def test_bad_judgements_are_refused(bad):
    with pytest.raises(ValueError):
        pairwise.bradley_terry(bad, n_items=2)


def test_order_recovered_and_intervals_cover_truth_near_nominal():
    """Measured coverage over 120 synthetic campaigns (4 items, 60 judgements per pair, 300 replicates)."""
    truth = np.array([0.9, 0.3, -0.2, -1.0])
    truth = truth - truth.mean()
    rng = np.random.default_rng(2024)
    covered, recovered, trials = 0, 0, 120
    for trial in range(trials):
        judgements = _simulate(truth, 60, rng)
        fit = pairwise.bootstrap_bradley_terry(judgements, n_items=4, n_boot=300, seed=trial)
        covered += int(((fit.lower <= truth) & (truth <= fit.upper)).sum())
        recovered += int(list(np.argsort(-fit.theta)) == [0, 1, 2, 3])
    coverage = covered / (trials * 4)
    print(f"coverage of 95% intervals: {coverage:.3f}; order recovered in {recovered}/{trials}")  # noqa: T201
    assert 0.90 <= coverage <= 0.99
    assert recovered >= 0.85 * trials


def test_bootstrap_is_seeded_and_difference_interval_is_decisive_only_with_evidence():
    rng = np.random.default_rng(5)
    strong = _simulate(np.array([1.0, -1.0]), 80, rng)
    a = pairwise.bootstrap_bradley_terry(strong, n_items=2, n_boot=400, seed=7)
    b = pairwise.bootstrap_bradley_terry(strong, n_items=2, n_boot=400, seed=7)
    np.testing.assert_array_equal(a.lower, b.lower)
    _, low, _ = a.difference(0, 1)
    assert low > 0
    even = [(0, 1, 1.0), (0, 1, 0.0)] * 10
    _, low, high = pairwise.bootstrap_bradley_terry(even, n_items=2, n_boot=400).difference(0, 1)
    assert low < 0 < high


def test_cluster_bootstrap_is_wider_when_prompts_drive_the_outcome():
    # Each prompt is decided wholly one way: per-judgement resampling underestimates the uncertainty.
    judgements, clusters = [], []
    for prompt in range(12):
        outcome = 1.0 if prompt < 8 else 0.0
        judgements += [(0, 1, outcome)] * 10
        clusters += [prompt] * 10
    iid = pairwise.bootstrap_bradley_terry(judgements, n_items=2, n_boot=500)
    by_prompt = pairwise.bootstrap_bradley_terry(judgements, n_items=2, n_boot=500, clusters=clusters)
    assert (by_prompt.upper - by_prompt.lower)[0] > 1.5 * (iid.upper - iid.lower)[0]


def test_bootstrap_mean_win_rate():
    values = [1.0] * 30 + [0.0] * 10 + [0.5] * 10
    mean, low, high = pairwise.bootstrap_mean(values, seed=1)
    assert mean == pytest.approx(0.7)
    assert 0.55 < low < 0.7 < high < 0.85


def test_win_probability_is_complementary():
    p = pairwise.win_probability(np.array([0.5, -0.5]))
    assert p[0, 1] == pytest.approx(1 / (1 + np.exp(-1.0)))
    assert p[0, 1] + p[1, 0] == pytest.approx(1.0)


def test_prompt_clustered_intervals_and_the_promotion_rule_keep_their_error_rates():
    """The app's configuration: clusters are prompts (each prompt judges every pair once). Measured:
    coverage of the 95% intervals, and how often the promotion rule (lower end of the difference's
    interval above 0) calls an equally strong version "significantly better" (nominal 2.5%)."""
    truth = np.array([0.6, 0.0, -0.6])
    truth = truth - truth.mean()
    rng = np.random.default_rng(77)
    covered, trials, false_promotions = 0, 200, 0
    for trial in range(trials):
        judgements, clusters = [], []
        for prompt in range(60):
            for i, j, s in _simulate(truth, 1, rng):
                judgements.append((i, j, s))
                clusters.append(prompt)
        fit = pairwise.bootstrap_bradley_terry(
            judgements, n_items=3, clusters=clusters, n_boot=300, seed=trial
        )
        covered += int(((fit.lower <= truth) & (truth <= fit.upper)).sum())
        equal = _simulate(np.zeros(2), 60, rng)
        null_fit = pairwise.bootstrap_bradley_terry(
            equal, n_items=2, clusters=list(range(60)), n_boot=300, seed=trial
        )
        false_promotions += null_fit.difference(0, 1)[1] > 0
    coverage = covered / (trials * 3)
    print(f"clustered coverage {coverage:.3f}; false promotions {false_promotions}/{trials}")  # noqa: T201
    assert 0.89 <= coverage <= 0.99
    assert false_promotions <= 0.08 * trials


def test_sign_test_against_a_hand_computation():
    assert pairwise.sign_test(3, 0) == pytest.approx(0.25)
    assert pairwise.sign_test(9, 1) == pytest.approx(2 * 11 / 1024)
    assert pairwise.sign_test(5, 5) == 1.0 and pairwise.sign_test(0, 0) == 1.0
    assert pairwise.sign_test(1, 9) == pairwise.sign_test(9, 1)
