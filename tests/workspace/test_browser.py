"""The workspace in real headless Chromium: selecting, labelling, the keyboard, offsets, and XSS."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotations import services
from annotations.models import Annotation, Assignment, Generation, Span

from .conftest import open_workspace, select_phrase

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct-horse-battery-9"
# Emoji with a skin tone, a ZWJ sequence, CJK, a combining accent, curly quotes, a tab, \r\n.
MIXED = (
    "Résumé: the cafe\u0301 😀 served 東京 ramen to 👩‍💻 coders.\r\n"
    "\tThe chef said “こんにちは” 👋🏽 twice, then left."
)


def test_annotator_labels_spans_with_mouse_and_keyboard_and_offsets_are_exact(
    page, live_server, annotator, make_generation
):
    project = services.project_create(name="Browser project", annotations_per_output=1)
    first = make_generation(project, MIXED, prompt_text="Describe the lunch.")
    second = make_generation(project, "A second output, to land on after submitting.")

    # Log in through the real form.
    page.goto(reverse("login"))
    page.fill('input[name="username"]', annotator.username)
    page.fill('input[name="password"]', PASSWORD)
    page.click('button[type="submit"]')
    page.wait_for_url(f"{live_server.url}{reverse('queue')}")
    row = page.locator(f'.queue-row[data-project="{project.pk}"]')
    assert row.locator(".available-count").inner_text() == "2"
    row.get_by_role("button", name="Start").click()
    page.wait_for_selector('#workspace[data-ready="1"]')
    annotation = Annotation.objects.get(generation=first, annotator=annotator)
    assert page.url.endswith(reverse("annotate", args=[annotation.pk]))
    # The DOM holds the exact output, \r\n included (rebuilt from JSON as text nodes).
    assert page.evaluate("document.getElementById('output-text').textContent") == MIXED

    # 1) A phrase with CJK, selected by dragging the mouse, labelled "poor" with a critique.
    poor_phrase = "served 東京 ramen to 👩‍💻"
    select_phrase(page, poor_phrase, mouse=True)
    page.wait_for_selector("#span-popover:not([hidden])")
    assert page.inner_text("#popover-quote") == poor_phrase
    assert page.locator("#popover-delete").is_hidden()  # nothing to delete yet
    page.locator("#span-popover label.label-choice", has_text="poor").click()
    page.keyboard.type("Wrong city: the text says Osaka.")
    page.click("#popover-save")
    page.wait_for_selector(".span-item >> nth=0")
    assert page.locator("#span-popover").is_hidden()

    # 2) A phrase with a combining accent and an emoji, labelled "good" from the keyboard.
    good_phrase = "cafe\u0301 😀"
    select_phrase(page, good_phrase, mouse=False)
    page.keyboard.press("1")  # the first label: good
    page.wait_for_selector("#span-popover:not([hidden])")
    assert page.evaluate("document.activeElement.id") == "popover-critique"
    assert page.locator('#span-popover input[name="label"][value="good"]').is_checked()
    page.keyboard.type("Nice detail.")
    page.keyboard.press("Control+Enter")
    page.wait_for_function("document.querySelectorAll('.span-item').length === 2")

    marks = page.locator("#output-text mark.hl")
    assert marks.count() >= 2
    assert "".join(marks.all_inner_texts()).replace("\n", "") != ""

    # Overall critique and rating autosave as you type.
    with page.expect_response(lambda response: response.url.endswith("/save/")) as saved:
        page.fill("#overall-critique", "Mostly right, one wrong city.")
        page.locator('input[name="rating"][value="3"]').check()
    assert saved.value.status == 200
    annotation.refresh_from_db()
    assert (annotation.overall_critique, annotation.rating, annotation.status) == (
        "Mostly right, one wrong city.",
        3,
        "draft",
    )
    page.locator("body").click(position={"x": 5, "y": 5})
    page.keyboard.press("Control+Enter")  # submit and go on
    page.wait_for_url(lambda url: url != f"{live_server.url}{reverse('annotate', args=[annotation.pk])}")
    following = Annotation.objects.get(generation=second, annotator=annotator)
    assert page.url.endswith(reverse("annotate", args=[following.pk]))

    annotation.refresh_from_db()
    assert annotation.status == "submitted"
    assert (annotation.overall_critique, annotation.rating) == ("Mostly right, one wrong city.", 3)
    spans = {span.label: span for span in annotation.spans.all()}
    assert set(spans) == {"good", "poor"}
    for label, phrase, critique in (
        ("poor", poor_phrase, "Wrong city: the text says Osaka."),
        ("good", good_phrase, "Nice detail."),
    ):
        span = spans[label]
        assert MIXED[span.start : span.end] == phrase == span.text
        assert span.start == MIXED.index(phrase)  # code points, not UTF-16 units
        assert span.critique == critique
    assert Generation.objects.get(pk=first.pk).annotation_count == 1
    assert page.dialogs == [] and page.errors == [], page.errors


XSS = (
    '<img src=x onerror="window.__xss=1;alert(1)">'
    "<script>window.__xss=2;alert(2)</script>"
    '<a href="javascript:alert(3)">click me</a> <svg onload=alert(4)> <b onmouseover=alert(5)>hover'
    " <div <p unclosed"
)


def test_untrusted_output_prompt_and_critiques_render_as_text_and_run_nothing(
    page, login_browser, annotator, project, make_generation
):
    generation = make_generation(project, XSS, prompt_text="<script>window.__xss=6;alert(6)</script>")
    services.assignment_next(project=project, annotator=annotator)
    annotation = Annotation.objects.get(generation=generation, annotator=annotator)
    services.span_create(
        annotation=annotation,
        start=0,
        end=10,
        label="poor",
        critique='<img src=y onerror="window.__xss=7;alert(7)"><script>alert(8)</script>',
        user=annotator,
    )
    services.annotation_save_draft(
        annotation=annotation, overall_critique="</textarea><script>alert(9)</script>"
    )
    login_browser(annotator)
    open_workspace(page, reverse("annotate", args=[annotation.pk]))

    # A new span whose critique is markup, written through the UI.
    select_phrase(page, "<script>", mouse=True)
    page.wait_for_selector("#span-popover:not([hidden])")
    page.keyboard.press("2")
    page.keyboard.type('<img src=z onerror="window.__xss=10;alert(10)">')
    page.keyboard.press("Control+Enter")
    page.wait_for_function("document.querySelectorAll('.span-item').length === 2")
    page.hover("#output-text mark.hl >> nth=0")
    page.wait_for_timeout(300)  # give any injected handler the chance to fire

    assert page.evaluate("document.getElementById('output-text').textContent") == XSS
    assert page.evaluate("document.getElementById('prompt-text').textContent").startswith("<script>")
    assert page.evaluate("typeof window.__xss") == "undefined"
    injected = page.evaluate(
        """() => document.querySelectorAll(
            '#workspace img, #workspace svg, #output-text script, #prompt-text *, .span-item script, ' +
            '#workspace a[href^="javascript"], #workspace [onerror], #workspace [onload], #workspace [onmouseover]'
        ).length"""
    )
    assert injected == 0
    assert (
        page.locator(".span-critique", has_text='<img src=z onerror="window.__xss=10;alert(10)">').count()
        == 1
    )
    assert page.input_value("#overall-critique") == "</textarea><script>alert(9)</script>"
    assert page.dialogs == []
    assert (
        Span.objects.get(annotation=annotation, label="poor", start=XSS.index("<script>")).text == "<script>"
    )


def test_overlaps_edit_delete_undo_help_drift_and_skip(
    page, login_browser, annotator, code_project, make_generation
):
    text = "def greet(name):\r\n\treturn f\"שלום {name} مرحبا\"\r\n\r\nprint(greet('世界'))\r\n"
    generation = make_generation(code_project, text)
    services.assignment_next(project=code_project, annotator=annotator)
    annotation = Annotation.objects.get(generation=generation, annotator=annotator)
    login_browser(annotator)
    open_workspace(page, reverse("annotate", args=[annotation.pk]))
    assert page.evaluate("getComputedStyle(document.getElementById('output-text')).whiteSpace") == "pre"

    # A selection across a Windows line break and a tab, by mouse.
    outer = "name):\r\n\treturn"
    select_phrase(page, outer, mouse=True)
    page.wait_for_selector("#span-popover:not([hidden])")
    page.keyboard.press("2")
    page.keyboard.press("Control+s")
    page.wait_for_function("document.querySelectorAll('.span-item').length === 1")
    # Nested inside it, right-to-left text selected through the DOM and labelled from the keyboard.
    select_phrase(page, "שלום", mouse=False)
    page.keyboard.press("1")
    page.keyboard.press("Control+Enter")
    page.wait_for_function("document.querySelectorAll('.span-item').length === 2")
    select_phrase(page, "return f", mouse=False)  # overlaps the first span
    page.keyboard.press("1")
    page.keyboard.press("Control+Enter")
    page.wait_for_function("document.querySelectorAll('.span-item').length === 3")
    assert page.locator("#output-text mark.hl-overlap").count() >= 1
    stored = {(s.text, s.label) for s in annotation.spans.all()}
    assert stored == {(outer, "poor"), ("שלום", "good"), ("return f", "good")}
    for span in annotation.spans.all():
        assert text[span.start : span.end] == span.text

    # Edit: relabel the RTL span from the span list.
    rtl = annotation.spans.get(text="שלום")
    page.click(f'.span-item[data-span-id="{rtl.pk}"] [data-action="edit-span"]')
    page.locator("#span-popover label.label-choice", has_text="poor").click()
    page.fill('#span-popover input[name="weight"]', "4")
    page.click("#popover-save")
    page.wait_for_function(f"!!document.querySelector('.span-item[data-span-id=\"{rtl.pk}\"] .chip')")
    page.wait_for_function(
        f"document.querySelector('.span-item[data-span-id=\"{rtl.pk}\"] .chip').textContent === 'poor'"
    )
    rtl.refresh_from_db()
    assert (rtl.label, rtl.weight, rtl.polarity) == ("poor", 4.0, -1)

    # Delete, then undo with the keyboard: the span comes back with the same range and label.
    page.click(f'.span-item[data-span-id="{rtl.pk}"] [data-action="delete-span"]')
    page.wait_for_function("document.querySelectorAll('.span-item').length === 2")
    assert not Span.objects.filter(pk=rtl.pk).exists()
    page.keyboard.press("u")
    page.wait_for_function("document.querySelectorAll('.span-item').length === 3")
    back = annotation.spans.get(text="שלום")
    assert (back.start, back.end, back.label, back.weight) == (rtl.start, rtl.end, "poor", 4.0)
    page.keyboard.press("u")  # undo the undo's predecessor: the edit (label back to good, weight 1)
    page.wait_for_function(
        f"document.querySelector('.span-item[data-span-id=\"{back.pk}\"] .chip').textContent === 'good'"
    )
    back.refresh_from_db()
    assert (back.label, back.weight) == ("good", 1.0)

    # The help overlay.
    page.keyboard.press("?")
    assert page.locator("#help-dialog").is_visible()
    assert "Ctrl + Enter" in page.inner_text("#help-dialog")
    page.keyboard.press("Escape")
    assert page.locator("#help-dialog").is_hidden()

    # Drift: the stored output changes under the page; the server refuses and nothing typed is lost.
    Generation.objects.filter(pk=generation.pk).update(text=text.replace("greet", "greed"))
    select_phrase(page, "greet('世界')", mouse=False)
    page.keyboard.press("2")
    page.keyboard.type("typo")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#popover-error:not([hidden])")
    assert "no longer matches the output" in page.inner_text("#popover-error")
    assert page.input_value("#popover-critique") == "typo"
    assert annotation.spans.count() == 3
    page.keyboard.press("Escape")

    # Ctrl+S saves the draft at once; N on a draft explains instead of leaving it.
    page.fill("#overall-critique", "Greets in two scripts.")
    page.keyboard.press("Control+s")
    page.wait_for_function("document.getElementById('ws-toast').textContent === 'Draft saved.'")
    annotation.refresh_from_db()
    assert annotation.overall_critique == "Greets in two scripts."
    page.locator("body").click(position={"x": 5, "y": 5})
    page.keyboard.press("n")
    page.wait_for_function(
        "document.getElementById('ws-toast').textContent.startsWith('Submit (Ctrl + Enter)')"
    )

    # Skip with a reason, from the keyboard.
    page.keyboard.press("s")
    page.wait_for_selector("#skip-dialog[open]")
    page.keyboard.type("Code does not run")
    page.keyboard.press("Control+Enter")
    page.wait_for_url(lambda url: url.endswith(reverse("queue")))
    assignment = Assignment.objects.get(generation=generation, annotator=annotator)
    assert (assignment.status, assignment.skip_reason) == ("skipped", "Code does not run")
    assert page.dialogs == []


def test_typing_then_submitting_at_once_keeps_every_word(
    page, login_browser, annotator, project, make_generation
):
    generation = make_generation(project, "A short output.")
    services.assignment_next(project=project, annotator=annotator)
    annotation = Annotation.objects.get(generation=generation, annotator=annotator)
    login_browser(annotator)
    open_workspace(page, reverse("annotate", args=[annotation.pk]))
    page.click("#overall-critique")
    page.keyboard.type("Too short to be useful.")
    page.keyboard.press("Control+Enter")  # well inside the autosave delay
    page.wait_for_url(lambda url: url.endswith(reverse("queue")))
    page.wait_for_timeout(1200)  # longer than the autosave delay: a late autosave would show up now
    annotation.refresh_from_db()
    assert (annotation.status, annotation.overall_critique) == ("submitted", "Too short to be useful.")
    assert "Nothing is left to annotate" in page.inner_text(".messages")
    assert page.errors == [] and page.dialogs == []
