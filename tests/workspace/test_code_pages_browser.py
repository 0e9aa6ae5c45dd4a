"""Code outputs in Chromium (issue 24): only the fenced code is highlighted, lexer errors are not drawn
like labels, a suggested line is one dashed box, the span panel lines up with the output card, and
pending suggestions come back after a reload."""

from __future__ import annotations

import os

import pytest
from django.urls import reverse
from django.utils import timezone

from annotations import services
from annotations.highlight import code_tokens
from annotations.models import Annotation
from training.models import AlignmentRequest

from .conftest import open_workspace

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

FENCED = (
    "Here is the fix:\n"
    "\n"
    "```python\n"
    "def add_one(values):\n"
    "    return [value + 1 for value in values]\n"
    "```\n"
    "\n"
    "This is it: it's simple and returns a new list, $ not a generator.\n"
)
SUGGESTED_LINE = "    return [value + 1 for value in values]"
SHOTS = os.environ.get("T2G_SCREENSHOTS")  # a folder: the test leaves its screenshots there


def _open(page, login_browser, annotator, project, make_generation, text):
    generation = make_generation(project, text)
    services.assignment_next(project=project, annotator=annotator)
    annotation = Annotation.objects.get(generation=generation, annotator=annotator)
    login_browser(annotator)
    open_workspace(page, reverse("annotate", args=[annotation.pk]))
    return annotation


def test_only_fenced_code_is_highlighted_and_lexer_errors_are_not_styled():
    tokens = code_tokens(FENCED)
    code_start = FENCED.index("def add_one")
    code_end = FENCED.index("```\n\nThis")
    assert tokens and all(code_start <= start < end <= code_end for start, end, _ in tokens)
    assert [FENCED[start:end] for start, end, css in tokens if css == "k"] == ["def", "return", "for"]
    # Without fences the whole output is code; what the lexer cannot place ($) is left unstyled.
    assert code_tokens("x = $ 1") == [[2, 3, "o"], [6, 7, "mi"]]
    # An unclosed fence runs to the end; a fence's language is used.
    unclosed = "Run:\n```\nimport os\n"
    assert [unclosed[s:e] for s, e, _ in code_tokens(unclosed)] == ["import", "os"]


def test_code_view_prose_plain_one_box_per_suggested_line_and_suggestions_survive_reload(
    page, login_browser, annotator, code_project, make_generation
):
    annotation = _open(page, login_browser, annotator, code_project, make_generation, FENCED)
    # The prose after the closing fence has no token classes; the code has.
    classes_after = page.evaluate(
        """() => {
            const lines = Array.from(document.querySelectorAll('#output-text .line'));
            const prose = lines.find(l => l.textContent.startsWith('This is it'));
            return Array.from(prose.querySelectorAll('span')).map(s => s.className);
        }"""
    )
    assert classes_after == []
    assert page.locator("#output-text span.k", has_text="return").count() == 1
    # No rule styles Pygments' error class (it drew red boxes that looked like poor spans).
    assert (
        page.evaluate(
            """() => Array.from(document.styleSheets).flatMap(s => Array.from(s.cssRules))
                .some(r => r.selectorText && /[.]err(?![\\w-])/.test(r.selectorText))"""
        )
        is False
    )
    # The span panel starts level with the output card.
    tops = page.evaluate(
        """() => [document.querySelector('.ws-output').getBoundingClientRect().top,
                   document.querySelector('.span-panel').getBoundingClientRect().top]"""
    )
    assert abs(tops[0] - tops[1]) < 2, tops

    # A pending Suggest-spans answer with the suggested line open (as the worker stores it).
    start = FENCED.index(SUGGESTED_LINE)
    AlignmentRequest.objects.create(
        annotation=annotation,
        critique="Line 4 adds one but the docstring promised two.",
        status=AlignmentRequest.Status.SUCCEEDED,
        finished_at=timezone.now(),
        proposals=[
            {"start": start, "end": start + len(SUGGESTED_LINE), "text": SUGGESTED_LINE, "polarity": -1,
             "score": 0.9, "method": "reference", "evidence": "Line 4 adds one", "state": "open"},
        ],
    )  # fmt: skip
    page.reload()
    page.wait_for_selector('#workspace[data-ready="1"]')
    suggestion = page.locator("#suggestions .suggestion[data-state='open']")
    suggestion.wait_for()
    assert SUGGESTED_LINE.strip() in suggestion.inner_text()
    page.wait_for_selector("#output-text mark.hl-proposal")
    pieces = page.locator("#output-text mark.hl-proposal")
    assert pieces.count() > 3  # the line crosses many tokens...
    assert "".join(pieces.all_text_contents()) == SUGGESTED_LINE
    # ... but is one box: no piece outlines itself, the first draws the left side, the last the right.
    boxes = page.evaluate(
        """() => Array.from(document.querySelectorAll('#output-text mark.hl-proposal')).map(m => {
            const s = getComputedStyle(m);
            return [s.outlineStyle, s.borderTopStyle, s.borderLeftStyle, s.borderRightStyle];
        })"""
    )
    assert all(box[0] == "none" and box[1] == "dashed" for box in boxes), boxes
    assert [box[2] for box in boxes].count("dashed") == 1 and boxes[0][2] == "dashed"
    assert [box[3] for box in boxes].count("dashed") == 1 and boxes[-1][3] == "dashed"
    if SHOTS:
        page.locator(".ws-grid").screenshot(path=os.path.join(SHOTS, "code-view.png"))
    assert page.errors == [], page.errors
