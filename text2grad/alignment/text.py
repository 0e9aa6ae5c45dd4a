"""Text helpers shared by the passes: word boundaries, normalisation with an offset map, sentences and lines."""

from __future__ import annotations

import re
import unicodedata

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
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u2013": "-",
        "\u2014": "-",
        "\u2212": "-",
        "\u00a0": " ",
    }
)
# Dropped when normalising: a caret ("λ^4" for "λ⁴", whose superscript folds to "4") and the backticks an
# output wraps code in (a quote of the sentence rarely copies them).
_DROPPED = frozenset("^`")


def _fold(ch: str) -> str:
    """One character without its accents and with compatibility forms folded ("é" → "e", "⁴" → "4")."""
    if ch.isascii():
        return ch
    decomposed = unicodedata.normalize("NFKD", ch)
    base = "".join(c for c in decomposed if not unicodedata.combining(c)).translate(_TYPOGRAPHIC)
    # Keep characters whose folding is empty or spreads over several letters (ligatures, CJK compat).
    return base if len(base) == 1 else ch


def _normalise_with_map(text: str, *, drop_spaces: bool = False) -> tuple[str, list[int]]:
    """Lower-case, fold accents and superscripts, straighten quotes/dashes, drop carets and backticks, and
    collapse (or drop) whitespace, keeping an index map.

    ``index_map[i]`` is the offset in ``text`` of normalised character ``i``, so a match found in the
    normalised string maps back to exact code-point offsets in the original.
    """
    chars: list[str] = []
    index_map: list[int] = []
    previous_space = True
    for i, ch in enumerate(text.translate(_TYPOGRAPHIC)):
        ch = _fold(ch)
        if ch in _DROPPED:
            continue
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
_CLOCK_ABBREVIATIONS = ("a.m.", "p.m.")
_LIST_MARKER = re.compile(r"(?:\d{1,3}[.)]|[-*\u2022])[ \t]+")


def _without_list_marker(text: str, start: int, end: int) -> tuple[int, int]:
    """A list item's span without its ``1.`` / ``-`` marker (the marker is layout, not content)."""
    m = _LIST_MARKER.match(text, start, end)
    return (m.end(), end) if m and m.end() < end else (start, end)


def _list_items(text: str) -> list[tuple[int, int]]:
    """Spans of the output's list items (lines opening with ``1.``, ``2)``, ``-``, ``*`` or ``•``)."""
    items = []
    for span in _line_spans(text):
        if span and _LIST_MARKER.match(text, span[0], span[1]):
            items.append(_without_list_marker(text, *span))
    return items


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
                word = text[word_start : j + 1].lower()
                if word in _CLOCK_ABBREVIATIONS:
                    # "at 3 p.m. in room 4B" goes on; "until 4 a.m. I left" ends the sentence.
                    following = text[k:].lstrip()
                    if following[:1].isupper():
                        cut = k
                elif word not in _ABBREVIATIONS:
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


_HARD_WRAP = re.compile(r"(?<=[^\s.!?:;])\n(?=[ \t]*[^\s\-*\u2022\d])")


def _unwrapped(text: str) -> str:
    """``text`` with the line breaks of a hard-wrapped paragraph turned into spaces (same offsets): a break
    after no sentence end and before no list item or blank line."""
    return _HARD_WRAP.sub(" ", text)


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
