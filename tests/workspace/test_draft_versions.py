"""Conflict detection on the overall fields (a version per annotation) and the workspace's session handling."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotations import services
from annotations.models import Annotation

pytestmark = pytest.mark.django_db


@pytest.fixture
def draft(annotator, project, make_generation):
    generation = make_generation(project, "Some output text.")
    services.assignment_next(project=project, annotator=annotator)
    return Annotation.objects.get(generation=generation, annotator=annotator)


def test_version_goes_up_only_when_the_text_or_rating_changes(draft, annotator):
    saved = services.annotation_save_draft(annotation=draft, user=annotator, overall_critique="One.")
    assert saved.version == 1
    saved = services.annotation_save_draft(
        annotation=draft, user=annotator, overall_critique="One.", time_spent=9
    )
    assert saved.version == 1
    saved = services.annotation_save_draft(annotation=draft, user=annotator, rating=4, expected_version=1)
    assert saved.version == 2


def test_a_stale_save_that_changes_the_text_is_refused_and_writes_nothing(draft, annotator):
    services.annotation_save_draft(
        annotation=draft, user=annotator, overall_critique="Tab A.", expected_version=0
    )
    with pytest.raises(services.DraftConflict) as caught:
        services.annotation_save_draft(
            annotation=draft, user=annotator, overall_critique="Tab B.", time_spent=50, expected_version=0
        )
    assert caught.value.current.overall_critique == "Tab A." and caught.value.current.version == 1
    draft.refresh_from_db()
    assert (draft.overall_critique, draft.version, draft.time_spent_seconds) == ("Tab A.", 1, 0)
    # The same text from a stale tab is no conflict.
    services.annotation_save_draft(
        annotation=draft, user=annotator, overall_critique="Tab A.", expected_version=0
    )
    with pytest.raises(services.DraftConflict):
        services.annotation_submit(
            annotation=draft, user=annotator, overall_critique="Tab B.", expected_version=0
        )
    draft.refresh_from_db()
    assert draft.status == "draft"


def test_save_view_answers_409_with_what_is_stored(client, login, draft, annotator):
    login(annotator)
    url = reverse("annotation_save", args=[draft.pk])
    first = client.post(url, {"overall_critique": "First.", "version": "0"}, HTTP_HX_REQUEST="true")
    assert first.status_code == 200 and 'data-version="1"' in first.content.decode()
    second = client.post(url, {"overall_critique": "Second.", "version": "0"}, HTTP_HX_REQUEST="true")
    assert second.status_code == 409
    assert second.json() == {"version": 1, "overall_critique": "First.", "rating": None}
    bad = client.post(url, {"overall_critique": "Third.", "version": "-3"}, HTTP_HX_REQUEST="true")
    assert bad.status_code == 422
    draft.refresh_from_db()
    assert draft.overall_critique == "First."


def test_ended_session_gets_401_from_scripts_and_plain_forms_go_back_to_the_annotation(client, draft):
    save = client.post(
        reverse("annotation_save", args=[draft.pk]), {"overall_critique": "x"}, HTTP_HX_REQUEST="true"
    )
    assert save.status_code == 401
    submit = client.post(reverse("annotation_submit", args=[draft.pk]), {"overall_critique": "x"})
    assert submit.status_code == 302
    assert submit.url == f"{reverse('login')}?next={reverse('annotate', args=[draft.pk])}"
    draft.refresh_from_db()
    assert draft.overall_critique == ""


def test_annotate_page_is_never_cached_and_session_token_needs_a_login(client, login, draft, annotator):
    assert client.get(reverse("session_token")).status_code == 302
    login(annotator)
    page = client.get(reverse("annotate", args=[draft.pk]))
    assert "no-store" in page["Cache-Control"]
    token = client.get(reverse("session_token")).json()
    assert token["username"] == annotator.username and len(token["csrf_token"]) >= 32
