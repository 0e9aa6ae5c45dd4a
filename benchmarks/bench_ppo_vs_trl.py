"""One PPO update on the embedded SmolLM2: Text2Grad Studio versus TRL 1.12's PPOTrainer (issue 5a).

Same workload for both systems: 8 chat-templated prompts (~70 tokens), 48 sampled response tokens at
temperature 0.6, 2 PPO epochs over minibatches of 4 (4 optimiser steps), LoRA r=16/α=32 on q/k/v/o, fp32,
2 threads, SmolLM2-135M-Instruct loaded from ``var/models/base``.

- **ours**: one model in memory. ``text2grad.generation.sample`` samples, a fixed rule turns the response ids
  into token rewards, then ONE ``text2grad.engine.ppo_update`` runs (rollout statistics + 4 optimiser steps).
- **TRL**: ``trl.experimental.ppo.PPOTrainer`` with a LoRA ``peft_config`` (reference = adapter disabled),
  the separate, fully trained value model and the reward model it requires (both
  ``AutoModelForSequenceClassification`` with ``num_labels=1`` from the same SmolLM2 weights), and ONE
  ``train()`` update (``total_episodes=8``, ``per_device_train_batch_size=8``, ``num_mini_batches=2``).
  Its generation runs inside ``train()``; the child times it separately by wrapping TRL's module-level
  ``batch_generation`` function, and reports the update as ``train()`` minus that.

Every run is a fresh subprocess, so the peak RSS is per system: the child reads its own ``VmHWM`` (whole
process: loading, sampling, update), then resets it (``/proc/self/clear_refs``) just before the timed
update and reads it again (the update's own peak). The driver cross-checks the whole-process peak with
``os.wait4``'s ``ru_maxrss``. Runs alternate their order, ``--repeats`` times each; the driver prints
the medians and the ratios ours/TRL as markdown.

TRL is never a dependency of the project: it lives in its own virtualenv, made by ``--setup``::

    python3 -m venv /tmp/trl-venv
    /tmp/trl-venv/bin/pip install torch==2.13.0      # first, so pip keeps the local CPU wheel
    /tmp/trl-venv/bin/pip install trl==1.12.0 transformers==5.24.0 peft==0.21.2 accelerate==1.15.0 datasets==5.2.0

Then, from the repository root::

    .venv/bin/python benchmarks/bench_ppo_vs_trl.py --setup            # once
    .venv/bin/python benchmarks/bench_ppo_vs_trl.py --trl-python /tmp/trl-venv/bin/python --repeats 3

``--ours-config '{"lora_dropout": 0.0}'`` overrides fields of our ``TrainingConfig``: TRL's trainer zeroes
every ``nn.Dropout`` (peft's LoRA dropout included), so that is the like-for-like setting. Results and
caveats: ``docs/bench-notes/ppo_vs_trl.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BASE = REPO_ROOT / "var" / "models" / "base"
DEFAULT_TRL_VENV = Path("/tmp/trl-venv")
SETUP_COMMANDS = [
    ["{python}", "-m", "venv", "{venv}"],
    # torch first and alone: with it satisfied, trl's resolver cannot swap in a CUDA build.
    ["{venv}/bin/pip", "install", "torch==2.13.0"],
    [
        "{venv}/bin/pip",
        "install",
        "trl==1.12.0",
        "transformers==5.24.0",
        "peft==0.21.2",
        "accelerate==1.15.0",
        "datasets==5.2.0",
    ],
]

THREADS = 2
BATCH_SIZE = 8
MINIBATCH_SIZE = 4
PPO_EPOCHS = 2
RESPONSE_TOKENS = 48
TEMPERATURE = 0.6
LEARNING_RATE = 1e-4
KL_COEF = 0.1
LORA = {
    "r": 16,
    "lora_alpha": 32,
    "lora_dropout": 0.05,
    "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"],
}
SEED = 0

# Open-ended requests, so that (almost) every response runs the full 48 tokens in both systems.
PROMPTS = [
    "Explain step by step how a hash table handles collisions, compare chaining with open addressing, "
    "and say when each one is the better choice in practice for a program that stores many short strings.",
    "Write a detailed paragraph describing how photosynthesis turns sunlight, water and carbon dioxide "
    "into sugar, and explain why the whole process matters so much for plants, animals and people on Earth.",
    "Describe in several sentences how to plan a three-day hiking trip in the mountains: what to pack, "
    "how to pick a route, and how to stay safe in bad weather.",
    "Explain to a beginner what a Python list comprehension is, give two short examples, and describe one "
    "situation where a plain for loop is clearer to read and easier for a new colleague to change later.",
    "Summarise the main causes of the French Revolution in a few sentences, covering the money crisis, "
    "social inequality and the ideas of the Enlightenment, and mention how the events of 1789 began.",
    "Give practical advice, in a full paragraph, for someone who wants to start running regularly: how "
    "often to run, how far, and how to avoid the most common injuries during the first few months.",
    "Describe how a bill becomes a law in a parliamentary democracy, from the first proposal to the final "
    "vote, in clear language that a secondary school student could follow without any prior knowledge.",
    "Explain why the sky looks blue during the day and red or orange at sunset, using the idea of light "
    "scattering by the air, in a short but complete explanation with one everyday comparison.",
]


# -- helpers shared by both children (standard library only: the TRL venv has no project code) ----------
def _proc_status_kib(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux ≥ 4.0); False where the kernel refuses."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        return False
    return True


def _set_threads(torch) -> None:
    torch.set_num_threads(THREADS)
    torch.manual_seed(SEED)


def _messages(prompt: str) -> list[dict]:
    return [{"role": "user", "content": prompt}]


def _token_rewards(response_ids: list[int]) -> list[float]:
    """A fixed, deterministic stand-in for a critique: −1 on ids divisible by 7, +1 on ids divisible by 11."""
    return [-1.0 if t % 7 == 0 else 1.0 if t % 11 == 0 else 0.0 for t in response_ids]


# -- child: Text2Grad Studio -------------------------------------------------------------------------------
def run_ours(base: Path, overrides: dict | None = None) -> dict:
    sys.path.insert(0, str(REPO_ROOT))
    import torch

    from text2grad import engine
    from text2grad.config import TrainingConfig
    from text2grad.generation import encode_prompt, sample
    from text2grad.model_store import load
    from text2grad.policy import build_policy

    _set_threads(torch)
    t0 = time.perf_counter()
    model, tokenizer = load(base, None, trainable=True)
    config = TrainingConfig(
        ppo_epochs=PPO_EPOCHS,
        minibatch_size=MINIBATCH_SIZE,
        batch_size=BATCH_SIZE,
        steps=1,
        learning_rate=LEARNING_RATE,
        kl_coef=KL_COEF,
        lora_r=LORA["r"],
        lora_alpha=LORA["lora_alpha"],
        lora_dropout=LORA["lora_dropout"],
        lora_target_modules=list(LORA["target_modules"]),
        seed=SEED,
    )
    if overrides:
        config = TrainingConfig.from_dict({**config.to_dict(), **overrides})
    policy = build_policy(model, config)
    optimizer = engine.make_optimizer(policy, config)
    kl_ctl = engine.make_kl_controller(config)
    load_s = time.perf_counter() - t0

    messages = [_messages(p) for p in PROMPTS]
    prompt_lengths = [len(encode_prompt(tokenizer, m)) for m in messages]
    t0, c0 = time.perf_counter(), time.process_time()
    outputs = sample(
        policy.model,
        tokenizer,
        messages,
        max_new_tokens=RESPONSE_TOKENS,
        temperature=TEMPERATURE,
        seed=SEED,
        batch_size=BATCH_SIZE,
    )
    sampling_s, sampling_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    samples = [
        engine.Sample(o.prompt_ids, o.response_ids, _token_rewards(o.response_ids))
        for per_prompt in outputs
        for o in per_prompt
    ]

    # Time the rollout statistics inside the update by wrapping the module-level helper it calls.
    rollout = {"s": 0.0}
    original_rollout = engine._rollout_statistics

    def timed_rollout(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original_rollout(*args, **kwargs)
        finally:
            rollout["s"] += time.perf_counter() - start

    engine._rollout_statistics = timed_rollout
    peak_before_kib = _proc_status_kib("VmHWM")
    reset = _reset_peak_rss()
    load_before = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    metrics = engine.ppo_update(
        policy,
        samples,
        config,
        kl_ctl,
        optimizer=optimizer,
        generator=torch.Generator().manual_seed(SEED),
    )
    update_s, update_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    update_peak_kib = _proc_status_kib("VmHWM")
    return {
        "system": "ours",
        "load_s": load_s,
        "sampling_s": sampling_s,
        "sampling_cpu_s": sampling_cpu_s,
        "update_s": update_s,
        "update_cpu_s": update_cpu_s,
        "loadavg_1min": [load_before, os.getloadavg()[0]],
        "rollout_s": rollout["s"],
        "optimisation_s": update_s - rollout["s"],
        "optimizer_steps": metrics["optimizer_steps"],
        "response_tokens": [len(s.response_ids) for s in samples],
        "prompt_tokens": prompt_lengths,
        "trainable_params": sum(p.numel() for p in policy.trainable_parameters()),
        "config_overrides": overrides or {},
        "peak_rss_kib": max(peak_before_kib, update_peak_kib),
        "peak_rss_before_update_kib": peak_before_kib,
        "update_peak_rss_kib": update_peak_kib if reset else None,
        "versions": _versions(torch),
    }


# -- child: TRL --------------------------------------------------------------------------------------------
def run_trl(base: Path) -> dict:
    import torch
    import trl
    import trl.experimental.ppo.ppo_trainer as ppo_trainer_module
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer
    from trl.experimental.ppo import PPOConfig, PPOTrainer

    _set_threads(torch)
    t0 = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(base, padding_side="left")
    # SmolLM2 pads with <|im_end|>, which also ends every chat turn inside the prompt; TRL derives attention
    # masks from `ids != pad_token_id`, so it needs a pad id that never occurs: <|endoftext|> (id 0).
    tokenizer.pad_token = "<|endoftext|>"
    policy = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    value_model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1, dtype=torch.float32)
    reward_model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1, dtype=torch.float32)
    for model in (policy, value_model, reward_model):
        model.config.pad_token_id = tokenizer.pad_token_id
    policy.generation_config.pad_token_id = tokenizer.pad_token_id

    prompt_ids = []
    for prompt in PROMPTS:
        ids = tokenizer.apply_chat_template(_messages(prompt), add_generation_prompt=True, tokenize=True)
        prompt_ids.append(list(ids["input_ids"] if hasattr(ids, "keys") else ids))
    dataset = Dataset.from_dict({"input_ids": prompt_ids})

    output_dir = tempfile.mkdtemp(prefix="t2g-bench-trl-")
    args = PPOConfig(
        output_dir=output_dir,
        per_device_train_batch_size=BATCH_SIZE,
        gradient_accumulation_steps=1,
        num_mini_batches=BATCH_SIZE // MINIBATCH_SIZE,
        num_ppo_epochs=PPO_EPOCHS,
        total_episodes=BATCH_SIZE,
        response_length=RESPONSE_TOKENS,
        temperature=TEMPERATURE,
        stop_token="eos",
        learning_rate=LEARNING_RATE,
        kl_coef=KL_COEF,
        bf16=False,
        fp16=False,
        use_cpu=True,
        # PPOTrainer.train() never turns it on; stated so the flag cannot be read as "recomputation on".
        gradient_checkpointing=False,
        num_sample_generations=0,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        seed=SEED,
    )
    peft_config = LoraConfig(task_type="CAUSAL_LM", bias="none", **LORA)
    trainer = PPOTrainer(
        args=args,
        processing_class=tokenizer,
        model=policy,
        ref_model=None,
        reward_model=reward_model,
        train_dataset=dataset,
        value_model=value_model,
        peft_config=peft_config,
    )
    load_s = time.perf_counter() - t0

    generation = {"s": 0.0, "cpu_s": 0.0, "response_tokens": []}
    original_batch_generation = ppo_trainer_module.batch_generation

    def timed_batch_generation(model, queries, *rest, **kwargs):
        start, start_cpu = time.perf_counter(), time.process_time()
        try:
            query_responses, logits = original_batch_generation(model, queries, *rest, **kwargs)
        finally:
            generation["s"] += time.perf_counter() - start
            generation["cpu_s"] += time.process_time() - start_cpu
        responses = query_responses[:, queries.shape[1] :]
        ended = responses == tokenizer.eos_token_id
        lengths = torch.where(ended.any(1), ended.int().argmax(1), responses.shape[1])
        generation["response_tokens"] = lengths.tolist()
        return query_responses, logits

    ppo_trainer_module.batch_generation = timed_batch_generation
    peak_before_kib = _proc_status_kib("VmHWM")
    reset = _reset_peak_rss()
    load_before = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    trainer.train()
    train_s, train_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    update_peak_kib = _proc_status_kib("VmHWM")
    wrapper = trainer.model
    return {
        "system": "trl",
        "load_s": load_s,
        "sampling_s": generation["s"],
        "sampling_cpu_s": generation["cpu_s"],
        "train_s": train_s,
        "update_s": train_s - generation["s"],
        "update_cpu_s": train_cpu_s - generation["cpu_s"],
        "loadavg_1min": [load_before, os.getloadavg()[0]],
        "optimizer_steps": trainer.args.num_ppo_epochs * trainer.args.num_mini_batches,
        "response_tokens": generation["response_tokens"],
        "prompt_tokens": [len(ids) for ids in prompt_ids],
        "trainable_params": sum(p.numel() for p in wrapper.parameters() if p.requires_grad),
        "gradient_checkpointing": bool(getattr(wrapper.policy, "is_gradient_checkpointing", False)),
        "peak_rss_kib": max(peak_before_kib, update_peak_kib),
        "peak_rss_before_update_kib": peak_before_kib,
        "update_peak_rss_kib": update_peak_kib if reset else None,
        "versions": {**_versions(torch), "trl": trl.__version__},
    }


def _versions(torch) -> dict:
    import peft
    import transformers

    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "threads": torch.get_num_threads(),
    }


# -- driver ------------------------------------------------------------------------------------------------
def child_env() -> dict:
    env = dict(os.environ)
    env.update(
        OMP_NUM_THREADS=str(THREADS),
        MKL_NUM_THREADS=str(THREADS),
        TOKENIZERS_PARALLELISM="false",
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TRANSFORMERS_VERBOSITY="error",
        TRL_EXPERIMENTAL_SILENCE="1",
        ACCELERATE_USE_CPU="true",
        CUDA_VISIBLE_DEVICES="",
    )
    return env


def run_child(
    python: str, system: str, base: Path, workdir: Path, index: int, overrides: dict | None = None
) -> dict:
    """One fresh process for one system; returns its report plus the kernel's view of its peak RSS."""
    result_path = workdir / f"{index:02d}-{system}.json"
    log_path = workdir / f"{index:02d}-{system}.log"
    command = [python, str(Path(__file__).resolve()), "--child", system, "--base", str(base)]
    command += ["--result", str(result_path)]
    if system == "ours" and overrides:
        command += ["--ours-config", json.dumps(overrides)]
    started = time.perf_counter()
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=child_env(), stdout=log, stderr=log)
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        tail = log_path.read_text()[-3000:]
        raise SystemExit(f"{system} child failed with {process.returncode}; log {log_path}:\n{tail}")
    report = json.loads(result_path.read_text())
    report["wall_s"] = time.perf_counter() - started
    report["response_tokens_total"] = sum(report["response_tokens"])
    report["ru_maxrss_kib"] = usage.ru_maxrss  # Linux reports KiB
    return report


def _gib(kib: float | None) -> str:
    return "n/a" if kib is None else f"{kib / 2**20:.2f} GiB"


def _median(runs: list[dict], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def render(runs: dict[str, list[dict]], command: str) -> str:
    ours, trl = runs["ours"], runs["trl"]
    rows = [
        ("update time (s)", "update_s", "{:.1f}"),
        ("  of which rollout statistics / optimisation (s)", None, None),
        ("update CPU time, all threads (s)", "update_cpu_s", "{:.1f}"),
        ("sampling 8×48 tokens (s)", "sampling_s", "{:.1f}"),
        ("TRL train() incl. its generation (s)", "train_s", "{:.1f}"),
        ("peak RSS, whole process", "peak_rss_kib", "gib"),
        ("peak RSS, during the update only", "update_peak_rss_kib", "gib"),
        ("peak RSS, kernel ru_maxrss", "ru_maxrss_kib", "gib"),
        ("response tokens trained (sum over the 8)", "response_tokens_total", "{:.0f}"),
        ("model load + setup (s)", "load_s", "{:.1f}"),
    ]
    lines = [
        "| median of runs | Text2Grad Studio | TRL 1.12 PPOTrainer | ours / TRL |",
        "|---|---:|---:|---:|",
    ]
    for label, key, fmt in rows:
        if key is None:
            split_ours = f"{_median(ours, 'rollout_s'):.1f} / {_median(ours, 'optimisation_s'):.1f}"
            lines.append(f"| {label} | {split_ours} | – | – |")
            continue
        a, b = _median(ours, key), _median(trl, key)

        def cell(v, fmt=fmt):
            if v is None:
                return "–"
            return _gib(v) if fmt == "gib" else fmt.format(v)

        ratio = f"{a / b:.2f}×" if a is not None and b else "–"
        lines.append(f"| {label} | {cell(a)} | {cell(b)} | {ratio} |")
    extra = [
        "",
        f"Runs per system: {len(ours)} (alternating order). Individual update times: "
        f"ours {[round(r['update_s'], 1) for r in ours]}, TRL {[round(r['update_s'], 1) for r in trl]}; "
        f"peak RSS (GiB): ours {[round(r['peak_rss_kib'] / 2**20, 2) for r in ours]}, "
        f"TRL {[round(r['peak_rss_kib'] / 2**20, 2) for r in trl]}. 1-minute load average at the start "
        f"of each timed update: ours {[round(r['loadavg_1min'][0], 1) for r in ours]}, "
        f"TRL {[round(r['loadavg_1min'][0], 1) for r in trl]} (2 cores).",
        f"Trainable parameters: ours {ours[0]['trainable_params']:,}, TRL {trl[0]['trainable_params']:,}; "
        f"optimiser steps per update: ours {ours[0]['optimizer_steps']}, TRL {trl[0]['optimizer_steps']}; "
        f"TRL gradient checkpointing active: {trl[0]['gradient_checkpointing']}.",
        f"Prompt tokens: {ours[0]['prompt_tokens']}. Response tokens (last run): "
        f"ours {ours[-1]['response_tokens']}, TRL {trl[-1]['response_tokens']}.",
        f"Versions: ours {ours[0]['versions']}; TRL venv {trl[0]['versions']}.",
        f"Our TrainingConfig overrides beyond the workload: {ours[0].get('config_overrides') or 'none'}.",
        "",
        f"Goal (issue 5a): peak RSS ≤ 0.4× TRL and update time ≤ 0.5× TRL. Measured: "
        f"{_median(ours, 'peak_rss_kib') / _median(trl, 'peak_rss_kib'):.2f}× memory, "
        f"{_median(ours, 'update_s') / _median(trl, 'update_s'):.2f}× time.",
        "",
        f"Command: `{command}`",
    ]
    return "\n".join(lines + extra)


def setup(venv: Path) -> None:
    for template in SETUP_COMMANDS:
        command = [part.format(python=sys.executable, venv=venv) for part in template]
        print("+", " ".join(command), file=sys.stderr, flush=True)
        subprocess.run(command, check=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trl-python", default=str(DEFAULT_TRL_VENV / "bin" / "python"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--base", type=Path, default=DEFAULT_BASE, help="SmolLM2 safetensors folder")
    parser.add_argument(
        "--setup", action="store_true", help=f"create {DEFAULT_TRL_VENV} with TRL 1.12 and exit"
    )
    parser.add_argument("--json", type=Path, help="also write every run's report here")
    parser.add_argument(
        "--ours-config",
        type=json.loads,
        default={},
        help="JSON object of TrainingConfig fields for our side, e.g. '{\"lora_dropout\": 0.0}' (TRL zeroes every "
        "dropout, LoRA's included)",
    )
    parser.add_argument("--child", choices=["ours", "trl"], help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        report = run_ours(args.base, args.ours_config) if args.child == "ours" else run_trl(args.base)
        args.result.write_text(json.dumps(report))
        return
    if args.setup:
        setup(Path(args.trl_python).parent.parent)
        return
    if not (args.base / "config.json").is_file():
        raise SystemExit(f"{args.base} holds no model: start the app once (it converts the embedded GGUF)")

    runs: dict[str, list[dict]] = {"ours": [], "trl": []}
    pythons = {"ours": sys.executable, "trl": args.trl_python}
    with tempfile.TemporaryDirectory(prefix="t2g-bench-ppo-") as tmp:
        index = 0
        for repeat in range(args.repeats):
            order = ["ours", "trl"] if repeat % 2 == 0 else ["trl", "ours"]
            for system in order:
                report = run_child(pythons[system], system, args.base, Path(tmp), index, args.ours_config)
                index += 1
                runs[system].append(report)
                print(
                    f"[{repeat + 1}/{args.repeats}] {system}: update {report['update_s']:.1f} s, "
                    f"sampling {report['sampling_s']:.1f} s, peak {_gib(report['peak_rss_kib'])}, "
                    f"update peak {_gib(report['update_peak_rss_kib'])}",
                    file=sys.stderr,
                    flush=True,
                )
    if args.json:
        args.json.write_text(json.dumps(runs, indent=2))
    python = os.path.relpath(sys.executable, REPO_ROOT)
    if python.startswith(".."):
        python = sys.executable
    command = shlex.join([python, "benchmarks/bench_ppo_vs_trl.py", *(argv or sys.argv[1:])])
    print(render(runs, command))


if __name__ == "__main__":
    main()
