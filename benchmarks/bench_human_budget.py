"""Human budget: annotations needed to halve the criticised behaviour, people-only vs critic-driven, with controls.

Task, stand-in for people (the programmatic news critic) and PPO settings are those of
``bench_sample_efficiency.py`` (benchmark (b)): one-sentence summaries of synthetic news items;
"behaviour" = the share of held-out summaries with an unsupported detail; token-level PPO at the token
mode's chosen (lr, λ) from ``benchmarks/results/sample_efficiency.json`` when present.

PROTOCOL (issue 27; fixed before the run, stored in the result file under "protocol"; change it only with
the reason in docs/benchmarks.md)

Arms, each a fresh zero LoRA on the base model, batches of 8 on-policy samples per update:
  annotated     people annotate every update's 8 samples (8 annotations per update).
  critic        people annotate A base-model summaries once; a span critic (text2grad.critic, the studio's
                defaults, max(3 epochs, 30 steps)) learns from them and scores every later sample.
  untrained     control: the same A annotations, the same critic with its head started at their label
                frequencies (set_prior_bias) and *no* training step: what the prior alone does.
  label-freq    control: P(label | token id) counted from the same A annotations (Laplace-smoothed to the
                label frequencies): a context-blind critic that cannot tell a copied number from an
                invented one.
  length-matched baseline (no training): at every evaluation, the base model's own held-out summary of
                each item cut to the length (tokens) of the policy's summary of that item, then judged:
                the behaviour rate that shorter outputs alone would give.
Budgets A: 4, 8, 16, 32 (fixed in advance). The critic arm runs a seed's budgets smallest first and stops
  at the first that halves the behaviour; the two controls run at that deciding budget (32 when none did).
Seeds: 0-9 (10), the same training prompts per (seed, update) in every arm. Evaluation: 128 held-out items
  (item seed 2, disjoint from the 400 training items), one sample each at temperature 0.8, the same
  sampling seed for every run and evaluation.
Stopping rule: evaluate after every 2 updates, at most 12 updates; a run stops at its first evaluation
  that COUNTS as a halving:
    behaviour rate <= base rate / 2, and
    fact retention (name and number of the item) >= the base model's, and
    behaviour rate <= the length-matched baseline's rate / 2 (shorter outputs cannot fake it).
Measure per seed: annotations to halve. Annotated arm: the interpolated crossing update x 8 (not reached:
  a lower bound of (12 + 2) x 8 = 112). Critic arm: the smallest budget that halves (a miss = infinite).
  Ratio = critic / annotated.
Thresholds: the goal (critic <= half the annotated arm's annotations) is MET only if
  (1) the median ratio over the 10 seeds is <= 0.5, and
  (2) on the seeds where the critic halved, each control at the same budget halved on fewer than half of
      them (else the saving is not the critic's learning).
  Reported: every seed, the median, a distribution-free order-statistic interval for the median (its
  exact coverage printed) and a percentile bootstrap interval (2,000 resamples of seeds).
Partial runs: results are saved after every run and a rerun resumes per seed; a report over fewer than
  the 10 seeds says PARTIAL and is not the protocol's result.

    .venv/bin/python benchmarks/bench_human_budget.py --quick            # smoke: 1 seed, budget 4, 2 updates
    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python benchmarks/bench_human_budget.py --jobs 2   # the protocol
    .venv/bin/python benchmarks/bench_human_budget.py --report           # the tables from the result file
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import multiprocessing as mp
import os
import random
import statistics
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import bench_sample_efficiency as se  # noqa: E402

PROTOCOL_VERSION = 2  # 1: 5 seeds, 64 items, budgets 8/16/32, no controls (results/human_budget.json)
FULL = {
    **se.FULL,
    "n_eval": 128,
    "seeds": list(range(10)),
    "budgets": [4, 8, 16, 32],
    # A critic trains for ``critic_epochs`` or ``critic_min_steps`` minibatch steps, whichever is more:
    # 3 epochs of a 4-output budget are 3 steps, which leave the head where it started.
    "critic_epochs": 3,
    "critic_min_steps": 30,
    "controls": ["untrained", "label-freq"],
    "goal_ratio": 0.5,
    "bootstrap": 2000,
}
QUICK = {**se.QUICK, "budgets": [4], "critic_epochs": 1, "critic_min_steps": 2, "controls": ["untrained", "label-freq"],
         "goal_ratio": 0.5, "bootstrap": 200}  # fmt: skip
CRITIC_ARMS = ("critic", "untrained", "label-freq")


# -- the counting rule -------------------------------------------------------------------------------------
def length_matched_rate(base: dict, lengths: list[int]) -> float:
    """The behaviour rate of the base model's held-out summaries, each cut to ``lengths[i]`` tokens.

    ``base["prefix_bad"][i][k]`` is 1 when the base summary of item i cut to k + 1 tokens already has an
    unsupported detail (a summary cut to 0 tokens has none; one longer than the base's is the base's).

    >>> length_matched_rate({"prefix_bad": [[0, 1, 1], [0, 0]]}, [2, 0])
    0.5
    """
    bad = 0
    for prefix, n in zip(base["prefix_bad"], lengths, strict=True):
        if n > 0 and prefix:
            bad += prefix[min(n, len(prefix)) - 1]
    return bad / len(lengths)


def counts(base: dict, result: dict, *, length_rule: bool = True) -> bool:
    """Whether an evaluation counts as halving the behaviour (the protocol's three conditions)."""
    rate = result["behaviour_rate"]
    if rate > base["behaviour_rate"] / 2 or result["fact_retention"] < base["fact_retention"]:
        return False
    return not length_rule or rate <= length_matched_rate(base, result["lengths"]) / 2


def crossing(base: dict, run: dict, *, length_rule: bool = True) -> dict | None:
    """The first counting evaluation of a run, with the crossing interpolated from the evaluation before."""
    target = base["behaviour_rate"] / 2
    prev_u, prev_r = 0, base["behaviour_rate"]
    for e in run["evals"]:
        if counts(base, e, length_rule=length_rule):
            u, r = e["update"], e["behaviour_rate"]
            frac = (prev_r - target) / (prev_r - r) if prev_r > target and prev_r > r else 1.0
            return {"update": u, "interp": prev_u + frac * (u - prev_u), "rate": r, "length": e["mean_length"],
                    "facts": e["fact_retention"], "kl": e["kl"],
                    "length_matched": length_matched_rate(base, e["lengths"])}  # fmt: skip
        prev_u, prev_r = e["update"], e["behaviour_rate"]
    return None


# -- model work (worker processes) ------------------------------------------------------------------------
def base_job(cfg: dict) -> dict:
    """The update-0 evaluation every run starts from, plus the prefix table of the length-matched baseline."""
    se._setup_torch()
    from text2grad.config import TrainingConfig
    from text2grad.policy import build_policy

    model, tokenizer = se._load_base()
    policy = build_policy(model, TrainingConfig(seed=0))
    started = time.time()
    result = se.evaluate(policy, tokenizer, cfg["eval_items"], cfg, eval_seed=10_000, keep_rows=True)
    rows = result.pop("rows")
    result["prefix_bad"] = [
        [
            int(se.critique(item, tokenizer.decode(row.response_ids[:k], skip_special_tokens=True))[2]["unsupported"] > 0)
            for k in range(1, len(row.response_ids) + 1)
        ]
        for item, row in zip(cfg["eval_items"], rows, strict=True)
    ]  # fmt: skip
    result["seconds"] = time.time() - started
    return result


def _annotate(policy, tokenizer, cfg: dict, seed: int, budget: int):
    """People (the news critic) annotate ``budget`` base-model summaries: critic examples."""
    from text2grad.critic import CriticExample, token_labels
    from text2grad.rewards import SpanReward, tokenize_response

    labelled_items = random.Random(500 + seed).sample(cfg["train_items"], budget)
    outs = se._sample(policy, tokenizer, labelled_items, cfg, seed=seed * 31 + 7)
    examples = []
    for item, (out,) in zip(labelled_items, outs, strict=True):
        spans, _, _ = se.critique(item, out.text)
        tokenized = tokenize_response(tokenizer, out.text)
        if tokenized.response_ids:
            labels = token_labels(
                tokenized.response_offsets, [SpanReward(s, e, p, w) for s, e, p, w in spans]
            )
            examples.append(CriticExample(out.prompt_ids, tokenized.response_ids, labels))
    return examples


def _scorer(arm: str, examples, cfg: dict, seed: int):
    """``probs(prompts, responses) -> [R, 3] arrays`` for the arm, and what building it recorded."""
    import numpy as np

    from text2grad import critic_metrics as cm
    from text2grad.critic import CriticConfig, build_critic, predict_token_probs, set_prior_bias, train_critic

    if arm == "label-freq":
        table = cm.token_prior_fit(
            [e.response_ids for e in examples], [np.asarray(e.labels) for e in examples]
        )
        return (lambda prompts, responses: cm.token_prior_probs(table, responses)), {
            "prior": table["prior"].tolist()
        }
    critic_base, _ = se._load_base()
    per_epoch = math.ceil(len(examples) / CriticConfig().batch_size)
    epochs = max(cfg["critic_epochs"], math.ceil(cfg["critic_min_steps"] / per_epoch))
    critic_config = CriticConfig(epochs=epochs, seed=seed)
    critic = build_critic(critic_base, critic_config)
    if arm == "untrained":
        info = {"prior": set_prior_bias(critic, examples), "losses": []}
    else:
        info = {"losses": train_critic(critic, examples, critic_config)["losses"]}
    return functools.partial(predict_token_probs, critic), info


def critic_run(job: dict) -> dict:
    """People annotate ``budget`` base-model summaries; the arm's critic built from them drives PPO."""
    se._setup_torch()
    import torch

    from text2grad.config import TrainingConfig
    from text2grad.critic import token_rewards_from_probs
    from text2grad.engine import Sample, make_kl_controller, make_optimizer, ppo_update
    from text2grad.policy import build_policy
    from text2grad.rewards import RewardScheme, tokenize_response

    cfg, seed = job["cfg"], job["seed"]
    started = time.time()
    model, tokenizer = se._load_base()
    config = TrainingConfig(mode="token", learning_rate=job["lr"], batch_size=cfg["batch"],
                            minibatch_size=min(4, cfg["batch"]), ppo_epochs=cfg["ppo_epochs"], lam=job["lam"], seed=seed)  # fmt: skip
    policy = build_policy(model, config)  # a fresh zero LoRA: samples are the base model's
    examples = _annotate(policy, tokenizer, cfg, seed, job["budget"])
    probs_of, info = _scorer(job["arm"], examples, cfg, seed)
    critic_s = time.time() - started
    scheme = RewardScheme(good=0.5, poor=-1.0)
    optimizer, kl_ctl = make_optimizer(policy, config), make_kl_controller(config)
    generator = torch.Generator().manual_seed(seed)
    prompt_rng = random.Random(1000 + seed)  # the same training prompts as the annotated arm
    history = []
    for update in range(1, cfg["updates"] + 1):
        batch_items = prompt_rng.sample(cfg["train_items"], cfg["batch"])
        outs = se._sample(policy, tokenizer, batch_items, cfg, seed=seed * 100_003 + update)
        rows = [(o, tokenize_response(tokenizer, o.text)) for (o,) in outs]
        rows = [(o, t) for o, t in rows if t.response_ids]
        probs = probs_of([o.prompt_ids for o, _ in rows], [t.response_ids for _, t in rows])
        samples = [
            Sample(o.prompt_ids, t.response_ids, token_rewards_from_probs(p, scheme),
                   behaviour_logprobs=o.logprobs if t.response_ids == o.response_ids else None)
            for (o, t), p in zip(rows, probs, strict=True)
        ]  # fmt: skip
        if samples:
            ppo_update(policy, samples, config, kl_ctl, optimizer=optimizer, generator=generator)
        if update % cfg["eval_every"] == 0 or update == cfg["updates"]:
            result = se.evaluate(policy, tokenizer, cfg["eval_items"], cfg, eval_seed=10_000)
            result["update"] = update
            history.append(result)
            print(f"[{job['key']}] update {update}: behaviour {result['behaviour_rate']:.3f} kl {result['kl']:.2f} "
                  f"len {result['mean_length']:.1f} ({time.time() - started:.0f}s)", flush=True)  # fmt: skip
            if job["stop_rule"](result):
                break
    return {"key": job["key"], "arm": job["arm"], "budget": job["budget"], "seed": seed, "lr": job["lr"],
            "evals": history, "critic": info, "critic_s": critic_s, "seconds": time.time() - started}  # fmt: skip


def _dispatch(job: dict) -> dict:
    """One run in a fresh worker process; ``cpu_s`` is that process's CPU time (the load-free cost)."""
    result = (
        critic_run(job)
        if job["arm"] in CRITIC_ARMS
        else {**se.run_job(job), "arm": "annotated", "budget": None}
    )
    return {**result, "cpu_s": time.process_time(), "loadavg_end": os.getloadavg()}


def chosen_setting() -> tuple[float, float, str]:
    path = REPO / "benchmarks" / "results" / "sample_efficiency.json"
    if path.exists():
        data = json.loads(path.read_text())
        if "chosen" in data and "token" in data["chosen"]:
            lr, lam = data["chosen"]["token"]
            return float(lr), float(lam), f"benchmark (b)'s chosen token setting ({path.name})"
    return 1e-3, 0.95, "default (no benchmark (b) results found)"


# -- scheduling: per seed, annotated + the critic's budgets smallest first, then the controls --------------
def deciding_budget(data: dict, seed: int, budgets: list[int]) -> tuple[int | None, bool]:
    """(budget, decided): the seed's smallest critic budget that halves; the largest when none did; None
    with decided False while the critic's chain is unfinished."""
    for budget in sorted(budgets):
        run = data["runs"].get(f"critic/budget={budget}/seed={seed}")
        if run is None:
            return None, False
        if crossing(data["base"], run) is not None:
            return budget, True
    return max(budgets), True


def seed_jobs(data: dict, seed: int, cfg: dict, busy: set[str]) -> list[dict]:
    """The seed's runs that can start now (not done, not running, their prerequisites done)."""
    keys = [f"annotated/seed={seed}"]
    budget, decided = deciding_budget(data, seed, cfg["budgets"])
    if not decided:
        nxt = next(b for b in sorted(cfg["budgets"]) if f"critic/budget={b}/seed={seed}" not in data["runs"])
        if not any(k.startswith("critic/") and k.endswith(f"/seed={seed}") for k in busy):
            keys.append(f"critic/budget={nxt}/seed={seed}")
    else:
        keys += [f"{arm}/budget={budget}/seed={seed}" for arm in cfg["controls"]]
    return [_job(key) for key in keys if key not in data["runs"] and key not in busy]


def _job(key: str) -> dict:
    parts = dict(p.split("=") for p in key.split("/")[1:])
    return {"key": key, "arm": key.split("/")[0], "seed": int(parts["seed"]),
            "budget": int(parts["budget"]) if "budget" in parts else None}  # fmt: skip


def seed_complete(data: dict, seed: int, cfg: dict) -> bool:
    return not seed_jobs(data, seed, cfg, set()) and deciding_budget(data, seed, cfg["budgets"])[1]


def _save(data: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, out)


def run_protocol(data: dict, cfg: dict, out: Path, n_jobs: int) -> None:
    """Run every missing job of the protocol, ``n_jobs`` single-threaded processes, lowest seed first."""
    eval_items = se.make_items(cfg["n_eval"], seed=2)
    train_items = se.make_items(cfg["n_train"], seed=1, exclude={i["text"] for i in eval_items})
    job_cfg = {**cfg, "eval_items": eval_items, "train_items": train_items}
    ctx = mp.get_context("spawn")
    if "base" not in data:  # first: every run's stopping rule needs it
        with ctx.Pool(1) as pool:
            data["base"] = pool.apply(base_job, (job_cfg,))
        _save(data, out)
    stop_rule = functools.partial(counts, data["base"])
    common = {"lr": data["lr"], "lam": data["lam"], "cfg": job_cfg, "stop_rule": stop_rule,
              "phase": "main", "mode": "token"}  # fmt: skip
    with ProcessPoolExecutor(n_jobs, mp_context=ctx, max_tasks_per_child=1) as pool:
        running: dict = {}

        def fill() -> None:
            for seed in cfg["seeds"]:
                for job in seed_jobs(data, seed, cfg, {j["key"] for j in running.values()}):
                    if len(running) >= n_jobs:
                        return
                    running[pool.submit(_dispatch, {**job, **common})] = job

        fill()
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                running.pop(future)
                result = future.result()
                data["runs"][result["key"]] = result
                _save(data, out)
                print(
                    f"done {result['key']} ({result['seconds']:.0f} s, load {os.getloadavg()[0]:.1f})",
                    flush=True,
                )
            fill()


# -- report ------------------------------------------------------------------------------------------------
def order_statistic_interval(values: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """Distribution-free interval for the median: (x_(k), x_(n+1-k)) with the largest k whose coverage
    1 - 2 P(Binomial(n, 1/2) < k) is >= ``level`` (k = 1 when none is: the range, with its coverage).

    >>> order_statistic_interval([5, 1, 4, 2, 3, 9, 7, 8, 6, 10])
    (2, 9, 0.9785)
    """
    xs, n = sorted(values), len(values)
    below = [math.comb(n, i) / 2**n for i in range(n + 1)]
    best = 1
    for k in range(1, n // 2 + 1):
        if 1 - 2 * sum(below[:k]) >= level:
            best = k
    return xs[best - 1], xs[n - best], round(1 - 2 * sum(below[:best]), 4)


def bootstrap_interval(values: list[float], resamples: int, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap (2.5%, 97.5%) of the median over seeds."""
    rng = random.Random(seed)
    medians = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(resamples))
    return medians[int(0.025 * resamples)], medians[min(resamples - 1, int(0.975 * resamples))]


def seed_row(data: dict, seed: int) -> dict:
    """One seed's figures: annotations to halve per arm, the controls at the deciding budget."""
    cfg, base = data["config"], data["base"]
    annotated = data["runs"][f"annotated/seed={seed}"]
    cross = crossing(base, annotated)
    people = (cross["interp"] if cross else cfg["updates"] + cfg["eval_every"]) * cfg["batch"]
    budget, _ = deciding_budget(data, seed, cfg["budgets"])
    critic_cross = crossing(base, data["runs"][f"critic/budget={budget}/seed={seed}"])
    controls = {
        arm: crossing(base, data["runs"][f"{arm}/budget={budget}/seed={seed}"]) for arm in cfg["controls"]
    }
    return {"seed": seed, "people": people, "people_cross": cross, "budget": budget if critic_cross else None,
            "critic_cross": critic_cross, "ratio": budget / people if critic_cross else math.inf,
            "control_budget": budget, "controls": controls,
            "no_length_rule": {"annotated": crossing(base, annotated, length_rule=False),
                               "critic": crossing(base, data["runs"][f"critic/budget={budget}/seed={seed}"], length_rule=False)}}  # fmt: skip


def _cell(cross: dict | None) -> str:
    if cross is None:
        return "no"
    return f"update {cross['update']} ({cross['rate']:.2f}; len {cross['length']:.1f}; lm {cross['length_matched']:.2f}; facts {cross['facts']:.2f}; KL {cross['kl']:.1f})"


def summarise(data: dict) -> dict:
    cfg = data["config"]
    seeds = [s for s in cfg["seeds"] if seed_complete(data, s, cfg)]
    rows = [seed_row(data, s) for s in seeds]
    ratios = [r["ratio"] for r in rows]
    summary = {
        "seeds_complete": seeds,
        "seeds_planned": cfg["seeds"],
        "partial": len(seeds) < len(cfg["seeds"]),
    }
    if not rows:
        return summary
    lo, hi, coverage = order_statistic_interval(ratios)
    halved = [r for r in rows if r["critic_cross"]]
    control_hits = {arm: sum(1 for r in halved if r["controls"][arm]) for arm in cfg["controls"]}
    summary.update(
        rows=rows, median_ratio=statistics.median(ratios), order_statistic=[lo, hi, coverage],
        bootstrap=list(bootstrap_interval(ratios, cfg["bootstrap"])), critic_halved=len(halved),
        control_halved=control_hits,
        goal_met=(statistics.median(ratios) <= cfg["goal_ratio"]
                  and all(2 * hits < len(halved) for hits in control_hits.values()) and bool(halved)),
    )  # fmt: skip
    return summary


def report(data: dict) -> dict:
    if data.get("protocol_version") != PROTOCOL_VERSION:
        raise SystemExit("this file holds an earlier protocol's run; its tables are in docs/benchmarks.md")
    base, cfg = data["base"], data["config"]
    print(f"base behaviour rate {base['behaviour_rate']:.3f} on {cfg['n_eval']} items (length {base['mean_length']:.1f}, "
          f"fact retention {base['fact_retention']:.2f}); target {base['behaviour_rate'] / 2:.3f}; "
          f"lr {data['lr']:g} λ {data['lam']:g} ({data['lr_source']})")  # fmt: skip
    summary = summarise(data)
    print("\n| seed | annotated: annotations to halve (crossing) | critic: smallest budget (crossing) | ratio "
          "| untrained at that budget | label-freq at that budget |\n|---:|---|---|---:|---|---|")  # fmt: skip
    for r in summary.get("rows", []):
        people = f"{r['people']:.1f}" + ("" if r["people_cross"] else " (not reached: lower bound)")
        critic = f"{r['budget']}: {_cell(r['critic_cross'])}" if r["budget"] else f"none of {cfg['budgets']}"
        ctrl = [f"{r['control_budget']}: {_cell(r['controls'][arm])}" for arm in cfg["controls"]]
        print(
            f"| {r['seed']} | {people}: {_cell(r['people_cross'])} | {critic} | {r['ratio']:.2f} | {' | '.join(ctrl)} |"
        )
    if not summary.get("rows"):
        print(f"\nPARTIAL: 0 of {len(cfg['seeds'])} seeds complete; no ratio yet (finished runs below)")
    else:
        lo, hi, cov = summary["order_statistic"]
        tag = (f"PARTIAL: {len(summary['seeds_complete'])} of {len(cfg['seeds'])} seeds, not the protocol's result"
               if summary["partial"] else "all seeds")  # fmt: skip
        print(f"\n{tag}. median ratio {summary['median_ratio']:.2f}; order-statistic interval [{lo:.2f}, {hi:.2f}] "
              f"(coverage {cov:.3f}); bootstrap 95% [{summary['bootstrap'][0]:.2f}, {summary['bootstrap'][1]:.2f}]; "
              f"critic halved on {summary['critic_halved']} seed(s); controls halved on {summary['control_halved']} "
              f"of those; goal (≤ {cfg['goal_ratio']} and controls < half) "
              f"{'met' if summary['goal_met'] else 'not met'}{' so far' if summary['partial'] else ''}")  # fmt: skip
    for run in sorted(data["runs"].values(), key=lambda r: (r["seed"], r["arm"], r.get("budget") or 0)):
        rates = " / ".join(f"{e['behaviour_rate']:.2f}@{e['update']}" for e in run["evals"])
        last = run["evals"][-1]
        print(f"  {run['key']}: {rates} (last: len {last['mean_length']:.1f}, lm {length_matched_rate(base, last['lengths']):.2f}, "
              f"facts {last['fact_retention']:.2f}, KL {last['kl']:.2f}; {run['seconds']:.0f} s)")  # fmt: skip
    return summary


def protocol_record(cfg: dict) -> dict:
    """What the result file records of the protocol: the docstring's text and the configuration."""
    text = __doc__.split("PROTOCOL")[1].split("    .venv")[0]
    return {"text": "PROTOCOL" + text.rstrip(), **{k: v for k, v in cfg.items() if not k.startswith("sweep")}}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smoke configuration (its own result file)")
    parser.add_argument("--jobs", type=int, default=2, help="parallel single-threaded worker processes")
    parser.add_argument(
        "--seeds", type=int, nargs="*", help="run only these of the protocol's seeds (resume)"
    )
    parser.add_argument(
        "--out", type=Path, default=REPO / "benchmarks" / "results" / "human_budget_protocol.json"
    )
    parser.add_argument("--report", action="store_true", help="print the report of the result file only")
    args = parser.parse_args()
    cfg = dict(QUICK if args.quick else FULL)
    out = args.out.with_name("human_budget_protocol_quick.json") if args.quick else args.out
    data = json.loads(out.read_text()) if out.exists() else {}
    if not args.report:
        if data and data.get("config") != cfg:
            raise SystemExit(
                f"{out} holds another configuration's runs; the protocol changes only with a reason"
            )
        lr, lam, source = chosen_setting()
        data.update(protocol_version=PROTOCOL_VERSION, protocol=protocol_record(cfg), config=cfg, lr=lr, lam=lam,
                    lr_source=source)  # fmt: skip
        data.setdefault("runs", {})
        data.setdefault("sessions", []).append({"started": time.time(), "loadavg_before": os.getloadavg()})
        started = time.time()
        run_protocol(data, {**cfg, "seeds": args.seeds or cfg["seeds"]}, out, args.jobs)
        data["sessions"][-1].update(wall_s=time.time() - started, loadavg_after=os.getloadavg())
        _save(data, out)
    data["summary"] = report(data)
    if not args.report:
        _save(data, out)


if __name__ == "__main__":
    main()
