"""Throughput and latency of the OpenAI-compatible endpoint under 1, 4 and 16 concurrent clients, against
the studio's own ``generation.sample`` on the same prompts and the same token budget.

The endpoint is the core's server (``text2grad.openai_server``: the HTTP layer, the scheduler thread and
the continuous-batching engine that ``manage.py serve_openai`` runs) in a process of its own, with a
bench backend that accepts one key and serves one model, so the numbers are the serving path's, not the
database's (a key check and an audit row add a few milliseconds a request). Each client is a thread
with the official ``openai`` client that streams its requests one after another; per request it records
the time to the first streamed token (TTFT) and the completion tokens from the usage chunk.

- **endpoint**: tokens/s = completion tokens of all requests / wall time; TTFT p50 and p95.
- **direct**: ``generation.sample`` over the same prompts in one call with ``batch_size`` = clients
  (what a generation job does); tokens/s the same way; its TTFT is the engine's own
  (``first_token_at - submitted_at`` with every request submitted at once), reported for reference.

Both sample with temperature 0.6, top-p 0.95, top-k 50 (the studio's defaults) and the same seeds.

    .venv/bin/python benchmarks/bench_endpoint.py --model tiny --requests 4 --max-tokens 32
    .venv/bin/python benchmarks/bench_endpoint.py --model var/models/base --clients 1 4 16 --requests 2 \\
        --json benchmarks/results/endpoint.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

KEY = "t2g-bench"
MODEL = "bench"
PROMPTS = [
    "Summarize in one sentence: the council voted 9 to 2 to build a new library downtown.",
    "Write a Python function that returns the n-th Fibonacci number.",
    "What is the capital of France? Answer briefly.",
    "List three uses of a paperclip.",
    "Explain what a LoRA adapter is to a new engineer.",
    "Translate to French: the weather is nice today.",
    "Give a haiku about autumn leaves.",
    "Why is the sky blue? Two sentences.",
]


# -- the server process -----------------------------------------------------------------------------------
class BenchBackend:
    """One key, one model, nothing recorded: the serving path alone."""

    def __init__(self, model_dir: Path, max_tokens: int) -> None:
        from text2grad import model_store

        self.model_dir = model_dir
        self.tokenizer = model_store.load_tokenizer(model_dir)
        config = json.loads((model_dir / "config.json").read_text())
        self.context_length = int(config.get("max_position_embeddings") or 2048)
        self.max_tokens = max_tokens

    def authenticate(self, api_key, ip):
        from text2grad.openai_server import ApiError

        if api_key != KEY:
            raise ApiError(401, "bad key", code="invalid_api_key")
        return api_key

    def admit(self, principal, ip):
        return None

    def list_models(self, principal):
        return [{"id": MODEL, "created": 0, "owned_by": "bench"}]

    def resolve(self, principal, model, ip):
        from text2grad.openai_server import model_not_found

        if model != MODEL:
            raise model_not_found(model)
        return MODEL

    def load(self, model_key):
        from text2grad import model_store

        return model_store.load(self.model_dir)

    def record(self, principal, **kwargs):
        return None

    def release(self):
        return None


def serve(model_dir: Path, port: int, batch: int, max_tokens: int) -> None:
    import torch

    from text2grad.openai_server import make_server

    torch.set_num_threads(int(os.environ.get("T2G_TORCH_THREADS") or 1))
    server = make_server(BenchBackend(model_dir, max_tokens), port=port, max_batch=batch, max_models=1)
    print(f"listening on {server.server_address[1]}", flush=True)
    server.serve_forever()


# -- helpers --------------------------------------------------------------------------------------------------
def tiny_model(folder: Path) -> Path:
    """A tiny random llama with SmolLM2's tokenizer (as the tests build it)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(REPO_ROOT / "var" / "models" / "base")
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True,
    )  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _health(health_url: str) -> dict:
    import urllib.request

    with urllib.request.urlopen(health_url, timeout=30) as response:
        return json.loads(response.read())


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_clients(base_url: str, clients: int, requests: int, max_tokens: int) -> dict:
    import openai

    ttfts: list[float] = []
    tokens: list[int] = []
    lock = threading.Lock()

    def client(index: int) -> None:
        api = openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0, timeout=600)
        for r in range(requests):
            prompt = PROMPTS[(index * requests + r) % len(PROMPTS)]
            started = time.perf_counter()
            first = None
            used = 0
            stream = api.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": prompt}],
                max_tokens=max_tokens,
                temperature=0.6,
                top_p=0.95,
                seed=index * requests + r,
                stream=True,
                stream_options={"include_usage": True},
                extra_body={"top_k": 50},
            )
            for chunk in stream:
                if first is None and chunk.choices and chunk.choices[0].delta.content:
                    first = time.perf_counter() - started
                if chunk.usage is not None:
                    used = chunk.usage.completion_tokens
            with lock:
                ttfts.append(first if first is not None else time.perf_counter() - started)
                tokens.append(used)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    return {
        "requests": len(tokens),
        "completion_tokens": sum(tokens),
        "wall_s": round(wall, 3),
        "tokens_per_s": round(sum(tokens) / wall, 2),
        "ttft_p50_s": round(percentile(ttfts, 0.5), 4),
        "ttft_p95_s": round(percentile(ttfts, 0.95), 4),
    }


def run_direct(model_dir: Path, clients: int, requests: int, max_tokens: int) -> dict:
    from text2grad import generation, inference, model_store

    model, tokenizer = model_store.load(model_dir)
    prompts = [
        [{"role": "user", "content": PROMPTS[(i * requests + r) % len(PROMPTS)]}]
        for i in range(clients)
        for r in range(requests)
    ]
    started, cpu_started = time.perf_counter(), time.process_time()
    outs = generation.sample(
        model,
        tokenizer,
        prompts,
        max_new_tokens=max_tokens,
        temperature=0.6,
        top_p=0.95,
        seed=0,
        batch_size=clients,
    )
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    tokens = sum(len(o.response_ids) for group in outs for o in group)
    engine = inference.Engine(model, tokenizer, max_batch=clients)
    done = engine.run(
        [
            inference.Request(
                prompt_ids=generation.encode_prompt(tokenizer, p),
                max_new_tokens=max_tokens,
                temperature=0.6,
                top_p=0.95,
                top_k=50,
                seed=i,
            )  # fmt: skip
            for i, p in enumerate(prompts)
        ]
    )
    ttfts = [c.first_token_at - c.submitted_at for c in done]
    return {
        "requests": len(prompts),
        "completion_tokens": tokens,
        "wall_s": round(wall, 3),
        "tokens_per_s": round(tokens / wall, 2),
        "cpu_s": round(cpu, 2),
        "engine_steps": engine.steps,
        "engine_prefilled": engine.prefilled,
        "engine_ttft_p50_s": round(percentile(ttfts, 0.5), 4),
        "engine_ttft_p95_s": round(percentile(ttfts, 0.95), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tiny", help="'tiny' (a random llama) or a local model folder")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--requests", type=int, default=2, help="requests per client, one after another")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each side")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=16, help="requests decoding together on the endpoint")
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.batch, args.max_tokens)
        return

    import torch

    torch.set_num_threads(args.threads)
    scratch = Path(tempfile.mkdtemp(prefix="bench-endpoint-"))
    model_dir = tiny_model(scratch / "tiny") if args.model == "tiny" else Path(args.model).resolve()
    env = dict(os.environ, T2G_TORCH_THREADS=str(args.threads), PYTHONPATH=str(REPO_ROOT))
    log = open(scratch / "server.log", "w")  # noqa: SIM115 (closed at the end)
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(model_dir), "--batch", str(args.batch),
         "--max-tokens", str(args.max_tokens)],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    try:
        port = None
        deadline = time.monotonic() + 300
        while port is None and time.monotonic() < deadline:
            if server.poll() is not None:
                raise SystemExit((scratch / "server.log").read_text()[-3000:])
            for line in (scratch / "server.log").read_text().splitlines():
                if line.startswith("listening on "):
                    port = int(line.split()[-1])
            time.sleep(0.2)
        base_url = f"http://127.0.0.1:{port}/v1"
        run_clients(base_url, 1, 1, 4)  # loads the model in the server
        load = os.getloadavg()[0]
        results = {"model": str(args.model), "max_tokens": args.max_tokens, "threads": args.threads,
                   "load_before": round(load, 2), "endpoint": {}, "direct": {}}  # fmt: skip
        import psutil

        server_process = psutil.Process(server.pid)
        health = f"http://127.0.0.1:{port}/health"
        for clients in args.clients:
            before, health_before = server_process.cpu_times(), _health(health)
            results["endpoint"][clients] = run_clients(base_url, clients, args.requests, args.max_tokens)
            after, health_after = server_process.cpu_times(), _health(health)
            arm = results["endpoint"][clients]
            arm["engine_steps"] = health_after["steps"] - health_before["steps"]
            arm["prefilled"] = health_after["prefilled"] - health_before["prefilled"]
            # CPU seconds the server process spent (every thread: HTTP, scheduler, decoding), comparable
            # with the direct arm's under load where wall time is not; the scheduler thread's share (engine
            # steps, handing tokens out) against the rest (HTTP threads: JSON, detokenizing, sockets).
            cpu = (after.user - before.user) + (after.system - before.system)
            arm["server_cpu_s"] = round(cpu, 2)
            scheduler_cpu = health_after["scheduler_cpu_s"] - health_before["scheduler_cpu_s"]
            arm["scheduler_cpu_s"] = round(scheduler_cpu, 2)
            arm["http_and_rest_cpu_s"] = round(cpu - scheduler_cpu, 2)
            print(f"endpoint {clients:>2} clients: {results['endpoint'][clients]}", flush=True)
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    for clients in args.clients:
        results["direct"][clients] = run_direct(model_dir, clients, args.requests, args.max_tokens)
        print(f"direct   {clients:>2} clients: {results['direct'][clients]}", flush=True)
    results["load_after"] = round(os.getloadavg()[0], 2)
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
