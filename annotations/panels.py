"""What the annotation workspace shows beside the output: labels and their colours, the span panel (with
lines instead of raw offsets, and a warning where good and poor overlap) and the keyboard shortcuts; and
the sections other apps add to the project page.

Queue notes: what the annotator's queue says about a project with nothing waiting (training: what is
being generated and when the first outputs should come), registered the same way.

Project sections: ``annotations`` imports no app above it, so an app that shows something on the project
page (training: its generation jobs) registers a provider here when it starts (``AppConfig.ready``). A
provider takes the request and the project and returns a template name and its context, or None; the
project page renders each in registration order.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from django.http import HttpRequest
from django.template.loader import render_to_string
from django.utils.safestring import SafeString

from . import services
from .models import Annotation, Project, Span

# The workspace's keyboard shortcuts; the help overlay is rendered from this list.
SHORTCUTS = [
    (
        "Tab, then Shift + arrows",
        "Select text in the output from the keyboard (Ctrl + Shift + arrows: by word)",
    ),
    ("1 … 9", "Label the selected text with that label (opens the span popover, critique focused)"),
    ("Ctrl + Enter", "In the span popover: save the span. Elsewhere: submit and go to the next output"),
    ("Ctrl + S", "Save now: the span being edited, otherwise the draft"),
    ("N", "Next output (once this one is submitted)"),
    ("S", "Skip this output (asks for a reason)"),
    ("U  or  Ctrl + Z", "Undo the last span change (create, edit or delete)"),
    ("Esc", "Close the popover, dialog or help; clear the selection"),
    ("?", "Show or hide this help"),
]
_HEX_COLOR = re.compile(r"#(?:[0-9a-fA-F]{3}){1,2}")
_POLARITY_COLORS = {1: "#2e7d32", -1: "#c62828", 0: "#5b6b8c"}


def safe_color(label: dict | None, polarity: int) -> str:
    color = (label or {}).get("color")
    if isinstance(color, str) and _HEX_COLOR.fullmatch(color):
        return color
    return _POLARITY_COLORS.get(polarity, _POLARITY_COLORS[0])


def labels_for(project: Project) -> list[dict]:
    return [
        {
            "name": label["name"],
            "polarity": label.get("polarity", 0),
            "color": safe_color(label, label.get("polarity", 0)),
            "key": str(number) if number <= 9 else "",
        }
        for number, label in enumerate(project.label_set, 1)
    ]


def _lines_of(text: str, start: int, end: int) -> str:
    """Where a span sits, as an annotator says it ("line 3", "lines 3–5"), not as raw offsets."""
    first = text.count("\n", 0, start) + 1
    last = text.count("\n", 0, max(start, end - 1)) + 1
    return f"line {first}" if first == last else f"lines {first}–{last}"


def _polarity_clashes(spans: list[Span]) -> list[str]:
    """The stretches labelled both positive and negative: a warning, since the negative one silently wins
    there (overlapping rewards merge to the minimum)."""
    clashes = []
    for i, one in enumerate(spans):
        for other in spans[i + 1 :]:
            if one.polarity * other.polarity < 0 and one.start < other.end and other.start < one.end:
                start, end = max(one.start, other.start), min(one.end, other.end)
                text = one.text[start - one.start : end - one.start]
                clashes.append(f"“{text[:60]}” is labelled both {one.label} and {other.label}.")
    return clashes


def panel_context(annotation: Annotation, editable: bool) -> dict:
    project = annotation.generation.prompt.project
    labels = services.project_labels(project)
    spans = list(annotation.spans.all())
    for span in spans:
        span.color = safe_color(labels.get(span.label), span.polarity)
        span.where = _lines_of(annotation.generation.text, span.start, span.end) if project.is_code else ""
    spans_data = [
        {
            "id": span.pk,
            "start": span.start,
            "end": span.end,
            "text": span.text,
            "label": span.label,
            "polarity": span.polarity,
            "weight": span.weight,
            "critique": span.critique,
            "origin": span.origin,
            "color": span.color,
        }
        for span in spans
    ]
    return {
        "annotation": annotation,
        "spans": spans,
        "spans_data": spans_data,
        "editable": editable,
        "clashes": _polarity_clashes(spans),
    }


ProjectSection = Callable[[HttpRequest, Project], "tuple[str, dict] | None"]
_PROJECT_SECTIONS: list[ProjectSection] = []


def register_project_section(provider: ProjectSection) -> None:
    """Add a section to the project page (once: ``ready`` may run twice in tests)."""
    if provider not in _PROJECT_SECTIONS:
        _PROJECT_SECTIONS.append(provider)


def project_sections(request: HttpRequest, project: Project) -> list[SafeString]:
    """The registered sections of ``project``'s page, rendered with the request's context processors."""
    rendered = []
    for provider in _PROJECT_SECTIONS:
        section = provider(request, project)
        if section is not None:
            template_name, context = section
            rendered.append(render_to_string(template_name, context, request=request))
    return rendered


QueueNote = Callable[[Project], "str | None"]
_QUEUE_NOTES: list[QueueNote] = []


def register_queue_note(provider: QueueNote) -> None:
    """Add a line to the queue's rows that have nothing waiting (once: ``ready`` may run twice in tests)."""
    if provider not in _QUEUE_NOTES:
        _QUEUE_NOTES.append(provider)


def queue_notes(project: Project) -> list[str]:
    """Why ``project`` has nothing waiting and what comes next, from every registered provider."""
    return [note for provider in _QUEUE_NOTES if (note := provider(project))]
