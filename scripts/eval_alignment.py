"""Evaluate critique-to-span alignment (text2grad.alignment) against the hand-written gold cases.

Usage:
    .venv/bin/python scripts/eval_alignment.py [--cases FILE ...] [--no-semantic] [--details] [--json]
        [--llm-url URL --llm-model NAME [--llm-key-env VAR]]   # add the LLM pass, merged as the studio does

Without ``--cases`` it reports the protocol of issues 17 and 28, each split in its own table: the dev set
(``tests/data/alignment_dev.jsonl``, 328 cases, what the aligner may be tuned on) and the FROZEN test split
(``tests/data/alignment_test_frozen.jsonl``, 139 cases on 46 outputs, written for issue 28 before any change
it asked for and never tuned on: ``--details`` never prints its cases), after the blind dev batch
(``tests/data/alignment_dev_blind.jsonl``, 72 cases on 21 outputs, written for round six before its author
read the aligner, so its "before" figures estimate unseen critiques better than the older dev cases do). Kinds are ``quoted``, ``unquoted`` and ``code``; the domain (summary, qa, chat,
code) is the second part of a case id (``dev-summary-001-quoted``) and gets its own rows. The 81 original
cases (``tests/data/alignment_cases.jsonl``, kinds quoted/unquoted) stay as a regression set.

Matching criterion (span level): a proposal matches a gold span when the polarities agree and their
character-overlap IoU, |P ∩ G| / |P ∪ G| in code points, is at least 0.5. Matching is one-to-one (greedy
by IoU, best first), so splitting one gold span into several proposals earns one true positive and
counts the rest as false positives. Precision = matched proposals / proposals, recall = matched gold /
gold, pooled over all cases of a kind (micro average). Label accuracy: of the gold spans some proposal
overlaps at IoU ≥ 0.5 whatever its label (matched one-to-one), the share whose proposal has the gold label. A case whose gold is empty contributes only false
positives: a critique about the whole output ("far too vague") should propose nothing.

For reference, a character-level F1 is also reported: each code point of the output is labelled -1, 0
or +1 by the gold spans and by the proposals (overlaps resolve to -1, as the reward engine does), and
precision/recall count the characters whose non-zero label is reproduced exactly.

Gold annotation guideline (how the cases were written): quoted critiques point at the quoted text (every
occurrence, when the critique clearly means all of them); misquotes point at what the annotator meant; a
line reference points at the line without its indentation; a paraphrased critique points at the whole
sentence (prose) or line (code) that contains the problem, unless a human would obviously highlight a
smaller phrase.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from text2grad.alignment import (  # noqa: E402
    Embedder,
    LLMAligner,
    LLMAlignerError,
    SpanProposal,
    align_critique,
    merge_llm,
)

DEFAULT_CASES = REPO / "tests" / "data" / "alignment_cases.jsonl"
DEV_CASES = REPO / "tests" / "data" / "alignment_dev.jsonl"
BLIND_DEV_CASES = REPO / "tests" / "data" / "alignment_dev_blind.jsonl"
FROZEN_TEST_CASES = REPO / "tests" / "data" / "alignment_test_frozen.jsonl"
IOU_THRESHOLD = 0.5


@dataclass
class Counts:
    """Pooled counts for one kind of case."""

    cases: int = 0
    proposals: int = 0
    gold: int = 0
    matched: int = 0
    char_tp: int = 0
    char_pred: int = 0
    char_gold: int = 0
    located: int = 0  # gold spans some proposal overlaps at IoU >= 0.5, whatever its label
    labelled: int = 0  # ... and of those, the ones whose one-to-one match has the gold label
    failures: list[str] = field(default_factory=list)
    llm_errors: int = 0  # cases whose LLM call failed (they count with the other passes' proposals)

    @staticmethod
    def _prf(tp: int, pred: int, gold: int) -> tuple[float, float, float]:
        precision = tp / pred if pred else (1.0 if not gold else 0.0)
        recall = tp / gold if gold else 1.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return precision, recall, f1

    @property
    def span_prf(self) -> tuple[float, float, float]:
        return self._prf(self.matched, self.proposals, self.gold)

    @property
    def label_accuracy(self) -> float:
        """Among gold spans found at the right place (IoU >= 0.5, label ignored), the share labelled right."""
        return self.labelled / self.located if self.located else 1.0

    @property
    def char_prf(self) -> tuple[float, float, float]:
        return self._prf(self.char_tp, self.char_pred, self.char_gold)


def load_cases(path: Path = DEFAULT_CASES) -> list[dict]:
    """Read the JSONL case file; every gold span is checked to lie inside its output."""
    cases = []
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            case = json.loads(line)
            for gold in case["gold"]:
                if not 0 <= gold["start"] < gold["end"] <= len(case["output"]):
                    raise ValueError(f"{path}:{line_number}: gold span out of range in {case['id']}")
            cases.append(case)
    return cases


def iou(a_start: int, a_end: int, b_start: int, b_end: int) -> float:
    """Character-overlap intersection over union of two [start, end) spans.

    Example:
        >>> iou(0, 10, 5, 15)
        0.3333333333333333
    """
    intersection = max(0, min(a_end, b_end) - max(a_start, b_start))
    union = (a_end - a_start) + (b_end - b_start) - intersection
    return intersection / union if union else 0.0


def match_spans(
    proposals: list[SpanProposal], gold: list[dict], *, ignore_label: bool = False
) -> list[tuple[int, int]]:
    """One-to-one matches (proposal index, gold index) with equal polarity and IoU ≥ 0.5."""
    pairs = []
    for p_index, proposal in enumerate(proposals):
        for g_index, span in enumerate(gold):
            if proposal.polarity != span["polarity"] and not ignore_label:
                continue
            overlap = iou(proposal.start, proposal.end, span["start"], span["end"])
            if overlap >= IOU_THRESHOLD:
                pairs.append((overlap, p_index, g_index))
    used_p: set[int] = set()
    used_g: set[int] = set()
    matches = []
    for _overlap, p_index, g_index in sorted(pairs, reverse=True):
        if p_index in used_p or g_index in used_g:
            continue
        used_p.add(p_index)
        used_g.add(g_index)
        matches.append((p_index, g_index))
    return matches


def _char_labels(length: int, spans: list[tuple[int, int, int]]) -> list[int]:
    labels = [0] * length
    for start, end, polarity in spans:
        for k in range(start, end):
            labels[k] = -1 if labels[k] == -1 or polarity == -1 else polarity
    return labels


def evaluate(
    cases: list[dict],
    *,
    embedder: Embedder | None = None,
    semantic: bool = True,
    llm: LLMAligner | None = None,
) -> tuple[dict[str, Counts], dict[str, list[SpanProposal]]]:
    """Run align_critique (and the LLM pass, merged as the studio merges it, when ``llm`` is given) over
    the cases; return pooled counts per kind (plus "all") and the proposals."""
    results: dict[str, Counts] = {}
    predictions: dict[str, list[SpanProposal]] = {}
    for case in cases:
        proposals = align_critique(
            case["output"], case["critique"], is_code=case["is_code"], embedder=embedder, semantic=semantic
        )
        llm_failed = False
        if llm is not None:
            try:
                proposals = merge_llm(proposals, llm.align(case["output"], case["critique"]))
            except LLMAlignerError:
                llm_failed = True
        predictions[case["id"]] = proposals
        matches = match_spans(proposals, case["gold"])
        placed = match_spans(proposals, case["gold"], ignore_label=True)
        labelled = sum(1 for p, g in placed if proposals[p].polarity == case["gold"][g]["polarity"])
        predicted_labels = _char_labels(
            len(case["output"]), [(p.start, p.end, p.polarity) for p in proposals]
        )
        gold_labels = _char_labels(
            len(case["output"]), [(g["start"], g["end"], g["polarity"]) for g in case["gold"]]
        )
        char_tp = sum(1 for p, g in zip(predicted_labels, gold_labels, strict=True) if p and p == g)
        parts = case["id"].split("-")
        domain = f"domain:{parts[1]}" if len(parts) > 2 and parts[0] in ("dev", "test") else None
        for kind in (case["kind"], domain, "all"):
            if kind is None:
                continue
            counts = results.setdefault(kind, Counts())
            counts.cases += 1
            counts.llm_errors += llm_failed
            counts.proposals += len(proposals)
            counts.gold += len(case["gold"])
            counts.matched += len(matches)
            counts.located += len(placed)
            counts.labelled += labelled
            counts.char_tp += char_tp
            counts.char_pred += sum(1 for p in predicted_labels if p)
            counts.char_gold += sum(1 for g in gold_labels if g)
            imperfect = len(matches) != len(proposals) or len(matches) != len(case["gold"])
            if imperfect and kind != "all" and not kind.startswith("domain:"):
                counts.failures.append(case["id"])
    return results, predictions


def markdown_table(results: dict[str, Counts]) -> str:
    rows = [
        "| kind | cases | gold | proposed | matched | span P | span R | span F1 | label acc. | char P | char R "
        "| char F1 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for kind in sorted(results, key=lambda k: (k == "all", k.startswith("domain:"), k)):
        c = results[kind]
        sp, sr, sf = c.span_prf
        cp, cr, cf = c.char_prf
        rows.append(
            f"| {kind} | {c.cases} | {c.gold} | {c.proposals} | {c.matched} | {sp:.3f} | {sr:.3f} | {sf:.3f} "
            f"| {c.label_accuracy:.3f} ({c.labelled}/{c.located}) | {cp:.3f} | {cr:.3f} | {cf:.3f} |"
        )
    return "\n".join(rows)


def _describe(case: dict, proposals: list[SpanProposal]) -> str:
    out = case["output"]
    lines = [f"### {case['id']} ({case['kind']})", f"critique: {case['critique']!r}"]
    for g in case["gold"]:
        lines.append(f"  gold {g['polarity']:+d} {out[g['start'] : g['end']]!r}")
    for p in proposals:
        lines.append(f"  prop {p.polarity:+d} {p.text_in(out)!r} [{p.method} {p.score:.2f}]")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cases",
        type=Path,
        action="append",
        help="a JSONL case file (repeatable); default: the dev set, the blind dev batch and the frozen test split",
    )
    parser.add_argument("--no-semantic", action="store_true", help="skip the MiniLM pass")
    parser.add_argument(
        "--details",
        action="store_true",
        help="print gold and proposals of imperfect cases (never frozen ones)",
    )
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON instead of markdown")
    parser.add_argument(
        "--llm-url",
        default=os.environ.get("T2G_LLM_ALIGNER_URL", ""),
        help="add the LLM pass: an OpenAI-compatible base URL ending in /v1 (default: $T2G_LLM_ALIGNER_URL)",
    )
    parser.add_argument("--llm-model", default=os.environ.get("T2G_LLM_ALIGNER_MODEL", "gpt-4o"))
    parser.add_argument(
        "--llm-key-env", default="T2G_LLM_ALIGNER_KEY", help="the environment variable holding the API key"
    )
    parser.add_argument("--llm-max-tokens", type=int, default=512)
    args = parser.parse_args(argv)
    llm = None
    if args.llm_url:
        llm = LLMAligner(
            base_url=args.llm_url,
            model=args.llm_model,
            api_key=os.environ.get(args.llm_key_env) or None,
            max_tokens=args.llm_max_tokens,
        )

    paths = args.cases or [DEV_CASES, BLIND_DEV_CASES, FROZEN_TEST_CASES]
    report: dict[str, dict] = {}
    for path in paths:
        cases = load_cases(path)
        frozen = path.resolve() == FROZEN_TEST_CASES.resolve()
        started = time.perf_counter()
        results, predictions = evaluate(cases, semantic=not args.no_semantic, llm=llm)
        elapsed = time.perf_counter() - started
        if args.json:
            report[path.name] = {
                kind: {
                    "cases": c.cases,
                    "span_precision": c.span_prf[0],
                    "span_recall": c.span_prf[1],
                    "span_f1": c.span_prf[2],
                    "label_accuracy": c.label_accuracy,
                    "char_precision": c.char_prf[0],
                    "char_recall": c.char_prf[1],
                    "char_f1": c.char_prf[2],
                    "llm_errors": c.llm_errors,
                }
                for kind, c in results.items()
            }
            continue
        label = " (FROZEN test split: report only, never tune on it)" if frozen else ""
        print(f"## {path.name}{label}\n")
        llm_note = f", LLM pass: {args.llm_model} at {args.llm_url}" if llm else ""
        print(f"{len(cases)} cases, {elapsed:.1f} s (semantic: {not args.no_semantic}{llm_note})\n")
        if llm:
            print(f"LLM calls that failed (bad JSON, HTTP errors): {results['all'].llm_errors}\n")
        print(markdown_table(results))
        if frozen:
            print()
            continue
        for kind, c in sorted(results.items()):
            if kind != "all" and c.failures:
                print(f"\nimperfect {kind} cases: {', '.join(c.failures)}")
        if args.details:
            by_id = {case["id"]: case for case in cases}
            for kind, c in sorted(results.items()):
                for case_id in c.failures if kind != "all" else []:
                    print()
                    print(_describe(by_id[case_id], predictions[case_id]))
        print()
    if args.json:
        print(json.dumps(report if len(report) > 1 else next(iter(report.values())), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
