"""How much the span→token reward mapping adds on top of tokenization itself.

Generates ``--n`` realistic responses (prose and code, 200–1500 characters, some non-ASCII) with 1–5 spans
each, from a fixed seed, then times in one process, alternating, ``--repeats`` times each:

(a) bare batch tokenization: ``tokenizer(texts, add_special_tokens=False)``;
(b) the whole reward computation as the worker runs it: ``batch_tokenized_rewards`` (batch tokenization
    with offsets + mapping, ids and offsets kept for storage).

It prints the medians and the ratio (b)/(a) as a markdown table. The goal is a ratio of at most 1.5.

    .venv/bin/python benchmarks/bench_rewards.py --n 10000 --repeats 5
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from text2grad.rewards import RewardScheme, SpanReward, batch_tokenized_rewards  # noqa: E402

PROSE_SAMPLE = (
    "the model returns a summary of the article but omits the key figures and misstates who "
    "signed the agreement in March while the second paragraph repeats the first one almost word "
    "for word so the reader learns nothing new about costs risks or the timeline that matters"
)
PROSE_WORDS = PROSE_SAMPLE.split()
UNICODE_WORDS = [
    "café",
    "naïve",
    "über",
    "résumé",
    "東京",
    "数据",
    "😀",
    "👍🏽",
    "👩‍💻",
    "—",
    "“quoted”",
    "مرحبا",
    "שלום",
]
CODE_LINES = [
    "def {name}(values):",
    "    if not values:",
    "        return None",
    "    total = 0",
    "    for value in values:",
    "        total += value  # accumulate",
    "    return total / len(values)",
    "class {Name}:",
    "    def __init__(self, size: int) -> None:",
    "        self.size = size",
    '    raise ValueError(f"bad input: {{value!r}}")',
    "result = [{name}(x) for x in range(10) if x % 2 == 0]",
]


def make_prose(rng: random.Random, length: int) -> str:
    words: list[str] = []
    size = 0
    while size < length:
        word = rng.choice(UNICODE_WORDS) if rng.random() < 0.05 else rng.choice(PROSE_WORDS)
        if rng.random() < 0.08:
            word += rng.choice([".", ",", ";", ":", "?"])
        words.append(word)
        size += len(word) + 1
    return " ".join(words)[:length]


def make_code(rng: random.Random, length: int) -> str:
    name = rng.choice(["mean", "average", "normalise", "parse_rows", "load"])
    lines = ["Here is the function:", "```python"]
    size = sum(len(line) + 1 for line in lines)
    while size < length:
        line = rng.choice(CODE_LINES).format(name=name, Name=name.title().replace("_", ""))
        lines.append(line)
        size += len(line) + 1
    lines.append("```")
    return "\n".join(lines)


def make_dataset(n: int, seed: int) -> tuple[list[str], list[list[SpanReward]]]:
    rng = random.Random(seed)
    texts: list[str] = []
    spans_per_text: list[list[SpanReward]] = []
    for _ in range(n):
        length = rng.randint(200, 1500)
        text = make_code(rng, length) if rng.random() < 0.4 else make_prose(rng, length)
        spans = []
        for _ in range(rng.randint(1, 5)):
            start = rng.randrange(len(text) - 1)
            end = min(len(text), start + rng.randint(1, 200))
            spans.append(
                SpanReward(start, end, polarity=rng.choice((1, -1, -1, 0)), weight=rng.choice((1.0, 0.5)))
            )
        texts.append(text)
        spans_per_text.append(spans)
    return texts, spans_per_text


def timed(function) -> tuple[float, float]:
    """Wall-clock and CPU seconds (all threads) of one call, from a freshly collected heap."""
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    function()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="number of responses")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each measurement")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument(
        "--model-dir",
        default=os.environ.get("T2G_BASE_MODEL_DIR", str(REPO_ROOT / "var" / "models" / "base")),
        help="folder holding the base model's tokenizer (default: $T2G_BASE_MODEL_DIR or var/models/base)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads for the Rust tokenizer (RAYON_RS_NUM_CPUS); default: one per CPU",
    )
    args = parser.parse_args()
    if args.threads:
        # Read by the tokenizers library when its thread pool starts, so it must be set before the import.
        os.environ["RAYON_RS_NUM_CPUS"] = str(args.threads)

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    texts, spans_per_text = make_dataset(args.n, args.seed)
    scheme = RewardScheme()

    # Warm up both paths (thread pool start, caches) so the first timed run is not an outlier.
    tokenizer(texts[:200], add_special_tokens=False)
    batch_tokenized_rewards(tokenizer, texts[:200], spans_per_text[:200], scheme)
    n_tokens = sum(len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"])

    bare: list[tuple[float, float]] = []
    full: list[tuple[float, float]] = []
    for _ in range(args.repeats):
        # Alternate the two so that machine noise (other processes, CPU clock) hits both alike.
        bare.append(timed(lambda: tokenizer(texts, add_special_tokens=False)))
        full.append(timed(lambda: batch_tokenized_rewards(tokenizer, texts, spans_per_text, scheme)))

    chars = sum(len(text) for text in texts)
    spans = sum(len(spans) for spans in spans_per_text)
    threads = args.threads or os.cpu_count()
    print(
        f"{args.n} responses: {chars / args.n:.0f} characters, {n_tokens / args.n:.0f} tokens and "
        f"{spans / args.n:.1f} spans each on average; {os.cpu_count()} CPUs, {threads} tokenizer threads; "
        f"{args.repeats} runs each"
    )
    print()
    # The median is the headline; the minimum is the least disturbed run, a check on a busy machine.
    print("| measurement | wall s median | wall s min | CPU s median | wall s, every run |")
    print("|---|---:|---:|---:|---|")
    summary = {}
    for name, runs in (("(a) bare batch tokenization", bare), ("(b) batch_tokenized_rewards", full)):
        walls, cpus = [run[0] for run in runs], [run[1] for run in runs]
        summary[name] = (statistics.median(walls), min(walls), statistics.median(cpus))
        wall_median, wall_min, cpu_median = summary[name]
        every = ", ".join(f"{wall:.3f}" for wall in walls)
        print(f"| {name} | {wall_median:.3f} | {wall_min:.3f} | {cpu_median:.3f} | {every} |")
    (a_median, a_min, a_cpu), (b_median, b_min, b_cpu) = summary.values()
    print(
        f"| ratio (b)/(a) | **{b_median / a_median:.2f}** | {b_min / a_min:.2f} | {b_cpu / a_cpu:.2f} "
        "| goal: median wall <= 1.5 |"
    )


if __name__ == "__main__":
    main()
