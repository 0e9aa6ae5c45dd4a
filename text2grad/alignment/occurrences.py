"""Which occurrence of a quoted phrase the critique means, and identifiers read as the line they sit on.

A quote found at several places is narrowed down by what the critique says about it:

* an ordinal right before the quote ("the second 'sin(x)'", "the last `return`") picks that occurrence;
* in code, the line the critique describes: the candidate lines are scored by MiniLM similarity to the
  critique sentence (when a model is at hand), the constructs the sentence names ("loop", "default",
  "never closed" → ``open(``, "recurses" → the self-call), the other quotes and numbers of the sentence
  that the line contains, and, for "initialise"/"set", the line that assigns the name. Only the best line
  is kept: a backticked name in a code critique is about the place where the defect (or the praised code)
  is, not about every mention;
* in prose every occurrence stays ("drop the filler word 'basically'" means all of them).

A backticked identifier (``best``, ``upper()``, ``name.strip()``) in a code critique points at its line,
so it is proposed as the whole line without indentation, as a line reference would be.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from .semantic import _code_for_embedding, _code_line_bonus
from .text import _line_spans

_ORDINAL_WORDS = {
    "first": 1,
    "1st": 1,
    "second": 2,
    "2nd": 2,
    "third": 3,
    "3rd": 3,
    "fourth": 4,
    "4th": 4,
    "fifth": 5,
    "last": -1,
    "final": -1,
}
_ORDINAL_BEFORE = re.compile(
    r"\b(" + "|".join(_ORDINAL_WORDS) + r")\s+(?:(?:occurrence|instance|use|mention)\s+of\s+)?(?:the\s+)?$",
    re.I,
)
_IDENTIFIER = re.compile(r"[A-Za-z_][\w.]*(?:\(\))?")
_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.])")
_ASSIGN_CUE = re.compile(
    r"\binitiali[sz]\w*|\bassign\w*|\bsett(?:ing)?\b|\bset\b|\bstarts?\b|\bbuilt\b", re.I
)
_OPEN_CUE = re.compile(r"\bclos\w*|\bopen\w*|\bleak\w*", re.I)
# Bonuses on top of the semantic similarity and the construct hints of the semantic pass.
_CUE_BONUS = 0.3
_OTHER_QUOTE_BONUS = 0.2
_NUMBER_BONUS = 0.1


def ordinal_before(critique: str, quote_start: int) -> int | None:
    """1-based occurrence (negative from the end) named right before a quote, e.g. "the second 'x'"."""
    m = _ORDINAL_BEFORE.search(critique[max(0, quote_start - 40) : quote_start])
    return _ORDINAL_WORDS[m.group(1).lower()] if m else None


def is_identifier(phrase: str) -> bool:
    """A bare name or call without arguments: ``best``, ``upper()``, ``name.strip()``."""
    return bool(_IDENTIFIER.fullmatch(phrase.strip()))


def line_of(output: str, position: int) -> tuple[int, int] | None:
    """The stripped span of the line holding ``position``."""
    offset = 0
    for line_number, line in enumerate(output.split("\n")):
        if offset <= position <= offset + len(line):
            return _line_spans(output)[line_number]
        offset += len(line) + 1
    return None


# A critique of a function's name or signature is about its def line; any other remark on a function named
# in backticks ("`median` is wrong for even lengths") is about a line of its body.
_SIGNATURE_CUE = re.compile(
    r"\b(?:name[sd]?|naming|signature|argument|arguments|parameters?|params?|defaults?|docstring|type hints?|"
    r"annotations?|called|rename\w*)\b",
    re.I,
)


def function_body_lines(output: str, name: str) -> list[tuple[int, int]]:
    """The stripped spans of the non-blank body lines of ``def name`` (without a leading docstring)."""
    lines = output.split("\n")
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line) + 1)
    for index, line in enumerate(lines):
        if not re.match(rf"\s*(?:async\s+)?def\s+{re.escape(name)}\s*\(", line):
            continue
        indent = len(line) - len(line.lstrip())
        body = []
        for k in range(index + 1, len(lines)):
            text = lines[k]
            if not text.strip():
                continue
            if len(text) - len(text.lstrip()) <= indent:
                break
            body.append((offsets[k] + len(text) - len(text.lstrip()), offsets[k] + len(text.rstrip())))
        if body and output[body[0][0] : body[0][1]].startswith(('"""', "'''")):
            body = body[1:]  # a one-line docstring; a longer one reads as lines and rarely wins
        return body
    return []


def blamed_function_lines(output: str, phrase: str, sentence: str) -> list[tuple[int, int]]:
    """Body lines to choose from when the critique names a function defined in ``output`` and not its
    signature; [] when the phrase is no such function or the sentence is about the name or signature."""
    name = phrase.strip().rstrip("()")
    if not re.fullmatch(r"[A-Za-z_]\w*", name) or _SIGNATURE_CUE.search(sentence):
        return []
    return function_body_lines(output, name)


def choose_code_occurrence(
    output: str,
    hits: list[tuple[int, int, float, str]],
    *,
    phrase: str,
    sentence: str,
    other_quotes: list[str],
    similarity: Callable[[str, list[str]], list[float]] | None,
) -> tuple[int, int, float, str]:
    """The hit whose line the critique sentence describes best (ties: the earliest)."""
    lines = [line_of(output, start) for start, _, _, _ in hits]
    texts = [output[span[0] : span[1]] if span else "" for span in lines]
    scores = [0.0] * len(hits)
    if similarity is not None:
        scores = list(similarity(sentence, [_code_for_embedding(t) for t in texts]))
    function_names = set(re.findall(r"^\s*def\s+(\w+)", output, re.M))
    numbers = set(_NUMBER.findall(sentence))
    name = re.escape(phrase.strip().rstrip("()"))
    assigned_once = False
    for k, text in enumerate(texts):
        scores[k] += _code_line_bonus(sentence, text, function_names)
        scores[k] += _OTHER_QUOTE_BONUS * sum(1 for q in other_quotes if q and q in text)
        if numbers & set(_NUMBER.findall(text)):
            scores[k] += _NUMBER_BONUS
        if _ASSIGN_CUE.search(sentence) and re.match(rf"(?:[\w, ]*\b)?{name}\s*(?:,[\w ,]*)?=(?!=)", text):
            scores[k] += _CUE_BONUS if not assigned_once else _CUE_BONUS / 2
            assigned_once = True
        if _OPEN_CUE.search(sentence) and "open(" in text:
            scores[k] += _CUE_BONUS
        if re.search(r"\bdefault\b", sentence, re.I) and re.search(rf"\b{name}\s*=", text) and "def " in text:
            scores[k] += _CUE_BONUS
    best = max(range(len(hits)), key=lambda k: (scores[k], -k))
    return hits[best]
