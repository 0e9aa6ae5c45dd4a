"""The queue's leases: who gets which output next, skips and expiry. One lease per annotator and project."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from ..models import Annotation, Assignment, Generation, Project
from ..selectors import holding_slot, next_candidates
from .validation import MAX_SKIP_REASON_CHARS

logger = logging.getLogger(__name__)

_NEXT_ATTEMPTS = 6  # rounds of candidate locking before "nothing left"
_NEXT_BATCH = 4


def lease_until(now: datetime) -> datetime:
    return now + timedelta(seconds=settings.T2G_LEASE_SECONDS)


def slots_taken(generation_id: int, now: datetime, *, except_annotator_id: int | None = None) -> int:
    held = Assignment.objects.filter(holding_slot(now), generation_id=generation_id)
    if except_annotator_id is not None:
        held = held.exclude(annotator_id=except_annotator_id)
    return held.count()


def lock_generation(generation_id: int) -> None:
    list(Generation.objects.select_for_update().filter(pk=generation_id).values_list("pk", flat=True))


def _annotation_is_empty(annotation: Annotation) -> bool:
    return not annotation.overall_critique and annotation.rating is None and not annotation.spans.exists()


def _drop_empty_draft(assignment: Assignment) -> None:
    draft = Annotation.objects.filter(
        generation_id=assignment.generation_id,
        annotator_id=assignment.annotator_id,
        status=Annotation.Status.DRAFT,
    ).first()
    if draft is not None and _annotation_is_empty(draft):
        draft.delete()


def _assignment_reclaim(assignment: Assignment, now: datetime) -> bool:
    """Renew an annotator's own lease; an expired one only if its output still has a free slot."""
    if assignment.status == Assignment.Status.ACTIVE and assignment.expires_at > now:
        assignment.expires_at = lease_until(now)
        assignment.save(update_fields=["expires_at"])
        return True
    lock_generation(assignment.generation_id)
    quota = assignment.generation.prompt.project.annotations_per_output
    if slots_taken(assignment.generation_id, now, except_annotator_id=assignment.annotator_id) < quota:
        assignment.status = Assignment.Status.ACTIVE
        assignment.expires_at = lease_until(now)
        assignment.save(update_fields=["status", "expires_at"])
        return True
    if assignment.status != Assignment.Status.EXPIRED:
        assignment.status = Assignment.Status.EXPIRED
        assignment.save(update_fields=["status"])
    _drop_empty_draft(assignment)
    return False


def assignment_next(*, project: Project, annotator, now: datetime | None = None) -> Assignment | None:
    """Lease ``annotator`` the next output of ``project`` that still needs annotations; None when none does.

    One lease per annotator and project: an open draft is handed back first (its lease renewed, or, when it
    expired, taken back if its output still has a free slot). Otherwise the lowest-id output is leased that
    has fewer than ``annotations_per_output`` submitted annotations plus unexpired leases, and that this
    annotator has never been assigned (a skip or an expiry still counts: never the same annotator twice).
    The lease and an empty draft annotation are created together.

    Concurrency: the annotator's user row is locked first, so two tabs of one person are served one after
    the other. Candidate outputs are locked with ``SELECT ... FOR UPDATE SKIP LOCKED`` (concurrent callers
    take different rows instead of waiting) and their slots are counted again under the lock, in a fresh
    statement that sees every lease committed meanwhile, so no output is leased beyond its quota. When
    every candidate is locked by someone else, the next round waits for those locks rather than answering
    "nothing left" while slots remain. SQLite has no row locks: its IMMEDIATE transactions let one writer
    in at a time, which gives the same result.
    """
    now = now or timezone.now()
    if project.is_archived:
        return None
    user_model = get_user_model()
    with transaction.atomic():
        list(user_model.objects.select_for_update().filter(pk=annotator.pk).values_list("pk", flat=True))
        return _own_lease_back(project, annotator, now) or _new_lease(project, annotator, now)


def _own_lease_back(project: Project, annotator, now: datetime) -> Assignment | None:
    """The annotator's open draft in this project, its lease renewed or taken back (see ``_assignment_reclaim``)."""
    own = (
        Assignment.objects.filter(annotator=annotator, generation__prompt__project=project)
        .filter(
            Q(status=Assignment.Status.ACTIVE)
            | Q(
                Exists(
                    Annotation.objects.filter(
                        generation=OuterRef("generation"),
                        annotator=annotator,
                        status=Annotation.Status.DRAFT,
                    )
                ),
                status=Assignment.Status.EXPIRED,
            )
        )
        .select_related("generation__prompt__project")
        .order_by("leased_at", "pk")
    )
    for assignment in own:
        if _assignment_reclaim(assignment, now):
            Annotation.objects.get_or_create(
                generation_id=assignment.generation_id, annotator=annotator, is_gold=False
            )
            return assignment
    return None


def _new_lease(project: Project, annotator, now: datetime) -> Assignment | None:
    """Lease the first candidate output with a free slot, counted again under its row lock."""
    quota = project.annotations_per_output
    candidates = next_candidates(project, annotator, now)
    skip_locked = True
    for _ in range(_NEXT_ATTEMPTS):
        locked_ids = list(
            candidates.select_for_update(skip_locked=skip_locked, of=("self",)).values_list("pk", flat=True)[
                :_NEXT_BATCH
            ]
        )
        if not locked_ids:
            if not skip_locked:
                return None
            # Every candidate is held by another request for a moment: wait for those instead of
            # answering "nothing left" while slots may remain.
            skip_locked = False
            continue
        for generation_id in locked_ids:
            # Counted again under the row lock: the candidate query's snapshot may predate a lease
            # that another request committed while this one waited.
            if slots_taken(generation_id, now) >= quota:
                continue
            assignment = Assignment.objects.create(
                generation_id=generation_id,
                annotator=annotator,
                leased_at=now,
                expires_at=lease_until(now),
            )
            Annotation.objects.get_or_create(generation_id=generation_id, annotator=annotator, is_gold=False)
            return assignment
        candidates = candidates.exclude(pk__in=locked_ids)
    return None


def assignments_expire(*, now: datetime | None = None) -> int:
    """Mark every lapsed lease expired and drop its draft if nothing was written in it (for a periodic job).

    Expiry itself needs no write: a lease past ``expires_at`` no longer holds a slot. This only tidies up.
    """
    now = now or timezone.now()
    with transaction.atomic():
        lapsed = list(
            Assignment.objects.select_for_update(skip_locked=True).filter(
                status=Assignment.Status.ACTIVE, expires_at__lte=now
            )
        )
        for assignment in lapsed:
            assignment.status = Assignment.Status.EXPIRED
            assignment.save(update_fields=["status"])
            _drop_empty_draft(assignment)
    return len(lapsed)


def assignment_skip(*, assignment: Assignment, reason: str, user=None) -> Assignment:
    """Give an output back with a reason. Its draft is discarded; the annotator is never offered it again."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError("Say why you are skipping this output.")
    if len(reason) > MAX_SKIP_REASON_CHARS:
        raise ValidationError(
            f"The reason is {len(reason)} characters long; the limit is {MAX_SKIP_REASON_CHARS}."
        )
    with transaction.atomic():
        locked = Assignment.objects.select_for_update().get(pk=assignment.pk)
        if user is not None and locked.annotator_id != user.pk:
            raise PermissionDenied("Only the annotator holding this output can skip it.")
        if locked.status not in (Assignment.Status.ACTIVE, Assignment.Status.EXPIRED):
            raise ValidationError(f"This output is already {locked.status}; it cannot be skipped.")
        Annotation.objects.filter(
            generation_id=locked.generation_id,
            annotator_id=locked.annotator_id,
            status=Annotation.Status.DRAFT,
        ).delete()
        locked.status = Assignment.Status.SKIPPED
        locked.skip_reason = reason
        locked.save(update_fields=["status", "skip_reason"])
    return locked
