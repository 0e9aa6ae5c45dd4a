"""Where the engine's decoding step spends its time (issue 25), on the embedded SmolLM2-135M.

Runs the generation benchmark's prompts through one :class:`text2grad.inference.Engine` (``--slots``
at once, the protocol's sampling parameters) and, for the decoding steps taken with every slot busy,
splits the step into parts, timed with a clock read after each part (wall and process CPU seconds):

- ``layers``: the 30 decoder layers of the lean step (projections, attention, norms, SwiGLU);
- ``lm_head``: the tied 49,152 x 576 head;
- ``choose``: sampling (temperature, top-k / top-p candidates, one draw per row, behaviour logprob);
- ``take``: the per-row Python bookkeeping (EOS, stop strings, budget) and freeing finished slots;
- ``other``: the rest of ``Engine.step`` (tensors of ids and positions, the loop over rows).

Then ``torch.profiler`` over the same kind of steps groups the operators (matmuls, attention's batched
matmuls, element-wise work, top-k ...) by self CPU time. Prints markdown; ``--json`` writes the figures.

    .venv/bin/python benchmarks/profile_engine_step.py --threads 2 --slots 8
    .venv/bin/python benchmarks/profile_engine_step.py --threads 2 --slots 8 --top-k 0   # no top-k filter

Times taken on a loaded machine are not figures: the script prints the load average beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import torch  # noqa: E402
from bench_generation import PROMPTS, TEMPERATURE, TOP_K, TOP_P  # noqa: E402

from text2grad import generation, model_store  # noqa: E402
from text2grad.inference import Engine, Request  # noqa: E402

PARTS = ("layers", "lm_head", "choose", "take", "other")


class _Clock:
    """Accumulates wall and CPU seconds per part while ``active``."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = defaultdict(float)
        self.cpu: dict[str, float] = defaultdict(float)
        self.active = False

    def wrap(self, name: str, fn):
        def timed(*args, **kwargs):
            if not self.active:
                return fn(*args, **kwargs)
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.wall[name] += time.perf_counter() - wall
                self.cpu[name] += time.process_time() - cpu

        return timed


def _instrument(engine: Engine, clock: _Clock) -> None:
    decoder = engine.decoder
    if decoder is None:
        raise SystemExit("the engine is not using the lean step (not a Llama model?)")
    # The head as the decoder sees it, wrapped (not its forward: the engine swaps that for the packed one).
    decoder.head = clock.wrap("lm_head", decoder.head)
    decoder.__class__ = type("TimedDecoder", (decoder.__class__,), {})
    decoder.__class__.__call__ = clock.wrap("decoder", decoder.__class__.__mro__[1].__call__)
    engine._choose = clock.wrap("choose", engine._choose)
    engine._take = clock.wrap("take", engine._take)
    engine.cache.move = clock.wrap("take", engine.cache.move)


def _requests(tokenizer, n: int, max_new: int, top_k: int) -> list[Request]:
    prompts = (PROMPTS * 4)[:n]
    ids = [generation.encode_prompt(tokenizer, [{"role": "user", "content": p}]) for p in prompts]
    return [
        Request(prompt_ids=p, max_new_tokens=max_new, temperature=TEMPERATURE, top_p=TOP_P,
                top_k=top_k or None, seed=i)
        for i, p in enumerate(ids)
    ]  # fmt: skip


def measure(model, tokenizer, args) -> dict:
    engine = Engine(model, tokenizer, max_batch=args.slots)
    engine.run(_requests(tokenizer, 1, 8, args.top_k))  # warm-up, as the benchmark does
    clock = _Clock()
    _instrument(engine, clock)
    full_steps = 0
    step_wall: list[float] = []
    step_cpu = 0.0
    for request in _requests(tokenizer, args.requests, args.max_new_tokens, args.top_k):
        engine.submit(request)
    while engine.has_work():
        full = engine.running == args.slots  # no slot free: no prefill in this step
        clock.active = full
        wall, cpu = time.perf_counter(), time.process_time()
        engine.step()
        if full:
            full_steps += 1
            step_wall.append(time.perf_counter() - wall)
            step_cpu += time.process_time() - cpu
    clock.active = False
    parts = {}
    for table, step_total in ((clock.wall, sum(step_wall)), (clock.cpu, step_cpu)):
        table["layers"] = table["decoder"] - table["lm_head"]
        table["other"] = step_total - table["decoder"] - table["choose"] - table["take"]
    for name in PARTS:
        parts[name] = {
            "wall_ms_per_step": round(1000 * clock.wall[name] / full_steps, 2),
            "cpu_ms_per_step": round(1000 * clock.cpu[name] / full_steps, 2),
        }
    return {
        "full_steps": full_steps,
        "step_wall_ms_median": round(1000 * statistics.median(step_wall), 2),
        "step_cpu_ms_mean": round(1000 * step_cpu / full_steps, 2),
        "parts": parts,
    }


def operators(model, tokenizer, args) -> list[tuple[str, float, int]]:
    """Self CPU ms per decoding step by operator, over the steps with every slot busy."""
    from torch.profiler import ProfilerActivity, profile

    engine = Engine(model, tokenizer, max_batch=args.slots)
    engine.run(_requests(tokenizer, 1, 8, args.top_k))
    for request in _requests(tokenizer, args.requests, args.max_new_tokens, args.top_k):
        engine.submit(request)
    while engine.running < args.slots or engine.waiting:  # fill the slots first
        engine.step()
    steps = 0
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        while engine.running == args.slots and steps < args.profile_steps:
            engine.step()
            steps += 1
    rows = [
        (event.key, event.self_cpu_time_total / 1000 / steps, event.count // steps)
        for event in prof.key_averages()
    ]
    return sorted(rows, key=lambda r: -r[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", type=Path, default=ROOT / "var" / "models" / "base")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--slots", type=int, default=8)
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=160)
    parser.add_argument("--top-k", type=int, default=TOP_K, help="0: no top-k filter (top-p alone)")
    parser.add_argument("--profile-steps", type=int, default=40)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, tokenizer = model_store.load(args.base)
    load_before = os.getloadavg()
    parts = measure(model, tokenizer, args)
    ops = operators(model, tokenizer, args)
    print(f"load average {load_before} -> {os.getloadavg()}; threads {args.threads}; slots {args.slots}; "
          f"top-k {args.top_k or 'none'}; {parts['full_steps']} steps with every slot busy; median step "
          f"{parts['step_wall_ms_median']} ms wall; mean step {parts['step_cpu_ms_mean']} CPU ms\n")  # fmt: skip
    print("| part | wall ms / step | CPU ms / step |\n|---|---:|---:|")
    for name, row in parts["parts"].items():
        print(f"| {name} | {row['wall_ms_per_step']:.1f} | {row['cpu_ms_per_step']:.1f} |")
    print("\n| operator | self CPU ms / step | calls / step |\n|---|---:|---:|")
    for name, ms, calls in ops[:25]:
        print(f"| {name} | {ms:.2f} | {calls} |")
    if args.json:
        args.json.write_text(json.dumps({"parts": parts, "operators": ops[:40], "args": {
            k: str(v) for k, v in vars(args).items()}, "load": os.getloadavg()}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
