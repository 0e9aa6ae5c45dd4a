"""A trained critic on a frozen set of new outputs: items and summaries no critic run trained or was tuned on.

``bench_critic_loop.py`` reports a critic job's metrics on its own held-out split, the same 59 outputs its
settings were compared on (the lookahead ablation). This script measures a saved critic version on outputs
of *new* news items (``make_items`` with another seed, none of the critic loop's texts), sampled from the
base model as the loop's were and annotated by the same programmatic news critic, with the same baselines
that need no training data (every token neutral) or only the loop's outputs (P(label | token id), fit on
all 260 of them: the critic trained on 201, so this favours the baseline slightly). No setting is chosen here: run it once per critic.

    .venv/bin/python benchmarks/bench_critic_frozen.py --critic var/bench/critic-models/critics/<dir> --outputs 80
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
os.environ.setdefault("T2G_TORCH_THREADS", "1")

from bench_critic_loop import sample_cached  # noqa: E402
from bench_sample_efficiency import critique, make_items, messages  # noqa: E402

FROZEN_SEED = 7  # the critic loop's items are seed 1, benchmark (b)'s held-out items seed 2


def _rows(tokenizer, rows: list[dict]):
    from text2grad.critic import token_labels
    from text2grad.generation import encode_prompt
    from text2grad.rewards import SpanReward, tokenize_response

    out = []
    for row in rows:
        tokenized = tokenize_response(tokenizer, row["text"])
        if not tokenized.response_ids:
            continue
        spans, _, _ = critique(row["item"], row["text"])
        labels = token_labels(tokenized.response_offsets, [SpanReward(s, e, p, w) for s, e, p, w in spans])
        out.append((encode_prompt(tokenizer, messages(row["item"])), tokenized.response_ids, labels))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--critic", type=Path, required=True, help="a saved critic version's folder")
    parser.add_argument("--outputs", type=int, default=80)
    parser.add_argument("--train-outputs", type=int, default=260, help="the critic loop's --outputs")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "critic_frozen.json")
    args = parser.parse_args()

    train_items = make_items(args.train_outputs, seed=1)
    frozen_items = make_items(args.outputs, seed=FROZEN_SEED, exclude={i["text"] for i in train_items})
    frozen = sample_cached(frozen_items, args.max_new_tokens, budget_s=3600)
    trained_on = sample_cached(train_items, args.max_new_tokens, budget_s=3600)
    if frozen is None or trained_on is None:
        raise SystemExit("sampling did not finish")

    import numpy as np
    import torch

    from text2grad import critic_metrics as cm
    from text2grad.critic import load_critic, predict_token_probs
    from text2grad.model_store import load

    torch.set_num_threads(1)
    base, tokenizer = load(REPO / "var" / "models" / "base")
    critic = load_critic(base, args.critic)
    rows = _rows(tokenizer, frozen)
    truth = [np.array(labels) for _, _, labels in rows]
    probs = predict_token_probs(critic, [p for p, _, _ in rows], [r for _, r, _ in rows])
    train_rows = _rows(tokenizer, trained_on)
    reports = {
        "critic": cm.evaluate(truth, probs),
        "all_neutral": cm.evaluate(truth, cm.all_neutral_probs([len(r) for _, r, _ in rows])),
        "token_prior": cm.evaluate(
            truth,
            cm.token_prior_probs(
                cm.token_prior_fit(
                    [r for _, r, _ in train_rows], [np.array(lab) for _, _, lab in train_rows]
                ),
                [r for _, r, _ in rows],
            ),
        ),
    }
    result = {
        "critic": str(args.critic.relative_to(REPO))
        if args.critic.is_relative_to(REPO)
        else str(args.critic),
        "frozen_outputs": len(rows),
        "frozen_outputs_with_poor": int(sum((t == 1).any() for t in truth)),
        "tokens": int(sum(len(t) for t in truth)),
        "poor_tokens": int(sum((t == 1).sum() for t in truth)),
        "reports": reports,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"{result['frozen_outputs']} frozen outputs ({result['frozen_outputs_with_poor']} with a poor span), "
          f"{result['tokens']} tokens, {result['poor_tokens']} poor")  # fmt: skip
    print("| method | poor P | poor R | poor F1 | poor AUROC | good F1 | ECE (poor) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, rep in reports.items():
        poor, good = rep["labels"]["poor"], rep["labels"]["good"]

        def fmt(x):
            return "–" if x is None else f"{x:.3f}"

        print(f"| {name} | {fmt(poor['precision'])} | {fmt(poor['recall'])} | {fmt(poor['f1'])} | "
              f"{fmt(poor['auroc'])} | {fmt(good['f1'])} | {fmt(rep['calibration']['poor']['ece'])} |")  # fmt: skip


if __name__ == "__main__":
    main()
