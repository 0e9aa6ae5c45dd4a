"""Generation speed on the embedded SmolLM2-135M: the engine, the former ``sample()``, and llama.cpp (issue 25).

Same weights, same chat-templated prompts (mixed lengths, from a one-line question to a paragraph of
instructions), temperature 0.6, top-p 0.95, top-k 50, at most 160 new tokens:

- **engine**: ``text2grad.inference.Engine`` (continuous batching, slot KV cache), fp32, behaviour
  logprobs recorded for every token (always on).
- **engine-model** (only when named in ``--systems``): the same engine decoding through the model's own
  forward (``decoder="model"``), as it did before its lean step: the A/B for that step.
- **engine-unpacked** (only when named): the engine with PyTorch's ``F.linear`` (MKL) for its projections
  instead of oneDNN with prepacked weights (``packed=False``): the A/B for the packing.
- **padded**: ``text2grad.generation.sample_padded``, the studio's sampler before the engine
  (transformers' ``generate`` over left-padded batches; logits kept for the logprobs).
- **llama.cpp**: llama-cpp-python 0.3.36 built from source in its own virtualenv (never a dependency of
  the studio), on the same weights converted to f16 GGUF, and on Q4_1 quantised from it; each once with
  ``logits_all`` (every logit kept, what per-token logprobs need there) and once without.
  llama-cpp-python serves one sequence per context, so its concurrent requests queue (FIFO).

Workloads, each useful tokens/s (tokens the requests keep, EOS excluded, over wall time from the first
submission to the last completion):

- ``1``: one stream, the requests one after another;
- ``8`` / ``32``: that many requests submitted at once (the engine with that many slots, the padded
  sampler with that batch size);
- ``arrivals``: requests arriving every ``--gap`` seconds while others run (engine with 8 slots;
  padded: whatever has arrived when the previous batch ends becomes the next batch; llama.cpp: FIFO).
  Time to first token p50/p95 is measured from each arrival (for the padded sampler the first token is
  only handed back with the whole batch, so its figure is the time to the whole response).

Each (system, workload) runs in a fresh subprocess, so its peak RSS (``ru_maxrss``, model load included)
is its own; systems alternate their order in every repeat; the driver prints medians as markdown. It also
measures this machine's memory bandwidth (a large tensor copy) and prints the roofline: tokens/s one
stream cannot exceed when every token reads all the weights once.

Setup (once; builds llama.cpp from source, ~30 min on 2 busy cores)::

    .venv/bin/python benchmarks/bench_generation.py --setup

Run (``--quick``: 8 prompts, 1 repeat, to check the script; the lead reruns the full one on a quiet
machine)::

    .venv/bin/python benchmarks/bench_generation.py --repeats 3 --json benchmarks/results/generation.json

``--variants`` instead measures the engine's own options (attention kernel, bf16, torch.compile) at 8
concurrent requests, to decide which pay on this CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BASE = ROOT / "var" / "models" / "base"
DEFAULT_VENV = Path("/tmp/llama-venv")
LLAMA_VERSION = "0.3.36"
MAX_NEW_TOKENS = 160  # the default of --max-new-tokens
TEMPERATURE, TOP_P, TOP_K = 0.6, 0.95, 50
THREADS = 2
LLAMA_FTYPE_MOSTLY_Q4_1 = 3  # llama.h's enum value
# Only the library the Python bindings load, for this CPU: no tests, examples, tools, server, multimodal
# library (llava/mtmd), curl or BLAS (a BLAS only serves prompt batches, and would differ between hosts).
LLAMA_CMAKE_ARGS = (
    "-DGGML_NATIVE=ON -DGGML_BLAS=OFF -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF "
    "-DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAVA_BUILD=OFF"
)

PROMPTS = [
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "Explain step by step how a hash table handles collisions, compare chaining with open addressing, "
    "and say when each one is the better choice in practice for a program that stores many short strings.",
    "Name three primary colours.",
    "Write a Python function that returns the n-th Fibonacci number iteratively, with a docstring.",
    "Describe in several sentences how to plan a three-day hiking trip in the mountains: what to pack, "
    "how to pick a route, and how to stay safe in bad weather.",
    "Translate 'good morning' into Spanish.",
    "Summarise the main causes of the French Revolution in a few sentences, covering the money crisis, "
    "social inequality and the ideas of the Enlightenment.",
    "Is 17 a prime number? Answer briefly.",
    "Give practical advice for someone who wants to start running regularly: how often, how far, and "
    "how to avoid the most common injuries during the first few months.",
    "What does HTTP stand for?",
    "Explain why the sky looks blue during the day and red at sunset, with one everyday comparison.",
    "List four fruits that are yellow.",
    "Write a short email asking a colleague to move tomorrow's meeting to Friday afternoon.",
    "How many legs does a spider have?",
    "Explain to a beginner what a Python list comprehension is and give two short examples.",
]


# -- setup: llama.cpp in its own virtualenv ---------------------------------------------------------------
def setup(venv: Path, base: Path) -> None:
    """Build llama-cpp-python from source in ``venv`` and write f16 and Q4_1 GGUF files of ``base`` there.

    The f16 conversion runs llama.cpp's own ``convert_hf_to_gguf.py`` from the sdist with the studio's
    interpreter (it needs torch and transformers, which the studio has) and the sdist's ``gguf-py`` on
    the path; nothing is installed into the studio's environment."""
    src = venv / "src"
    run = lambda *cmd, **kw: subprocess.run([str(c) for c in cmd], check=True, **kw)  # noqa: E731
    if not (venv / "bin" / "python").exists():
        run(sys.executable, "-m", "venv", venv)
    src.mkdir(parents=True, exist_ok=True)
    sdist = src / f"llama_cpp_python-{LLAMA_VERSION}.tar.gz"
    if not sdist.exists():
        # The sdist of llama-cpp-python only: ``--no-binary :all:`` would also build its build
        # dependencies from source (CMake itself among them), which took most of the former hour.
        run(venv / "bin/pip", "download", f"llama-cpp-python=={LLAMA_VERSION}", "--no-deps",
            "--no-binary", "llama-cpp-python", "-d", src)  # fmt: skip
    env = {
        **os.environ,
        "CMAKE_ARGS": LLAMA_CMAKE_ARGS,
        "CMAKE_BUILD_PARALLEL_LEVEL": str(os.cpu_count() or 2),
    }
    built = (
        subprocess.run([str(venv / "bin/python"), "-c", "import llama_cpp"], capture_output=True).returncode
        == 0
    )
    if not built:
        run(venv / "bin/pip", "install", "--verbose", sdist, env=env)  # verbose: the compiler's progress
    tree = src / f"llama_cpp_python-{LLAMA_VERSION}"
    if not tree.exists():
        with tarfile.open(sdist) as archive:
            archive.extractall(src, filter="data")
    llama_cpp = tree / "vendor" / "llama.cpp"
    f16, q4 = gguf_paths(venv)
    if not f16.exists():
        converter = llama_cpp / "convert_hf_to_gguf.py"
        gguf_py = {**os.environ, "PYTHONPATH": str(llama_cpp / "gguf-py")}
        run(sys.executable, converter, base, "--outtype", "f16", "--outfile", f16, env=gguf_py)
    if not q4.exists():
        run(
            venv / "bin/python",
            __file__,
            "--child",
            "quantize",
            "--config",
            json.dumps({"src": str(f16), "dst": str(q4)}),
        )
    print(f"llama.cpp ready: {venv}; weights {f16}, {q4}")


def gguf_paths(venv: Path) -> tuple[Path, Path]:
    return venv / "smollm2-135m-f16.gguf", venv / "smollm2-135m-q4_1.gguf"


# -- children (stdlib at the top: the llama.cpp venv has no torch and no project code) -----------------
def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _schedule(workload: str, n: int, gap: float) -> list[float]:
    """Arrival offsets (seconds after the start) of the ``n`` requests."""
    if workload == "arrivals":
        return [i * gap for i in range(n)]
    return [0.0] * n


def _summary(records: list[dict], wall: float) -> dict:
    tokens = sum(r["tokens"] for r in records)
    ttft = sorted(r["ttft"] for r in records)
    pick = lambda q: ttft[min(len(ttft) - 1, int(round(q * (len(ttft) - 1))))]  # noqa: E731
    return {
        "requests": len(records),
        "tokens": tokens,
        "wall_s": round(wall, 3),
        "tokens_per_s": round(tokens / wall, 2),
        "ttft_p50_s": round(pick(0.5), 3),
        "ttft_p95_s": round(pick(0.95), 3),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
    }


def child_studio(system: str, workload: str, config: dict) -> dict:
    import torch

    sys.path.insert(0, str(ROOT))
    from text2grad import generation, model_store
    from text2grad.inference import Engine, Request

    torch.set_num_threads(config["threads"])
    model, tokenizer = model_store.load(Path(config["base"]))
    variant = config.get("variant", "")
    if "bf16" in variant:
        model = model.to(torch.bfloat16)
    if "compile" in variant:
        model.forward = torch.compile(model.forward, dynamic=True)
    prompts = config["prompts"]
    ids = [generation.encode_prompt(tokenizer, [{"role": "user", "content": p}]) for p in prompts]
    arrivals = _schedule(workload, len(prompts), config["gap"])
    slots = {"1": 1, "8": 8, "32": 32, "arrivals": 8}[workload]
    warm = [Request(prompt_ids=ids[0], max_new_tokens=8, temperature=TEMPERATURE, seed=0)]
    if system in ("engine", "engine-model", "engine-unpacked"):
        attention = "sdpa" if "sdpa" in variant else "eager" if "eager" in variant else "grouped"
        decoder = "model" if system == "engine-model" or "model-decode" in variant else "lean"
        packed = system != "engine-unpacked" and "unpacked" not in variant
        engine = Engine(
            model, tokenizer, max_batch=slots, attention=attention, decoder=decoder, packed=packed
        )
        engine.run(warm)  # first-call costs (allocation, compile) are not the steady state
        requests = [
            Request(prompt_ids=p, max_new_tokens=config["max_new"], temperature=TEMPERATURE, top_p=TOP_P,
                    top_k=TOP_K, seed=i)
            for i, p in enumerate(ids)
        ]  # fmt: skip
        start = time.perf_counter()
        pending = list(zip(arrivals, requests, strict=True))
        submitted = []
        while pending or engine.has_work():
            now = time.perf_counter() - start
            while pending and pending[0][0] <= now:
                offset, request = pending.pop(0)
                completion = engine.submit(request)
                completion.submitted_at = start + offset
                submitted.append(completion)
            if engine.has_work():
                engine.step()
            else:
                time.sleep(max(0.0, pending[0][0] - now))
        wall = max(c.finished_at for c in submitted) - start
        records = [
            {"tokens": len(c.response_ids), "ttft": c.first_token_at - c.submitted_at} for c in submitted
        ]
        return _summary(records, wall) | {"steps": engine.steps}
    # padded: the former sampler; a batch starts when the previous one is done, with what has arrived
    generation.sample_padded(model, tokenizer, [[{"role": "user", "content": prompts[0]}]], max_new_tokens=8)
    start = time.perf_counter()
    records, index = [], 0
    while index < len(prompts):
        now = time.perf_counter() - start
        if arrivals[index] > now:
            time.sleep(arrivals[index] - now)
            now = arrivals[index]
        batch = [i for i in range(index, min(len(prompts), index + slots)) if arrivals[i] <= now]
        outs = generation.sample_padded(
            model, tokenizer, [[{"role": "user", "content": prompts[i]}] for i in batch],
            max_new_tokens=config["max_new"], temperature=TEMPERATURE, top_p=TOP_P, seed=index, batch_size=slots,
        )  # fmt: skip
        done = time.perf_counter() - start
        records += [
            {"tokens": len(o[0].response_ids), "ttft": done - arrivals[i]}
            for i, o in zip(batch, outs, strict=True)
        ]
        index = batch[-1] + 1
    return _summary(records, time.perf_counter() - start)


def child_llama(system: str, workload: str, config: dict) -> dict:
    from llama_cpp import Llama

    weights = config["f16"] if "f16" in system else config["q4"]
    llm = Llama(model_path=weights, n_ctx=1024, n_threads=config["threads"], n_batch=512,
                logits_all="logits" in system, seed=0, verbose=False)  # fmt: skip
    keep_logprobs = "logits" in system
    # Same token ids as the studio's chat template gives (the driver sends them).
    ids = config["prompt_ids"]
    arrivals = _schedule(workload, len(ids), config["gap"])

    def complete(prompt_ids, seed):
        llm.reset()
        first, tokens = None, 0
        stream = llm.create_completion(
            prompt=prompt_ids, max_tokens=config["max_new"], temperature=TEMPERATURE, top_p=TOP_P, top_k=TOP_K,
            seed=seed, stream=True, logprobs=1 if keep_logprobs else None,
        )  # fmt: skip
        for chunk in stream:
            if first is None:
                first = time.perf_counter()
            if chunk["choices"][0].get("finish_reason") is None:  # one chunk per token; a last one ends it
                tokens += 1
        return first, tokens

    complete(ids[0][:8], 0)  # warm up
    start, records, clock = time.perf_counter(), [], 0.0
    for i, prompt_ids in enumerate(ids):
        clock = time.perf_counter() - start
        if arrivals[i] > clock:
            time.sleep(arrivals[i] - clock)
        first, tokens = complete(prompt_ids, i)
        records.append({"tokens": tokens, "ttft": first - start - arrivals[i]})
    return _summary(records, time.perf_counter() - start)


def child_drift(config: dict) -> dict:
    """How far the engine's behaviour logprobs are from a separate fp32 forward, and how far a bf16 copy
    of the weights would move them (the reason bf16 is not the default)."""
    import copy

    import torch

    sys.path.insert(0, str(ROOT))
    from text2grad import generation, model_store

    torch.set_num_threads(config["threads"])
    model, tokenizer = model_store.load(Path(config["base"]))
    messages = [{"role": "user", "content": config["prompts"][-1]}]
    [[out]] = generation.sample(model, tokenizer, [messages], max_new_tokens=config["max_new"], seed=0)
    ids, picked = torch.tensor([out.prompt_ids + out.response_ids]), torch.tensor(out.response_ids)[:, None]
    start = len(out.prompt_ids) - 1
    with torch.no_grad():
        fp32 = model(ids).logits[0, start:-1].float().log_softmax(-1).gather(-1, picked).squeeze(-1)
        half = copy.deepcopy(model).to(torch.bfloat16)
        bf16 = half(ids).logits[0, start:-1].float().log_softmax(-1).gather(-1, picked).squeeze(-1)
    drift = (fp32 - bf16).abs()
    return {
        "tokens": len(out.response_ids),
        "engine_vs_fp32_max": float((fp32 - torch.tensor(out.logprobs)).abs().max()),
        "bf16_vs_fp32_mean": round(float(drift.mean()), 4),
        "bf16_vs_fp32_max": round(float(drift.max()), 4),
    }


def child_quantize(config: dict) -> None:
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = LLAMA_FTYPE_MOSTLY_Q4_1
    failed = llama_cpp.llama_model_quantize(config["src"].encode(), config["dst"].encode(), params)
    if failed:
        raise SystemExit(f"quantize failed ({failed})")


def child_bandwidth(config: dict) -> dict:
    import torch

    torch.set_num_threads(config["threads"])
    source = torch.ones(64 * 1024 * 1024)  # 256 MiB of fp32, far beyond any cache
    target = torch.empty_like(source)
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        target.copy_(source)
        best = min(best, time.perf_counter() - started)
    return {"copy_gb_per_s": round(2 * source.numel() * 4 / best / 1e9, 2)}  # read + write


# -- driver ---------------------------------------------------------------------------------------------
def _run_child(python: str, system: str, workload: str, config: dict) -> dict:
    out = subprocess.run(
        [python, __file__, "--child", system, "--workload", workload, "--config", json.dumps(config)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def _weights_bytes(base: Path) -> dict:
    config = json.loads((base / "config.json").read_text())
    size = (base / "model.safetensors").stat().st_size
    return {"fp32_bytes": size, "f16_bytes": size // 2, "tied": bool(config.get("tie_word_embeddings"))}


def drive(args) -> None:
    prompts = (PROMPTS * 4)[: args.requests]
    sys.path.insert(0, str(ROOT))
    from text2grad import generation, model_store

    tokenizer = model_store.load_tokenizer(args.base)
    prompt_ids = [generation.encode_prompt(tokenizer, [{"role": "user", "content": p}]) for p in prompts]
    f16, q4 = gguf_paths(args.venv)
    config = {
        "base": str(args.base),
        "threads": args.threads,
        "gap": args.gap,
        "f16": str(f16),
        "q4": str(q4),
        "max_new": args.max_new_tokens,
    }
    llama_python = args.llama_python or str(args.venv / "bin" / "python")
    named = [s for s in ("engine-model", "engine-unpacked") if s in (args.systems or ())]
    systems = ["engine", "padded"] + named
    if Path(llama_python).exists() and f16.exists():
        systems += ["llama-f16-logits", "llama-f16"] + (
            ["llama-q4-logits", "llama-q4"] if q4.exists() else []
        )
    else:
        print(f"(llama.cpp not set up at {args.venv}: run --setup; comparing the studio's two only)")
    systems = [s for s in systems if not args.systems or s in args.systems]
    results: dict[str, dict[str, list[dict]]] = {}
    for repeat in range(args.repeats):
        order = systems[repeat % len(systems) :] + systems[: repeat % len(systems)]  # alternate
        for workload in args.workloads:
            for system in order:
                n = 32 if workload == "32" else len(prompts) if workload != "1" else min(len(prompts), 8)
                child_config = config | {"prompts": (prompts * 4)[:n], "prompt_ids": (prompt_ids * 4)[:n]}
                python = llama_python if system.startswith("llama") else sys.executable
                report = _run_child(python, system, workload, child_config)
                results.setdefault(workload, {}).setdefault(system, []).append(report)
                print(
                    f"repeat {repeat} workload {workload:>8} {system:>18}: {json.dumps(report)}", flush=True
                )
    bandwidth = _run_child(sys.executable, "bandwidth", "-", config)
    weights = _weights_bytes(args.base)
    _print_tables(results, bandwidth, weights, args)
    if args.json:
        args.json.write_text(json.dumps({"results": results, "bandwidth": bandwidth, "weights": weights,
                                         "load": os.getloadavg(), "args": vars(args) | {"base": str(args.base),
                                         "venv": str(args.venv), "json": str(args.json)}}, indent=1))  # fmt: skip


def _print_tables(results: dict, bandwidth: dict, weights: dict, args) -> None:
    med = lambda rows, key: statistics.median(r[key] for r in rows)  # noqa: E731
    print(f"\nload average {os.getloadavg()}, threads {args.threads}, repeats {args.repeats}\n")
    print("| workload | system | useful tokens/s | TTFT p50 s | TTFT p95 s | peak RSS MB |")
    print("|---|---|---:|---:|---:|---:|")
    for workload, by_system in results.items():
        for system, rows in by_system.items():
            print(f"| {workload} | {system} | {med(rows, 'tokens_per_s'):.1f} | {med(rows, 'ttft_p50_s'):.2f} | "
                  f"{med(rows, 'ttft_p95_s'):.2f} | {med(rows, 'peak_rss_mb'):.0f} |")  # fmt: skip
    for workload, by_system in results.items():
        for other in ("padded", "engine-model", "engine-unpacked"):
            if "engine" in by_system and other in by_system:
                ratios = [
                    e["tokens_per_s"] / o["tokens_per_s"]
                    for e, o in zip(by_system["engine"], by_system[other], strict=True)
                ]
                print(f"workload {workload}: engine / {other} per repeat "
                      f"{', '.join(f'{r:.2f}' for r in ratios)}; median {statistics.median(ratios):.2f}x")  # fmt: skip
    bw = bandwidth["copy_gb_per_s"] * 1e9
    print(f"\nmemory bandwidth (tensor copy, read+write): {bandwidth['copy_gb_per_s']} GB/s")
    for name, size in (("fp32 (engine)", weights["fp32_bytes"]), ("f16 (llama.cpp)", weights["f16_bytes"])):
        print(f"roofline {name}: {size / 1e6:.0f} MB of weights per decoding step -> one stream <= "
              f"{bw / size:.0f} tokens/s; a step serves every running request at once")  # fmt: skip


def variants(args) -> None:
    prompts = (PROMPTS * 4)[: args.requests]
    config = {
        "base": str(args.base),
        "threads": args.threads,
        "gap": args.gap,
        "prompts": prompts,
        "max_new": args.max_new_tokens,
    }
    names = args.variant_names
    rows: dict[str, list[dict]] = {}
    for repeat in range(args.repeats):
        for name in names[repeat % len(names) :] + names[: repeat % len(names)]:
            report = _run_child(sys.executable, "engine", "8", config | {"variant": name})
            rows.setdefault(name, []).append(report)
            print(f"repeat {repeat} {name:>16}: {json.dumps(report)}", flush=True)
    print(
        f"\nload average {os.getloadavg()}\n\n| engine variant (8 concurrent) | useful tokens/s | peak RSS MB |"
    )
    print("|---|---:|---:|")
    for name, reports in rows.items():
        print(f"| {name} | {statistics.median(r['tokens_per_s'] for r in reports):.1f} | "
              f"{statistics.median(r['peak_rss_mb'] for r in reports):.0f} |")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--setup", action="store_true", help="build llama.cpp's venv and GGUF weights, then exit"
    )
    parser.add_argument(
        "--venv", type=Path, default=DEFAULT_VENV, help="llama.cpp's venv, with the GGUF files"
    )
    parser.add_argument("--llama-python", help="the interpreter with llama_cpp (default: the venv's python)")
    parser.add_argument("--base", type=Path, default=DEFAULT_BASE)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--requests", type=int, default=16, help="requests per workload (32 for '32')")
    parser.add_argument("--workloads", nargs="+", default=["1", "8", "32", "arrivals"])
    parser.add_argument(
        "--systems",
        nargs="*",
        help="only these (engine, padded, llama-f16-logits, ...; engine-model: the engine decoding through the "
        "model's own forward, as before its lean step, and engine-unpacked: F.linear instead of packed oneDNN, only when named)",
    )
    parser.add_argument("--gap", type=float, default=1.0, help="seconds between arrivals")
    parser.add_argument(
        "--threads", type=int, default=THREADS, help="torch and llama.cpp threads (1 on a busy machine)"
    )
    parser.add_argument("--max-new-tokens", type=int, default=MAX_NEW_TOKENS)
    parser.add_argument("--quick", action="store_true", help="8 requests, 1 repeat: checks the script")
    parser.add_argument("--variants", action="store_true", help="measure the engine's options instead")
    parser.add_argument(
        "--variant-names",
        nargs="+",
        default=["grouped", "unpacked", "model-decode", "sdpa", "eager", "bf16-grouped", "compile-grouped"],
    )
    parser.add_argument("--json", type=Path)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--workload", help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        config = json.loads(args.config)
        if args.child == "quantize":
            child_quantize(config)
            return
        if args.child == "bandwidth":
            report = child_bandwidth(config)
        elif args.child == "drift":
            report = child_drift(config)
        elif args.child.startswith("llama"):
            report = child_llama(args.child, args.workload, config)
        else:
            report = child_studio(args.child, args.workload, config)
        print(json.dumps(report))
        return
    if args.setup:
        setup(args.venv, args.base)
        return
    if args.quick:
        args.requests, args.repeats = 8, 1
    (variants if args.variants else drive)(args)


if __name__ == "__main__":
    main()
