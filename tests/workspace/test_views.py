"""The workspace pages over HTTP: queue, annotate page, htmx writes, access rules, CSRF and escaping."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client
from django.urls import reverse

from annotations import services
from annotations.models import Annotation, Assignment, Span

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
XSS_OUTPUT = (
    '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'
    '<a href="javascript:alert(1)">click</a><b onmouseover=alert(1)>bold</b> <div <p> unclosed'
)


@pytest.fixture
def leased(project, make_generation, annotator):
    """The annotator's draft on a fresh output."""

    def _lease(text="The quick brown fox jumps over the lazy dog.", prompt_text=None):
        generation = make_generation(project, text, prompt_text=prompt_text)
        services.assignment_next(project=project, annotator=annotator)
        return Annotation.objects.get(generation=generation, annotator=annotator)

    return _lease


def test_queue_start_hands_out_an_output_and_shows_progress(login, annotator, project, make_generation):
    for i in range(2):
        make_generation(project, f"output {i}")
    client = login(annotator)
    page = client.get(reverse("queue")).content.decode()
    assert "Demo project" in page and "0 / 4 annotations (0%)" in page and ">Start</button>" in page
    response = client.post(reverse("assignment_next", args=[project.pk]))
    annotation = Annotation.objects.get(annotator=annotator)
    assert response.status_code == 302 and response["Location"] == reverse("annotate", args=[annotation.pk])
    page = client.get(reverse("queue")).content.decode()
    assert "Resume draft" in page and reverse("annotate", args=[annotation.pk]) in page
    # htmx callers get a client-side redirect instead of a 302.
    response = client.post(reverse("assignment_next", args=[project.pk]), **HTMX)
    assert response["HX-Redirect"] == reverse("annotate", args=[annotation.pk])


def test_researchers_cannot_take_outputs(login, researcher, project, make_generation):
    make_generation(project, "x")
    assert login(researcher).post(reverse("assignment_next", args=[project.pk])).status_code == 403
    assert not Assignment.objects.exists()


def test_annotate_page_shows_prompt_output_labels_and_exact_text(login, annotator, leased):
    annotation = leased("line one\r\n\tindented 👍🏽 東京", prompt_text="Summarize <this>")
    page = login(annotator).get(reverse("annotate", args=[annotation.pk])).content.decode()
    assert "Summarize &lt;this&gt;" in page
    # The exact text, \r\n included, travels as JSON (the HTML parser would fold \r\n into \n).
    exact = re.search(r'<script id="t2g-output" type="application/json">(.*?)</script>', page, re.S).group(1)
    assert json.loads(exact) == "line one\r\n\tindented 👍🏽 東京"
    labels = json.loads(
        re.search(r'id="t2g-labels" type="application/json">(.*?)</script>', page, re.S).group(1)
    )
    assert [(label["name"], label["key"]) for label in labels] == [("good", "1"), ("poor", "2")]
    assert (
        'id="span-popover"' in page
        and 'data-save-url="' + reverse("annotation_save", args=[annotation.pk]) in page
    )
    assert "Keyboard shortcuts" in page and "Ctrl + Enter" in page


def test_htmx_span_create_returns_the_panel_and_stores_code_points(login, annotator, leased):
    annotation = leased("naïve 😀 café")
    response = login(annotator).post(
        reverse("span_create", args=[annotation.pk]),
        {"start": 6, "end": 7, "text": "😀", "label": "good", "weight": "2", "critique": "cute"},
        **HTMX,
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert "<html" not in body and body.lstrip().startswith('<aside id="span-panel"')
    assert 'hx-swap-oob="true"' in body and "Saved at" in body
    span = Span.objects.get(annotation=annotation)
    assert (span.start, span.end, span.text, span.weight, span.critique) == (6, 7, "😀", 2.0, "cute")
    data = json.loads(
        re.search(r'id="t2g-spans" type="application/json">(.*?)</script>', body, re.S).group(1)
    )
    assert data[0]["id"] == span.pk and data[0]["text"] == "😀"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"start": 0, "end": 99, "label": "poor"}, "End 99 lies past the end of the text (9 characters)."),
        (
            {"start": 0, "end": 3, "label": "brilliant"},
            "Label 'brilliant' is not in this project's label set",
        ),
        ({"start": 4, "end": 2, "label": "poor"}, "Start 4 must be before end 2."),
        ({"start": 0, "end": 3, "label": "poor", "text": "abd"}, "The selected text 'abd' no longer matches"),
        ({"start": 0, "end": 3, "label": "poor", "weight": "-1"}, "Weight must be a number greater than 0"),
    ],
)
def test_bad_spans_are_refused_with_a_clear_message(login, annotator, leased, fields, message):
    annotation = leased("abc def g")
    client = login(annotator)
    client.post(reverse("span_create", args=[annotation.pk]), {"start": 0, "end": 1, "label": "good"}, **HTMX)
    response = client.post(reverse("span_create", args=[annotation.pk]), fields, **HTMX)
    assert response.status_code == 422
    assert response["Content-Type"].startswith("text/plain")
    assert message in response.content.decode()
    assert list(annotation.spans.values_list("start", "end", "label")) == [(0, 1, "good")]
    # Without htmx: a redirect back to the page, with the message.
    response = client.post(reverse("span_create", args=[annotation.pk]), fields, follow=True)
    assert message.replace("'", "&#x27;") in response.content.decode()
    assert annotation.spans.count() == 1


def test_full_state_save_with_spans_json_uses_the_same_validation(login, annotator, leased):
    annotation = leased("abc def g")
    client = login(annotator)
    spans = [
        {"start": 0, "end": 3, "label": "good", "critique": "ok"},
        {"start": 4, "end": 7, "label": "poor"},
    ]
    response = client.post(
        reverse("annotation_save", args=[annotation.pk]),
        {"overall_critique": "fine", "rating": "4", "time_spent": "9", "spans": json.dumps(spans)},
        **HTMX,
    )
    assert response.status_code == 200 and 'id="save-status"' in response.content.decode()
    assert list(annotation.spans.values_list("text", "label")) == [("abc", "good"), ("def", "poor")]
    bad = spans + [{"start": 5, "end": 50, "label": "poor"}]
    response = client.post(
        reverse("annotation_save", args=[annotation.pk]),
        {"overall_critique": "lost?", "spans": json.dumps(bad)},
        **HTMX,
    )
    assert response.status_code == 422 and "Span 3: end 50 lies past the end" in response.content.decode()
    annotation.refresh_from_db()
    assert annotation.overall_critique == "fine" and annotation.spans.count() == 2
    response = client.post(reverse("annotation_save", args=[annotation.pk]), {"spans": "{nope"}, **HTMX)
    assert response.status_code == 422 and "not valid JSON" in response.content.decode()


def test_span_edit_and_delete_through_the_views(login, annotator, leased):
    annotation = leased("abc def g")
    client = login(annotator)
    client.post(reverse("span_create", args=[annotation.pk]), {"start": 0, "end": 3, "label": "good"}, **HTMX)
    span = annotation.spans.get()
    response = client.post(
        reverse("span_update", args=[span.pk]), {"label": "poor", "critique": "meh"}, **HTMX
    )
    assert response.status_code == 200
    span.refresh_from_db()
    assert (span.label, span.polarity, span.critique, span.weight) == ("poor", -1, "meh", 1.0)
    response = client.post(reverse("span_update", args=[span.pk]), {"label": "awful"}, **HTMX)
    assert response.status_code == 422
    assert client.post(reverse("span_delete", args=[span.pk]), **HTMX).status_code == 200
    assert not annotation.spans.exists()


def test_other_annotators_get_404_and_researchers_read_only(
    client, annotator, annotator2, researcher, admin_user, leased
):
    annotation = leased("abc def g")
    span = services.span_create(annotation=annotation, start=0, end=3, label="good", user=annotator)
    writes = [
        (reverse("annotation_save", args=[annotation.pk]), {"overall_critique": "hijack"}),
        (reverse("annotation_submit", args=[annotation.pk]), {"overall_critique": "hijack"}),
        (reverse("annotation_skip", args=[annotation.pk]), {"reason": "hijack"}),
        (reverse("span_create", args=[annotation.pk]), {"start": 4, "end": 7, "label": "poor"}),
        (reverse("span_update", args=[span.pk]), {"critique": "hijack"}),
        (reverse("span_delete", args=[span.pk]), {}),
    ]
    client.force_login(annotator2)
    assert client.get(reverse("annotate", args=[annotation.pk])).status_code == 404
    for url, data in writes:
        assert client.post(url, data, **HTMX).status_code == 404, url
    for reader in (researcher, admin_user):
        client.force_login(reader)
        page = client.get(reverse("annotate", args=[annotation.pk]))
        assert page.status_code == 200
        body = page.content.decode()
        assert "read only" in body and 'id="span-popover"' not in body and "hx-post" not in body
        for url, data in writes:
            assert client.post(url, data, **HTMX).status_code == 403, url
    annotation.refresh_from_db()
    span.refresh_from_db()
    assert annotation.overall_critique == "" and annotation.status == "draft" and span.critique == ""
    assert Assignment.objects.get(generation=annotation.generation).status == "active"
    assert client.get(reverse("annotate", args=[999999])).status_code == 404
    client.force_login(annotator)
    missing = client.post(reverse("annotation_save", args=[999999]), {"overall_critique": "x"}, **HTMX)
    assert missing.status_code == 404
    span_data = {"start": 0, "end": 1, "label": "good"}
    assert client.post(reverse("span_create", args=[999999]), span_data, **HTMX).status_code == 404


def test_every_htmx_write_needs_the_csrf_token(annotator, leased):
    annotation = leased("abc def g")
    span = services.span_create(annotation=annotation, start=0, end=3, label="good", user=annotator)
    client = Client(enforce_csrf_checks=True)
    client.force_login(annotator)
    page = client.get(reverse("annotate", args=[annotation.pk]))
    token = client.cookies["csrftoken"].value
    header = re.search(r"hx-headers='(.*?)'", page.content.decode()).group(1)
    assert json.loads(header)["X-CSRFToken"]
    writes = [
        (reverse("span_create", args=[annotation.pk]), {"start": 4, "end": 7, "label": "poor"}),
        (reverse("span_update", args=[span.pk]), {"critique": "x"}),
        (reverse("annotation_save", args=[annotation.pk]), {"overall_critique": "x"}),
        (reverse("span_delete", args=[span.pk]), {}),
    ]
    for url, data in writes:
        assert client.post(url, data, **HTMX).status_code == 403, url
    assert annotation.spans.count() == 1
    for url, data in writes:
        assert client.post(url, data, HTTP_X_CSRFTOKEN=token, **HTMX).status_code == 200, url


def test_submit_goes_to_the_next_output_then_back_to_the_queue(login, annotator, project, make_generation):
    first, second = make_generation(project, "first"), make_generation(project, "second")
    client = login(annotator)
    client.post(reverse("assignment_next", args=[project.pk]))
    annotation = Annotation.objects.get(generation=first, annotator=annotator)
    refused = client.post(reverse("annotation_submit", args=[annotation.pk]), {"rating": "2"}, follow=True)
    assert "Add at least one span or an overall critique" in refused.content.decode()
    annotation.refresh_from_db()
    assert annotation.rating == 2 and annotation.status == "draft"  # what was sent is kept
    response = client.post(
        reverse("annotation_submit", args=[annotation.pk]), {"overall_critique": "Too short.", "rating": "2"}
    )
    following = Annotation.objects.get(generation=second, annotator=annotator)
    assert response["Location"] == reverse("annotate", args=[following.pk])
    annotation.refresh_from_db()
    assert annotation.status == "submitted" and annotation.overall_critique == "Too short."
    response = client.post(reverse("annotation_skip", args=[following.pk]), {"reason": "Duplicate of #1"})
    assert response["Location"] == reverse("queue")
    assert Assignment.objects.get(generation=second).skip_reason == "Duplicate of #1"
    page = client.get(reverse("annotate", args=[annotation.pk])).content.decode()
    assert 'id="next-form"' in page and 'id="span-popover"' not in page  # submitted: read only


def test_project_progress_shows_who_did_what(
    client, annotator, annotator2, admin_user, project, make_generation
):
    generations = [make_generation(project, f"out {i}") for i in range(2)]
    for person in (annotator, annotator2):
        services.assignment_next(project=project, annotator=person)
        annotation = Annotation.objects.get(annotator=person, generation=generations[0])
        services.span_create(annotation=annotation, start=0, end=3, label="good", user=person)
        services.annotation_submit(annotation=annotation, overall_critique="ok", time_spent=40, user=person)
    services.assignment_next(project=project, annotator=annotator)
    client.force_login(annotator)
    assert client.get(reverse("project_progress", args=[project.pk])).status_code == 403
    client.force_login(admin_user)
    page = client.get(reverse("project_progress", args=[project.pk])).content.decode()
    assert "2 / 4 (50%)" in page
    row = re.search(r'<tr data-annotator="ann1">(.*?)</tr>', page, re.S).group(1)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row)
    assert cells == ["ann1", "1", "1", "0", "1", "40 s", cells[-1]]
    from annotations import selectors

    counts = {row["username"]: row for row in selectors.annotator_counts(project)}
    assert (
        counts["ann2"]["submitted"] == 1 and counts["ann2"]["drafts"] == 0 and counts["ann2"]["seconds"] == 40
    )


def test_untrusted_text_is_escaped_everywhere(login, annotator, researcher, leased):
    annotation = leased(XSS_OUTPUT, prompt_text='<script>alert("prompt")</script>')
    services.span_create(
        annotation=annotation,
        start=0,
        end=8,
        label="poor",
        critique='<img src=x onerror="window.__pwned=3"><script>alert(3)</script>',
        user=annotator,
    )
    services.annotation_save_draft(annotation=annotation, overall_critique="</textarea><script>x()</script>")
    for user in (annotator, researcher):
        body = login(user).get(reverse("annotate", args=[annotation.pk])).content.decode()
        for raw in (
            "<script>window",
            "<img src=x",
            'href="javascript:',
            "<b onmouseover",
            "<script>alert",
            "</textarea><script>",
        ):
            assert raw not in body, (user, raw)
        assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in body
        assert "\\u003Cscript\\u003Ewindow.__pwned=1" in body  # json_script's escaping
    panel = login(annotator).get(reverse("annotate", args=[annotation.pk]), **HTMX).content.decode()
    assert "&lt;img src=x onerror=&quot;window.__pwned=3&quot;&gt;" in panel
