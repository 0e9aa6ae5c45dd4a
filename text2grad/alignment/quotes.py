"""Pass 1: phrases the critique quotes, located in the output exactly or fuzzily."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from .text import _line_spans, _normalise_with_map, _respects_boundaries, _sentence_spans, _unwrapped

MAX_OCCURRENCES = 20  # exact occurrences of one quote proposed at most
FUZZY_THRESHOLD = 0.7
# Below this many non-blank characters a fuzzy match is mostly noise ("pop()" ~ "pop(0").
FUZZY_MIN_CHARS = 5


@dataclass(frozen=True)
class _Quote:
    text: str
    start: int  # offsets of the whole quoted region (marks included) in the critique
    end: int
    block: bool  # fenced or backtick: code-ish, spacing is meaningful


_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+.#-]*)[ \t]*\n(.*?)```|```(.+?)```", re.S)
_BACKTICK = re.compile(r"`([^`\n]+)`")
# A quote may run over one line break (a hard-wrapped critique), never over a blank line.
_WRAP = r"(?:\n(?![ \t]*\n))"
_PAIRED = (
    re.compile(r"\u201c([^\u201c\u201d]+)\u201d"),
    # A right single mark followed by a letter is an apostrophe (don’t), not the closing quote.
    re.compile(r"\u2018(.+?)\u2019(?!\w)", re.S),
    re.compile(r"\u00ab\s*([^\u00ab\u00bb]+?)\s*\u00bb"),
    re.compile(r"\u201e([^\u201c\u201d\u201e]+)[\u201c\u201d]"),
    re.compile(r'"([^"\n]+(?:' + _WRAP + r'[^"\n]+)?)"'),
    # A straight single quote opens only after a non-word character and closes only before one, so the
    # apostrophes in don't / it's are not quote marks; nor is the elision in '90s. A plural possessive
    # (players') can still close a quote opened earlier in the same line: an accepted ambiguity.
    re.compile(
        r"(?<!\w)'(?!\d\ds\b)(?=\S)((?:[^'\n]|"
        + _WRAP
        + r")*?(?:\w'\w(?:[^'\n]|"
        + _WRAP
        + r")*?)*)(?<=\S)'(?!\w)"
    ),
)


def extract_quotes(critique: str) -> list[_Quote]:
    """Quoted phrases in ``critique``, in order of appearance; nested quotes are not double counted.

    Example:
        >>> [q.text for q in extract_quotes("It's fine, but 'he doesn't care' and `x + 1` are wrong.")]
        ["he doesn't care", 'x + 1']
    """
    masked = list(critique)
    quotes: list[_Quote] = []

    def take(match: re.Match, text: str, block: bool) -> None:
        if text.strip():
            quotes.append(_Quote(text, match.start(), match.end(), block))
        for k in range(match.start(), match.end()):
            masked[k] = "\x00"  # later patterns must not see quote marks inside this region

    for m in _FENCE.finditer(critique):
        body = m.group(2) if m.group(2) is not None else m.group(3)
        take(m, body.strip("\n"), True)
    for m in _BACKTICK.finditer("".join(masked)):
        take(m, m.group(1), True)
    for pattern in _PAIRED:
        for m in pattern.finditer("".join(masked)):
            if "\x00" in m.group(0):
                continue
            take(m, m.group(1), False)
    quotes.sort(key=lambda q: q.start)
    return quotes


def _is_trivial_quote(text: str, *, block: bool = False) -> bool:
    """A quote that names a character or a value ('=', '-', '0', 'A') rather than pointing at a place.

    Locating every '=' in the code would be noise. A backticked single character (`i`) is kept: backticks
    mark an identifier on purpose. A single non-ASCII symbol such as an emoji is kept too: it is usually
    the very thing being criticised.
    """
    stripped = _ELLIPSIS_START.sub("", _ELLIPSIS_END.sub("", text.strip())).strip()
    if not stripped:
        return True
    if len(stripped) == 1 and stripped.isalnum():
        return not block
    return all(ch.isascii() and not ch.isalnum() for ch in stripped)


_SUGGESTION_BEFORE = re.compile(
    r"(?:\buse|\busing|should (?:be|say|read)|\bmeant|\btry|\bprefer|replace(?:d)? (?:it )?with|"
    r"change(?:d)? (?:it )?to|\bwrite|\bwant)\s*[:,]?\s*(?:\w+\s+){0,2}$",
    re.I,
)

# "... but `sum(nums)` would be simpler": the quote is the replacement, not output text.
_SUGGESTION_AFTER = re.compile(
    r"\s*(?:would be (?:simpler|better|cleaner|clearer|safer|faster)|is (?:simpler|better|cleaner)|instead\b)",
    re.I,
)

_ELLIPSIS_END = re.compile(r"\s*(?:\.\.\.|\u2026)\s*$")
_ELLIPSIS_START = re.compile(r"^\s*(?:\.\.\.|\u2026)\s*")
# An ellipsis inside a quote ("The lantern room ... has been rebuilt"), bracketed or not: words left out.
_ELLIPSIS_INNER = re.compile(r"\s*\[?(?:\.\.\.|\u2026)\]?\s*")
# The most output characters an inner ellipsis may stand for.
ELLIPSIS_MAX_GAP = 300


def _find_exact(output: str, phrase: str) -> list[tuple[int, int]]:
    found = []
    start = output.find(phrase)
    while start >= 0 and len(found) < MAX_OCCURRENCES:
        end = start + len(phrase)
        if _respects_boundaries(output, start, end):
            found.append((start, end))
            start = output.find(phrase, end)
        else:
            start = output.find(phrase, start + 1)
    return found


def _find_spaced(output: str, phrase: str) -> list[tuple[int, int]]:
    """Exact occurrences up to whitespace: a quote of text the output wraps over a line break, or the
    reverse ("trim the flowers" for "trim the\\nflowers")."""
    pieces = phrase.split()
    if len(pieces) < 2:
        return []
    pattern = re.compile(r"\s+".join(re.escape(piece) for piece in pieces))
    found = []
    for m in pattern.finditer(output):
        if _respects_boundaries(output, m.start(), m.end()):
            found.append((m.start(), m.end()))
        if len(found) >= MAX_OCCURRENCES:
            break
    return found


def _find_normalised(output: str, phrase: str, *, drop_spaces: bool) -> list[tuple[int, int]]:
    norm_out, out_map = _normalise_with_map(output, drop_spaces=drop_spaces)
    norm_phrase, _ = _normalise_with_map(phrase, drop_spaces=drop_spaces)
    if not norm_phrase:
        return []
    found = []
    i = norm_out.find(norm_phrase)
    while i >= 0 and len(found) < MAX_OCCURRENCES:
        start, end = out_map[i], out_map[i + len(norm_phrase) - 1] + 1
        # Backticks are dropped when normalising: close an inline code span the match opened.
        if output[start:end].count("`") % 2 and output[end : end + 1] == "`":
            end += 1
        if _respects_boundaries(output, start, end):
            found.append((start, end))
        i = norm_out.find(norm_phrase, i + len(norm_phrase))
    return found


_TOKEN = re.compile(r"\w+|[^\w\s]")


def _similarity(a: str, b: str) -> float:
    """Mean of a character-level and a word-level ratio: typos hurt the first, swapped words the second."""
    chars = difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()
    words = difflib.SequenceMatcher(None, _TOKEN.findall(a), _TOKEN.findall(b), autojunk=False).ratio()
    return 0.5 * (chars + words)


def _find_fuzzy(output: str, phrase: str) -> tuple[tuple[int, int], float] | None:
    """Best token-aligned window of ``output`` for ``phrase`` by edit similarity, or None."""
    norm_phrase, _ = _normalise_with_map(phrase)
    phrase_tokens = _TOKEN.findall(norm_phrase)
    n_phrase = len(phrase_tokens)
    if n_phrase == 0:
        return None
    tokens = [(m.start(), m.end()) for m in _TOKEN.finditer(output)]
    norm_cache: dict[tuple[int, int], str] = {}
    best: tuple[tuple[int, int], float] | None = None
    # Windows a few tokens shorter or longer than the quote: misquotes add or drop words.
    lengths = range(max(1, n_phrase - 3), n_phrase + 4)
    for i in range(len(tokens)):
        for length in lengths:
            j = i + length - 1
            if j >= len(tokens):
                break
            start, end = tokens[i][0], tokens[j][1]
            key = (start, end)
            if key not in norm_cache:
                norm_cache[key] = _normalise_with_map(output[start:end])[0]
            window = norm_cache[key]
            # quick_ratio bounds ratio from above: skip windows that cannot beat the best or the threshold.
            bound = 0.5 * (
                difflib.SequenceMatcher(None, norm_phrase, window, autojunk=False).quick_ratio()
                + difflib.SequenceMatcher(
                    None, phrase_tokens, _TOKEN.findall(window), autojunk=False
                ).quick_ratio()
            )
            if bound < FUZZY_THRESHOLD or (best is not None and bound < best[1] - 1e-9):
                continue
            score = _similarity(norm_phrase, window)
            better = best is None or score > best[1] + 1e-9
            # On a tie prefer the longer window: it tends to include the whole misquoted phrase.
            tie_longer = (
                best is not None and abs(score - best[1]) <= 1e-9 and end - start > best[0][1] - best[0][0]
            )
            if better or tie_longer:
                best = ((start, end), score)
    return best


def _find_in_order(output: str, parts: list[str]) -> list[tuple[int, int]]:
    """The spans from the first part to the last, each part found after the one before it within
    ``ELLIPSIS_MAX_GAP`` characters: a quote that leaves words out with an ellipsis."""
    found = []
    for start, end in _find_anywhere(output, parts[0]):
        cursor = end
        for part in parts[1:]:
            following = [
                (s, e) for s, e in _find_anywhere(output, part) if cursor <= s <= cursor + ELLIPSIS_MAX_GAP
            ]
            if not following:
                break
            cursor = following[0][1]
        else:
            found.append((start, cursor))
    return found


def _find_anywhere(output: str, phrase: str) -> list[tuple[int, int]]:
    return (
        _find_exact(output, phrase)
        or _find_spaced(output, phrase)
        or _find_normalised(output, phrase, drop_spaces=False)
        or _find_normalised(output, phrase, drop_spaces=True)
    )


def _extend_to_unit(output: str, start: int, end: int, *, is_code: bool, forward: bool) -> tuple[int, int]:
    """Extend a span to the end (or start) of its sentence, or line for code: an ellipsis quote."""
    # A line break that ends no sentence (a hard-wrapped paragraph) does not end the unit in prose.
    units = [s for s in _line_spans(output) if s] if is_code else _sentence_spans(_unwrapped(output))
    for unit_start, unit_end in units:
        if unit_start <= start < unit_end or unit_start < end <= unit_end:
            return (start, max(end, unit_end)) if forward else (min(start, unit_start), end)
    return start, end


def _locate_quote(
    output: str, quote: _Quote, critique: str, *, is_code: bool
) -> list[tuple[int, int, float, str]]:
    """Where a quoted phrase sits in the output: list of (start, end, score, method)."""
    # Surrounding blanks (and a fenced block's indentation) are not part of what the annotator pointed at.
    phrase = quote.text.strip()
    extend_forward = bool(_ELLIPSIS_END.search(phrase))
    extend_back = bool(_ELLIPSIS_START.search(phrase))
    phrase = _ELLIPSIS_START.sub("", _ELLIPSIS_END.sub("", phrase)).strip()
    if _is_trivial_quote(phrase, block=quote.block):
        return []
    candidates = [phrase]
    # American punctuation puts the sentence's comma or period inside the quote marks.
    trimmed = phrase.rstrip(",.;:!?")
    if trimmed != phrase and trimmed:
        candidates.append(trimmed)

    found: list[tuple[int, int, float, str]] = []
    for candidate in candidates:
        found = [(s, e, 1.0, "quote-exact") for s, e in _find_exact(output, candidate)]
        found = found or [(s, e, 1.0, "quote-exact") for s, e in _find_spaced(output, candidate)]
        if found:
            break
    parts = [part for part in _ELLIPSIS_INNER.split(trimmed or phrase) if part.strip()]
    if not found and len(parts) > 1 and not all(_is_trivial_quote(part) for part in parts):
        found = [(s, e, 0.95, "quote-fuzzy") for s, e in _find_in_order(output, parts)]
    is_suggestion = bool(
        _SUGGESTION_BEFORE.search(critique[: quote.start]) or _SUGGESTION_AFTER.match(critique, quote.end)
    )
    if not found and not is_suggestion:
        for candidate in candidates:
            found = [
                (s, e, 0.95, "quote-fuzzy") for s, e in _find_normalised(output, candidate, drop_spaces=False)
            ]
            if not found:
                found = [
                    (s, e, 0.9, "quote-fuzzy")
                    for s, e in _find_normalised(output, candidate, drop_spaces=True)
                ]
            if found:
                break
        compact = re.sub(r"\s+", "", phrase)
        if not found and len(compact) >= FUZZY_MIN_CHARS:
            best = _find_fuzzy(output, phrase)
            if best is not None and best[1] >= FUZZY_THRESHOLD:
                (s, e), score = best
                found = [(s, e, round(min(score, 0.89), 4), "quote-fuzzy")]
    if extend_forward or extend_back:
        found = [
            (*_extend_to_unit(output, s, e, is_code=is_code, forward=extend_forward), score, method)
            for s, e, score, method in found
        ]
    return found
