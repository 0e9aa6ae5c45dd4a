"""The entry point: all passes over one critique, merged into proposals."""

from __future__ import annotations

import re

from .critique import _Clause, _mask_quotes, _split_clauses, infer_polarity
from .proposals import GOOD, POOR, SpanProposal, _merge
from .quotes import _is_trivial_quote, _locate_quote, extract_quotes
from .references import _structural_refs
from .semantic import Embedder, _semantic_proposals
from .text import _sentence_spans, looks_like_code

DEFAULT_MIN_SCORE = 0.0
# A sentence opening with a pronoun right after one that quoted or referenced something continues it.
_ANAPHORA = re.compile(r"(?:it|this|that|these|those|they|which)\b", re.I)


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
    """Propose spans of ``output`` that ``critique`` talks about (the rules are in the docstring of ``text2grad.alignment``).

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
