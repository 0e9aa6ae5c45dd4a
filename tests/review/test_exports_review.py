"""Exports carry review status, agreement and gold; the spans export can emit the gold alone."""

from __future__ import annotations

import json

import pytest

from annotations import exports
from annotations import services as annotation_services
from annotations.models import OutputAgreement

TEXT = "It was invented in 1999 by aliens. The cat sat on the mat."


@pytest.fixture
def reviewed(
    project, make_generation, annotator, annotator2, reviewer, submit, django_capture_on_commit_callbacks
):
    generation = make_generation(project, TEXT)
    a1 = submit(annotator, generation, [("invented in 1999 by aliens", "poor", "false")])
    a2 = submit(annotator2, generation, [("invented in 1999", "poor", ""), ("The cat", "good", "")])
    annotation_services.review_set(annotation=a1, reviewer=reviewer, verdict="accepted")
    start = TEXT.index("invented")
    with django_capture_on_commit_callbacks(execute=True):
        gold = annotation_services.gold_save(
            generation=generation,
            reviewer=reviewer,
            spans=[{"start": start, "end": start + 26, "label": "poor"}],
        )
    return a1, a2, gold


def _lines(query: exports.ExportQuery) -> tuple[bytes, bytes]:
    fast = b"".join(data for data, _ in exports.spans_jsonl_chunks(query, chunk_size=2))
    generic = b"".join(data for data, _ in exports.jsonl_chunks(exports.rows_for("spans", query)))
    return fast, generic


def test_spans_rows_carry_review_agreement_and_gold(reviewed):
    a1, a2, gold = reviewed
    agreement = OutputAgreement.objects.get(generation=a1.generation)
    assert agreement.score is not None and agreement.score != round(agreement.score)
    query = exports.ExportQuery.from_dict({}, kind="spans")
    fast, generic = _lines(query)
    assert fast == generic  # the database-built lines equal the Python ones, new fields included
    rows = {row["annotation_id"]: row for row in map(json.loads, fast.splitlines())}
    assert rows[a1.pk]["review"] == "accepted" and rows[a2.pk]["review"] is None
    assert rows[gold.pk]["is_gold"] is True and rows[a1.pk]["is_gold"] is False
    assert rows[a1.pk]["agreement"] == agreement.score and rows[a1.pk]["span_f1"] == agreement.span_f1


def test_gold_only_and_review_filters(reviewed):
    a1, a2, gold = reviewed
    for query, expected in (
        ({"gold_only": True}, [gold.pk]),
        ({"gold_only": "on"}, [gold.pk]),
        ({"review": "accepted"}, [a1.pk]),
        ({"review": "pending"}, [a2.pk]),
    ):
        fast, generic = _lines(exports.ExportQuery.from_dict(query, kind="spans"))
        assert fast == generic
        assert [json.loads(line)["annotation_id"] for line in fast.splitlines()] == expected
    for bad in ({"review": "good"}, {"gold_only": "maybe"}):
        with pytest.raises(exports.ExportQueryError):
            exports.ExportQuery.from_dict(bad, kind="spans")


def test_whole_number_agreement_prints_like_python(project, make_generation, annotator, annotator2, submit):
    generation = make_generation(project, TEXT)
    for user in (annotator, annotator2):
        submit(user, generation, [("The cat", "good", "")])
    assert OutputAgreement.objects.get(generation=generation).score == 1.0
    fast, generic = _lines(exports.ExportQuery.from_dict({"project": project.pk}, kind="spans"))
    assert fast == generic and b'"agreement":1.0,"span_f1":1.0,' in fast


def test_gold_rating_is_not_one_more_vote(reviewed, project):
    a1, a2, gold = reviewed
    for annotation, rating in ((a1, 5), (a2, 5)):
        annotation.rating = rating
        annotation.save(update_fields=["rating"])
    gold.rating = 1
    gold.save(update_fields=["rating"])
    rows = list(exports.rows_for("kto", exports.ExportQuery.from_dict({}, kind="kto")))
    assert [(row["rating"], row["ratings"]) for row in rows] == [(5.0, 2)]
    rows = list(exports.rows_for("kto", exports.ExportQuery.from_dict({"gold_only": True}, kind="kto")))
    assert [(row["rating"], row["ratings"], row["label"]) for row in rows] == [(1.0, 1, False)]
