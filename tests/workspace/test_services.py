"""The workspace services: offsets, span validation, the queue's leases, drafts, spans and submission."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from annotations import services
from annotations.models import Annotation, Assignment, Generation, Span
from annotations.signals import annotation_submitted
from jobs.models import Outbox

pytestmark = pytest.mark.django_db

# Emoji (astral, one with a skin-tone modifier and a ZWJ sequence), CJK, a combining accent, Arabic and
# Hebrew (right to left), a tab and Windows line endings.
TRICKY = "Hi 👋🏽 there\r\n東京は晴れ。\tcafe\u0301 👩‍💻 مرحبا بالعالم\r\nשלום end"


def spans_of(annotation):
    return list(
        annotation.spans.order_by("start", "end", "label").values_list("start", "end", "text", "label")
    )


@pytest.fixture
def draft(project, make_generation, annotator):
    generation = make_generation(project, TRICKY)
    assignment = services.assignment_next(project=project, annotator=annotator)
    assert assignment.generation_id == generation.pk
    return Annotation.objects.get(generation=generation, annotator=annotator)


# --- validate_spans ----------------------------------------------------------------------------------
def test_validate_spans_keeps_exact_text_for_every_script(project):
    pieces = ["👋🏽", "東京は晴れ", "cafe\u0301", "👩‍💻", "مرحبا", "\r\n", "\t", "שלום"]
    spans = []
    for piece in pieces:
        start = TRICKY.index(piece)
        spans.append({"start": start, "end": start + len(piece), "label": "poor", "text": piece})
    cleaned = services.validate_spans(TRICKY, spans, project)
    assert [TRICKY[s["start"] : s["end"]] for s in cleaned] == pieces
    assert [s["text"] for s in cleaned] == pieces
    assert {s["polarity"] for s in cleaned} == {-1}


def test_validate_spans_reports_each_problem_with_its_number(project):
    text = "hello world"
    spans = [
        {"start": 0, "end": 5, "label": "good"},
        {"start": 6, "end": 40, "label": "poor"},
        {"start": 3, "end": 3, "label": "poor"},
        {"start": 0, "end": 5, "label": "meh"},
        {"start": 0, "end": 5, "label": "poor", "text": "jello"},
        {"start": 0, "end": 5, "label": "good", "weight": 11},
        {"start": 0, "end": 5, "label": "good"},
        {"start": -1, "end": 2, "label": "good"},
        {"start": "x", "end": 2, "label": "good"},
    ]
    with pytest.raises(ValidationError) as caught:
        services.validate_spans(text, spans, project)
    messages = caught.value.messages
    assert "Span 2: end 40 lies past the end of the text (11 characters)." in messages
    assert "Span 3: start 3 must be before end 3." in messages
    assert any(
        m.startswith("Span 4: label 'meh' is not in this project's label set (good, poor)") for m in messages
    )
    assert any(m.startswith("Span 5: the selected text 'jello' no longer matches") for m in messages)
    assert any(
        m.startswith("Span 6: weight must be a number greater than 0 and at most 10") for m in messages
    )
    assert "Span 7: duplicates span 1 (same range and label)." in messages
    assert "Span 8: start -1 is negative." in messages
    assert any(m.startswith("Span 9: start must be a whole number") for m in messages)
    assert not any(m.startswith("Span 1:") for m in messages)


def test_project_label_set_replaces_good_and_poor(make_generation):
    custom = services.project_create(
        name="Custom labels",
        label_set=[
            {"name": "hallucination", "polarity": -1, "color": "#aa0000"},
            {"name": "insightful", "polarity": 1, "color": "#00aa00"},
            {"name": "filler", "polarity": 0, "color": "#888888"},
        ],
    )
    cleaned = services.validate_spans("abc", [{"start": 0, "end": 1, "label": "filler"}], custom)
    assert cleaned[0]["polarity"] == 0
    with pytest.raises(ValidationError, match="label 'good' is not in this project's label set"):
        services.validate_spans("abc", [{"start": 0, "end": 1, "label": "good"}], custom)


# --- drafts and spans --------------------------------------------------------------------------------
def test_span_create_stores_code_points_and_the_verified_copy(draft, annotator):
    start = TRICKY.index("東京")
    span = services.span_create(
        annotation=draft,
        start=start,
        end=start + 5,
        text="東京は晴れ",
        label="poor",
        critique="weather?",
        user=annotator,
    )
    span.refresh_from_db()
    assert (span.start, span.end, span.text, span.polarity, span.weight) == (
        start,
        start + 5,
        "東京は晴れ",
        -1,
        1.0,
    )
    assert draft.generation.text[span.start : span.end] == "東京は晴れ"


def test_refused_span_writes_leave_saved_spans_alone(draft, annotator):
    services.span_create(annotation=draft, start=0, end=2, label="good", user=annotator)
    before = spans_of(draft)
    bad_calls = [
        {"start": 0, "end": len(TRICKY) + 1, "label": "poor"},
        {"start": 4, "end": 4, "label": "poor"},
        {"start": 0, "end": 2, "label": "excellent"},
        {"start": 0, "end": 2, "label": "poor", "text": "Hx"},
        {"start": 0, "end": 2, "label": "poor", "weight": 0},
        {"start": 0, "end": 2, "label": "good"},  # duplicate
    ]
    for call in bad_calls:
        with pytest.raises(ValidationError):
            services.span_create(annotation=draft, user=annotator, **call)
    with pytest.raises(ValidationError, match="Span 1: end"):
        services.annotation_save_draft(
            annotation=draft,
            overall_critique="this must not be stored",
            spans=[{"start": 0, "end": 999, "label": "poor"}],
            user=annotator,
        )
    draft.refresh_from_db()
    assert spans_of(draft) == before
    assert draft.overall_critique == ""


def test_span_create_message_is_a_sentence(draft, annotator):
    with pytest.raises(ValidationError) as caught:
        services.span_create(annotation=draft, start=2, end=len(TRICKY) + 5, label="poor", user=annotator)
    assert caught.value.messages == [
        f"End {len(TRICKY) + 5} lies past the end of the text ({len(TRICKY)} characters)."
    ]


def test_save_draft_replaces_spans_and_keeps_time_monotonic(draft, annotator):
    spans = [
        {"start": 0, "end": 2, "label": "good", "critique": "friendly"},
        {"start": 0, "end": 8, "label": "poor", "weight": 2.5},  # overlapping and nesting are fine
        {"start": 3, "end": 5, "label": "poor"},
    ]
    services.annotation_save_draft(
        annotation=draft, overall_critique="ok", rating="4", spans=spans, time_spent=30, user=annotator
    )
    services.annotation_save_draft(annotation=draft, time_spent=12, user=annotator)  # a stale tab
    draft.refresh_from_db()
    assert (draft.overall_critique, draft.rating, draft.time_spent_seconds) == ("ok", 4, 30)
    assert spans_of(draft) == [(0, 2, "Hi", "good"), (0, 8, TRICKY[:8], "poor"), (3, 5, TRICKY[3:5], "poor")]
    services.annotation_save_draft(annotation=draft, spans=spans[:1], rating=None, user=annotator)
    draft.refresh_from_db()
    assert spans_of(draft) == [(0, 2, "Hi", "good")]
    assert draft.rating is None and draft.overall_critique == "ok"
    with pytest.raises(ValidationError, match="rating must be a whole number from 1 to 5"):
        services.annotation_save_draft(annotation=draft, rating=6, user=annotator)


def test_span_update_and_delete(draft, annotator):
    span = services.span_create(annotation=draft, start=0, end=2, label="good", user=annotator)
    services.span_update(span=span, label="poor", weight=3, critique="too casual", user=annotator)
    span.refresh_from_db()
    assert (span.label, span.polarity, span.weight, span.critique) == ("poor", -1, 3.0, "too casual")
    with pytest.raises(ValidationError, match="not in this project's label set"):
        services.span_update(span=span, label="nope", user=annotator)
    with pytest.raises(ValidationError, match="past the end"):
        services.span_update(span=span, end=len(TRICKY) + 1, user=annotator)
    span.refresh_from_db()
    assert (span.label, span.end) == ("poor", 2)
    snapshot = services.span_delete(span=span, user=annotator)
    assert snapshot["text"] == "Hi" and not Span.objects.filter(pk=span.pk).exists()


def test_only_the_author_changes_an_annotation(draft, annotator2, researcher):
    for intruder in (annotator2, researcher):
        with pytest.raises(PermissionDenied):
            services.span_create(annotation=draft, start=0, end=2, label="good", user=intruder)
        with pytest.raises(PermissionDenied):
            services.annotation_save_draft(annotation=draft, overall_critique="x", user=intruder)
        with pytest.raises(PermissionDenied):
            services.annotation_submit(annotation=draft, overall_critique="x", user=intruder)
    assert not draft.spans.exists()


# --- submission --------------------------------------------------------------------------------------
def test_submit_counts_once_completes_the_lease_and_signals_after_commit(
    draft, annotator, django_capture_on_commit_callbacks
):
    received = []

    def receiver(sender, annotation_id, **kwargs):
        received.append(annotation_id)

    annotation_submitted.connect(receiver)
    try:
        with pytest.raises(ValidationError, match="at least one span or an overall critique"):
            services.annotation_submit(annotation=draft, user=annotator)
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            services.annotation_submit(annotation=draft, overall_critique="Fine.", rating=3, user=annotator)
            assert received == []  # not before the commit
    finally:
        annotation_submitted.disconnect(receiver)
    # Two callbacks: the reward computation's outbox row (written in the submit transaction) is published,
    # and the signal goes out.
    assert len(callbacks) == 2 and received == [draft.pk]
    assert Outbox.objects.filter(task_name="training.compute_rewards", args=[draft.pk]).count() == 1
    draft.refresh_from_db()
    assert draft.status == "submitted" and draft.submitted_at is not None and draft.rating == 3
    assert Generation.objects.get(pk=draft.generation_id).annotation_count == 1
    assert Assignment.objects.get(generation=draft.generation, annotator=annotator).status == "completed"
    with pytest.raises(ValidationError, match="has been submitted"):
        services.annotation_submit(annotation=draft, overall_critique="again", user=annotator)
    with pytest.raises(ValidationError, match="has been submitted"):
        services.span_create(annotation=draft, start=0, end=1, label="good", user=annotator)
    assert Generation.objects.get(pk=draft.generation_id).annotation_count == 1


def test_submit_refuses_a_span_whose_copy_drifted(draft, annotator):
    span = services.span_create(annotation=draft, start=0, end=2, label="good", user=annotator)
    Span.objects.filter(pk=span.pk).update(text="Ho")  # as if the output had been edited under it
    with pytest.raises(ValidationError, match=r"Span \[0, 2\) 'Ho' no longer matches the output"):
        services.annotation_submit(annotation=draft, overall_critique="x", user=annotator)
    draft.refresh_from_db()
    assert draft.status == "draft"


# --- the queue ---------------------------------------------------------------------------------------
def test_each_output_gets_its_quota_and_never_the_same_annotator_twice(
    project, make_generation, django_user_model
):
    from annotations import roles

    generations = [make_generation(project, f"output {i}") for i in range(3)]  # quota 2 → 6 slots
    people = []
    for i in range(5):
        user = django_user_model.objects.create_user(username=f"q{i}", password="x")
        roles.assign_role(user, "annotator")
        people.append(user)
    handed = {}
    for person in people:
        seen = set()
        while True:
            assignment = services.assignment_next(project=project, annotator=person)
            if assignment is None:
                break
            assert assignment.generation_id not in seen, "the same output twice"
            seen.add(assignment.generation_id)
            annotation = Annotation.objects.get(generation_id=assignment.generation_id, annotator=person)
            services.annotation_submit(annotation=annotation, overall_critique="ok", user=person)
        handed[person.username] = seen
    counts = {g.pk: Generation.objects.get(pk=g.pk).annotation_count for g in generations}
    assert counts == {g.pk: 2 for g in generations}
    assert sum(len(s) for s in handed.values()) == 6
    assert handed["q0"] == {g.pk for g in generations}  # first come, first served, in id order
    assert handed["q4"] == set()


def test_next_resumes_the_open_draft_instead_of_leasing_another(project, make_generation, annotator):
    make_generation(project, "one")
    make_generation(project, "two")
    first = services.assignment_next(project=project, annotator=annotator)
    again = services.assignment_next(project=project, annotator=annotator)
    assert again.pk == first.pk
    assert Assignment.objects.filter(annotator=annotator).count() == 1


def test_skip_needs_a_reason_discards_the_draft_and_never_comes_back(project, make_generation, annotator):
    only = make_generation(project, "the only output")
    assignment = services.assignment_next(project=project, annotator=annotator)
    annotation = Annotation.objects.get(generation=only, annotator=annotator)
    services.span_create(annotation=annotation, start=0, end=3, label="poor", user=annotator)
    with pytest.raises(ValidationError, match="Say why"):
        services.assignment_skip(assignment=assignment, reason="   ", user=annotator)
    services.assignment_skip(assignment=assignment, reason="Not my language", user=annotator)
    assignment.refresh_from_db()
    assert (assignment.status, assignment.skip_reason) == ("skipped", "Not my language")
    assert not Annotation.objects.filter(pk=annotation.pk).exists()
    assert services.assignment_next(project=project, annotator=annotator) is None


def test_an_abandoned_lease_expires_and_frees_the_slot(code_project, make_generation, annotator, annotator2):
    generation = make_generation(code_project, "def f(): pass")  # quota 1
    first = services.assignment_next(project=code_project, annotator=annotator)
    assert first.generation_id == generation.pk
    assert services.assignment_next(project=code_project, annotator=annotator2) is None  # slot held
    later = timezone.now() + timedelta(seconds=3600 * 24)
    second = services.assignment_next(project=code_project, annotator=annotator2, now=later)
    assert second is not None and second.generation_id == generation.pk
    # The first annotator's draft can no longer be submitted (the slot is taken) and is kept, not lost.
    draft = Annotation.objects.get(generation=generation, annotator=annotator)
    services.annotation_save_draft(annotation=draft, overall_critique="my notes", user=annotator)
    with pytest.raises(ValidationError, match="lease on this output expired"):
        services.annotation_submit(annotation=draft, user=annotator, now=later)
    draft.refresh_from_db()
    assert draft.overall_critique == "my notes" and draft.status == "draft"
    # Reclaiming fails while the other lease holds; the first annotator gets nothing new.
    assert services.assignment_next(project=code_project, annotator=annotator, now=later) is None
    assert Assignment.objects.get(pk=first.pk).status == "expired"


def test_an_expired_lease_with_a_free_slot_is_taken_back(code_project, make_generation, annotator):
    make_generation(code_project, "def g(): pass")
    first = services.assignment_next(project=code_project, annotator=annotator)
    later = timezone.now() + timedelta(days=1)
    again = services.assignment_next(project=code_project, annotator=annotator, now=later)
    assert again.pk == first.pk and again.status == "active" and again.expires_at > later


def test_assignments_expire_drops_only_empty_drafts(project, make_generation, annotator, annotator2):
    make_generation(project, "a")
    services.assignment_next(project=project, annotator=annotator)
    second = services.assignment_next(project=project, annotator=annotator2)
    kept = Annotation.objects.get(generation_id=second.generation_id, annotator=annotator2)
    services.annotation_save_draft(annotation=kept, overall_critique="started", user=annotator2)
    assert services.assignments_expire(now=timezone.now() + timedelta(days=1)) == 2
    assert set(Assignment.objects.values_list("status", flat=True)) == {"expired"}
    assert list(Annotation.objects.values_list("pk", flat=True)) == [kept.pk]
