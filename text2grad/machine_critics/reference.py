"""The reference critic: facts (names, numbers, dates) of the item's reference missing from the output,
or contradicted by it.

Facts are read from ``metadata["reference"]`` with plain patterns: dates (``3 March 2021``, ``March 3,
2021``, ``March 2021``, a year), numbers (``12``, ``1,200``, ``3.5``, ``40%``, ``twelve``) and names (runs
of capitalised words that do not merely open a sentence; a reference that is only a few capitalised words, a
QA answer like ``Paris``, is one name). A fact is *stated* when the output holds it (numbers compared by
value, names and dates without case or punctuation); *contradicted* when it is not stated and a fact of the
same kind that the reference does not hold sits in the output in the same context (a content word shared
within ``window`` words on either side), or, when the reference holds one fact of that kind and the output
one such fact of its own (a short QA answer), that one: a poor span on that value. Facts of the prompt are
not the output's own (repeating the question). A fact neither stated nor contradicted is *missing*: the
overall critique names it. Stated facts become minor good spans when ``mark_good`` is on.

Limits: no paraphrase ("a dozen", "the Paris-based firm"), no coreference, one context heuristic for
all kinds; it checks facts, not fluency or faithfulness of anything that is not a fact.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import MappingProxyType

from .base import GOOD, POOR, Critic, CriticItem, CriticResult, Evidence, SpanCritique

_MONTHS = (
    "january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
    "november", "december", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov",
    "dec",
)  # fmt: skip
_MONTH = r"(?:" + "|".join(m.capitalize() for m in _MONTHS) + r")\.?"
_DATE = re.compile(
    rf"\b(?:\d{{1,2}}(?:st|nd|rd|th)?\s+{_MONTH}(?:,?\s+\d{{4}})?"
    rf"|{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+\d{{4}})?"
    rf"|{_MONTH}\s+\d{{4}}"
    r"|(?:1[5-9]|20)\d{2})\b"
)
_WORD_NUMBERS = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
    "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty",
)  # fmt: skip
_NUMBER = re.compile(
    r"(?<![\w.])[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?%?|(?<![\w.])[-+]?\d+(?:\.\d+)?%?"
    r"|\b(?:" + "|".join(_WORD_NUMBERS[2:]) + r")\b",
    re.IGNORECASE,
)
_NAME = re.compile(
    r"\b[A-Z][\w'’-]*[a-z][\w'’-]*(?:\s+(?:of|de|van|von|der|la|al)?\s*[A-Z][\w'’-]*[a-z]\w*)*"
)
_STOP = {
    "a", "an", "the", "and", "or", "but", "if", "of", "in", "on", "at", "to", "for", "from", "by", "with",
    "as", "is", "are", "was", "were", "be", "been", "being", "it", "its", "this", "that", "these", "those",
    "he", "she", "they", "we", "you", "i", "his", "her", "their", "our", "your", "my", "me", "him", "them",
    "us", "not", "no", "yes", "so", "than", "then", "there", "here", "what", "which", "who", "whom",
    "whose", "when", "where", "why", "how", "all", "any", "some", "each", "more", "most", "other", "such",
    "only", "own", "same", "too", "very", "can", "will", "just", "should", "would", "could", "may",
    "might", "must", "do", "does", "did", "has", "have", "had", "about", "after", "before", "over",
    "under", "into", "out", "up", "down", "also", "said", "says", "say", "new", "one",
}  # fmt: skip
_OPENERS = {w.capitalize() for w in _STOP} | {
    "However",
    "Meanwhile",
    "Today",
    "Yesterday",
    "Tomorrow",
    "Mr",
    "Mrs",
}


@dataclass(frozen=True)
class Fact:
    kind: str  # "date", "number" or "name"
    text: str
    start: int
    end: int
    key: str  # the comparable form: a number's value, a name's or date's folded text
    context: frozenset[str]


def _fold(text: str) -> str:
    return re.sub(r"[^\w%]+", " ", text.lower()).strip()


def _number_key(text: str) -> str:
    lowered = text.lower()
    if lowered in _WORD_NUMBERS:
        return str(_WORD_NUMBERS.index(lowered))
    percent = "%" if lowered.endswith("%") else ""
    try:
        value = float(lowered.rstrip("%").replace(",", ""))
    except ValueError:
        return lowered
    return f"{value:g}{percent}"


def _context(text: str, start: int, end: int, window: int) -> frozenset[str]:
    before = re.findall(r"[a-z]{3,}", text[:start].lower())[-window:]
    after = re.findall(r"[a-z]{3,}", text[end:].lower())[:window]
    return frozenset(w for w in before + after if w not in _STOP)


def _sentence_start(text: str, start: int) -> bool:
    head = text[:start].rstrip()
    return not head or head[-1] in ".!?:\n\"'“"


def extract_facts(text: str, window: int = 4) -> list[Fact]:
    """The dates, numbers and names of ``text``, in order, each with its context words."""
    facts: list[Fact] = []
    taken = [False] * len(text)

    def add(kind: str, start: int, end: int, key: str) -> None:
        if any(taken[start:end]):
            return
        taken[start:end] = [True] * (end - start)
        facts.append(Fact(kind, text[start:end], start, end, key, _context(text, start, end, window)))

    for m in _DATE.finditer(text):
        add("date", m.start(), m.end(), _fold(m.group()))
    for m in _NUMBER.finditer(text):
        add("number", m.start(), m.end(), _number_key(m.group()))
    for m in _NAME.finditer(text):
        words = m.group().split()
        start = m.start()
        if words[0] in _OPENERS or (len(words) == 1 and _sentence_start(text, start)):
            if len(words) == 1:
                continue
            start += len(words[0]) + text[start + len(words[0]) :].index(words[1])
        if words[0].lower().rstrip(".") in _MONTHS and len(words) == 1:
            continue
        add("name", start, m.end(), _fold(text[start : m.end()]))
    return sorted(facts, key=lambda f: f.start)


def _sentence_of(text: str, start: int, end: int) -> str:
    left = max(text.rfind(". ", 0, start), text.rfind("\n", 0, start))
    right = min([i for i in (text.find(". ", end), text.find("\n", end)) if i >= 0] or [len(text)])
    return text[left + 1 : right + 1].strip()


def _stated(fact: Fact, facts: list[Fact]) -> list[Fact]:
    same = [f for f in facts if f.kind == fact.kind and f.key == fact.key]
    if fact.kind == "name" and not same:  # "Smith" in the output states "Alice Smith" of the reference
        same = [
            f for f in facts if f.kind == "name" and (f.key in fact.key.split() or fact.key in f.key.split())
        ]
    return same


class ReferenceCritic(Critic):
    """Checks the output's facts against ``metadata["reference"]`` (a summary's source facts, a QA answer).

    Example:
        >>> item = CriticItem("When was it founded?", "It was founded in 1998 by Ann Lee.",
        ...                   {"reference": "Founded in 1999 by Ann Lee."})
        >>> [(s.label, s.text_in(item.output)) for s in ReferenceCritic().critique(item).spans]
        [('poor', '1998'), ('good', 'Ann Lee')]
    """

    name = "reference"
    version = "1"
    defaults = MappingProxyType({"window": 4, "mark_good": True, "kinds": ["date", "number", "name"]})

    def critique(self, item: CriticItem) -> CriticResult:
        reference = item.metadata.get("reference")
        if not isinstance(reference, str) or not reference.strip():
            return self.result(
                "No reference to check against.",
                None,
                problems=["missing metadata: reference"],
                status="failed",
            )
        kinds = set(self.settings["kinds"])
        window = int(self.settings["window"])
        wanted = [f for f in extract_facts(reference, window) if f.kind in kinds]
        found = [f for f in extract_facts(item.output, window) if f.kind in kinds]
        if not wanted and "name" in kinds:
            wanted = _short_answer(reference)
        if not wanted:
            return self.result("The reference holds no names, numbers or dates to check.", None)
        reference_keys = {(f.kind, f.key) for f in wanted}
        asked = {
            (f.kind, f.key) for f in extract_facts(item.prompt, window)
        }  # repeating the question is fine
        strangers = [
            f for f in found if (f.kind, f.key) not in reference_keys | asked and not _stated(f, wanted)
        ]
        per_kind = {kind: sum(1 for f in _unique(wanted) if f.kind == kind) for kind in kinds}
        spans: list[SpanCritique] = []
        evidence: list[Evidence] = []
        missing: list[Fact] = []
        contradicted = 0
        used: set[int] = set()
        for fact in _unique(wanted):
            proof = Evidence("reference-fact", _sentence_of(reference, fact.start, fact.end), fact.text)
            stated = _stated(fact, found)
            if stated:
                if self.settings["mark_good"]:
                    for hit in stated:
                        text = f"States {fact.text} as the reference does."
                        spans.append(SpanCritique(hit.start, hit.end, GOOD, "minor", text, proof))
                continue
            rivals = [
                f
                for f in strangers
                if f.kind == fact.kind and f.start not in used and f.context & fact.context
            ]
            alone = [f for f in strangers if f.kind == fact.kind and f.start not in used]
            if not rivals and per_kind[fact.kind] == 1 and len(alone) == 1:
                rivals = alone  # a short answer: its one name (number, date) against the reference's one
            if rivals:
                rival = max(rivals, key=lambda f: len(f.context & fact.context))
                used.add(rival.start)
                contradicted += 1
                text = f"The reference says {fact.text} here, not {rival.text}."
                spans.append(SpanCritique(rival.start, rival.end, POOR, "major", text, proof))
                evidence.append(proof)
            else:
                missing.append(fact)
                evidence.append(proof)
        spans = _without_overlaps(spans)
        parts = []
        if contradicted:
            parts.append(
                f"Contradicts the reference on {contradicted} fact{'s' if contradicted > 1 else ''}."
            )
        if missing:
            listed = "; ".join(
                f"{f.kind} {f.text!r} ({_sentence_of(reference, f.start, f.end)[:120]})" for f in missing[:5]
            )
            parts.append(f"Missing from the output: {listed}.")
        if not parts:
            parts.append(f"States all {len(_unique(wanted))} facts of the reference (names, numbers, dates).")
        rating = max(1, 5 - 2 * contradicted - len(missing))
        return self.result(" ".join(parts), rating, spans, evidence)


def _short_answer(reference: str) -> list[Fact]:
    """A reference of a few capitalised words ("Paris", "Marie Curie") is one name, though it opens a sentence."""
    answer = reference.strip().rstrip(".")
    words = answer.split()
    if not 1 <= len(words) <= 4 or not all(
        w[:1].isupper() for w in words if w not in ("of", "de", "van", "von")
    ):
        return []
    start = reference.index(answer)
    return [Fact("name", answer, start, start + len(answer), _fold(answer), frozenset())]


def _unique(facts: list[Fact]) -> list[Fact]:
    seen, kept = set(), []
    for fact in facts:
        if (fact.kind, fact.key) not in seen:
            seen.add((fact.kind, fact.key))
            kept.append(fact)
    return kept


def _without_overlaps(spans: list[SpanCritique]) -> list[SpanCritique]:
    """One critique per stretch of output: a poor span wins over a good one it overlaps."""
    kept: list[SpanCritique] = []
    for span in sorted(spans, key=lambda s: (s.label != POOR, s.start)):
        if all(span.end <= k.start or k.end <= span.start for k in kept):
            kept.append(span)
    return kept
