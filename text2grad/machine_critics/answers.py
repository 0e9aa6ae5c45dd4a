"""Reading a critic's answer that arrives as data (an LLM's JSON, a custom critic's dict) into spans.

Shared by the LLM and custom critics: every problem is collected and reported, nothing raises.
Quoted phrases are located with the aligner's public ``align_critique`` (its quote pass: exact, then
fuzzy), so an LLM's slightly misquoted phrase still lands on the output.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..alignment import align_critique
from .base import GOOD, LABELS, POOR, SEVERITIES, Evidence, SpanCritique

_DELIMITERS = (('"', '"'), ("“", "”"), ("«", "»"), ("`", "`"))


def parse_json_object(content: str) -> dict | None:
    """The first JSON object in a chat answer (inside a ``json`` fence when there is one), else None."""
    fenced = re.search(r"```(?:json)?\s*(.*?)```", content, re.S | re.I)
    decoder = json.JSONDecoder()
    for candidate in ([fenced.group(1)] if fenced else []) + [content]:
        for match in re.finditer(r"\{", candidate):
            try:
                value, _ = decoder.raw_decode(candidate[match.start() :])
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict):
                return value
    return None


def close_truncated_json(content: str) -> dict | None:
    """An object cut off mid-answer (``max_tokens`` reached) closed where it stopped, else None.

    The last unfinished string is closed and kept; a dangling key, colon or comma is dropped.

    >>> close_truncated_json('{"critique": "Too long", "poor_spans": ["a", "b')
    {'critique': 'Too long', 'poor_spans': ['a', 'b']}
    """
    start = content.find("{")
    if start < 0:
        return None
    text = content[start:]
    stack: list[str] = []
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            continue
        if char == '"':
            in_string = True
        elif char in "{[":
            stack.append("}" if char == "{" else "]")
        elif char in "}]" and stack:
            stack.pop()
    if not stack:
        return None
    if in_string:
        text += '"'
    for _ in range(3):
        closed = text + "".join(reversed(stack))
        try:
            value = json.loads(closed)
        except json.JSONDecodeError:
            text = re.sub(r'(,\s*"[^"]*"\s*:?\s*|\s*[,:]\s*)$', "", text)
            continue
        return value if isinstance(value, dict) else None
    return None


def locate_phrase(output: str, phrase: str, label: str) -> list[tuple[int, int]]:
    """Where ``phrase`` (quoted by a critic) sits in ``output``, via the aligner's quote pass."""
    phrase = phrase.strip()
    if not phrase:
        return []
    for left, right in _DELIMITERS:
        if left not in phrase and right not in phrase:
            quoted = f"{left}{phrase}{right}"
            break
    else:
        return [(i, i + len(phrase)) for i in _exact(output, phrase)]
    polarity = 1 if label == GOOD else -1
    proposals = align_critique(output, quoted, polarity_hint=polarity, semantic=False)
    found = [(p.start, p.end) for p in proposals if p.method in ("quote-exact", "quote-fuzzy")]
    return found or [(i, i + len(phrase)) for i in _exact(output, phrase)]


def _exact(output: str, phrase: str) -> list[int]:
    found, start = [], output.find(phrase)
    while start >= 0 and len(found) < 5:
        found.append(start)
        start = output.find(phrase, start + 1)
    return found


def read_rating(value: Any, problems: list[str]) -> int | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        problems.append(f"rating is not a number: {str(value)[:40]!r}")
        return None
    if number != number or not 1 <= number <= 5:
        problems.append(f"rating {number:g} is outside 1-5")
        return None
    return round(number)


def phrase_spans(
    output: str, items: Any, label: str, kind: str, problems: list[str], default_text: str
) -> list[SpanCritique]:
    """Spans for a list of quoted phrases: strings, or objects with a phrase and its own critique.

    Accepted item forms: ``"phrase"``, ``{"phrase"|"quote"|"text"|"span": "...", "critique"|"reason": "...",
    "severity": "minor|major|critical"}``.
    """
    if items is None:
        return []
    if isinstance(items, str | dict):
        items = [items]
    if not isinstance(items, list):
        problems.append(f"{label}_spans is not a list: {type(items).__name__}")
        return []
    spans = []
    for item in items:
        phrase, text, severity = None, default_text, "major" if label == POOR else "minor"
        if isinstance(item, str):
            phrase = item
        elif isinstance(item, dict):
            phrase = next(
                (item[k] for k in ("phrase", "quote", "text", "span") if isinstance(item.get(k), str)), None
            )
            reason = next(
                (item[k] for k in ("critique", "reason", "comment") if isinstance(item.get(k), str)), None
            )
            text = reason or text
            if item.get("severity") in SEVERITIES:
                severity = item["severity"]
        if not phrase or not phrase.strip():
            problems.append(f"a {label} span without a phrase: {str(item)[:80]!r}")
            continue
        places = locate_phrase(output, phrase, label)
        if not places:
            problems.append(f"{label} phrase not found in the output: {phrase[:80]!r}")
            continue
        for start, end in places:
            spans.append(
                SpanCritique(start, end, label, severity, text, Evidence(kind, phrase[:500], phrase[:500]))
            )
    return spans


def offset_spans(output: str, items: Any, kind: str, problems: list[str]) -> list[SpanCritique]:
    """Spans given by offsets (a custom critic's ``spans``), or by a quote when offsets are absent."""
    if items is None:
        return []
    if not isinstance(items, list):
        problems.append(f"spans is not a list: {type(items).__name__}")
        return []
    spans = []
    for item in items:
        if not isinstance(item, dict):
            problems.append(f"a span is not an object: {str(item)[:80]!r}")
            continue
        label = item.get("label")
        if label not in LABELS:
            problems.append(f"a span's label must be one of {LABELS}: {str(label)[:20]!r}")
            continue
        severity = item.get("severity", "major" if label == POOR else "minor")
        if severity not in SEVERITIES:
            problems.append(f"a span's severity must be one of {SEVERITIES}: {str(severity)[:20]!r}")
            continue
        text = item.get("text") if isinstance(item.get("text"), str) else ""
        detail = item.get("evidence") if isinstance(item.get("evidence"), str) else text
        start, end = item.get("start"), item.get("end")
        if isinstance(start, int) and isinstance(end, int) and not isinstance(start, bool):
            if not 0 <= start < end <= len(output):
                problems.append(f"span [{start}, {end}) is outside the output (length {len(output)})")
                continue
            places = [(start, end)]
        elif isinstance(item.get("quote"), str):
            places = locate_phrase(output, item["quote"], label)[:1]
            if not places:
                problems.append(f"quote not found in the output: {item['quote'][:80]!r}")
                continue
        else:
            problems.append(f"a span needs integer start and end, or a quote: {str(item)[:80]!r}")
            continue
        for s, e in places:
            spans.append(
                SpanCritique(s, e, label, severity, text, Evidence(kind, detail[:500], output[s:e][:500]))
            )
    return spans
