"""Pass 2b: the short phrase an unquoted correction names ("twelve years, not twenty years").

A critique that corrects a detail without quoting it usually writes the right value and then the wrong
one after "not" (French "pas", German "nicht", "rather than", "instead of"): "The fee is €40,
not €60." The wrong value is what the output says, so when it occurs there it is the span, not the whole
sentence around it. Only the first occurrence is proposed: a correction names one statement.
"""

from __future__ import annotations

import re

from .text import _normalise_with_map, _respects_boundaries, _sentence_spans

_CONTRAST = re.compile(
    r"(?:,|\u2014|\u2013|;)\s*(?:(?:and|but)\s+)?(?:not|pas|nicht|rather than|instead of)\s+"
    r"(?P<phrase>[^,.;:!?()\"]{1,48}?)\s*[.!?]*\s*$",
    re.I,
)
_MAX_WORDS = 5
_ARTICLES = frozenset(("the", "a", "an", "le", "la", "les", "der", "die", "das"))
_ENGLISH_ARTICLES = frozenset(("the", "a", "an"))
_NUMBER_WORDS = re.compile(
    r"\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty|hundred|"
    r"thousand|million|billion|half|dozen|deux|trois|quatre|cinq|zwei|drei|vier|fünf|dos|tres|cuatro)\b",
    re.I,
)


def _is_value(output: str, start: int, end: int) -> bool:
    text = output[start:end]
    if any(ch.isdigit() for ch in text) or _NUMBER_WORDS.search(text):
        return True
    # A capitalised word that is not merely the first word of its sentence is a name.
    sentence_starts = {s for s, _ in _sentence_spans(output)}
    for m in re.finditer(r"\w+", text):
        if m.group(0)[0].isupper() and start + m.start() not in sentence_starts:
            return True
    return False


def _sentence_around(output: str, start: int, end: int) -> tuple[int, int]:
    for s, e in _sentence_spans(output):
        if s <= start and end <= e:
            return s, e
    return start, end


def _find_phrase(output: str, phrase: str) -> tuple[int, int] | None:
    norm_out, out_map = _normalise_with_map(output)
    norm_phrase, _ = _normalise_with_map(phrase)
    if not norm_phrase:
        return None
    i = norm_out.find(norm_phrase)
    while i >= 0:
        start, end = out_map[i], out_map[i + len(norm_phrase) - 1] + 1
        if _respects_boundaries(output, start, end):
            return start, end
        i = norm_out.find(norm_phrase, i + 1)
    return None


def corrected_phrase(output: str, sentence: str) -> tuple[int, int, str] | None:
    """The output span of the wrong value a correcting sentence names, with its evidence, or None.

    Example:
        >>> out = "She has worked night shifts for twenty years."
        >>> start, end, _ = corrected_phrase(out, "It was twelve years, not twenty years.")
        >>> out[start:end]
        'twenty years'
    """
    m = _CONTRAST.search(sentence)
    if not m:
        return None
    words = m.group("phrase").split()
    if not words or len(words) > _MAX_WORDS:
        return None
    # "not the second one" is not a value; try the phrase, then without a leading article.
    candidates = [" ".join(words)]
    if len(words) > 1 and words[0].lower() in _ARTICLES:
        candidates.append(" ".join(words[1:]))
    noun = len(words) > 1 and words[0].lower() in _ENGLISH_ARTICLES
    for candidate in candidates:
        found = _find_phrase(output, candidate)
        if found:
            if noun:
                # "in the drawer, not the shelf": a noun phrase names a thing the output says, not a
                # predicate about the sentence ("not accurate"); the noun, without its article, is the span.
                article = re.match(r"\W*\w+\s+", output[found[0] : found[1]], re.I)
                bare = _find_phrase(output, " ".join(words[1:]))
                if (
                    article
                    and output[found[0] : found[0] + article.end()].strip().lower() in _ENGLISH_ARTICLES
                ):
                    found = (found[0] + article.end(), found[1])
                elif bare:
                    found = bare
                return (*found, m.group(0).strip(" ,;"))
            span = found if _is_value(output, *found) else _sentence_around(output, *found)
            return (*span, m.group(0).strip(" ,;"))
    return None


# "Calling him a beekeeper is accurate", "The text never says he is a firefighter": the critique names a
# word of the output as what the output calls someone or something; that word, not its sentence, is meant.
_MENTION = re.compile(
    r"\b(?:(?:calling|call|calls|called|describing|describes|labelling|labeling)\s+(?:him|her|them|it|this|"
    r"the\s+\w+)\s+(?:as\s+)?|(?:never|nowhere|does\s+not|doesn't|did\s+not|didn't)\s+(?:says?|said|"
    r"mentions?|states?|claims?)\s+(?:that\s+)?(?:he|she|it|they|the\s+\w+)\s+(?:is|was|are|were)\s+)"
    # an article: a noun ("a beekeeper") names a word of the output; "calling it risky" is a predicate
    r"(?:an?\s+|the\s+)(?P<phrase>[^\W\d][\w'-]*(?:\s+[^\W\d][\w'-]*){0,2}?)"
    r"(?=\s*(?:[;,.!?]|\s(?:is|was|are|were|seems?|sounds?|feels?)\b|$))",
    re.I,
)


def mentioned_phrase(output: str, sentence: str) -> tuple[int, int, str] | None:
    """The output's word or short phrase that the critique says the output calls someone, or None.

    Example:
        >>> out = "The poster, a 40-year-old teacher, asks for advice."
        >>> start, end, _ = mentioned_phrase(out, "The post never says he is a teacher; he is a coach.")
        >>> out[start:end]
        'teacher'
    """
    for m in _MENTION.finditer(sentence):
        found = _find_phrase(output, m.group("phrase"))
        if found:
            return (*found, m.group(0).strip())
    return None
