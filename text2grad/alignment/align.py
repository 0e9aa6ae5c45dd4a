"""The entry point: all passes over one critique, merged into proposals.

``align_critique`` reads the critique once (``_read_critique``: quotes, sentences, clauses, and the
classifier's verdicts on each), then runs one function per pass over that reading, each adding proposals
and marking the sentences it explained: ``_quote_pass`` (1), ``_reference_pass`` (2), ``_phrase_pass``
(2b) and ``_semantic_pass`` (3).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .classifier import QUOTE_PLACEHOLDER, ClauseClassifier, classifier_for
from .critique import _Clause, _mask_quotes, _split_clauses, described_part, infer_polarity
from .occurrences import blamed_function_lines, choose_code_occurrence, is_identifier, line_of, ordinal_before
from .phrases import corrected_phrase, mentioned_phrase
from .proposals import GOOD, POOR, SpanProposal, _merge
from .quotes import (
    _SUGGESTION_AFTER,
    _SUGGESTION_BEFORE,
    _find_normalised,
    _is_trivial_quote,
    _locate_quote,
    _Quote,
    extract_quotes,
)
from .references import _structural_refs
from .semantic import Embedder, MiniLMEmbedder, _semantic_proposals, default_embedder
from .text import _sentence_spans, _strip_span, _unwrapped, looks_like_code
from .values import contradicted_role, contradicted_value, restates_differently

DEFAULT_MIN_SCORE = 0.0
# A sentence opening with a pronoun right after one that quoted or referenced something continues it.
_ANAPHORA = re.compile(r"(?:it|this|that|these|those|they|which)\b", re.I)
# ... unless it opens a new point about the output: "It also gets the date wrong", "This answer then ...".
_NEW_POINT = re.compile(
    r"(?:it|this|that|these|those|they)(?:\s+\w+)?\s+(?:also|then|further|additionally|moreover|again)\b",
    re.I,
)
# A classifier verdict this close to 0.5 says nothing: the next wider context (sentence, critique) decides.
POLARITY_MARGIN = 0.15
# Cue words in the clause overrule a classifier verdict less sure than this (0.2 and 0.4 did worse on
# the dev split).
CUE_OVERRIDE_MARGIN = 0.3
# Sentences the scope classifier reads as a remark on the whole output or a suggested fix get no span.
SCOPE_THRESHOLD = 0.5
# A clause that leaves its verdict to the one before ("..., and 'B' is too", "so does 'C'").
_ELLIPTICAL = re.compile(
    r"\b(?:is|are|was|were|does|do|did|has|have)\s+(?:too|as well|also)\W*$|^\W*(?:and\s+)?so\s+(?:is|are|does|do)\b",
    re.I,
)
# A clause of at most this many words after a clause with no cue words may be the verdict on it.
VERDICT_MAX_WORDS = 4
# "Minor: slicing copies the list", "Nit - the name is vague": a second, smaller criticism of one point.
_MINOR = re.compile(r"\W*(?:minor|nit|nitpick|small nit|one nit|quibble)\b\s*[:\-\u2013\u2014,]", re.I)

Similarity = Callable[[str, list[str]], list[float]]


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


@dataclass
class _Reading:
    """One critique, read once: its quotes, sentences and clauses, and what the classifier says of each."""

    output: str
    critique: str
    is_code: bool
    polarity_hint: int | None
    quotes: list[_Quote]
    masked: str
    sentences: list[tuple[int, int]]
    clauses: list[_Clause]
    clause_p: list[float] = field(default_factory=list)
    sentence_p: list[float] = field(default_factory=list)
    sentence_scope: list[float] = field(default_factory=list)
    overall_p: float = 0.5
    sentence_polarity: list[int | None] = field(default_factory=list)
    overall_polarity: int | None = None
    has_classifier: bool = False
    minor: set[int] = field(default_factory=set)  # sentences flagged "Minor:": criticisms of one point
    # filled by the passes: sentences some pass explained, and those explained by a located quote
    sentences_with_hits: set[int] = field(default_factory=set)
    sentences_with_quote_hits: set[int] = field(default_factory=set)

    def clause_at(self, position: int) -> _Clause | None:
        for clause in self.clauses:
            if clause.start <= position < clause.end:
                return clause
        return None

    def sentence_at(self, position: int) -> int | None:
        for index, (s, e) in enumerate(self.sentences):
            if s <= position < e:
                return index
        return None

    def polarity_of(self, clause: _Clause | None, sentence_index: int | None) -> int:
        """The clause's polarity; an undecided clause defers to its sentence, then to the critique."""
        if self.polarity_hint is not None:
            return self.polarity_hint
        if sentence_index in self.minor:
            return POOR
        index = self.clauses.index(clause) if clause is not None else 0
        if index > 0 and _ELLIPTICAL.search(self.masked[clause.start : clause.end]):
            # "'A' is correct, and 'B' is too": the verdict is the clause before's
            return self.polarity_of(self.clauses[index - 1], sentence_index)
        if self.has_classifier:
            return self._classified_polarity(clause, sentence_index)
        if clause is not None:
            found = infer_polarity(self.masked[clause.start : clause.end])
            if found is not None:
                return found
        if sentence_index is not None and self.sentence_polarity[sentence_index] is not None:
            return self.sentence_polarity[sentence_index]
        return self.overall_polarity if self.overall_polarity is not None else POOR

    def _contrasted_polarity(self, clause: _Clause) -> int | None:
        """The opposite of the decided clause that "but" / "however" sets against ``clause``, or None."""
        index = self.clauses.index(clause)
        neighbours = []
        if clause.contrasted and index > 0:
            neighbours.append(index - 1)
        if index + 1 < len(self.clauses) and self.clauses[index + 1].contrasted:
            neighbours.append(index + 1)
        for k in neighbours:
            other = self.clauses[k]
            # Only two references set against each other disagree ("'A' is fine, but 'B' is wrong");
            # "Lines 4-7 could be shorter, but they are correct" says one thing of one referent.
            if not any(other.start <= q.start < other.end for q in self.quotes):
                continue
            p = self.clause_p[k]
            if abs(p - 0.5) >= POLARITY_MARGIN:
                return POOR if p > 0.5 else GOOD
        return None

    def _trailing_verdict(self, clause: _Clause) -> int | None:
        """The polarity of a bare verdict clause ("; that is right", "; good") right after ``clause`` in its
        sentence, when ``clause`` says nothing evaluative itself ("It says 'X'; that is right."): the
        classifier reads such a clause by its topic alone."""
        index = self.clauses.index(clause)
        if index + 1 >= len(self.clauses) or infer_polarity(self.masked[clause.start : clause.end]):
            return None
        verdict = self.clauses[index + 1]
        text = self.masked[verdict.start : verdict.end]
        if (
            verdict.sentence_index != clause.sentence_index
            or len(re.findall(r"\w+", text)) > VERDICT_MAX_WORDS
            or any(verdict.start <= q.start < verdict.end for q in self.quotes)
        ):
            return None
        cues, p = infer_polarity(text), self.clause_p[index + 1]
        # the verdict's cue words decide unless the classifier is sure of the opposite ("; fine for most
        # readers" reads 0.58: the cue word is the verdict, the rest its topic)
        if cues is not None and (abs(p - 0.5) < POLARITY_MARGIN or cues == (GOOD if p > 0.5 else POOR)):
            return cues
        return None

    def _classified_polarity(self, clause: _Clause | None, sentence_index: int | None) -> int:
        if clause is not None:
            verdict = self._trailing_verdict(clause)
            if verdict is not None:
                return verdict
        chain = []
        if clause is not None:
            chain.append(self.clause_p[self.clauses.index(clause)])
        if sentence_index is not None:
            chain.append(self.sentence_p[sentence_index])
        if clause is not None:
            # A clause whose cue words all point one way ("is correct", "Good use of") overrides a
            # classifier verdict that is not confident: the regression reads the topic of a long clause.
            cues = infer_polarity(self.masked[clause.start : clause.end])
            p = chain[0]
            if (
                cues is not None
                and abs(p - 0.5) < CUE_OVERRIDE_MARGIN
                and cues != (GOOD if p > 0.5 else POOR)
            ):
                return cues
        if clause is not None and abs(chain[0] - 0.5) < POLARITY_MARGIN:
            # An undecided clause set against a decided neighbour ("'A' is a fun detail, but 'B' overstates
            # it") takes the other polarity: its sentence's verdict is mostly the neighbour's.
            contrasted = self._contrasted_polarity(clause)
            if contrasted is not None:
                return contrasted
        for p in chain:
            if abs(p - 0.5) >= POLARITY_MARGIN:
                return GOOD if p > 0.5 else POOR
        # The classifier is undecided on the clause and its sentence: a cue word ("invented", "correct") in
        # them decides before the tone of the whole critique does, since a critique that praises one
        # thing and criticises another has no single tone.
        cues = infer_polarity(self.masked[clause.start : clause.end]) if clause is not None else None
        if cues is None and sentence_index is not None:
            cues = self.sentence_polarity[sentence_index]
        if cues is not None:
            return cues
        if abs(self.overall_p - 0.5) >= POLARITY_MARGIN:
            return GOOD if self.overall_p > 0.5 else POOR
        return GOOD if (chain[0] if chain else self.overall_p) > 0.5 else POOR


def _read_critique(
    output: str,
    critique: str,
    *,
    is_code: bool,
    polarity_hint: int | None,
    classifier: ClauseClassifier | None,
) -> _Reading:
    """Quotes, sentences and clauses of the critique; polarity and scope from one classifier call."""
    quotes = extract_quotes(critique)
    masked = _mask_quotes(critique, quotes)
    sentences = _sentence_spans(masked)
    clauses: list[_Clause] = []
    for index, (s, e) in enumerate(sentences):
        clauses.extend(_split_clauses(masked, s, e, index))
    reading = _Reading(output, critique, is_code, polarity_hint, quotes, masked, sentences, clauses)
    reading.minor = {index for index, (s, e) in enumerate(sentences) if _MINOR.match(masked, s)}
    reading.sentence_polarity = [infer_polarity(masked[s:e]) for s, e in sentences]
    reading.overall_polarity = infer_polarity(masked)
    if classifier is None:
        return reading
    # One classifier call for every clause, every sentence and the whole critique.
    texts = [_with_placeholders(critique, quotes, c.start, c.end) for c in clauses]
    texts += [_with_placeholders(critique, quotes, s, e) for s, e in sentences]
    texts.append(_with_placeholders(critique, quotes, 0, len(critique)))
    polarity_p, scope_p = classifier.read(texts)
    reading.has_classifier = True
    reading.clause_p = list(polarity_p[: len(clauses)])
    reading.sentence_p = list(polarity_p[len(clauses) : len(clauses) + len(sentences)])
    # A sentence points somewhere if the sentence or any of its clauses does ("X is unreliable; this should
    # use Y" is about X even though its second clause is a suggested fix).
    reading.sentence_scope = list(scope_p[len(clauses) : len(clauses) + len(sentences)])
    for clause, scope in zip(clauses, scope_p[: len(clauses)], strict=True):
        reading.sentence_scope[clause.sentence_index] = max(
            reading.sentence_scope[clause.sentence_index], scope
        )
    reading.overall_p = float(polarity_p[-1])
    return reading


def _line_similarity(embedder: Embedder | None) -> Similarity:
    """MiniLM similarity of a critique sentence to code lines (to choose among a quote's occurrences) or to
    words (to find the role a correction means)."""
    line_embedder = embedder or default_embedder()

    def similarity(sentence: str, texts: list[str]) -> list[float]:
        vectors = line_embedder.encode([sentence, *texts])
        return (vectors[1:] @ vectors[0]).astype(np.float64).tolist()

    return similarity


def _in_comment_or_string(output: str, line: tuple[int, int], position: int) -> bool:
    """Whether ``position`` sits in a comment, a docstring line or an open string literal of its line."""
    before = output[line[0] : position]
    if output[line[0] : line[1]].startswith(("#", '"""', "'''")) or "#" in before:
        return True
    return before.count('"') % 2 == 1 or before.count("'") % 2 == 1


def _referenced_lines(reading: _Reading) -> dict[int, list[tuple[int, int]]]:
    """Per sentence, the lines its clauses name by number ("line 2", "lines 3-5")."""
    found: dict[int, list[tuple[int, int]]] = {}
    for clause in reading.clauses:
        for start, end, _ in _structural_refs(
            reading.output,
            reading.masked[clause.start : clause.end],
            is_code=reading.is_code,
            allow_ordinals=False,
        ):
            found.setdefault(clause.sentence_index, []).append((start, end))
    return found


Hit = tuple[int, int, float, str]


def _narrow_nested_quotes(reading: _Reading, located: dict[int, list[Hit]]) -> None:
    """Quotes that only frame another quote of their sentence propose nothing.

    "In 'the treaty was signed', 'signed' should be 'ratified'": the short quote is the target, at its
    occurrences inside the longer one (not everywhere the word occurs); the longer quote is where to look,
    and the replacement after "should be" is the annotator's text even when the output happens to hold it.
    """
    critique = reading.critique
    by_sentence: dict[int | None, list[_Quote]] = {}
    for quote in reading.quotes:
        by_sentence.setdefault(reading.sentence_at(quote.start), []).append(quote)
    for quotes in by_sentence.values():
        if len(quotes) < 2:
            continue
        suggested = {
            id(q)
            for q in quotes
            if _SUGGESTION_BEFORE.search(critique[: q.start]) or _SUGGESTION_AFTER.match(critique, q.end)
        }
        if any(located[id(q)] for q in quotes if id(q) not in suggested):
            for q in quotes:
                if id(q) in suggested:
                    located[id(q)] = []
        _drop_framing_quotes(quotes, located, _corrected_quotes(critique, quotes, suggested))


def _corrected_quotes(critique: str, quotes: list[_Quote], suggested: set[int]) -> set[int]:
    """Quotes the next quote replaces ("'Turn it off' should be 'Switch the modem off'"): the
    annotator's target, not a frame for a shorter quote inside it."""
    return {
        id(before)
        for before, after in zip(quotes, quotes[1:], strict=False)
        if id(after) in suggested
        and id(before) not in suggested
        and _SUGGESTION_BEFORE.search(critique[before.end : after.start])
    }


def _drop_framing_quotes(quotes: list[_Quote], located: dict[int, list[Hit]], corrected: set[int]) -> None:
    """A quote found inside another quote of its sentence narrows to those occurrences, and the outer
    quote, only a frame, proposes nothing; unless the outer quote is itself corrected, when the inner
    one only says what is wrong in it ("..., since 'it' is unclear") and proposes nothing."""
    framing = set()
    for inner in quotes:
        for outer in quotes:
            if inner is outer or not located[id(inner)] or not located[id(outer)]:
                continue
            if any(h[3] != "quote-exact" for h in located[id(inner)]):
                continue  # a fuzzy match inside another quote is a near miss, not a pointer into it
            inside = [
                h
                for h in located[id(inner)]
                if any(
                    o[0] <= h[0] and h[1] <= o[1] and (o[0], o[1]) != (h[0], h[1]) for o in located[id(outer)]
                )
            ]
            if inside and id(outer) in corrected:
                located[id(inner)] = []
            elif inside:
                located[id(inner)] = inside
                framing.add(id(outer))
    for key in framing:
        located[key] = []


# "It never mentions 'X'", "should also include 'Y'": the quote is text the output lacks, not a paraphrase.
_OMISSION_BEFORE = re.compile(
    r"(?:\b(?:not|never|no|n't)\s+(?:\w+\s+){0,2}(?:mention|include|cover|add|say|state|explain|note)\w*|"
    r"\b(?:missing|omits?|omitted|leaves? out|left out|lacks?|forg[eo]t\w*|without)|"
    r"\b(?:should|could|might|needs? to|ought to)\s+(?:\w+\s+){0,2}"
    r"(?:mention|include|cover|add|say|state|explain|note)\w*)\W*(?:\w+\W+){0,3}$",
    re.I,
)
# A quote found neither exactly nor fuzzily is a paraphrase when MiniLM puts it at least this close to a
# sentence or clause of the output, kept words counted below (on dev: paraphrases 0.59-0.98 in cosine alone,
# a wrong unit that outscored the right one 0.57, quotes of text the output lacks 0.30-0.39).
PARAPHRASE_THRESHOLD = 0.6
# ... plus this much times the share of the quote's content words the unit keeps (an annotator who
# paraphrases keeps some of the output's words: "under half the Moon's" for "less than half as strong").
PARAPHRASE_WORD_WEIGHT = 0.2
_STOPWORDS = frozenset(
    re.findall(
        r"\w+",
        "the a an and or but of to in on at for with by from is are was were be been it its this that these "
        "those as not no do does did you your we our they their he she his her them",
    )
)


def _content_stems(text: str) -> set[str]:
    """The first four letters of each content word: "charging" and "charge" meet, "the" and "is" do not."""
    return {w[:4] for w in re.findall(r"[a-z]+", text.lower()) if len(w) >= 3 and w not in _STOPWORDS}


_CLAUSE_CUT = re.compile(r"[,;:]\s+|\s+(?:but|while|whereas)\s+|\s[\u2014\u2013-]\s")


def _output_clauses(output: str) -> list[tuple[int, int]]:
    """The output's sentences and, for sentences of several clauses, each clause of three words or more."""
    units = []
    for s, e in _sentence_spans(_unwrapped(output)):
        units.append((s, e))
        cuts = [s, *(x for m in _CLAUSE_CUT.finditer(output, s, e) for x in (m.start(), m.end())), e]
        for a, b in zip(cuts[::2], cuts[1::2], strict=True):
            a, b = _strip_span(output, a, b)
            if (a, b) != (s, e) and len(output[a:b].split()) >= 3:
                units.append((a, b))
    return units


def _paraphrase_hits(reading: _Reading, quote: _Quote, similarity: Similarity | None) -> list[Hit]:
    """The sentence or clause of a prose output that an unlocated quote paraphrases ("it says 'you can keep
    the mug'" for "You don't need to return the mug."), or nothing: a suggestion, a quote of something
    the output lacks, a short quote, or a sentence that points nowhere."""
    phrase = quote.text.strip()
    before = reading.critique[: quote.start]
    if (
        similarity is None
        or len(re.findall(r"\w+", phrase)) < 3
        or _SUGGESTION_BEFORE.search(before)
        or _SUGGESTION_AFTER.match(reading.critique, quote.end)
        or _OMISSION_BEFORE.search(before)
    ):
        return []
    sentence_index = reading.sentence_at(quote.start)
    scope = reading.sentence_scope
    if scope and sentence_index is not None and scope[sentence_index] < SCOPE_THRESHOLD:
        return []
    units = _output_clauses(reading.output)
    if not units:
        return []
    kept = _content_stems(phrase)
    scores = [
        cosine
        + PARAPHRASE_WORD_WEIGHT
        * (len(kept & _content_stems(reading.output[a:b])) / len(kept) if kept else 0)
        for cosine, (a, b) in zip(
            similarity(phrase, [reading.output[a:b] for a, b in units]), units, strict=True
        )
    ]
    best = max(range(len(units)), key=lambda k: scores[k])
    if scores[best] < PARAPHRASE_THRESHOLD:
        return []
    return [(*units[best], round(min(scores[best], 0.85), 4), "semantic")]


_CONTEXT_WORD = re.compile(r"[\w'`-]+")
CONTEXT_WORDS = 6  # critique words tried on each side of a quote that occurs several times in prose


def _enclosing_occurrence(reading: _Reading, quote: _Quote, hits: list[Hit]) -> list[Hit]:
    """The one occurrence of a repeated prose quote that the critique's own words around it pin down.

    "Noting that a dict has a `get` method is right": the words around the quote are output text too, so
    the longest run of them (two words at least) that occurs once in the output and holds an occurrence
    of the quote is what the critique means, not every `append`. Without such a run every occurrence stays.
    """
    s, e = reading.sentences[reading.sentence_at(quote.start) or 0] if reading.sentences else (0, 0)
    left = _CONTEXT_WORD.findall(reading.critique[s : quote.start])[-CONTEXT_WORDS:]
    right = _CONTEXT_WORD.findall(reading.critique[quote.end : e])[:CONTEXT_WORDS]
    options = sorted(
        ((k, m) for k in range(len(left) + 1) for m in range(len(right) + 1) if k + m >= 2),
        key=lambda km: -(km[0] + km[1]),
    )
    for k, m in options:
        phrase = " ".join([*left[len(left) - k :], quote.text.strip(), *right[:m]])
        found = _find_normalised(reading.output, phrase, drop_spaces=False)
        if len(found) == 1 and any(found[0][0] <= h[0] and h[1] <= found[0][1] for h in hits):
            return [(found[0][0], found[0][1], hits[0][2], hits[0][3])]
    return hits


# A described part wins only by this much (MiniLM cosine plus half the share of its words the part keeps).
DESCRIBED_MARGIN = 0.05


def _described_occurrence(
    reading: _Reading, quote: _Quote, hits: list[Hit], similarity: Similarity | None
) -> list[Hit]:
    """The occurrence of a repeated prose quote inside the output sentence the critique describes ("In the
    pricing paragraph, 'the fee' ..."); every occurrence when it describes none, or none clearly."""
    index = reading.sentence_at(quote.start)
    if index is None or similarity is None:
        return hits
    s, e = reading.sentences[index]
    description = described_part(reading.masked[s:e])
    if not description:
        return hits
    units = _sentence_spans(_unwrapped(reading.output))
    owners = [next(((a, b) for a, b in units if a <= h[0] < b), (h[0], h[1])) for h in hits]
    kept = _content_stems(description)
    texts = [reading.output[a:b] for a, b in owners]
    scores = [
        cosine + 0.5 * (len(kept & _content_stems(text)) / len(kept) if kept else 0)
        for cosine, text in zip(similarity(description, texts), texts, strict=True)
    ]
    ranked = sorted(range(len(hits)), key=lambda k: -scores[k])
    best = [k for k in ranked if scores[k] >= scores[ranked[0]] - 1e-9]
    runner_up = max((scores[k] for k in ranked if owners[k] != owners[ranked[0]]), default=None)
    if runner_up is not None and scores[ranked[0]] - runner_up < DESCRIBED_MARGIN:
        return hits
    return [hits[k] for k in ranked if owners[k] == owners[best[0]]]


def _inside_named_units(reading: _Reading, sentence_index: int | None, hits: list[Hit]) -> list[Hit]:
    """The occurrences of a repeated quote inside the sentence, line or item its sentence names ("In the
    last sentence, 'the tower' repeats the subject"); all of them when it names none or none lies there."""
    if sentence_index is None:
        return hits
    s, e = reading.sentences[sentence_index]
    units = _structural_refs(
        reading.output, reading.masked[s:e], is_code=reading.is_code, allow_ordinals=True
    )
    inside = [h for h in hits if any(u[0] <= h[0] and h[1] <= u[1] for u in units)]
    return inside or hits


def _quote_pass(reading: _Reading, similarity: Similarity | None) -> list[SpanProposal]:
    """Pass 1: quoted phrases, narrowed to the occurrence the critique means.

    In a sentence that names a line number, a backticked name is about that line, not on its own, and in
    code an expression quoted inside the named line is read as that line too ("On line 3, `count + 1`
    skips a value" is about line 3).
    """
    output, critique, is_code = reading.output, reading.critique, reading.is_code
    referenced_lines = _referenced_lines(reading)
    located = {id(q): _locate_quote(output, q, critique, is_code=is_code) for q in reading.quotes}
    if not is_code:
        for quote in reading.quotes:
            if not located[id(quote)] and not _is_trivial_quote(quote.text, block=quote.block):
                located[id(quote)] = _paraphrase_hits(reading, quote, similarity)
    _narrow_nested_quotes(reading, located)
    proposals: list[SpanProposal] = []
    for quote in reading.quotes:
        sentence_index = reading.sentence_at(quote.start)
        polarity = reading.polarity_of(reading.clause_at(quote.start), sentence_index)
        hits = located[id(quote)]
        phrase = quote.text.strip()
        s, e = reading.sentences[sentence_index] if sentence_index is not None else (0, len(critique))
        if (
            polarity == GOOD
            and reading.polarity_hint is None
            and restates_differently(phrase, reading.masked[s:e])
        ):
            polarity = POOR  # the sentence gives another value for the quoted one: a correction
        identifier = is_code and is_identifier(phrase)
        same_sentence = [
            q
            for q in reading.quotes
            if q is not quote and reading.sentence_at(q.start) == sentence_index and located[id(q)]
        ]
        body = blamed_function_lines(output, phrase, reading.masked[s:e]) if identifier and hits else []
        if identifier and sentence_index in referenced_lines:
            hits = []
        elif body:
            # a function named for what it does wrong (or right): the line of its body the sentence describes
            score, method = hits[0][2], hits[0][3]
            hits = [(start, end, score, method) for start, end in body]
        elif is_code and sentence_index in referenced_lines:
            named = referenced_lines[sentence_index]
            inside = [h for h in hits if any(s <= h[0] and h[1] <= e and (s, e) != h[:2] for s, e in named)]
            if inside:
                hits = [h for h in hits if h not in inside]
                reading.sentences_with_quote_hits.add(sentence_index)
        if len(hits) > 1:
            hits = _inside_named_units(reading, sentence_index, hits)
        if len(hits) > 1:
            ordinal = ordinal_before(critique, quote.start)
            if ordinal is not None and abs(ordinal) <= len(hits):
                hits = [hits[ordinal - 1 if ordinal > 0 else ordinal]]
            elif not is_code:
                hits = _enclosing_occurrence(reading, quote, hits)
                if len(hits) > 1:
                    hits = _described_occurrence(reading, quote, hits, similarity)
            else:
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
            for start, end, score, method in hits:
                line = line_of(output, start)
                if line is None or any(x in output[line[0] : line[1]] for x in expressions):
                    continue  # the expression quoted beside the name already points into this line
                if _in_comment_or_string(output, line, start):
                    widened.append((start, end, score, method))  # a word quoted from text, not code
                else:
                    widened.append((line[0], line[1], score, method))
            hits = widened
        elif is_code:
            # a quoted sub-expression stands for its whole line, as a line number would
            widened = []
            for start, end, score, method in hits:
                line, last = line_of(output, start), line_of(output, end - 1)
                # an expression quoted over several lines ("if n < 0: raise ...") stands for all of them
                inside = line is not None and last is not None and line[0] <= start and end <= last[1]
                # text quoted from a comment, docstring or string literal is evidence, not the code
                inside = inside and not _in_comment_or_string(output, line, start)
                widened.append((line[0], last[1], score, method) if inside else (start, end, score, method))
            hits = widened
        for start, end, score, method in hits:
            proposals.append(
                SpanProposal(start, end, polarity, score, method, critique[quote.start : quote.end])
            )
        if sentence_index is not None and not _is_trivial_quote(quote.text, block=quote.block):
            # Even an unlocated quote means the sentence was about specific text, not about a segment; in
            # code an unlocated one is a name for the fix ("Minor: `bisect.insort` keeps it ordered"),
            # and the sentence still describes a line.
            if hits or not is_code or _SUGGESTION_BEFORE.search(critique[s : quote.start]):
                reading.sentences_with_hits.add(sentence_index)
            if hits or (identifier and sentence_index in referenced_lines):
                reading.sentences_with_quote_hits.add(sentence_index)
    return proposals


def _reference_pass(reading: _Reading) -> list[SpanProposal]:
    """Pass 2: line numbers and ordinal references, clause by clause."""
    proposals = []
    for clause in reading.clauses:
        refs = _structural_refs(
            reading.output,
            reading.masked[clause.start : clause.end],
            is_code=reading.is_code,
            allow_ordinals=clause.sentence_index not in reading.sentences_with_quote_hits,
        )
        polarity = reading.polarity_of(clause, clause.sentence_index)
        for start, end, evidence in refs:
            proposals.append(SpanProposal(start, end, polarity, 1.0, "line-ref", evidence))
            reading.sentences_with_hits.add(clause.sentence_index)
    return proposals


def _phrase_pass(reading: _Reading, similarity: Similarity | None) -> list[SpanProposal]:
    """Pass 2b: an unquoted correction's wrong value, in prose.

    Either the sentence names it ("twelve years, not twenty years"), or it names only the right value of
    some type ("The ferry crossing takes an hour"), and the output's differing value of that type is the
    wrong one, or it says a job or title is wrong, and the output's role word nearest to the right one
    (MiniLM, when the semantic pass is on) is the wrong one.
    """
    if reading.is_code:
        return []
    proposals = []
    for index, (s, e) in enumerate(reading.sentences):
        if index in reading.sentences_with_hits:
            continue
        sentence = reading.critique[s:e]
        polarity = reading.polarity_hint if reading.polarity_hint is not None else POOR
        found = corrected_phrase(reading.output, sentence)
        mentioned = None if found else mentioned_phrase(reading.output, sentence)
        if mentioned:
            # "calling him a beekeeper is accurate" may praise: the clause naming the word decides
            found = mentioned
            at = s + reading.critique[s:e].find(mentioned[2])
            polarity = reading.polarity_of(reading.clause_at(at), index)
        # a value or title named in a remark on the whole output ("the brief wanted 300 words")
        # corrects nothing in it
        whole = bool(reading.sentence_scope) and reading.sentence_scope[index] < SCOPE_THRESHOLD
        if not found and not whole:
            found = contradicted_value(reading.output, sentence)
            if not found and similarity is not None:
                found = contradicted_role(reading.output, sentence, similarity)
        if found:
            start, end, evidence = found
            proposals.append(SpanProposal(start, end, polarity, 0.9, "phrase", evidence))
            reading.sentences_with_hits.add(index)
    return proposals


def _semantic_pass(reading: _Reading, embedder: Embedder | None) -> list[SpanProposal]:
    """Pass 3: semantic similarity for the sentences nothing else explained.

    A sentence opening with a pronoun right after one that pointed somewhere ("Line 6 loops forever. It
    should be lo = mid + 1.") continues it. A remark on the whole output or a suggested fix points nowhere.
    """
    hits = reading.sentences_with_hits
    pending = [
        i
        for i in range(len(reading.sentences))
        if i not in hits
        and not (
            i - 1 in hits
            and _ANAPHORA.match(reading.masked, reading.sentences[i][0])
            and not _NEW_POINT.match(reading.masked, reading.sentences[i][0])
        )
        and not (reading.sentence_scope and reading.sentence_scope[i] < SCOPE_THRESHOLD)
    ]
    if not pending:
        return []
    return _semantic_proposals(
        reading.output,
        reading.critique,
        reading.masked,
        reading.sentences,
        reading.clauses,
        pending,
        is_code=reading.is_code,
        embedder=embedder,
        polarity_of=reading.polarity_of,
        # a sentence that opens a new point ("It also covers ...") points somewhere, like a "Minor:" one
        minor=reading.minor
        | {i for i in pending if _NEW_POINT.match(reading.masked, reading.sentences[i][0])},
    )


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
    reading = _read_critique(
        output, critique, is_code=is_code, polarity_hint=polarity_hint, classifier=classifier
    )
    similarity = _line_similarity(embedder) if semantic else None
    proposals = _quote_pass(reading, similarity)
    proposals += _reference_pass(reading)
    proposals += _phrase_pass(reading, similarity)
    if semantic:
        proposals += _semantic_pass(reading, embedder)
    return _merge([p for p in proposals if p.score >= min_score])
