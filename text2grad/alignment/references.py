"""Pass 2: structural references ("line 3", "lines 2-4", "the second sentence")."""

from __future__ import annotations

import re

from .text import _line_spans, _list_items, _sentence_spans

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
    + r")\s+(sentence|line|step|item|tip|point|bullet|question)\b",
    re.I,
)
# "Step 4", "item #2": a numbered list item (or, without a list, the numbered sentence).
_NUMBERED_ITEM = re.compile(r"\b(step|item|tip|point|bullet)\s*#?\s*(\d{1,3})\b", re.I)
_LIST_NOUNS = ("step", "item", "tip", "point", "bullet")


def _ordinal_units(output: str, noun: str, lines: list, *, is_code: bool) -> list[tuple[int, int]]:
    """The units an ordinal counts: lines, list items, questions or sentences."""
    if noun == "line":
        return [span for span in lines if span]
    if noun in _LIST_NOUNS:
        return _list_items(output) or _sentence_spans(output)
    sentences = [span for span in lines if span] if is_code else _sentence_spans(output)
    if noun == "question":
        return [(s, e) for s, e in sentences if output[s:e].rstrip().endswith("?")]
    return sentences


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
            noun = m.group(2).lower()
            units = _ordinal_units(output, noun, lines, is_code=is_code)
            if noun == "line" and len(units) < 2:
                continue  # "the first line" of a one-line answer is the whole answer, not a pointer
            position = index - 1 if index > 0 else len(units) + index
            if 0 <= position < len(units):
                found.append((*units[position], m.group(0)))
        if not is_code:
            for m in _NUMBERED_ITEM.finditer(clause):
                units = _ordinal_units(output, m.group(1).lower(), lines, is_code=is_code)
                position = int(m.group(2)) - 1
                if 0 <= position < len(units):
                    found.append((*units[position], m.group(0)))
    return found
