"""Drafts, spans and submission: an annotator's writes to their own annotation."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from ..models import Annotation, Assignment, Generation, Span
from ..signals import annotation_submitted, annotation_submitting
from .queue import lease_until, lock_generation, slots_taken
from .validation import (
    MAX_OVERALL_CRITIQUE_CHARS,
    MAX_SPANS_PER_ANNOTATION,
    MAX_TIME_SPENT_SECONDS,
    UNSET,
    as_int,
    clean_span,
    project_labels,
    quote,
    sentence,
    validate_spans,
)

logger = logging.getLogger(__name__)


class DraftConflict(Exception):
    """A save named an older version of the overall fields than the stored one, and would change them:
    another tab (or person's session) saved in between. Nothing was written; ``current`` is what is stored."""

    def __init__(self, current: Annotation):
        super().__init__(f"Annotation {current.pk} is at version {current.version}.")
        self.current = current


def _check_version(annotation: Annotation, updates: dict[str, Any], expected_version: Any) -> None:
    """Refuse a save over a newer version; a save that changes nothing of it is never a conflict."""
    if expected_version in (None, "", UNSET):
        return
    version = as_int(expected_version)
    if version is None or version < 0:
        raise ValidationError(f"The version must be a whole number (got {expected_version!r}).")
    changes = any(
        getattr(annotation, name) != updates[name]
        for name in ("overall_critique", "rating")
        if name in updates
    )
    if version != annotation.version and changes:
        raise DraftConflict(annotation)


def _annotation_for_write(annotation: Annotation, user) -> Annotation:
    """Lock the annotation row (only it: a join would lock the project row for every writer)."""
    locked = (
        Annotation.objects.select_for_update(of=("self",))
        .select_related("generation__prompt__project")
        .get(pk=annotation.pk)
    )
    if user is not None and locked.annotator_id != user.pk:
        raise PermissionDenied("Only the annotator who wrote this annotation can change it.")
    if locked.status != Annotation.Status.DRAFT:
        raise ValidationError("This annotation has been submitted; it can no longer be changed.")
    return locked


def _clean_overall(*, overall_critique: Any, rating: Any, time_spent: Any) -> dict[str, Any]:
    updates: dict[str, Any] = {}
    errors: list[str] = []
    if overall_critique is not UNSET:
        critique = overall_critique or ""
        if not isinstance(critique, str):
            errors.append("The overall critique must be text.")
        elif len(critique) > MAX_OVERALL_CRITIQUE_CHARS:
            errors.append(
                f"The overall critique is {len(critique)} characters long; the limit is {MAX_OVERALL_CRITIQUE_CHARS}."
            )
        else:
            updates["overall_critique"] = critique
    if rating is not UNSET:
        if rating in (None, ""):
            updates["rating"] = None
        else:
            value = as_int(rating)
            if value is None or not 1 <= value <= 5:
                errors.append(f"The rating must be a whole number from 1 to 5 (got {rating!r}).")
            else:
                updates["rating"] = value
    if time_spent is not UNSET and time_spent not in (None, ""):
        value = as_int(time_spent)
        if value is None or value < 0:
            errors.append(f"The time spent must be a whole number of seconds (got {time_spent!r}).")
        else:
            updates["time_spent_seconds"] = min(value, MAX_TIME_SPENT_SECONDS)
    if errors:
        raise ValidationError(errors)
    return updates


def _apply_overall(annotation: Annotation, updates: dict[str, Any]) -> list[str]:
    if "time_spent_seconds" in updates:
        # The client reports its running total; a stale tab must not lower what a newer one stored.
        updates["time_spent_seconds"] = max(annotation.time_spent_seconds, updates["time_spent_seconds"])
    fields = [*updates, "updated_at"]
    if any(
        getattr(annotation, name) != updates[name]
        for name in ("overall_critique", "rating")
        if name in updates
    ):
        annotation.version += 1
        fields.append("version")
    for name, value in updates.items():
        setattr(annotation, name, value)
    return fields


def _lease_renew(annotation: Annotation, now: datetime) -> None:
    Assignment.objects.filter(
        generation_id=annotation.generation_id,
        annotator_id=annotation.annotator_id,
        status=Assignment.Status.ACTIVE,
        expires_at__gt=now,
    ).update(expires_at=lease_until(now))


def annotation_save_draft(
    *,
    annotation: Annotation,
    overall_critique: Any = UNSET,
    rating: Any = UNSET,
    spans: Any = UNSET,
    time_spent: Any = UNSET,
    expected_version: Any = None,
    user=None,
    now: datetime | None = None,
) -> Annotation:
    """Save a draft: any of the overall critique, the rating (1-5 or None), the time spent so far in
    seconds (the client's running total; the stored value never goes down) and ``spans`` (the complete
    list, replacing the stored one; ``[]`` clears them). Arguments left out (or ``spans=None``) stay as
    they are. Everything is validated before anything is written, so a refused save loses nothing.

    ``expected_version``: the ``version`` the client's text was based on; when the stored one is newer and
    this save would change the critique or rating, ``DraftConflict`` is raised and nothing is written.
    """
    now = now or timezone.now()
    with transaction.atomic():
        locked = _annotation_for_write(annotation, user)
        updates = _clean_overall(overall_critique=overall_critique, rating=rating, time_spent=time_spent)
        _check_version(locked, updates, expected_version)
        cleaned = None
        if spans is not UNSET and spans is not None:
            cleaned = validate_spans(locked.generation.text, spans, locked.generation.prompt.project)
        locked.save(update_fields=_apply_overall(locked, updates))
        if cleaned is not None:
            locked.spans.all().delete()
            Span.objects.bulk_create([Span(annotation=locked, **span) for span in cleaned])
        _lease_renew(locked, now)
    return locked


def span_create(
    *,
    annotation: Annotation,
    start: int,
    end: int,
    label: str,
    text: str | None = None,
    weight: float | None = None,
    critique: str = "",
    origin: str = Span.Origin.MANUAL,
    score: float | None = None,
    user=None,
) -> Span:
    """Add one span (code-point offsets) to a draft. ``text``, when given, must equal the output's
    ``text[start:end]``: it is how a client's stale or mis-converted offsets are caught."""
    data = {"start": start, "end": end, "label": label, "text": text, "weight": weight}
    data |= {"critique": critique, "origin": origin, "score": score}
    with transaction.atomic():
        locked = _annotation_for_write(annotation, user)
        generation = locked.generation
        try:
            cleaned = clean_span(generation.text, data, project_labels(generation.prompt.project))
        except ValidationError as exc:
            raise ValidationError([sentence(message) for message in exc.messages]) from None
        existing = locked.spans.all()
        if existing.count() >= MAX_SPANS_PER_ANNOTATION:
            raise ValidationError(f"At most {MAX_SPANS_PER_ANNOTATION} spans per annotation.")
        if existing.filter(start=cleaned["start"], end=cleaned["end"], label=cleaned["label"]).exists():
            raise ValidationError("A span with this range and label exists already.")
        span = Span.objects.create(annotation=locked, **cleaned)
        locked.save(update_fields=["updated_at"])
        _lease_renew(locked, timezone.now())
    return span


SPAN_EDITABLE_FIELDS = ("start", "end", "text", "label", "weight", "critique")


def span_update(*, span: Span, user=None, **changes: Any) -> Span:
    """Change a span's label, weight, critique or range; a new range is checked against ``text`` when given
    (its copy is then taken from the output), an unchanged one against the stored copy."""
    unknown = set(changes) - set(SPAN_EDITABLE_FIELDS)
    if unknown:
        raise ValidationError(f"These span fields cannot be changed: {', '.join(sorted(unknown))}.")
    with transaction.atomic():
        locked = _annotation_for_write(span.annotation, user)
        current = Span.objects.select_for_update().get(pk=span.pk, annotation=locked)
        data = {name: getattr(current, name) for name in ("start", "end", "label", "weight", "critique")}
        data |= {"origin": current.origin, "score": current.score, "text": None}
        data |= changes
        if "text" not in changes and ("start" not in changes and "end" not in changes):
            data["text"] = current.text  # unchanged range: the stored copy must still match
        generation = locked.generation
        try:
            cleaned = clean_span(generation.text, data, project_labels(generation.prompt.project))
        except ValidationError as exc:
            raise ValidationError([sentence(message) for message in exc.messages]) from None
        clash = locked.spans.exclude(pk=current.pk).filter(
            start=cleaned["start"], end=cleaned["end"], label=cleaned["label"]
        )
        if clash.exists():
            raise ValidationError("A span with this range and label exists already.")
        for name, value in cleaned.items():
            setattr(current, name, value)
        current.save()
        locked.save(update_fields=["updated_at"])
        _lease_renew(locked, timezone.now())
    return current


def span_delete(*, span: Span, user=None) -> dict:
    """Delete a span from a draft; returns its fields, so a client can undo by creating it again."""
    with transaction.atomic():
        locked = _annotation_for_write(span.annotation, user)
        current = Span.objects.select_for_update().get(pk=span.pk, annotation=locked)
        snapshot = {name: getattr(current, name) for name in (*SPAN_EDITABLE_FIELDS, "origin", "score")}
        current.delete()
        locked.save(update_fields=["updated_at"])
        _lease_renew(locked, timezone.now())
    return snapshot


def annotation_submit(
    *,
    annotation: Annotation,
    overall_critique: Any = UNSET,
    rating: Any = UNSET,
    time_spent: Any = UNSET,
    expected_version: Any = None,
    user=None,
    now: datetime | None = None,
) -> Annotation:
    """Submit a draft (saving the given overall fields first, in the same transaction; a stale
    ``expected_version`` raises ``DraftConflict`` as in ``annotation_save_draft``).

    Needs at least one span or an overall critique; every stored span's text copy is checked against the
    output again. The output's slot is checked under its row lock: an unexpired lease holds it; after
    expiry the slot must still be free. On success the lease completes, ``Generation.annotation_count``
    goes up by one, ``signals.annotation_submitting`` is sent inside the transaction (its receivers record
    follow-up work) and ``signals.annotation_submitted`` once the transaction has committed.
    """
    now = now or timezone.now()
    with transaction.atomic():
        locked = _annotation_for_write(annotation, user)
        updates = _clean_overall(overall_critique=overall_critique, rating=rating, time_spent=time_spent)
        _check_version(locked, updates, expected_version)
        update_fields = _apply_overall(locked, updates)
        generation = locked.generation
        project = generation.prompt.project
        spans = list(locked.spans.all())
        drifted = [span for span in spans if generation.text[span.start : span.end] != span.text]
        if drifted:
            raise ValidationError(
                [
                    f"Span [{span.start}, {span.end}) {quote(span.text)} no longer matches the output; "
                    "delete it and select the text again."
                    for span in drifted
                ]
            )
        if not spans and not locked.overall_critique.strip():
            raise ValidationError("Add at least one span or an overall critique before submitting.")

        lock_generation(generation.pk)
        assignment = (
            Assignment.objects.select_for_update()
            .filter(generation_id=generation.pk, annotator_id=locked.annotator_id)
            .first()
        )
        holds = (
            assignment is not None
            and assignment.status == Assignment.Status.ACTIVE
            and assignment.expires_at > now
        )
        if not holds:
            taken = slots_taken(generation.pk, now, except_annotator_id=locked.annotator_id)
            if taken >= project.annotations_per_output:
                raise ValidationError(
                    "Your lease on this output expired and it has since received all "
                    f"{project.annotations_per_output} of its annotations. Your draft is kept, but it cannot "
                    "be submitted; skip it to move on."
                )
        if assignment is None:
            Assignment.objects.create(
                generation_id=generation.pk,
                annotator_id=locked.annotator_id,
                status=Assignment.Status.COMPLETED,
                leased_at=now,
                expires_at=now,
            )
        else:
            assignment.status = Assignment.Status.COMPLETED
            assignment.save(update_fields=["status"])
        locked.status = Annotation.Status.SUBMITTED
        locked.submitted_at = now
        locked.save(update_fields=[*update_fields, "status", "submitted_at"])
        Generation.objects.filter(pk=generation.pk).update(annotation_count=F("annotation_count") + 1)
        annotation_id = locked.pk
        # Receivers record follow-up work (token rewards) in this transaction: it commits with the submit.
        annotation_submitting.send(sender=Annotation, annotation_id=annotation_id)
        transaction.on_commit(lambda: _send_submitted(annotation_id))
    return locked


def _send_submitted(annotation_id: int) -> None:
    for receiver, response in annotation_submitted.send_robust(
        sender=Annotation, annotation_id=annotation_id
    ):
        if isinstance(response, Exception):
            logger.error(
                "annotation_submitted receiver %r failed for annotation %s",
                receiver,
                annotation_id,
                exc_info=response,
            )
