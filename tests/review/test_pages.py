"""The review pages: who may open them, verdicts and gold through the forms, what annotators see."""

from __future__ import annotations

import json

import pytest

from annotations.models import Annotation, Review

TEXT = "The sum is computed correctly. Then the loop divides by zero and crashes. <script>x</script>"


@pytest.fixture
def disputed(project, make_generation, annotator, annotator2, submit):
    generation = make_generation(project, TEXT)
    first = submit(annotator, generation, [("divides by zero", "poor", "crash <b>here</b>")], rating=2)
    second = submit(annotator2, generation, [("The sum is computed correctly.", "good", "fine")], rating=4)
    return generation, first, second


def test_access(client, login, disputed, annotator, researcher, reviewer, admin_user, project):
    generation, first, _ = disputed
    urls = [f"/projects/{project.pk}/review/", f"/review/outputs/{generation.pk}/"]
    for user in (annotator, researcher):
        login(user)
        for url in urls:
            assert client.get(url).status_code == 403
        assert client.post(f"/review/annotations/{first.pk}/", {"verdict": "accepted"}).status_code == 403
    assert not Review.objects.exists()
    # Agreement is read by the same people as its API: researchers, reviewers and admins.
    login(annotator)
    assert client.get(f"/projects/{project.pk}/agreement/").status_code == 403
    assert "agreement-link" not in client.get(f"/projects/{project.pk}/").content.decode()
    for user in (researcher, reviewer, admin_user):
        login(user)
        assert client.get(f"/projects/{project.pk}/agreement/").status_code == 200
        assert "agreement-link" in client.get(f"/projects/{project.pk}/").content.decode()
    login(reviewer)
    for url in urls:
        assert client.get(url).status_code == 200


def test_review_page_shows_pseudonyms_and_escapes(client, login, disputed, reviewer, annotator):
    generation, _, _ = disputed
    login(reviewer)
    page = client.get(f"/review/outputs/{generation.pk}/").content.decode()
    assert annotator.username not in page and "ann2" not in page
    assert "<script>x</script>" not in page and "<b>here</b>" not in page
    data = json.loads(page.split('id="t2g-review" type="application/json">')[1].split("</script>")[0])
    assert [a["alias"] for a in data["annotators"]] == ["A1", "A2"]
    side = client.get(f"/review/outputs/{generation.pk}/?view=side").content.decode()
    assert side.count('class="card rv-column"') == 2 and '<mark class="rv-poor"' in side


def test_queue_orders_by_agreement_and_verdicts_empty_it(
    client, login, project, make_generation, annotator, annotator2, reviewer, submit, disputed
):
    agreed = make_generation(project, "All good here. Nothing to flag.")
    for user in (annotator, annotator2):
        submit(user, agreed, [("Nothing to flag.", "good", "")])
    generation, first, second = disputed
    login(reviewer)
    page = client.get(f"/projects/{project.pk}/review/").content.decode()
    assert page.index(f'data-generation="{generation.pk}"') < page.index(f'data-generation="{agreed.pk}"')
    assert client.get(f"/projects/{project.pk}/review/next/").url == f"/review/outputs/{generation.pk}/"
    response = client.post(
        f"/review/annotations/{first.pk}/", {"verdict": "rejected", "comment": "Too vague"}
    )
    assert response.status_code == 302
    client.post(f"/review/annotations/{second.pk}/", {"verdict": "accepted"})
    assert client.get(f"/projects/{project.pk}/review/next/").url == f"/review/outputs/{agreed.pk}/"
    # Bad verdicts store nothing.
    client.post(f"/review/annotations/{second.pk}/", {"verdict": "maybe"})
    assert Review.objects.get(annotation=second).verdict == "accepted"
    # Only outputs below the threshold, when the project says so (the agreed one scores 1).
    project.review_scope = "below"
    project.save()
    Review.objects.all().delete()
    page = client.get(f"/projects/{project.pk}/review/").content.decode()
    assert f'data-generation="{generation.pk}"' in page and f'data-generation="{agreed.pk}"' not in page


def test_annotator_sees_verdict_on_own_work_only(client, login, disputed, reviewer, annotator, annotator2):
    from annotations import services

    _, first, second = disputed
    services.review_set(
        annotation=first, reviewer=reviewer, verdict="rejected", comment="Mark the <i>cause</i>"
    )
    login(annotator)
    page = client.get(f"/annotations/{first.pk}/").content.decode()
    assert (
        'id="review-verdict"' in page and "rejected" in page and "Mark the &lt;i&gt;cause&lt;/i&gt;" in page
    )
    assert reviewer.username not in page
    mine = client.get("/my/reviews/").content.decode()
    assert f'data-annotation="{first.pk}"' in mine and f'data-annotation="{second.pk}"' not in mine
    login(annotator2)
    assert f'data-annotation="{first.pk}"' not in client.get("/my/reviews/").content.decode()


def test_gold_through_the_form(client, login, disputed, reviewer, django_capture_on_commit_callbacks):
    generation, first, _ = disputed
    login(reviewer)
    start = TEXT.index("divides by zero")
    spans = [
        {"start": start, "end": start + 15, "text": "divides by zero", "label": "poor", "critique": "gold"}
    ]
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/review/outputs/{generation.pk}/gold/",
            {"spans": json.dumps(spans), "overall_critique": "ok", "rating": "2"},
        )
    assert response.status_code == 302
    gold = Annotation.objects.get(generation=generation, is_gold=True)
    assert [(s.start, s.end, s.critique) for s in gold.spans.all()] == [(start, start + 15, "gold")]
    assert gold.rating == 2
    # Refused input stores nothing: bad JSON, bad offsets (htmx: 422 with the reasons).
    for bad in ("not json", json.dumps([{"start": 0, "end": 10_000, "label": "poor"}])):
        response = client.post(
            f"/review/outputs/{generation.pk}/gold/", {"spans": bad}, HTTP_HX_REQUEST="true"
        )
        assert response.status_code == 422
    assert gold.spans.count() == 1
    # "Use as gold" copies an annotation whole.
    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/review/outputs/{generation.pk}/gold/", {"copy_from": str(first.pk)})
    assert [(s.label, s.critique) for s in gold.spans.all()] == [("poor", "crash <b>here</b>")]


def test_agreement_page(client, login, disputed, admin_user, annotator, project):
    login(admin_user)
    page = client.get(f"/projects/{project.pk}/agreement/").content.decode()
    assert annotator.username not in page
    generation, _, _ = disputed
    assert f'data-generation="{generation.pk}"' in page
    assert f"/review/outputs/{generation.pk}/?view=side" in page


def test_agreement_page_for_a_researcher_links_nowhere_they_cannot_go(
    client, login, disputed, researcher, project
):
    generation, _, _ = disputed
    login(researcher)
    page = client.get(f"/projects/{project.pk}/agreement/").content.decode()
    assert f'data-generation="{generation.pk}"' in page  # the figures are theirs to read
    # No link to the review queue or an output's review page: both answer a researcher 403.
    assert f"/projects/{project.pk}/review/" not in page and "/review/outputs/" not in page


def test_own_annotation_has_no_verdict_buttons(
    client, login, project, make_generation, admin_user, annotator, submit
):
    generation = make_generation(project, TEXT)
    own = submit(admin_user, generation, [("divides by zero", "poor", "")])
    other = submit(annotator, generation, [("divides by zero", "poor", "")])
    login(admin_user)
    page = client.get(f"/review/outputs/{generation.pk}/").content.decode()
    assert f'action="/review/annotations/{own.pk}/"' not in page
    assert f'action="/review/annotations/{other.pk}/"' in page
    assert client.post(f"/review/annotations/{own.pk}/", {"verdict": "accepted"}).status_code == 403
    assert not Review.objects.exists()
