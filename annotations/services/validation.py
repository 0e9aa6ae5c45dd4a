"""Checks every write path shares: span offsets, labels, weights and the limits on critiques."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from django.core.exceptions import ValidationError

from ..models import Project, Span

logger = logging.getLogger(__name__)


MAX_SPANS_PER_ANNOTATION = 200
MAX_CRITIQUE_CHARS = 10_000
MAX_OVERALL_CRITIQUE_CHARS = 20_000
MAX_SKIP_REASON_CHARS = 1_000
MAX_TIME_SPENT_SECONDS = 7 * 24 * 3600
SPAN_WEIGHT_MAX = 10.0

# "Leave this field as it is" for the partial-update services (None is a real value for ``rating``).
UNSET: Any = object()


def project_labels(project: Project) -> dict[str, dict]:
    """The project's labels by name, in their configured order."""
    return {label["name"]: label for label in project.label_set}


def quote(value: str, limit: int = 40) -> str:
    shown = value if len(value) <= limit else value[: limit - 1] + "…"
    return repr(shown)


def as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d{1,12}\s*", value):
        return int(value)
    return None


def clean_span(text: str, data: Mapping[str, Any], labels: Mapping[str, dict]) -> dict:
    """Check one span against the text and labels; return the fields to store.

    Raises ``ValidationError`` listing every problem, each as a lower-case clause ("end 12 lies past ...").
    """
    errors: list[str] = []
    start, end = as_int(data.get("start")), as_int(data.get("end"))
    if start is None:
        errors.append(f"start must be a whole number (got {data.get('start')!r})")
    if end is None:
        errors.append(f"end must be a whole number (got {data.get('end')!r})")
    if start is not None and end is not None:
        if start < 0:
            errors.append(f"start {start} is negative")
        if start >= end:
            errors.append(f"start {start} must be before end {end}")
        if end > len(text):
            errors.append(f"end {end} lies past the end of the text ({len(text)} characters)")
    actual = ""
    if not errors:
        actual = text[start:end]
        given = data.get("text")
        if given is not None and given != actual:
            errors.append(
                f"the selected text {quote(str(given))} no longer matches the output at [{start}, {end}),"
                f" which reads {quote(actual)}; reload the page and select it again"
            )
    label = data.get("label")
    if not isinstance(label, str) or label not in labels:
        errors.append(f"label {label!r} is not in this project's label set ({', '.join(labels)})")
    raw_weight = data.get("weight")
    weight = 1.0
    if raw_weight not in (None, ""):
        try:
            weight = float(raw_weight)
        except (TypeError, ValueError):
            weight = math.nan
        if isinstance(raw_weight, bool) or not math.isfinite(weight) or not 0 < weight <= SPAN_WEIGHT_MAX:
            errors.append(f"weight must be a number greater than 0 and at most 10 (got {raw_weight!r})")
    critique = data.get("critique") or ""
    if not isinstance(critique, str):
        errors.append("critique must be text")
    elif len(critique) > MAX_CRITIQUE_CHARS:
        errors.append(f"critique is {len(critique)} characters long; the limit is {MAX_CRITIQUE_CHARS}")
    origin = data.get("origin") or Span.Origin.MANUAL
    if origin not in Span.Origin.values:
        errors.append(f"origin {origin!r} is not one of {', '.join(Span.Origin.values)}")
    score = data.get("score")
    if score is not None:
        try:
            score = float(score)
        except (TypeError, ValueError):
            score = math.nan
        if not math.isfinite(score):
            errors.append("score must be a finite number")
    if errors:
        raise ValidationError(errors)
    return {
        "start": start,
        "end": end,
        "text": actual,
        "label": label,
        "polarity": int(labels[label].get("polarity", 0)),
        "weight": weight,
        "critique": critique,
        "origin": origin,
        "score": score,
    }


def sentence(clause: str) -> str:
    return clause[:1].upper() + clause[1:] + ("" if clause.endswith(".") else ".")


def validate_spans(text: str, spans: Iterable[Mapping[str, Any]], project: Project) -> list[dict]:
    """Check spans (code-point offsets into ``text``) against the text and the project's label set.

    Each span is a mapping with ``start``, ``end``, ``label`` and optionally ``text`` (the client's copy of
    the selected text, which must equal ``text[start:end]``), ``weight`` (0 < w ≤ 10, default 1),
    ``critique``, ``origin`` and ``score``. Returns the spans ready to store (with ``polarity`` from the
    label and the server's own text copy). Raises one ``ValidationError`` carrying a message per problem,
    numbered from 1 ("Span 2: end 120 lies past the end of the text (100 characters).").

    >>> project = Project(label_set=[{"name": "poor", "polarity": -1}])
    >>> validate_spans("héllo wörld", [{"start": 6, "end": 11, "label": "poor"}], project)[0]["text"]
    'wörld'
    """
    labels = project_labels(project)
    spans = list(spans)
    if len(spans) > MAX_SPANS_PER_ANNOTATION:
        raise ValidationError(
            f"At most {MAX_SPANS_PER_ANNOTATION} spans per annotation ({len(spans)} given)."
        )
    cleaned: list[dict] = []
    errors: list[str] = []
    seen: dict[tuple, int] = {}
    for number, data in enumerate(spans, 1):
        if not isinstance(data, Mapping):
            errors.append(f"Span {number}: expected an object with start, end and label.")
            continue
        try:
            span = clean_span(text, data, labels)
        except ValidationError as exc:
            errors.extend(f"Span {number}: {message}." for message in exc.messages)
            continue
        key = (span["start"], span["end"], span["label"])
        if key in seen:
            errors.append(f"Span {number}: duplicates span {seen[key]} (same range and label).")
            continue
        seen[key] = number
        cleaned.append(span)
    if errors:
        raise ValidationError(errors)
    return cleaned
