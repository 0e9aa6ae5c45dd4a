"""The entry point: all passes over one critique, merged into proposals."""

from __future__ import annotations

import re

import numpy as np

from .classifier import QUOTE_PLACEHOLDER, ClauseClassifier, classifier_for
from .critique import _Clause, _mask_quotes, _split_clauses, infer_polarity
from .occurrences import choose_code_occurrence, is_identifier, line_of, ordinal_before
from .phrases import corrected_phrase
from .proposals import GOOD, POOR, SpanProposal, _merge
from .quotes import _is_trivial_quote, _locate_quote, _Quote, extract_quotes
from .references import _structural_refs
from .semantic import Embedder, MiniLMEmbedder, _semantic_proposals, default_embedder
from .text import _sentence_spans, looks_like_code

DEFAULT_MIN_SCORE = 0.0
# A sentence opening with a pronoun right after one that quoted or referenced something continues it.
_ANAPHORA = re.compile(r"(?:it|this|that|these|those|they|which)\b", re.I)
# A classifier verdict this close to 0.5 says nothing: the next wider context (sentence, critique) decides.
POLARITY_MARGIN = 0.15
# Sentences the scope classifier reads as a remark on the whole output or a suggested fix get no span.
SCOPE_THRESHOLD = 0.5


def _default_classifier(embedder: Embedder | None) -> ClauseClassifier | None:
    """The MiniLM clause classifier, unless the caller brought another embedder or MiniLM is missing."""
    if embedder is not None and not isinstance(embedder, MiniLMEmbedder):
        return None
    try:
        chosen = embedder or default_embedder()
        chosen.load()
    except ImportError:
        return None
    return classifier_for(chosen)


def _with_placeholders(critique: str, quotes: list[_Quote], start: int, end: int) -> str:
    """The critique between ``start`` and ``end`` with each quote replaced by "the phrase"."""
    pieces, cursor = [], start
    for quote in quotes:
        if quote.start >= start and quote.end <= end:
            pieces.append(critique[cursor : quote.start])
            pieces.append(QUOTE_PLACEHOLDER)
            cursor = quote.end
    pieces.append(critique[cursor:end])
    return " ".join("".join(pieces).split())


def align_critique(
    output: str,
    critique: str,
    *,
    polarity_hint: int | None = None,
    embedder: Embedder | None = None,
    is_code: bool | None = None,
    min_score: float = DEFAULT_MIN_SCORE,
    semantic: bool = True,
    classifier: ClauseClassifier | None = None,
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
        classifier: reads each clause's polarity and scope; by default the MiniLM clause classifier when
            ``semantic`` is on and ``embedder`` is MiniLM (or None). Without one, cue words decide polarity
            and every sentence may get a semantic span.

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
    if classifier is None and semantic:
        classifier = _default_classifier(embedder)

    quotes = extract_quotes(critique)
    masked = _mask_quotes(critique, quotes)
    sentences = _sentence_spans(masked)
    clauses: list[_Clause] = []
    for index, (s, e) in enumerate(sentences):
        clauses.extend(_split_clauses(masked, s, e, index))

    # Polarity and scope: one classifier call for every clause, every sentence and the whole critique.
    clause_p: list[float] = []
    sentence_p: list[float] = []
    sentence_scope: list[float] = []
    overall_p = 0.5
    if classifier is not None:
        texts = [_with_placeholders(critique, quotes, c.start, c.end) for c in clauses]
        texts += [_with_placeholders(critique, quotes, s, e) for s, e in sentences]
        texts.append(_with_placeholders(critique, quotes, 0, len(critique)))
        polarity_p, scope_p = classifier.read(texts)
        clause_p = polarity_p[: len(clauses)]
        sentence_p = polarity_p[len(clauses) : len(clauses) + len(sentences)]
        # A sentence points somewhere if the sentence or any of its clauses does ("X is unreliable; this
        # should use Y" is about X even though its second clause is a suggested fix).
        sentence_scope = list(scope_p[len(clauses) : len(clauses) + len(sentences)])
        for clause, scope in zip(clauses, scope_p[: len(clauses)], strict=True):
            sentence_scope[clause.sentence_index] = max(sentence_scope[clause.sentence_index], scope)
        overall_p = polarity_p[-1]
    sentence_polarity = [infer_polarity(masked[s:e]) for s, e in sentences]
    overall_polarity = infer_polarity(masked)

    def polarity_of(clause: _Clause | None, sentence_index: int | None) -> int:
        if polarity_hint is not None:
            return polarity_hint
        if classifier is not None:
            chain = []
            if clause is not None:
                chain.append(clause_p[clauses.index(clause)])
            if sentence_index is not None:
                chain.append(sentence_p[sentence_index])
            chain.append(overall_p)
            for p in chain:
                if abs(p - 0.5) >= POLARITY_MARGIN:
                    return GOOD if p > 0.5 else POOR
            # The classifier is undecided at every level: a cue word ("invented", "correct") in the
            # clause or its sentence decides before a coin-flip verdict does.
            cues = infer_polarity(masked[clause.start : clause.end]) if clause is not None else None
            if cues is None and sentence_index is not None:
                cues = sentence_polarity[sentence_index]
            if cues is not None:
                return cues
            return GOOD if chain[0] > 0.5 else POOR
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

    similarity = None
    if semantic and is_code:
        line_embedder = embedder or default_embedder()

        def similarity(sentence: str, texts: list[str]) -> list[float]:
            vectors = line_embedder.encode([sentence, *texts])
            return (vectors[1:] @ vectors[0]).astype(np.float64).tolist()

    # Sentences that name a line number: a backticked name in them is about that line, not on its own.
    # In code, an expression quoted inside the named line is read as that line too ("On line 3,
    # `count + 1` skips a value" is about line 3).
    referenced_lines: dict[int, list[tuple[int, int]]] = {}
    for clause in clauses:
        for start, end, _ in _structural_refs(
            output, masked[clause.start : clause.end], is_code=is_code, allow_ordinals=False
        ):
            referenced_lines.setdefault(clause.sentence_index, []).append((start, end))
    line_ref_sentences = set(referenced_lines)

    proposals: list[SpanProposal] = []
    sentences_with_hits: set[int] = set()
    sentences_with_quote_hits: set[int] = set()

    # 1. quoted phrases, narrowed to the occurrence the critique means
    located = {id(q): _locate_quote(output, q, critique, is_code=is_code) for q in quotes}
    for quote in quotes:
        sentence_index = sentence_at(quote.start)
        polarity = polarity_of(clause_at(quote.start), sentence_index)
        hits = located[id(quote)]
        phrase = quote.text.strip()
        identifier = is_code and is_identifier(phrase)
        same_sentence = [
            q for q in quotes if q is not quote and sentence_at(q.start) == sentence_index and located[id(q)]
        ]
        if identifier and sentence_index in line_ref_sentences:
            hits = []
        elif is_code and sentence_index in referenced_lines:
            named = referenced_lines[sentence_index]
            inside = [h for h in hits if any(s <= h[0] and h[1] <= e and (s, e) != h[:2] for s, e in named)]
            if inside:
                hits = [h for h in hits if h not in inside]
                sentences_with_quote_hits.add(sentence_index)
        if len(hits) > 1:
            ordinal = ordinal_before(critique, quote.start)
            if ordinal is not None and abs(ordinal) <= len(hits):
                hits = [hits[ordinal - 1 if ordinal > 0 else ordinal]]
            elif is_code:
                s, e = sentences[sentence_index] if sentence_index is not None else (0, len(critique))
                hits = [
                    choose_code_occurrence(
                        output,
                        hits,
                        phrase=phrase,
                        sentence=critique[s:e],
                        other_quotes=[q.text.strip() for q in same_sentence],
                        similarity=similarity,
                    )
                ]
        if identifier:
            expressions = [q.text.strip() for q in same_sentence if not is_identifier(q.text)]
            widened = []
            for start, _end, score, method in hits:
                line = line_of(output, start)
                if line is None or any(x in output[line[0] : line[1]] for x in expressions):
                    continue  # the expression quoted beside the name already points into this line
                widened.append((line[0], line[1], score, method))
            hits = widened
        for start, end, score, method in hits:
            proposals.append(
                SpanProposal(start, end, polarity, score, method, critique[quote.start : quote.end])
            )
        if sentence_index is not None and not _is_trivial_quote(quote.text, block=quote.block):
            # Even an unlocated quote means the sentence was about specific text, not about a segment.
            sentences_with_hits.add(sentence_index)
            if hits or (identifier and sentence_index in line_ref_sentences):
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

    # 2b. an unquoted correction's wrong value ("twelve years, not twenty years")
    if not is_code:
        for index, (s, e) in enumerate(sentences):
            if index in sentences_with_hits:
                continue
            found = corrected_phrase(output, critique[s:e])
            if found:
                start, end, evidence = found
                polarity = polarity_hint if polarity_hint is not None else POOR
                proposals.append(SpanProposal(start, end, polarity, 0.9, "phrase", evidence))
                sentences_with_hits.add(index)

    # 3. semantic similarity for sentences nothing else explained. A sentence opening with a pronoun right
    # after one that pointed somewhere ("Line 6 loops forever. It should be lo = mid + 1.") continues it.
    # A remark on the whole output or a suggested fix points nowhere.
    pending = [
        i
        for i in range(len(sentences))
        if i not in sentences_with_hits
        and not (i - 1 in sentences_with_hits and _ANAPHORA.match(masked, sentences[i][0]))
        and not (sentence_scope and sentence_scope[i] < SCOPE_THRESHOLD)
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
