"""Issue 28: no critique of the dev or frozen split may leak into what the aligner learns from or reads.

The aligner reads every file of ``text2grad/alignment/``: the labelled clauses it trains its classifier on
(``data/clauses.tsv``), the cue-word and construct lists and thresholds in its modules, and their comments
(which is where an example copied from a split would sit). A critique counts as leaked when, after
normalising (lower case, words only, each quote replaced by "the phrase" as the classifier sees it), any
8 consecutive words of it occur in such a file; a critique shorter than 8 words leaks when all of its words
occur there in a row, and one shorter than 4 words when a whole line of the file is exactly it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from text2grad.alignment.quotes import extract_quotes

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "text2grad" / "alignment"
# the blind batch (round six) is dev too: written before reading the aligner, then tuned on
DEV_SPLITS = (
    REPO / "tests" / "data" / "alignment_dev.jsonl",
    REPO / "tests" / "data" / "alignment_dev_blind.jsonl",
)
FROZEN_SPLIT = REPO / "tests" / "data" / "alignment_test_frozen.jsonl"
SPLITS = (*DEV_SPLITS, FROZEN_SPLIT)
NGRAM = 8
MIN_RUN = 4
SOURCE_SUFFIXES = {".py", ".tsv", ".txt", ".json", ".csv"}
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower().replace("\u2019", "'"))


def with_placeholders(critique: str) -> str:
    pieces, cursor = [], 0
    for quote in extract_quotes(critique):
        pieces += [critique[cursor : quote.start], " the phrase "]
        cursor = quote.end
    return "".join(pieces) + critique[cursor:]


def grams(sequence: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(sequence[i : i + n]) for i in range(len(sequence) - n + 1)}


class Sources:
    """Every word n-gram (n = 4..8) and every whole line of the files the aligner reads."""

    def __init__(self, files: list[Path]) -> None:
        self.grams: dict[int, dict[tuple[str, ...], Path]] = {n: {} for n in range(MIN_RUN, NGRAM + 1)}
        self.lines: dict[tuple[str, ...], Path] = {}
        for path in files:
            text = path.read_text(encoding="utf-8")
            sequence = words(text)
            for n in self.grams:
                for gram in grams(sequence, n):
                    self.grams[n].setdefault(gram, path)
            for line in text.splitlines():
                # a labelled row's text is its last column; a comment or code line is read whole
                self.lines.setdefault(tuple(words(line.rsplit("\t", 1)[-1])), path)

    def leak(self, critique: str) -> str | None:
        """Where the critique (or its quote-masked form) occurs, or None."""
        for variant in (critique, with_placeholders(critique)):
            sequence = words(variant)
            if len(sequence) < MIN_RUN:
                found = self.lines.get(tuple(sequence)) if sequence else None
                if found:
                    return f"{found.name}: {' '.join(sequence)!r}"
                continue
            n = min(NGRAM, len(sequence))
            for gram in grams(sequence, n):
                if gram in self.grams[n]:
                    return f"{self.grams[n][gram].name}: {' '.join(gram)!r}"
        return None


def aligner_files() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*") if p.is_file() and p.suffix in SOURCE_SUFFIXES)


def test_the_guard_sees_the_clause_file_and_the_cue_lists():
    names = {p.name for p in aligner_files()}
    assert {"clauses.tsv", "critique.py", "classifier.py", "align.py"} <= names


def test_the_guard_catches_exact_masked_and_near_duplicates(tmp_path):
    source = tmp_path / "clauses.tsv"
    source.write_text(
        "-\tspan\tthe phrase overstates how often the ferry runs in the winter months\n"
        "+\tspan\tthe phrase nicely sums it up\n"
        "-\twhole\ttoo wordy\n",
        encoding="utf-8",
    )
    sources = Sources([source])
    # eight words in a row, inside a longer critique, with a quote masked as the classifier masks it
    assert sources.leak('Sadly "daily ferries" overstates how often the ferry runs in the winter.')
    assert sources.leak("'A hidden gem' nicely sums it up.")  # short: every word in a row
    assert sources.leak("Too wordy!")  # very short: the whole line
    assert sources.leak("The ferry runs twice a week in winter, not daily.") is None
    assert sources.leak("Wordy.") is None
    assert sources.leak("It is too wordy here and there.") is None  # 7 words: all of them must occur


def test_no_dev_or_frozen_critique_leaks_into_what_the_aligner_reads():
    sources = Sources(aligner_files())
    leaks = []
    for path in SPLITS:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                case = json.loads(line)
                found = sources.leak(case["critique"])
                if found:
                    leaks.append(f"{path.name} {case['id']} -> {found}")
    assert not leaks, f"{len(leaks)} leaked critiques:\n" + "\n".join(leaks)


def _split_texts(path: Path, field: str) -> list[tuple[str, str]]:
    cases = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [(case["id"], case[field]) for case in cases]


@pytest.mark.parametrize(("field", "n"), [("critique", NGRAM), ("output", 12)])
def test_no_dev_case_is_a_near_duplicate_of_a_frozen_case(field, n):
    """Dev cases are what the aligner is tuned on: none may repeat a frozen critique or output, exactly or
    nearly (any ``n`` consecutive normalised words in common; a critique under ``n`` words, all of its words
    in a row). Quotes are compared as written: masked as "the phrase", every short verdict ("the phrase is
    correct") would match. Only dev ids are printed, so a failure shows nothing of the frozen split."""
    dev = [case for path in DEV_SPLITS for case in _split_texts(path, field)]
    frozen = _split_texts(FROZEN_SPLIT, field)
    frozen_grams = {k: set() for k in range(MIN_RUN, n + 1)}
    for _, text in frozen:
        sequence = words(text)
        for k in frozen_grams:
            frozen_grams[k] |= grams(sequence, k)
    close = []
    for case_id, text in dev:
        sequence = words(text)
        k = min(n, len(sequence))
        if k >= MIN_RUN and grams(sequence, k) & frozen_grams[k]:
            close.append(case_id)
    assert not close, f"{len(close)} dev cases near-duplicate a frozen {field}: {sorted(close)}"
