"""Sample efficiency of token-level (TEXT2GRAD) versus scalar PPO from the same start, with a programmatic critic.

Task: one-sentence summaries of short synthetic news items (a person, a place, a number, a date). The
critic marks every *unsupported detail* of a summary as a poor span (a number that is not in the item, or a
capitalised word the item does not contain: the base SmolLM2-135M-Instruct invents years, places, titles
and people in about half of its summaries) and every kept key fact (the person's name, the item's number)
as a good span of weight 0.5. Token mode gets those span rewards on the tokens they cover; scalar mode gets
their sum on the last token (``TrainingConfig.mode``): the same information, placed differently.

Each run is (mode, learning rate, seed): a fresh LoRA policy on the base, then ``updates`` PPO updates of
``batch`` on-policy samples each (one ``ppo_update`` per batch, persistent optimiser and KL controller),
and an evaluation every ``eval_every`` updates (see ``FULL``) on a fixed held-out set: rate of summaries with an
unsupported detail (the criticised behaviour), mean critic reward, response length, fact retention, and
the KL to the reference (mean per-sequence sampled log-ratio, adapter on vs off, on the eval samples).
Phase 1 sweeps learning rates (seed 0), phase 2 runs the other seeds at each mode's best rate
(smallest mean behaviour rate over the evaluations, among rates whose final KL stays under ``--kl-max``).
Jobs run in ``--jobs`` single-threaded worker processes; results are written to ``--out`` after every
job and finished jobs are skipped on a rerun, so the benchmark resumes where it stopped.

    .venv/bin/python benchmarks/bench_sample_efficiency.py --quick --out /tmp/se_quick.json
    .venv/bin/python benchmarks/bench_sample_efficiency.py            # full configuration
    .venv/bin/python benchmarks/bench_sample_efficiency.py --report   # plot and tables from --out only
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import re
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PROMPT_PREFIX = "Summarize in one sentence: "
NAMES = [
    "Elena Ruiz", "Samuel Okafor", "Priya Nair", "Lena Hofmann", "Tomas Berg", "Aisha Karim",
    "Marco Bellini", "Hana Sato", "Jonas Weber", "Fatima Diallo", "Oliver Grant", "Mei Chen",
]  # fmt: skip
PLACES = [
    "Millbrook", "Eastport", "Harlow", "Westbury", "Port Ellis", "Altdorf", "Lakeside", "Pine County",
    "Northfield", "Riverside", "Kingsbridge", "Ashford",
]  # fmt: skip
MONTHS = ["March", "April", "May", "June", "July", "September", "October", "November"]
TEMPLATES = [
    "{name}, the mayor of {place}, announced on {date} that the town will build {n} new houses near the old station.",
    "The {place} hospital, led by director {name}, treated {n} patients during the storm on {date}.",
    "On {date}, {name} opened a bakery in {place} that sold {n} loaves of bread in its first week.",
    "Police in {place} said on {date} that {n} bicycles were stolen last month; inspector {name} asked residents to lock them.",
    "{name} from {place} won the regional chess final on {date} after beating {n} opponents.",
    "The {place} library, run by {name}, lent {n} books to schoolchildren in the week before {date}.",
    "Volunteers led by {name} planted {n} trees along the river in {place} on {date}.",
    "On {date}, {name} swam across the lake at {place} in {n} minutes, a new club record.",
]  # fmt: skip

# Capitalised words that are never an invented detail by themselves: sentence starters and function words.
ALLOWED_CAPITALISED = {
    "the", "a", "an", "in", "on", "at", "after", "during", "this", "that", "these", "it", "its", "he",
    "she", "they", "his", "her", "their", "with", "by", "for", "from", "to", "of", "and", "but", "as",
    "over", "about", "more", "than", "new", "mr", "mrs", "ms", "dr", "i", "we", "our", "local",
}  # fmt: skip
WORD_RE = re.compile(r"[A-Za-z][A-Za-z'’\-]*|\d[\d,.]*\d|\d")

FULL = {
    "n_train": 400,
    "n_eval": 64,
    "updates": 12,
    "eval_every": 2,
    "batch": 8,
    "ppo_epochs": 2,
    "max_new_tokens": 32,
    "temperature": 0.8,
    # The 4-update sweep (results/sample_efficiency_4updates.json) put both modes' 2e-3 runs past 8-22
    # nats of KL within 4 updates, and λ 0.5 behind λ 0.95 for both modes; over 12 updates the sweep
    # brackets the surviving rate from below instead.
    "sweep_lrs": [5e-4, 1e-3],
    "sweep_lams": [0.95],
    "sweep_seeds": [0],
    "seeds": [0, 1, 2, 3, 4],
}
QUICK = {
    "n_train": 40,
    "n_eval": 8,
    "updates": 2,
    "eval_every": 1,
    "batch": 4,
    "ppo_epochs": 1,
    "max_new_tokens": 12,
    "temperature": 0.8,
    "sweep_lrs": [1e-3],
    "sweep_lams": [0.95],
    "sweep_seeds": [0],
    "seeds": [0],
}


# -- the task ----------------------------------------------------------------------------------------------
def make_items(n: int, seed: int, exclude: set[str] = frozenset()) -> list[dict]:
    """``n`` distinct synthetic news items (text and facts), none of whose texts is in ``exclude``."""
    rng = random.Random(seed)
    items: list[dict] = []
    seen = set(exclude)
    while len(items) < n:
        facts = {
            "name": rng.choice(NAMES),
            "place": rng.choice(PLACES),
            "n": str(rng.randint(12, 950)),
            "date": f"{rng.randint(1, 28)} {rng.choice(MONTHS)}",
        }
        text = rng.choice(TEMPLATES).format(**facts)
        if text not in seen:
            seen.add(text)
            items.append({"text": text, **facts})
    return items


def messages(item: dict) -> list[dict]:
    return [{"role": "user", "content": PROMPT_PREFIX + item["text"]}]


def critique(item: dict, response: str) -> tuple[list[tuple[int, int, int, float]], list[str], dict]:
    """Spans ``(start, end, polarity, weight)``, their critiques, and per-response facts for one summary."""
    source_words = {w.lower().strip("'’") for w in WORD_RE.findall(item["text"])}
    source_numbers = {w for w in WORD_RE.findall(item["text"]) if w[0].isdigit()}
    spans: list[tuple[int, int, int, float]] = []
    notes: list[str] = []
    for match in WORD_RE.finditer(response):
        word = match.group()
        if word[0].isdigit():
            if word.rstrip(".,") not in source_numbers:
                spans.append((match.start(), match.end(), -1, 1.0))
                notes.append(f"'{word}' is a number the text does not contain: an invented detail.")
        elif word[0].isupper():
            bare = re.sub(r"['’]s$", "", word).lower().strip("'’-")
            if bare not in source_words and bare not in ALLOWED_CAPITALISED:
                spans.append((match.start(), match.end(), -1, 1.0))
                notes.append(f"'{word}' does not appear in the text: an invented name or detail.")
    facts = {}
    for key in ("name", "n"):
        positions = [m.start() for m in re.finditer(re.escape(item[key]), response)]
        facts[key] = bool(positions)
        for start in positions:
            spans.append((start, start + len(item[key]), 1, 0.5))
            notes.append(f"keeps the key fact '{item[key]}'.")
    facts["unsupported"] = sum(1 for s in spans if s[2] < 0)
    return spans, notes, facts


# -- model work (inside worker processes) --------------------------------------------------------------------
def _setup_torch() -> None:
    import torch

    # On a shared 2-core machine, 2 OpenMP threads per process spin-wait against other work (10x slower
    # decoding measured); single-threaded processes, several of them, use the cores better.
    torch.set_num_threads(1)


def _load_base():
    from text2grad.model_store import load

    return load(REPO / "var" / "models" / "base")


def _sample(policy, tokenizer, items: list[dict], cfg: dict, seed: int):
    """One response per item, all in one batch, with the run's sampling settings (training and evaluation)."""
    from text2grad.generation import sample

    return sample(
        policy.model,
        tokenizer,
        [messages(item) for item in items],
        max_new_tokens=cfg["max_new_tokens"],
        temperature=cfg["temperature"],
        top_p=1.0,
        seed=seed,
        batch_size=len(items),
    )


def evaluate(
    policy, tokenizer, items: list[dict], cfg: dict, eval_seed: int, keep_rows: bool = False
) -> dict:
    """Sample one response per held-out item (same seed for every run) and measure the critic and the KL.

    Per item, ``lengths`` (response tokens) and ``bad`` (1 where the summary has an unsupported detail) are
    kept too (a length-matched baseline needs them); ``keep_rows`` also returns the sampled rows."""
    import torch

    from text2grad.policy import pad_batch

    rows = [o[0] for o in _sample(policy, tokenizer, items, cfg, eval_seed)]
    kls: list[float] = []
    scored = [(i, r) for i, r in enumerate(rows) if r.response_ids]
    with torch.no_grad():
        for start in range(0, len(scored), 16):
            chunk = scored[start : start + 16]
            batch = pad_batch(
                [r.prompt_ids for _, r in chunk], [r.response_ids for _, r in chunk], policy.pad_token_id
            )
            with policy.reference():
                ref = policy.score_responses(batch, with_values=False).logprobs
            for row, (_, r) in enumerate(chunk):
                n = len(r.response_ids)
                kls.append(sum(r.logprobs) - float(ref[row, :n].sum()))
    bad, rewards, lengths, kept = 0, [], [], 0
    examples, bad_items = [], []
    for item, r in zip(items, rows, strict=True):
        spans, _, facts = critique(item, r.text)
        bad += facts["unsupported"] > 0
        bad_items.append(int(facts["unsupported"] > 0))
        kept += facts["name"] and facts["n"]
        rewards.append(_sequence_reward(tokenizer, r.text, spans))
        lengths.append(len(r.response_ids))
        if len(examples) < 4:
            examples.append(r.text)
    n = len(items)
    return {
        "behaviour_rate": bad / n,
        "mean_reward": statistics.fmean(rewards),
        "mean_length": statistics.fmean(lengths),
        "fact_retention": kept / n,
        "kl": statistics.fmean(kls) if kls else 0.0,
        "examples": examples,
        "lengths": lengths,
        "bad": bad_items,
        **({"rows": rows} if keep_rows else {}),
    }


def _sequence_reward(tokenizer, text: str, spans) -> float:
    return sum(_token_rewards(tokenizer, text, spans)[1])


def _token_rewards(tokenizer, text: str, spans) -> tuple[list[int], list[float]]:
    from text2grad.rewards import SpanReward, token_rewards_from_offsets, tokenize_response

    tokenized = tokenize_response(tokenizer, text)
    rewards = token_rewards_from_offsets(
        tokenized.response_offsets, [SpanReward(s, e, p, w) for s, e, p, w in spans], text_length=len(text)
    )
    return tokenized.response_ids, rewards


def base_job(cfg: dict) -> dict:
    """The shared update-0 evaluation (the adapter starts at zero, so every run starts from this point)."""
    _setup_torch()
    from text2grad.config import TrainingConfig
    from text2grad.policy import build_policy

    model, tokenizer = _load_base()
    policy = build_policy(model, TrainingConfig(seed=0))
    started = time.time()
    result = evaluate(policy, tokenizer, cfg["eval_items"], cfg, eval_seed=10_000)
    result["seconds"] = time.time() - started
    return {"key": "base", "eval": result}


def run_job(job: dict) -> dict:
    """One (mode, lr, seed) training run with periodic held-out evaluations."""
    _setup_torch()
    import torch

    from text2grad.config import TrainingConfig
    from text2grad.engine import Sample, make_kl_controller, make_optimizer, ppo_update
    from text2grad.policy import build_policy

    cfg = job["cfg"]
    started = time.time()
    model, tokenizer = _load_base()
    config = TrainingConfig(
        mode=job["mode"],
        learning_rate=job["lr"],
        batch_size=cfg["batch"],
        minibatch_size=min(4, cfg["batch"]),
        ppo_epochs=cfg["ppo_epochs"],
        lam=job["lam"],
        seed=job["seed"],
    )
    policy = build_policy(model, config)
    optimizer = make_optimizer(policy, config)
    kl_ctl = make_kl_controller(config)
    generator = torch.Generator().manual_seed(job["seed"])
    # Prompts depend on (seed, update) only, so both modes of one seed see the same training prompts.
    prompt_rng = random.Random(1000 + job["seed"])
    train_items = cfg["train_items"]
    history = []
    updates = []
    for update in range(1, cfg["updates"] + 1):
        t0 = time.time()
        batch_items = prompt_rng.sample(train_items, cfg["batch"])
        outs = _sample(policy, tokenizer, batch_items, cfg, seed=job["seed"] * 100_003 + update)
        samples, bad, seq_rewards = [], 0, []
        for item, (out,) in zip(batch_items, outs, strict=True):
            spans, _, facts = critique(item, out.text)
            bad += facts["unsupported"] > 0
            ids, rewards = _token_rewards(tokenizer, out.text, spans)
            seq_rewards.append(sum(rewards))
            if not ids:
                continue
            # The behaviour logprobs belong to the sampled ids; they pair with these rewards only when the
            # text retokenizes to the same ids (it nearly always does).
            behaviour = out.logprobs if ids == out.response_ids else None
            samples.append(Sample(out.prompt_ids, ids, rewards, behaviour_logprobs=behaviour))
        t1 = time.time()
        metrics = ppo_update(policy, samples, config, kl_ctl, optimizer=optimizer, generator=generator)
        updates.append(
            {
                "update": update,
                "train_behaviour_rate": bad / len(batch_items),
                "train_reward": statistics.fmean(seq_rewards),
                "rollout_kl": metrics["kl"],
                "kl_coef": metrics["kl_coef"],
                "clipfrac": metrics["clipfrac"],
                "sample_s": t1 - t0,
                "update_s": time.time() - t1,
            }
        )
        if update % cfg["eval_every"] == 0 or update == cfg["updates"]:
            result = evaluate(policy, tokenizer, cfg["eval_items"], cfg, eval_seed=10_000)
            result["update"] = update
            history.append(result)
            print(
                f"[{job['key']}] update {update}: behaviour {result['behaviour_rate']:.3f} "
                f"kl {result['kl']:.2f} len {result['mean_length']:.1f} ({time.time() - started:.0f}s)",
                flush=True,
            )
            # A caller that only needs the first crossing (the human-budget benchmark) stops there:
            # ``stop_rule`` (a picklable predicate on the evaluation) or half the base rate.
            if job.get("stop_rule") is not None:
                if job["stop_rule"](result):
                    break
            elif "stop_at_half_of" in job and counts_as_halved(
                job["stop_at_half_of"], result, job["facts_at_least"]
            ):
                break
    return {
        "key": job["key"],
        "phase": job["phase"],
        "mode": job["mode"],
        "lr": job["lr"],
        "lam": job["lam"],
        "seed": job["seed"],
        "evals": history,
        "updates": updates,
        "seconds": time.time() - started,
    }


# -- orchestration ------------------------------------------------------------------------------------------
def _key(mode: str, lr: float, lam: float, seed: int) -> str:
    return f"{mode}/lr={lr:g}/lam={lam:g}/seed={seed}"


def _setting(run: dict) -> tuple[float, float]:
    return run["lr"], run.get("lam", 0.95)


def _save(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def _run_pool(jobs: list[dict], n_procs: int, data: dict, out: Path, fn) -> None:
    if not jobs:
        return
    ctx = mp.get_context("spawn")
    with ctx.Pool(n_procs, maxtasksperchild=1) as pool:
        for result in pool.imap_unordered(fn, jobs):
            if result["key"] == "base":
                data["base"] = result["eval"]
            else:
                data["runs"][result["key"]] = result
            _save(out, data)
            print(f"done {result['key']}", flush=True)


def choose_setting(data: dict, mode: str, kl_max: float) -> list[float]:
    """The (lr, λ) with the smallest mean behaviour rate over its evaluations, among those whose final KL
    stays under kl_max (the same rule for both modes)."""
    scores = {}
    for run in data["runs"].values():
        if run["phase"] != "sweep" or run["mode"] != mode:
            continue
        rates = [e["behaviour_rate"] for e in run["evals"]]
        final_kl = run["evals"][-1]["kl"]
        scores.setdefault(_setting(run), []).append((statistics.fmean(rates), final_kl))
    ok = {
        key: statistics.fmean(a for a, _ in v) for key, v in scores.items() if max(k for _, k in v) < kl_max
    }
    pool = ok or {key: statistics.fmean(a for a, _ in v) for key, v in scores.items()}
    return list(min(pool, key=pool.get))


def counts_as_halved(base_rate: float, result: dict, facts_at_least: float = 0.0) -> bool:
    """An evaluation at or below half the base rate that keeps at least ``facts_at_least`` fact retention
    (0: not asked, so curves without a fact retention, such as seed means, qualify on the rate alone)."""
    kept = not facts_at_least or result["fact_retention"] >= facts_at_least
    return result["behaviour_rate"] <= base_rate / 2 and kept


def updates_to_halve(
    base_rate: float, evals: list[dict], facts_at_least: float = 0.0
) -> tuple[int | None, float | None]:
    """First evaluated update that ``counts_as_halved``, and the linearly interpolated crossing (from the
    evaluation before, unless that one was already below half but lost the facts)."""
    target = base_rate / 2
    prev_u, prev_r = 0, base_rate
    for e in evals:
        if counts_as_halved(base_rate, e, facts_at_least):
            u, r = e["update"], e["behaviour_rate"]
            frac = (prev_r - target) / (prev_r - r) if prev_r > target else 1.0
            return u, prev_u + frac * (u - prev_u)
        prev_u, prev_r = e["update"], e["behaviour_rate"]
    return None, None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="5-minute smoke configuration")
    parser.add_argument(
        "--out", type=Path, default=REPO / "benchmarks" / "results" / "sample_efficiency.json"
    )
    parser.add_argument(
        "--png", type=Path, default=None, help="plot path (default: docs/img/ for a full run)"
    )
    parser.add_argument("--jobs", type=int, default=4, help="parallel single-threaded worker processes")
    parser.add_argument(
        "--kl-max", type=float, default=15.0, help="sweep: reject rates whose final KL exceeds"
    )
    parser.add_argument("--report", action="store_true", help="only plot and summarise --out")
    parser.add_argument(
        "--setting",
        action="append",
        metavar="MODE,LR,LAMBDA",
        help="run the main phase of MODE at this (lr, λ) instead of the swept choice (use another --out)",
    )
    parser.add_argument(
        "--seeds",
        type=lambda text: [int(x) for x in text.split(",")],
        default=None,
        help="comma-separated seeds of the main phase (default 0,1,2,3,4); adding seeds resumes a finished run",
    )
    args = parser.parse_args()

    cfg = dict(QUICK if args.quick else FULL)
    png = args.png or (
        args.out.with_suffix(".png") if args.quick else REPO / "docs" / "img" / "sample_efficiency.png"
    )
    data = json.loads(args.out.read_text()) if args.out.exists() else {}
    if not args.report:
        if args.seeds is not None:
            cfg["seeds"] = args.seeds  # more seeds extend a finished run; they are not another configuration
        stored = data.get("config")
        if stored is not None and {**stored, "seeds": None} != {**cfg, "seeds": None}:
            raise SystemExit(f"{args.out} holds results of another configuration; use another --out")
        data["config"] = cfg
        data.setdefault("runs", {})
        data.setdefault("wall_s", 0.0)
        started = time.time()
        eval_items = make_items(cfg["n_eval"], seed=2)
        train_items = make_items(cfg["n_train"], seed=1, exclude={i["text"] for i in eval_items})
        job_cfg = {**cfg, "eval_items": eval_items, "train_items": train_items}
        data["eval_items"] = [i["text"] for i in eval_items]

        def jobs_for(
            phase: str, mode: str, settings: list[tuple[float, float]], seeds: list[int]
        ) -> list[dict]:
            return [
                {
                    "key": _key(mode, lr, lam, s),
                    "phase": phase,
                    "mode": mode,
                    "lr": lr,
                    "lam": lam,
                    "seed": s,
                    "cfg": job_cfg,
                }  # fmt: skip
                for s in seeds
                for lr, lam in settings
                if _key(mode, lr, lam, s) not in data["runs"]
            ]

        grid = [(lr, lam) for lr in cfg["sweep_lrs"] for lam in cfg["sweep_lams"]]
        sweep = [
            j
            for pair in zip(
                jobs_for("sweep", "token", grid, cfg["sweep_seeds"]),
                jobs_for("sweep", "scalar", grid, cfg["sweep_seeds"]),
                strict=False,
            )
            for j in pair
        ]
        first = ([job_cfg] if "base" not in data else []) + sweep
        _run_pool(first, args.jobs, data, args.out, _dispatch)
        data["chosen"] = {m: choose_setting(data, m, args.kl_max) for m in ("token", "scalar")}
        for forced in args.setting or []:  # e.g. both modes at one (lr, λ): a matched-step comparison
            mode, lr, lam = forced.split(",")
            data["chosen"][mode] = [float(lr), float(lam)]
        seeds = [s for s in cfg["seeds"] if s not in cfg["sweep_seeds"]]
        main_jobs = [
            j
            for s in seeds
            for m in ("token", "scalar")
            for j in jobs_for("main", m, [tuple(data["chosen"][m])], [s])
        ]
        _run_pool(main_jobs, args.jobs, data, args.out, _dispatch)
        data["wall_s"] += time.time() - started
        _save(args.out, data)
    report(data, png)


def _dispatch(job: dict) -> dict:
    return base_job(job) if "key" not in job else run_job(job)


def _curves(data: dict, mode: str, metric: str) -> tuple[list[int], list[list[float]], list[int]]:
    runs = _chosen_runs(data, mode)
    runs.sort(key=lambda r: r["seed"])
    xs = [0] + [e["update"] for e in runs[0]["evals"]] if runs else [0]
    ys = [[data["base"][metric]] + [e[metric] for e in r["evals"]] for r in runs]
    return xs, ys, [r["seed"] for r in runs]


def _chosen_runs(data: dict, mode: str) -> list[dict]:
    chosen = tuple(data["chosen"][mode])
    runs = [r for r in data["runs"].values() if r["mode"] == mode and _setting(r) == chosen]
    return sorted(runs, key=lambda r: r["seed"])


def _label(data: dict, mode: str) -> str:
    lr, lam = data["chosen"][mode]
    return f"lr {lr:g}, λ {lam:g}"


def report(data: dict, png: Path) -> None:
    """Print markdown tables and write the plot."""
    base = data["base"]
    print(f"\nbase behaviour rate {base['behaviour_rate']:.3f} on {len(data['eval_items'])} held-out items; "
          f"retention {base['fact_retention']:.3f}, length {base['mean_length']:.1f}")  # fmt: skip
    print("\n| mode | lr | λ | seed | behaviour per eval | mean over evals | final KL | final length |")
    print("|---|---|---|---|---|---|---|---|")
    for run in sorted(data["runs"].values(), key=lambda r: (r["mode"], *_setting(r), r["seed"])):
        if run["phase"] != "sweep":
            continue
        ev = run["evals"]
        per_eval = " / ".join(f"{e['behaviour_rate']:.2f}" for e in ev)
        print(f"| {run['mode']} | {run['lr']:g} | {_setting(run)[1]:g} | {run['seed']} | {per_eval} "
              f"| {statistics.fmean(e['behaviour_rate'] for e in ev):.3f} | {ev[-1]['kl']:.2f} "
              f"| {ev[-1]['mean_length']:.1f} |")  # fmt: skip
    print(f"\nchosen (lr, λ): {data['chosen']}")
    print("\n| mode | update | behaviour mean ± sd | KL mean | length mean | retention mean | reward mean |")
    print("|---|---|---|---|---|---|---|")
    for mode in ("token", "scalar"):
        runs = _chosen_runs(data, mode)
        for k in range(len(runs[0]["evals"]) if runs else 0):
            col = [r["evals"][k] for r in runs]
            rates = [e["behaviour_rate"] for e in col]
            print(f"| {mode} | {col[0]['update']} | {statistics.fmean(rates):.3f} ± {statistics.pstdev(rates):.3f} "
                  f"| {statistics.fmean(e['kl'] for e in col):.2f} | {statistics.fmean(e['mean_length'] for e in col):.1f} "
                  f"| {statistics.fmean(e['fact_retention'] for e in col):.2f} "
                  f"| {statistics.fmean(e['mean_reward'] for e in col):.2f} |")  # fmt: skip
    halves: dict[str, dict[int, tuple]] = {}
    n_up = data["config"]["updates"]
    print(
        "\n| mode | seed | updates to halve (first eval) | interpolated | KL there | length there | final behaviour |"
    )
    print("|---|---|---|---|---|---|---|")
    for mode in ("token", "scalar"):
        for run in _chosen_runs(data, mode):
            u, interp = updates_to_halve(base["behaviour_rate"], run["evals"])
            at = next((e for e in run["evals"] if e["update"] == u), run["evals"][-1])
            halves.setdefault(mode, {})[run["seed"]] = (u, interp)
            shown = str(u) if u is not None else f"not reached within {n_up}"
            shown_i = f"{interp:.1f}" if interp is not None else "-"
            print(f"| {mode} | {run['seed']} | {shown} | {shown_i} | {at['kl']:.2f} | {at['mean_length']:.1f} "
                  f"| {run['evals'][-1]['behaviour_rate']:.3f} |")  # fmt: skip
    # Not reached within N counts as N + eval_every (a lower bound), so the medians stay defined.
    censor = n_up + data["config"]["eval_every"]
    med = {}
    for mode, per_seed in halves.items():
        med[mode] = (
            statistics.median(u if u is not None else censor for u, _ in per_seed.values()),
            statistics.median(i if i is not None else censor for _, i in per_seed.values()),
        )
    if "token" in med and "scalar" in med:
        paired = [
            (halves["token"][s][1] or censor) / (halves["scalar"][s][1] or censor)
            for s in halves["token"]
            if s in halves["scalar"]
        ]
        print(
            f"\nmedian updates to halve (first eval / interpolated): token {med['token']}, scalar {med['scalar']}"
        )
        print(f"ratio token/scalar of medians: first eval {med['token'][0] / med['scalar'][0]:.2f}, "
              f"interpolated {med['token'][1] / med['scalar'][1]:.2f}; "
              f"median per-seed paired ratio (interpolated) {statistics.median(paired):.2f}")  # fmt: skip
        # One 64-sample evaluation has a standard error of ~0.06 at these rates, so a single lucky
        # evaluation can "halve" a seed; the seed-mean curve averages that noise away.
        crossing = {mode: _mean_curve_halving(data, mode) for mode in ("token", "scalar")}
        shown = {
            m: f"{c:.1f}" if c is not None else f"not reached within {n_up}" for m, c in crossing.items()
        }
        print(f"seed-mean curve crosses half the base rate at update: token {shown['token']}, "
              f"scalar {shown['scalar']}", end="")  # fmt: skip
        if None not in crossing.values():
            print(f"; ratio {crossing['token'] / crossing['scalar']:.2f}")
        else:
            print()
    _paired_area(data)
    _repetition(data)
    _by_kl(data)
    print(f"wall time (s): {data.get('wall_s', 0):.0f}")
    _plot(data, png)


def _paired_area(data: dict) -> None:
    """Per seed, the behaviour rate averaged over all evaluations (the area under the curve), token minus
    scalar: the two modes of a seed share training prompts and evaluation samples, so the pairing removes
    much of the seed-to-seed spread. A bootstrap over seeds gives the interval."""
    token = {r["seed"]: r for r in _chosen_runs(data, "token")}
    scalar = {r["seed"]: r for r in _chosen_runs(data, "scalar")}
    seeds = sorted(token.keys() & scalar.keys())
    if len(seeds) < 2:
        return

    def area(run: dict) -> float:
        return statistics.fmean(e["behaviour_rate"] for e in run["evals"])

    diffs = [area(token[s]) - area(scalar[s]) for s in seeds]
    rng = random.Random(0)
    boots = sorted(statistics.fmean(rng.choices(diffs, k=len(diffs))) for _ in range(10_000))
    low, high = boots[250], boots[9_749]
    lower = sum(d < 0 for d in diffs)
    print(f"\nbehaviour averaged over the evaluations, token - scalar, paired by seed: mean {statistics.fmean(diffs):+.3f} "
          f"(bootstrap 95% interval {low:+.3f} to {high:+.3f}); token lower on {lower} of {len(diffs)} seeds")  # fmt: skip


def _repeats(text: str) -> bool:
    """A summary that says one number or one full name twice: how a critic that rewards every occurrence
    of a kept fact is gamed."""
    numbers = re.findall(r"\d+", text)
    names = re.findall(r"[A-Z][a-z]+ [A-Z][a-z]+", text)
    return len(numbers) != len(set(numbers)) or len(names) != len(set(names))


def _repetition(data: dict) -> None:
    """Share of the stored example outputs (the first 4 held-out items of every evaluation) that repeat a
    fact, per mode and evaluation."""
    evals = _chosen_runs(data, "token")[0]["evals"]
    print("\n| mode | " + " | ".join(f"update {e['update']}" for e in evals) + " |")
    print("|---|" + "---|" * len(evals))
    base = sum(map(_repeats, data["base"]["examples"]))
    for mode in ("token", "scalar"):
        runs = _chosen_runs(data, mode)
        cells = []
        for k in range(len(runs[0]["evals"])):
            examples = [x for r in runs for x in r["evals"][k]["examples"]]
            cells.append(f"{sum(map(_repeats, examples))}/{len(examples)}")
        print(f"| {mode} | " + " | ".join(cells) + " |")
    print(
        f"(example outputs that repeat a number or a full name; base model: {base}/{len(data['base']['examples'])})"
    )


def _mean_curve_halving(data: dict, mode: str) -> float | None:
    """Interpolated update at which the seed-mean behaviour curve first reaches half the base rate."""
    xs, ys, _ = _curves(data, mode, "behaviour_rate")
    if not ys:
        return None
    mean = [statistics.fmean(col) for col in zip(*ys, strict=True)]
    # Column 0 is the shared base evaluation (update 0), the start of every curve.
    mean_evals = [{"update": x, "behaviour_rate": rate} for x, rate in zip(xs[1:], mean[1:], strict=True)]
    return updates_to_halve(data["base"]["behaviour_rate"], mean_evals)[1]


KL_BINS = [(0, 3), (3, 6), (6, 10), (10, float("inf"))]


def _by_kl(data: dict) -> None:
    """Behaviour rate at matched distance from the reference: every evaluation of every run (sweep and main),
    binned by its KL, so a mode that only takes bigger steps cannot look faster."""
    print(
        "\n| KL to reference (nats) | token: evals, mean behaviour, mean length | scalar: evals, mean behaviour, mean length |"
    )
    print("|---|---|---|")
    for low, high in KL_BINS:
        cells = []
        for mode in ("token", "scalar"):
            points = [
                e
                for r in data["runs"].values()
                if r["mode"] == mode
                for e in r["evals"]
                if low <= e["kl"] < high
            ]
            if points:
                rate = statistics.fmean(e["behaviour_rate"] for e in points)
                length = statistics.fmean(e["mean_length"] for e in points)
                cells.append(f"{len(points)}, {rate:.3f}, {length:.1f}")
            else:
                cells.append("–")
        print(f"| {low:g}–{high:g} | {cells[0]} | {cells[1]} |")


def _plot(data: dict, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("behaviour_rate", "summaries with an unsupported detail"),
        ("mean_reward", "mean critic reward (sum of span rewards)"),
        ("kl", "KL to reference (nats / sequence)"),
        ("mean_length", "response length (tokens)"),
    ]
    fig, axes = plt.subplots(1, 4, figsize=(18, 4.2))
    colours = {"token": "tab:blue", "scalar": "tab:orange"}
    for ax, (metric, title) in zip(axes, panels, strict=True):
        for mode in ("token", "scalar"):
            xs, ys, seeds = _curves(data, mode, metric)
            if not ys:
                continue
            mean = [statistics.fmean(col) for col in zip(*ys, strict=True)]
            sd = [statistics.pstdev(col) for col in zip(*ys, strict=True)]
            lo = [min(col) for col in zip(*ys, strict=True)]
            hi = [max(col) for col in zip(*ys, strict=True)]
            label = f"{mode} ({_label(data, mode)}, {len(ys)} seeds)"
            ax.plot(xs, mean, marker="o", color=colours[mode], label=label)
            ax.fill_between(xs, [m - s for m, s in zip(mean, sd, strict=True)],
                            [m + s for m, s in zip(mean, sd, strict=True)], color=colours[mode], alpha=0.25)  # fmt: skip
            ax.plot(xs, lo, color=colours[mode], lw=0.6, ls=":")
            ax.plot(xs, hi, color=colours[mode], lw=0.6, ls=":")
        if metric == "behaviour_rate":
            ax.axhline(
                data["base"]["behaviour_rate"] / 2, color="grey", ls="--", lw=0.8, label="half the base rate"
            )
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("PPO update (8 samples each)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("Token-level (TEXT2GRAD) vs scalar PPO, SmolLM2-135M + LoRA: mean ± std over seeds, dotted min/max",
                 fontsize=11)  # fmt: skip
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    print(f"wrote {png}")


if __name__ == "__main__":
    main()
