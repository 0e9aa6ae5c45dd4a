"""The agreement, review and gold endpoints: the permission rules, pseudonyms, refusals, the schema."""

from __future__ import annotations

import json

import pytest
from rest_framework.test import APIClient

from annotations.models import Annotation, Review

API = "/api/v1"
TEXT = "It was invented in 1999 by aliens. The cat sat on the mat."


def _client(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def disputed(project, make_generation, annotator, annotator2, submit):
    generation = make_generation(project, TEXT)
    a1 = submit(annotator, generation, [("invented in 1999 by aliens", "poor", "false")])
    a2 = submit(annotator2, generation, [("The cat sat on the mat", "good", "")])
    agreed = make_generation(project, "Cheese is blue.")
    for user in (annotator, annotator2):
        submit(user, agreed, [("Cheese is blue", "poor", "")])
    return generation, a1, a2, agreed


def test_reviews(disputed, annotator, annotator2, reviewer, researcher, admin_user):
    generation, a1, a2, _ = disputed
    as_annotator = _client(annotator)
    assert (
        as_annotator.post(f"{API}/reviews/", {"annotation": a1.pk, "verdict": "accepted"}).status_code == 403
    )
    assert (
        _client(researcher).post(f"{API}/reviews/", {"annotation": a1.pk, "verdict": "accepted"}).status_code
        == 403
    )
    as_reviewer = _client(reviewer)
    for bad in ({"annotation": a1.pk, "verdict": "great"}, {"annotation": "x", "verdict": "accepted"}, {}):
        assert as_reviewer.post(f"{API}/reviews/", bad, format="json").status_code == 400
    assert (
        as_reviewer.post(f"{API}/reviews/", {"annotation": 10**9, "verdict": "accepted"}).status_code == 404
    )
    assert not Review.objects.exists()
    response = as_reviewer.post(
        f"{API}/reviews/", {"annotation": a1.pk, "verdict": "rejected", "comment": "too broad"}, format="json"
    )
    assert response.status_code == 201 and response.json()["verdict"] == "rejected"
    as_reviewer.post(f"{API}/reviews/", {"annotation": a2.pk, "verdict": "accepted"}, format="json")
    # The annotator sees the verdict on their own work only, also on the annotation itself.
    listed = as_annotator.get(f"{API}/reviews/").json()["results"]
    assert [(r["annotation"], r["verdict"], r["comment"]) for r in listed] == [
        (a1.pk, "rejected", "too broad")
    ]
    other = Review.objects.get(annotation=a2)
    assert as_annotator.get(f"{API}/reviews/{other.pk}/").status_code == 404
    own = as_annotator.get(f"{API}/annotations/{a1.pk}/").json()
    assert own["review"]["verdict"] == "rejected" and own["is_gold"] is False
    assert "reviewer" not in json.dumps(listed)
    # Researchers read all; admins review too, but nobody their own work.
    assert len(_client(researcher).get(f"{API}/reviews/?verdict=accepted").json()["results"]) == 1
    own_work = Annotation.objects.create(generation=generation, annotator=admin_user, status="submitted")
    response = _client(admin_user).post(f"{API}/reviews/", {"annotation": own_work.pk, "verdict": "accepted"})
    assert response.status_code == 403


def test_agreement(disputed, annotator, annotator2, researcher, reviewer, project):
    generation, _, _, agreed = disputed
    assert _client(annotator).get(f"{API}/agreement/").status_code == 403
    assert _client(annotator).get(f"{API}/projects/{project.pk}/agreement/").status_code == 403
    listed = _client(researcher).get(f"{API}/agreement/?project={project.pk}").json()["results"]
    assert [row["generation"] for row in listed] == [generation.pk, agreed.pk]  # lowest first
    assert listed[1]["score"] == 1.0 and listed[0]["span_f1"] == 0.0
    text = json.dumps(listed)
    assert annotator.username not in text and annotator2.username not in text
    assert listed[0]["pairs"][0]["a"].startswith("annotator-")
    one = _client(reviewer).get(f"{API}/agreement/{generation.pk}/").json()
    assert one["alpha"] == listed[0]["alpha"]
    summary = _client(researcher).get(f"{API}/projects/{project.pk}/agreement/").json()
    assert summary["measured"] == 2 and len(summary["per_annotator"]) == 2
    assert {row["label"] for row in summary["per_label"]} == {"none", "poor", "good"}
    assert annotator.username not in json.dumps(summary)
    assert _client(researcher).get(f"{API}/projects/99999999999999999999/agreement/").status_code == 404


def test_gold(disputed, annotator, researcher, reviewer, admin_user, django_capture_on_commit_callbacks):
    generation, _, _, _ = disputed
    url = f"{API}/generations/{generation.pk}/gold/"
    assert _client(researcher).get(url).status_code == 404
    start = TEXT.index("invented")
    body = {"spans": [{"start": start, "end": start + 26, "label": "poor", "critique": "false"}], "rating": 2}
    assert _client(researcher).put(url, body, format="json").status_code == 403
    assert _client(annotator).get(url).status_code == 403
    bad = {"spans": [{"start": start, "end": 10_000, "label": "poor"}]}
    assert _client(reviewer).put(url, bad, format="json").status_code == 400
    assert _client(reviewer).put(url, {"spans": [], "rating": 9}, format="json").status_code == 400
    assert not Annotation.objects.filter(is_gold=True).exists()
    with django_capture_on_commit_callbacks(execute=True):
        response = _client(reviewer).put(url, body, format="json")
    assert response.status_code == 200
    gold = response.json()
    assert gold["gold_origin"] == "adjudicated" and gold["rating"] == 2
    assert [(s["start"], s["end"], s["label"]) for s in gold["spans"]] == [(start, start + 26, "poor")]
    assert _client(researcher).get(url).json()["id"] == gold["id"]
    assert _client(reviewer).delete(url).status_code == 403  # removing gold is for admins
    with django_capture_on_commit_callbacks(execute=True):
        assert _client(admin_user).delete(url).status_code == 204
    assert _client(admin_user).delete(url).status_code == 404


def test_schema_documents_the_endpoints(db, client):
    paths = json.loads(client.get(f"{API}/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").content)[
        "paths"
    ]
    for path in ("/api/v1/reviews/", "/api/v1/reviews/{id}/", "/api/v1/agreement/", "/api/v1/agreement/{generation}/",
                 "/api/v1/projects/{id}/agreement/", "/api/v1/generations/{id}/gold/"):  # fmt: skip
        assert path in paths, path
    assert "put" in paths["/api/v1/generations/{id}/gold/"]
