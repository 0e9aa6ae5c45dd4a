"""Critic quality and cost: token F1 of the span critic on held-out outputs, against baselines.

The stand-in for people is the programmatic news critic of ``bench_sample_efficiency.py`` (every invented
number or capitalised word of a one-sentence summary is a poor span; the kept name and number are good
spans). The base SmolLM2-135M-Instruct writes one summary per synthetic news item; ``--train`` of them
(200 by default) are labelled and train a critic exactly as the studio's critic job does
(``text2grad.critic``: base + LoRA + token head), and the critic is scored on summaries of ``--held-out``
other items, next to three baselines: every token neutral, P(label | token id) counted on the training
outputs, and MiniLM similarity (a word is poor when its all-MiniLM-L6-v2 embedding is far from every word
of the news item; threshold chosen on the training outputs; it predicts poor only).

Sampled outputs are cached in ``--cache`` so a rerun skips generation. Stages are timed separately.

    .venv/bin/python benchmarks/bench_critic.py                   # 200 train / 100 held-out, 3 epochs
    .venv/bin/python benchmarks/bench_critic.py --quick           # 40 / 20, 1 epoch: a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import numpy as np  # noqa: E402
from bench_sample_efficiency import WORD_RE, critique, make_items, messages  # noqa: E402


def _load_base():
    from text2grad.model_store import load

    return load(REPO / "var" / "models" / "base")


def sample_outputs(items: list[dict], max_new_tokens: int, seed: int) -> list[dict]:
    from text2grad.generation import sample

    model, tokenizer = _load_base()
    rows = []
    for start in range(0, len(items), 16):
        chunk = items[start : start + 16]
        outs = sample(model, tokenizer, [messages(i) for i in chunk], max_new_tokens=max_new_tokens,
                      temperature=0.8, top_p=1.0, seed=seed + start, batch_size=16)  # fmt: skip
        rows += [{"item": item, "text": o[0].text} for item, o in zip(chunk, outs, strict=True)]
        print(f"  sampled {len(rows)}/{len(items)}", flush=True)
    return rows


def label(rows: list[dict], tokenizer) -> list[dict]:
    """Tokenize every output with offsets and label its tokens from the news critic's spans."""
    from text2grad.critic import token_labels
    from text2grad.rewards import SpanReward, tokenize_response

    out = []
    for row in rows:
        spans, _, facts = critique(row["item"], row["text"])
        tokenized = tokenize_response(tokenizer, row["text"], messages(row["item"]))
        if not tokenized.response_ids:
            continue
        marks = [SpanReward(s, e, p, w) for s, e, p, w in spans]
        out.append({**row, "prompt_ids": tokenized.prompt_ids, "response_ids": tokenized.response_ids,
                    "offsets": tokenized.response_offsets, "spans": spans,
                    "labels": token_labels(tokenized.response_offsets, marks), "unsupported": facts["unsupported"]})  # fmt: skip
    return out


def minilm_scores(rows: list[dict]) -> list[np.ndarray]:
    """Per token: 1 - max cosine similarity between the token's word and the words of the news item."""
    from text2grad.alignment.semantic import MiniLMEmbedder

    embedder = MiniLMEmbedder()
    vocabulary = sorted({w for r in rows for w in WORD_RE.findall(r["text"] + " " + r["item"]["text"])})
    vectors = dict(zip(vocabulary, embedder.encode(vocabulary), strict=True))
    scores = []
    for row in rows:
        source = np.stack([vectors[w] for w in WORD_RE.findall(row["item"]["text"])])
        per_token = np.zeros(len(row["response_ids"]))
        for match in WORD_RE.finditer(row["text"]):
            score = 1.0 - float((source @ vectors[match.group()]).max())
            for t, (a, b) in enumerate(row["offsets"]):
                if a < match.end() and match.start() < b:
                    per_token[t] = max(per_token[t], score)
        scores.append(per_token)
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--train", type=int, default=200)
    parser.add_argument("--held-out", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--cache", type=Path, default=REPO / "var" / "bench" / "critic_outputs.json")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "critic_quality.json")
    args = parser.parse_args()
    if args.quick:
        args.train, args.held_out, args.epochs = 40, 20, 1
        args.out = args.out.with_name("critic_quality_quick.json")

    import torch

    from text2grad import critic_metrics as cm
    from text2grad.critic import CriticConfig, CriticExample, build_critic, predict_token_probs, train_critic

    torch.set_num_threads(args.threads)
    timings: dict[str, float] = {}
    load_before = os.getloadavg()
    held_items = make_items(args.held_out, seed=2)
    train_items = make_items(args.train, seed=1, exclude={i["text"] for i in held_items})

    started = time.perf_counter()
    cache = json.loads(args.cache.read_text()) if args.cache.exists() else {}
    key = f"{args.train}/{args.held_out}/{args.max_new_tokens}"
    if key not in cache:
        cache[key] = {"train": sample_outputs(train_items, args.max_new_tokens, 11),
                      "held_out": sample_outputs(held_items, args.max_new_tokens, 22)}  # fmt: skip
        args.cache.parent.mkdir(parents=True, exist_ok=True)
        args.cache.write_text(json.dumps(cache))
        timings["sample_outputs"] = time.perf_counter() - started

    started = time.perf_counter()
    base_model, tokenizer = _load_base()
    train_rows, held_rows = label(cache[key]["train"], tokenizer), label(cache[key]["held_out"], tokenizer)
    timings["label"] = time.perf_counter() - started

    started = time.perf_counter()
    config = CriticConfig(epochs=args.epochs)
    critic = build_critic(base_model, config)
    timings["load"] = time.perf_counter() - started
    started = time.perf_counter()
    examples = [CriticExample(r["prompt_ids"], r["response_ids"], r["labels"]) for r in train_rows]
    result = train_critic(critic, examples, config,
                          on_step=lambda s: print(f"  step {s['step']}/{s['total']} loss {s['loss']:.3f}", flush=True)
                          if s["step"] % 10 == 0 else None)  # fmt: skip
    timings["train"] = time.perf_counter() - started

    started = time.perf_counter()
    probs = predict_token_probs(
        critic, [r["prompt_ids"] for r in held_rows], [r["response_ids"] for r in held_rows]
    )
    timings["predict_held_out"] = time.perf_counter() - started
    truth = [np.array(r["labels"]) for r in held_rows]
    reports = {"critic": cm.evaluate(truth, probs)}
    reports["all_neutral"] = cm.evaluate(truth, cm.all_neutral_probs([len(t) for t in truth]))
    prior = cm.token_prior_fit(
        [r["response_ids"] for r in train_rows], [np.array(r["labels"]) for r in train_rows]
    )
    reports["token_prior"] = cm.evaluate(
        truth, cm.token_prior_probs(prior, [r["response_ids"] for r in held_rows])
    )

    started = time.perf_counter()
    train_scores = minilm_scores(train_rows)
    threshold, _ = cm.f1_threshold(np.concatenate([np.array(r["labels"]) == cm.POOR for r in train_rows]),
                                   np.concatenate(train_scores))  # fmt: skip
    minilm_probs = []
    for scores in minilm_scores(held_rows):
        # Calibrated so that argmax says poor exactly when the score passes the training threshold.
        p_poor = np.where(scores >= threshold, 0.5 + 0.5 * scores, 0.5 * scores / max(threshold, 1e-9))
        minilm_probs.append(np.stack([1 - p_poor, p_poor, np.zeros_like(p_poor)], axis=1))
    reports["minilm_similarity"] = cm.evaluate(truth, minilm_probs)
    timings["minilm_baseline"] = time.perf_counter() - started

    poor_tokens = sum(int((t == cm.POOR).sum()) for t in truth)
    summary = {
        "config": config.to_dict(),
        "train_outputs": len(train_rows),
        "held_out_outputs": len(held_rows),
        "held_out_tokens": int(sum(len(t) for t in truth)),
        "held_out_poor_tokens": poor_tokens,
        "held_out_good_tokens": sum(int((t == cm.GOOD).sum()) for t in truth),
        "outputs_with_unsupported_detail": sum(r["unsupported"] > 0 for r in held_rows)
        / max(1, len(held_rows)),
        "train_losses": result["losses"],
        "timings_s": {k: round(v, 2) for k, v in timings.items()},
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "minilm_threshold": threshold,
        "reports": reports,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=1))
    print("\n| method | poor P | poor R | poor F1 | poor AUROC | good F1 | good AUROC | ECE (poor) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, rep in reports.items():
        poor, good = rep["labels"]["poor"], rep["labels"]["good"]
        fmt = lambda x: "–" if x is None else f"{x:.3f}"  # noqa: E731
        print(f"| {name} | {fmt(poor['precision'])} | {fmt(poor['recall'])} | {fmt(poor['f1'])} | {fmt(poor['auroc'])} "
              f"| {fmt(good['f1'])} | {fmt(good['auroc'])} | {fmt(rep['calibration']['poor']['ece'])} |")  # fmt: skip
    print(f"\n{len(train_rows)} training outputs, {len(held_rows)} held-out ({poor_tokens} poor tokens); "
          f"timings {summary['timings_s']}; load {load_before} -> {summary['loadavg_after']}")  # fmt: skip


if __name__ == "__main__":
    random.seed(0)
    main()
