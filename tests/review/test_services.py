"""Agreement rows, verdicts and gold through the services, on real PostgreSQL."""

from __future__ import annotations

import numpy as np
import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from annotations import services
from annotations.models import Annotation, Generation, OutputAgreement, Review
from annotations.selectors import next_candidates
from jobs.models import Outbox
from text2grad.agreement import coincidence_matrix, krippendorff_alpha, unit_labels
from training.models import TokenReward

TEXT = "The sum is computed correctly. Then the loop divides by zero and crashes."


def test_agreement_follows_each_submission(project, make_generation, annotator, annotator2, submit):
    generation = make_generation(project, TEXT)
    submit(annotator, generation, [("divides by zero", "poor", "crash")], rating=2)
    row = OutputAgreement.objects.get(generation=generation)
    assert row.annotators == 1 and row.score is None and row.pairs == []
    submit(annotator2, generation, [("The sum is computed correctly.", "good", "ok")], rating=4)
    row.refresh_from_db()
    first = unit_labels(len(TEXT), [(TEXT.index("divides by zero"), TEXT.index("divides by zero") + 15, -1)])
    start = TEXT.index("The sum")
    second = unit_labels(len(TEXT), [(start, start + 30, 1)])
    expected = krippendorff_alpha(np.stack([first, second]), 3)
    assert row.annotators == 2
    assert row.alpha == pytest.approx(expected, abs=1e-6) and row.alpha < 0.2
    assert row.score == row.alpha
    assert row.span_f1 == 0.0
    assert np.allclose(row.coincidence, coincidence_matrix(np.stack([first, second]), 3))
    assert [(p["a"], p["b"], p["f1"]) for p in row.pairs] == [(annotator.pk, annotator2.pk, 0.0)]
    assert np.asarray(row.rating_coincidence).sum() == 2


def test_token_alpha_reads_the_newest_token_rewards_of_the_output(
    project, make_generation, annotator, annotator2, submit
):
    """The token-level alpha uses the offsets of training's TokenReward rows (read through the
    ``token_rewards`` relation), the most recently computed ones when several tokenizers rewarded it."""
    from datetime import timedelta

    from django.utils import timezone

    from text2grad.agreement import token_labels

    generation = make_generation(project, TEXT)
    first = submit(annotator, generation, [("divides by zero", "poor", "crash")])
    submit(annotator2, generation, [("The sum is computed correctly.", "good", "ok")])
    assert OutputAgreement.objects.get(generation=generation).token_alpha is None  # no rewards yet
    words, at = [], 0
    for word in TEXT.split(" "):
        words.append([at, at + len(word)])
        at += len(word) + 1
    old = TokenReward.objects.create(
        annotation=first, tokenizer_fingerprint="old", token_ids=[0], offsets=[[0, len(TEXT)]], rewards=[0.0]
    )
    TokenReward.objects.filter(pk=old.pk).update(computed_at=timezone.now() - timedelta(days=1))
    TokenReward.objects.create(
        annotation=first, tokenizer_fingerprint="new", token_ids=list(range(len(words))), offsets=words,
        rewards=[0.0] * len(words),
    )  # fmt: skip
    services.agreement_refresh(generation_ids=[generation.pk])

    poor_at, good_at = TEXT.index("divides by zero"), TEXT.index("The sum")
    chars = [
        unit_labels(len(TEXT), [(poor_at, poor_at + 15, -1)]),
        unit_labels(len(TEXT), [(good_at, good_at + 30, 1)]),
    ]
    expected = krippendorff_alpha(np.stack([token_labels(row, words) for row in chars]), 3)
    assert OutputAgreement.objects.get(generation=generation).token_alpha == pytest.approx(expected, abs=1e-6)
    by_old_offsets = krippendorff_alpha(np.stack([token_labels(row, [[0, len(TEXT)]]) for row in chars]), 3)
    assert expected != pytest.approx(by_old_offsets, nan_ok=True)


def test_identical_annotations_score_one(project, make_generation, annotator, annotator2, submit):
    generation = make_generation(project, TEXT)
    for user in (annotator, annotator2):
        submit(user, generation, [("divides by zero", "poor", "")])
    row = OutputAgreement.objects.get(generation=generation)
    assert row.alpha == 1.0 and row.score == 1.0 and row.span_f1 == 1.0


def test_nothing_drawn_by_anyone_is_undefined_and_treated_explicitly(
    project, make_generation, annotator, annotator2, submit, client, login, researcher, reviewer
):
    """Two annotators who both drew nothing: alpha is undefined, stored as undefined (not 1); the review
    queue puts it after the measured and the unmeasured outputs, the training filter keeps it only when
    asked, and the API and pages say "undefined"."""
    from annotations.selectors import review_queue
    from training import services as training_services

    empty = make_generation(project, TEXT)
    disputed = make_generation(project, TEXT + " ")
    single = make_generation(project, TEXT + "  ")
    for user in (annotator, annotator2):
        submit(user, empty, [])
    submit(annotator, disputed, [("divides by zero", "poor", "")])
    submit(annotator2, disputed, [("The sum is computed correctly.", "good", "")])
    submit(annotator, single, [("divides by zero", "poor", "")])
    row = OutputAgreement.objects.get(generation=empty)
    assert row.annotators == 2 and row.alpha is None and row.score is None and row.alpha_undefined
    assert not OutputAgreement.objects.get(generation=single).alpha_undefined
    low = OutputAgreement.objects.get(generation=disputed).score
    assert low is not None and low < 0.2

    # The queue: measured lowest first, then unmeasured (one annotation), then undefined.
    project.annotations_per_output = 1
    project.save()
    assert list(review_queue(project).values_list("pk", flat=True)) == [disputed.pk, single.pk, empty.pk]
    project.review_scope, project.review_threshold = "below", 0.5
    project.save()
    assert list(review_queue(project).values_list("pk", flat=True)) == [disputed.pk, single.pk]

    # The training filter: an undefined alpha is neither above nor below a minimum; the selection says.
    def snap(**selection):
        return training_services.round_snapshot(selection={"project_id": project.pk, **selection})

    empty_ids = sorted(Annotation.objects.filter(generation=empty).values_list("pk", flat=True))
    assert snap(min_agreement=-1.0) == sorted(
        Annotation.objects.filter(generation=disputed).values_list("pk", flat=True)
    )
    assert snap(min_agreement=0.9, undefined_agreement="include") == empty_ids
    cleaned = training_services.selection_clean({"min_agreement": 0.5})
    assert cleaned["undefined_agreement"] == "exclude"
    assert "undefined_agreement" not in training_services.selection_clean({"undefined_agreement": "include"})
    with pytest.raises(ValueError, match="undefined_agreement"):
        training_services.selection_clean({"min_agreement": 0.5, "undefined_agreement": "perfect"})

    # The API and the pages.
    login(researcher)
    one = client.get(f"/api/v1/agreement/{empty.pk}/").json()
    assert one["score"] is None and one["alpha"] is None and one["alpha_undefined"] is True
    summary = client.get(f"/api/v1/projects/{project.pk}/agreement/").json()
    assert summary["measured"] == 2 and summary["undefined"] == 1
    assert "α undefined on 1" in client.get(f"/projects/{project.pk}/agreement/").content.decode()
    login(reviewer)
    project.review_scope = "all"
    project.save()
    queue_page = client.get(f"/projects/{project.pk}/review/").content.decode()
    cell = queue_page[queue_page.index(f'data-generation="{empty.pk}"') :]
    assert "<td>undefined</td>" in cell[: cell.index("</tr>")]


def test_review_rules(project, make_generation, annotator, annotator2, reviewer, admin_user, submit):
    generation = make_generation(project, TEXT)
    first = submit(annotator, generation, [("divides by zero", "poor", "crash")])
    with pytest.raises(PermissionDenied):
        services.review_set(annotation=first, reviewer=annotator2, verdict="accepted")
    with pytest.raises(ValidationError):
        services.review_set(annotation=first, reviewer=reviewer, verdict="maybe")
    with pytest.raises(ValidationError):
        services.review_set(annotation=first, reviewer=reviewer, verdict="accepted", comment="x" * 5001)
    assert not Review.objects.exists()
    review = services.review_set(annotation=first, reviewer=reviewer, verdict="rejected", comment="Too broad")
    assert (review.verdict, review.comment, review.reviewer) == ("rejected", "Too broad", reviewer)
    services.review_set(annotation=first, reviewer=admin_user, verdict="accepted")
    assert Review.objects.get(annotation=first).verdict == "accepted"  # one verdict per annotation
    draft = Annotation.objects.create(generation=make_generation(project, "other"), annotator=annotator2)
    with pytest.raises(ValidationError):
        services.review_set(annotation=draft, reviewer=reviewer, verdict="accepted")


def test_reviewer_cannot_review_own_work(project, make_generation, admin_user, submit):
    generation = make_generation(project, TEXT)
    own = submit(admin_user, generation, [("divides by zero", "poor", "")])
    with pytest.raises(PermissionDenied):
        services.review_set(annotation=own, reviewer=admin_user, verdict="accepted")


def test_gold_adjudication_and_accuracy(
    project, make_generation, annotator, annotator2, reviewer, submit, django_capture_on_commit_callbacks
):
    generation = make_generation(project, TEXT)
    submit(annotator, generation, [("divides by zero", "poor", "crash")])
    submit(annotator2, generation, [("The sum is computed correctly.", "good", "")])
    start = TEXT.index("divides by zero")
    spans = [{"start": start, "end": start + 15, "label": "poor", "critique": "division by zero"}]
    with django_capture_on_commit_callbacks(execute=True):
        gold = services.gold_save(
            generation=generation, reviewer=reviewer, spans=spans, overall_critique="gold"
        )
    assert gold.is_gold and gold.gold_origin == "adjudicated" and gold.annotator == reviewer
    assert [(s.start, s.end, s.label, s.critique) for s in gold.spans.all()] == [
        (start, start + 15, "poor", "division by zero")
    ]
    generation.refresh_from_db()
    assert generation.annotation_count == 2  # gold is not one of the output's annotations
    row = OutputAgreement.objects.get(generation=generation)
    assert row.has_gold and row.annotators == 2
    accuracy = {entry["annotator"]: entry["f1"] for entry in row.gold}
    assert accuracy == {annotator.pk: 1.0, annotator2.pk: 0.0}
    # Saving the gold records its token rewards' computation in the same transaction, as a submission does.
    assert Outbox.objects.filter(task_name="training.compute_rewards", args=[gold.pk]).count() == 1
    # Editing the gold replaces its spans and drops its stale token rewards.
    TokenReward.objects.create(annotation=gold, tokenizer_fingerprint="x", token_ids=[1], rewards=[0.0])
    with django_capture_on_commit_callbacks(execute=True):
        services.gold_save(generation=generation, reviewer=reviewer, spans=[])
    gold.refresh_from_db()
    assert gold.spans.count() == 0 and not TokenReward.objects.filter(annotation=gold).exists()
    assert Outbox.objects.filter(task_name="training.compute_rewards", args=[gold.pk]).count() == 2
    assert Annotation.objects.filter(generation=generation, is_gold=True).count() == 1
    # Bad spans store nothing.
    with pytest.raises(ValidationError):
        services.gold_save(
            generation=generation, reviewer=reviewer, spans=[{"start": 0, "end": 999, "label": "poor"}]
        )
    assert gold.spans.count() == 0


def test_honeypot_is_admin_only_and_invisible_to_the_queue(
    project, make_generation, annotator, reviewer, admin_user, submit, django_capture_on_commit_callbacks
):
    from django.utils import timezone

    generation = make_generation(project, TEXT)
    start = TEXT.index("divides by zero")
    spans = [{"start": start, "end": start + 15, "label": "poor"}]
    with pytest.raises(PermissionDenied):
        services.gold_save(generation=generation, reviewer=reviewer, spans=spans)
    with pytest.raises(PermissionDenied):
        services.gold_save(generation=generation, reviewer=annotator, spans=spans)
    with django_capture_on_commit_callbacks(execute=True):
        gold = services.gold_save(generation=generation, reviewer=admin_user, spans=spans)
    assert gold.gold_origin == "honeypot"
    # The annotator is still handed the output, and their work is measured against the gold.
    assert generation.pk in next_candidates(project, annotator, timezone.now()).values_list("pk", flat=True)
    submit(annotator, generation, [("divides by zero", "poor", "")])
    row = OutputAgreement.objects.get(generation=generation)
    assert row.gold == [{"annotator": annotator.pk, "f1": 1.0, "o": row.gold[0]["o"]}]
    assert Generation.objects.get(pk=generation.pk).annotation_count == 1


def test_recompute_agreement_command(project, make_generation, annotator, annotator2, submit, capsys):
    from django.core.management import call_command

    generation = make_generation(project, TEXT)
    submit(annotator, generation, [("divides by zero", "poor", "")])
    submit(annotator2, generation, [("divides by zero", "poor", "")])
    OutputAgreement.objects.all().delete()
    call_command("recompute_agreement", "--project", project.name)
    assert OutputAgreement.objects.get(generation=generation).score == 1.0
    assert "1 output(s)" in capsys.readouterr().out
