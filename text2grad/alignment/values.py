"""Pass 2b, typed: a correction that names only the right value ("The ferry crossing takes an hour").

A critique often corrects a number, a date, a duration or an amount without quoting the output and without
writing "not ...": it gives the right value ("The match ended 2-1"), or says which kind of value is wrong
("the fare stated is wrong"). The span is then the output's value of the same type that differs from the
critique's, not its whole sentence. Types: money, percentages, temperatures, scores ("3-1"), ordinals
("19th-century"), dates ("4 May", which "the 9th" or "June" corrects), years, weekdays and months, durations
("four days", "a week", "2 working days"), and counts (a number with its unit). When the output holds several
values of that type, the one whose sentence shares the most words with the critique sentence is chosen, and in
that sentence the one nearest to a shared word; a tie proposes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from .text import _sentence_spans

_NUMBER_WORD = (
    r"(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|forty|fifty|"
    r"sixty|ninety|a|an|a few|several|half an?)"
)
_DIGITS = r"\d[\d,]*(?:\.\d+)?"
_UNIT_OF_TIME = r"(?:second|minute|hour|day|week|fortnight|month|year|decade|century|centuries)s?"
_MEASURE = (
    r"(?:km|kg|cm|mm|m|g|mg|ml|l|lb|lbs|mi|mph|ft|metres|meters|kilometres|kilometers|miles|grams|kilograms|"
    r"litres|liters|calories|kcal)\b"
)
_MAGNITUDE = r"(?:\s+(?:million|billion|thousand|bn|m|k)\b)?"
# capitalised: "may" and "march" are verbs far more often than months
_MONTH = r"(?:January|February|March|April|May|June|July|August|September|October|November|December)"
_PATTERNS: tuple[tuple[str, re.Pattern], ...] = (
    (
        "money",
        re.compile(rf"[$£€¥]\s?{_DIGITS}{_MAGNITUDE}|{_DIGITS}{_MAGNITUDE}\s?(?:€|euros?|dollars?|pounds?)"),
    ),
    ("percent", re.compile(rf"{_DIGITS}\s?(?:%|per ?cent\b)")),
    ("temperature", re.compile(rf"-?{_DIGITS}\s?°\s?[CF]?")),
    # a day of a month, either way round ("10 March", "March 10th"): a correction names its day or month
    (
        "date",
        re.compile(
            rf"\b\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH}\b|\b{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?\b(?![,.]\d)"
        ),
    ),
    # "3-1", and "7 to 2" (a vote, a match) unless a unit follows ("3 to 5 days" is a duration range)
    (
        "score",
        re.compile(
            rf"(?<![\w/.-])\d{{1,3}}(?:[-\u2013]|\s+to\s+)\d{{1,3}}(?![\w/-]|\.\d)"
            rf"(?!\s*(?:%|°|per\b|{_UNIT_OF_TIME}|(?:working|business|calendar)\b|{_MEASURE}))",
            re.I,
        ),
    ),
    ("ordinal", re.compile(r"\b\d{1,4}(?:st|nd|rd|th)(?:[- ]century)?\b", re.I)),
    (
        "duration",
        re.compile(
            rf"\b(?:{_DIGITS}|{_NUMBER_WORD})(?:\s+(?:working|business|calendar|full|whole))?\s+{_UNIT_OF_TIME}\b",
            re.I,
        ),
    ),
    (
        "weekday",
        re.compile(r"\b(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)\b", re.I),
    ),
    (
        "month",
        re.compile(rf"\b{_MONTH}\b"),
    ),
    ("year", re.compile(r"(?<![\w.,$£€-])(?:1[0-9]|20)\d\d(?![\w%,.]\d|[\w%°-])")),
    ("count", re.compile(rf"(?<![\w.,$£€/-]){_DIGITS}{_MAGNITUDE}(?:\s?{_MEASURE})?(?![\w%°-]|[.,/]\d)")),
)
_WORD = re.compile(r"[a-z0-9]+")
_STOPWORDS = frozenset(
    _WORD.findall(
        "the a an of to in on at for and or but is are was were be been it its this that with as by from "
        "here there which who what so not no than then they she he her his their them you your i we our"
    )
)


@dataclass(frozen=True)
class _Value:
    kind: str
    start: int
    end: int
    text: str

    @property
    def key(self) -> str:
        return " ".join(self.text.lower().replace(",", "").split())

    @property
    def unit(self) -> str:
        """The words after the number ("km", "working days"), which a like-for-like correction shares."""
        return " ".join(w for w in _WORD.findall(self.text.lower()) if not w.isdigit())


def typed_values(text: str) -> list[_Value]:
    """The typed values in ``text``, each character claimed by the first (most specific) type that matches.

    Example:
        >>> [(v.kind, v.text) for v in typed_values("It cost $1.4 million in 1998, 24% more, over 2 days.")]
        [('money', '$1.4 million'), ('year', '1998'), ('percent', '24%'), ('duration', '2 days')]
    """
    taken = [False] * len(text)
    found: list[_Value] = []
    for kind, pattern in _PATTERNS:
        for m in pattern.finditer(text):
            start, end = m.start(), m.end()
            while end > start and text[end - 1] in " ,.":
                end -= 1
            if end <= start or any(taken[start:end]):
                continue
            for k in range(start, end):
                taken[k] = True
            found.append(_Value(kind, start, end, text[start:end]))
    return sorted(found, key=lambda v: v.start)


def _content_words(text: str) -> set[str]:
    """Words that carry content, cut to five letters so "widening" meets "widened"."""
    return {w[:5] for w in _WORD.findall(text.lower()) if w not in _STOPWORDS}


def _distance_to_shared(output: str, span: tuple[int, int], position: int, shared: set[str]) -> int:
    """Characters from ``position`` to the nearest word of ``span`` that the critique shares."""
    distances = [
        abs(m.start() + span[0] - position)
        for m in _WORD.finditer(output[span[0] : span[1]].lower())
        if m.group(0)[:5] in shared
    ]
    return min(distances) if distances else len(output)


def _word_before(text: str, position: int) -> str:
    """The word right before ``position`` ("" at the start): "from", "between", "until" carry the slot."""
    words = _WORD.findall(text[max(0, position - 40) : position].lower())
    return words[-1] if words else ""


def contradicted_value(output: str, sentence: str) -> tuple[int, int, str] | None:
    """The output span of the value a correcting sentence contradicts, with its evidence, or None.

    The sentence names a value of some type; the output's values of that type that differ from it are the
    candidates (a like unit first: "6,400 km" corrects "4,000 km" before "5.5 million square kilometres").

    Example:
        >>> out = "The ferry crossing takes 40 minutes. The route opened in 2019."
        >>> start, end, _ = contradicted_value(out, "The crossing takes an hour.")
        >>> out[start:end]
        '40 minutes'
    """
    in_output = typed_values(output)
    # A value the output also states is a reference to it, not a correction.
    present = {v.key for v in in_output}
    named = [v for v in typed_values(sentence) if v.key not in present]
    if not named:
        return None
    named_keys = {v.key for v in named}
    sentences = _sentence_spans(output)
    critique_words = _content_words(sentence)
    best: tuple[tuple[int, int, int, int], _Value, _Value] | None = None
    tied = False
    for value in named:
        candidates = [
            (v, span)
            for v in in_output
            if v.key not in named_keys and (span := _comparable(value, v)) is not None
        ]
        for candidate, span in candidates:
            around = next(((s, e) for s, e in sentences if s <= candidate.start < e), (0, len(output)))
            shared = critique_words & _content_words(output[around[0] : around[1]])
            # a like unit first, then the sentence that echoes the critique most, then the value nearest
            # to an echoed word ("widened in 1968 and repainted in 2004" for "widened in 1971")
            distance = _distance_to_shared(output, around, candidate.start, shared)
            # "open from June" corrects "open from April": the same word before both values
            same_slot = _word_before(sentence, value.start) == _word_before(output, candidate.start) != ""
            score = (
                int(bool(value.unit) and candidate.unit == value.unit),
                int(same_slot),
                len(shared),
                -distance,
            )
            if best is None or score > best[0]:
                best, tied = (score, span, value), False
            elif score == best[0] and span[0] != best[1][0]:
                tied = True
    if best is None or tied:
        return None
    _, span, value = best
    return span[0], span[1], value.text


def _comparable(value: _Value, candidate: _Value) -> tuple[int, int] | None:
    """The part of the output's ``candidate`` that the critique's ``value`` may correct, or None.

    A value corrects one of its own type; a day ("the 9th") corrects a date's day and a month a date's
    month.
    """
    if value.kind == candidate.kind:
        return candidate.start, candidate.end
    if candidate.kind != "date":
        return None
    day = re.fullmatch(r"(\d{1,2})(?:st|nd|rd|th)", value.text)
    if value.kind == "ordinal" and day and 1 <= int(day.group(1)) <= 31:
        same_day = re.search(rf"\b0?{int(day.group(1))}(?!\d)", candidate.text)
        return None if same_day else (candidate.start, candidate.end)
    if value.kind == "month":
        month = re.search(_MONTH, candidate.text)
        if month and month.group(0) != value.text:
            return candidate.start + month.start(), candidate.start + month.end()
    return None


# "the occupation stated is wrong", "his rank is incorrect": the critique says which kind of word is wrong.
_ROLE_KIND = re.compile(
    r"\b(?:job|title|role|profession|occupation|position|rank)\b[^.;!?]*\b(?:wrong|incorrect|mistaken|off|"
    r"inaccurate|not right)\b",
    re.I,
)
# A role noun follows an article, a possessive, "as", "become" or an age ("a 52-year-old pilot"), within
# three words.
_TOKEN = re.compile(r"[\w'-]+")
_ROLE_SLOT = frozenset(_TOKEN.findall("a an the his her their its as become became former"))
_CLAUSE_SPLIT = re.compile(r"[;,:\u2014\u2013]|\s-\s")


def contradicted_role(
    output: str, sentence: str, similarity: Callable[[str, list[str]], list[float]]
) -> tuple[int, int, str] | None:
    """The output's job or title word that a critique saying "the title here is wrong" means, or None.

    The clause beside the verdict names the right role ("Haddad is a pharmacist"); of the output's
    words standing where a role stands, the one most similar to that clause (MiniLM) is the wrong one.
    """
    verdict = _ROLE_KIND.search(sentence)
    if not verdict:
        return None
    clauses = [c for c in _CLAUSE_SPLIT.split(sentence) if c.strip() and not _ROLE_KIND.search(c)]
    query = " ".join(clauses).strip() or sentence
    said = set(_WORD.findall(sentence.lower()))
    candidates: dict[str, tuple[int, int]] = {}
    tokens = list(_TOKEN.finditer(output))
    for index, m in enumerate(tokens):
        word = m.group(0)
        before = [t.group(0).lower() for t in tokens[max(0, index - 3) : index]]
        if (
            not re.fullmatch(r"[a-z][a-z-]{3,}", word)
            or word in said
            or word in _STOPWORDS
            or word in candidates
        ):
            continue
        if any(b in _ROLE_SLOT or re.fullmatch(r"\d+-year-old", b) for b in before):
            candidates[word] = (m.start(), m.end())
    if not candidates:
        return None
    words = list(candidates)
    scores = similarity(query, words)
    best = max(range(len(words)), key=lambda k: scores[k])
    return (*candidates[words[best]], verdict.group(0))


def restates_differently(quoted: str, remark: str) -> bool:
    """Whether ``remark`` (the critique around a quote, quotes masked) gives another value of the same type
    and unit as one the quote holds: "'simmer 10 minutes' (the pack says 25 minutes)" corrects the
    quote, whatever tone the remark has.

    Example:
        >>> restates_differently("simmer 10 minutes", " (the pack says 25 minutes), nice otherwise.")
        True
        >>> restates_differently("within 30 days", " is right, 30 days it is.")
        False
    """
    quoted_values = typed_values(quoted)
    return any(
        mine.kind == theirs.kind and mine.unit == theirs.unit and mine.key != theirs.key
        for mine in quoted_values
        for theirs in typed_values(remark)
        if theirs.key not in {v.key for v in quoted_values}
    )
