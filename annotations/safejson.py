"""JSON and text that PostgreSQL can store, checked before anything is written.

Python's ``json`` recurses once per nesting level, so a body of ten thousand ``[`` raises RecursionError
(a 500) unless caught; PostgreSQL refuses NUL characters in text and jsonb, and a lone UTF-16 surrogate
(``"\\ud800"`` is valid JSON) cannot be encoded as UTF-8 at all. Every JSON the app accepts from outside
(request bodies, the ``spans`` form field, imported files) goes through here and gets a clear message.
"""

from __future__ import annotations

import json
from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

MAX_BODY_DEPTH = 32  # a request body: the deepest real one (a draft with spans) is 3 levels


class UnsafeJSON(ValueError):
    """JSON or text the database cannot store, or nested too deeply; the message says which."""


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored as text, or None."""
    if "\x00" in value:
        return "contains a NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone UTF-16 surrogate (not a character)"
    return None


def positive_id(raw: object) -> int | None:
    """A database id from a query string or a form field (ASCII digits, 1 .. 2^63 - 1), or None.

    ``str.isdigit`` alone accepts "²" and other Unicode digits that ``int`` refuses (a 500), and ids past
    PostgreSQL's bigint would fail in the database: every view that reads an id from outside uses this."""
    if not isinstance(raw, str) or not (raw.isascii() and raw.isdigit()) or len(raw) > 19:
        return None
    value = int(raw)
    return value if 0 < value < 2**63 else None


def check_text(value: str, *, name: str = "text") -> str:
    problem = text_problem(value)
    if problem:
        raise UnsafeJSON(f"{name} {problem}")
    return value


def check_value(value: Any, *, max_depth: int, name: str = "value") -> Any:
    """Raise UnsafeJSON if ``value`` nests deeper than ``max_depth`` or holds text the database refuses."""
    stack = [(value, 0)]
    while stack:  # iterative, so the check itself never recurses
        item, depth = stack.pop()
        if isinstance(item, str):
            check_text(item, name=name)
        elif isinstance(item, dict | list):
            if depth >= max_depth:
                raise UnsafeJSON(f"{name} is nested deeper than {max_depth} levels")
            if isinstance(item, dict):
                for key, child in item.items():
                    check_text(str(key), name=name)
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)
    return value


def loads(raw: str | bytes, *, max_depth: int, name: str = "value") -> Any:
    """``json.loads`` that answers too-deep, NUL and surrogate input with UnsafeJSON (a ValueError)."""
    try:
        value = json.loads(raw)
    except RecursionError:
        raise UnsafeJSON(f"{name} is nested deeper than {max_depth} levels") from None
    return check_value(value, max_depth=max_depth, name=name)


class SafeJSONParser(JSONParser):
    """DRF's JSON parser, with deep nesting, NUL and lone surrogates answered by a 400."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(f"JSON parse error - nested deeper than {MAX_BODY_DEPTH} levels") from None
        try:
            return check_value(data, max_depth=MAX_BODY_DEPTH, name="the request body")
        except UnsafeJSON as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
