"""Reading the critique itself: polarity from cue words, and clauses that may disagree in polarity."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .proposals import GOOD, POOR
from .quotes import _Quote
from .text import _strip_span

_NEGATIVE_CUES = re.compile(
    r"\b(?:wrong(?:ly)?|incorrect(?:ly)?|errors?|erroneous|fails?|failed|failing|missing|miss(?:es|ed)?|"
    r"bugs?|buggy|unnecessary|unneeded|needless(?:ly)?|superfluous|pointless|useless|extraneous|verbose|wordy|filler|hallucinat\w*|invent(?:s|ed|ing)?|"
    r"made[- ]up|fabricat\w*|false|misleading|crash(?:es|ed)?|broken|breaks?|inaccurate|irrelevant|"
    r"redundant|repeats?|repetitive|outdated|dangerous|slow|inefficient|quadratic|unreliable|forever|"
    r"swallows?|hides?|misinformation|myth|odd|awkward|confusing|unclear|vague|hedg\w*|too(?=\s+\w)|remove|drop|"
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
    r"thorough|readable|succinct|robust|handles?|good job|well done|bravo|agree|sensible|reasonable|rightly|"
    r"key\s+(?:point|detail|fact|idea|takeaway)s?|"
    # "fine", "works" and "like" are cues only in these constructions: "pay the fine", "Einstein's work"
    # and "errors like malformed JSON" are not praise.
    r"(?:is|are|was|looks?|seems?|reads?|'s)\s+fine|^\W*fine|(?:it|this|that|code|which)\s+works|"
    r"(?:i|we)\s+(?:really\s+|also\s+)?like[sd]?)\b",
    re.I | re.M,
)
# ("too" is a cue before a word, "too long", not at a clause's end, where it means "also".)
# Weak negative cues count half: "should" or "not" in a clause that also says "correct" usually qualifies
# the praise rather than reversing it, but on their own they still signal a complaint.
_WEAK_NEGATIVE = {"not", "no", "should", "doesn't", "don't", "isn't", "aren't", "wasn't", "instead", "too"}
_NEGATORS = re.compile(r"\b(?:not|never|no|hardly|barely)\b|n't\b", re.I)
# Praise words taken past what is wanted ("too precise", "overly concise") are a complaint.
_EXCESS = re.compile(r"\b(?:too|overly|excessively)\s+$", re.I)


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
        if _NEGATORS.search(window) or _EXCESS.search(window):
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
    r",\s*(?:but|however|whereas|while|although|though|yet|and)\b|;\s*|\s+(?:but|however|whereas|although)\b|"
    r"\s[\u2014\u2013]\s|\s-\s",
    re.I,
)


@dataclass
class _Clause:
    start: int
    end: int
    sentence_index: int
    # joined to the clause before it by "but", "however", "although"...: the two usually disagree in polarity
    contrasted: bool = False


# ("while" only after a comma, where it sets two things against each other, not "while loading").
_CONTRAST_WORD = re.compile(r"\W*(?:but|however|whereas|while|although|though|yet|still)\b", re.I)


def _mask_quotes(critique: str, quotes: list[_Quote]) -> str:
    # Sentence and clause splitting, and cue words, must not look inside quoted output text.
    chars = list(critique)
    for q in quotes:
        for k in range(q.start, q.end):
            # a line break inside a quote (a hard-wrapped critique) ends no sentence
            chars[k] = "Q" if not chars[k].isspace() or q.block else " "
    return "".join(chars)


def _split_clauses(masked: str, start: int, end: int, sentence_index: int) -> list[_Clause]:
    clauses = []
    cursor = start
    # a sentence opening with "But" or "However" contrasts with the sentence before it
    contrasted = bool(_CONTRAST_WORD.match(masked, start))
    for m in _CLAUSE_BREAK.finditer(masked, start, end):
        s, e = _strip_span(masked, cursor, m.start())
        if e > s:
            clauses.append(_Clause(s, e, sentence_index, contrasted))
        contrasted = bool(_CONTRAST_WORD.match(masked[m.start() : m.end()].lstrip(",; ")))
        cursor = m.end()
    s, e = _strip_span(masked, cursor, end)
    if e > s:
        clauses.append(_Clause(s, e, sentence_index, contrasted))
    return clauses


# "In the pricing paragraph, 'X' ...", "the part about the museum": words that say which part of the output
# a remark is about, without quoting it.
_PART_NOUN = (
    r"(?:sentences?|paragraph|part|section|passage|bit|steps?|instructions?|rule|example|clause|bullet)"
)
_DESCRIBED_PART = re.compile(
    r"\bthe\s+((?:[\w-]+\s+){0,3}?)"
    + _PART_NOUN
    + r"\b(?:\s+(?:about|on|with|where|that|which|for)\s+([^,;:.!?]+?)"
    # the topic ends where the verdict on it starts ("... about the grant is accurate") or at a quote
    + r"(?=\s+(?:is|are|was|were|seems?|looks?|reads?|sounds?|has|have|should|could|would|needs?)\b"
    + r"|\s*Q|[,;:.!?]|$))?",
    re.I,
)
_ORDINAL = re.compile(r"first|second|third|fourth|fifth|last|final|opening|closing|\d+(?:st|nd|rd|th)", re.I)
_NOT_A_DESCRIPTION = frozenset(
    {"same", "other", "next", "previous", "whole", "entire", "rest", "this", "that"}
)


def described_part(text: str) -> str:
    """The words of ``text`` (quotes masked) that describe a part of the output, or "".

    Example:
        >>> described_part("In the pricing paragraph, QQ is off"), described_part("The bit on the museum is fine")
        ('pricing', 'the museum')
    """
    found = []
    for m in _DESCRIBED_PART.finditer(text):
        # "the second sentence" is an ordinal reference, not a description; "about the opening hours" is
        words = [
            w
            for w in (m.group(1) or "").split()
            if w.lower() not in _NOT_A_DESCRIPTION and not _ORDINAL.fullmatch(w)
        ]
        words += (m.group(2) or "").split()
        found += [w for w in words if not re.fullmatch(r"Q+", w)]
    return " ".join(found)
