"""Review and adjudication: verdicts on annotations, and the gold annotation of an output.

Reviewers (and admins) accept or reject submitted annotations with a comment, and build an output's gold
annotation by taking, editing or adding spans and critiques. Admins may also set gold on an output before
anyone has annotated it: a honeypot, against which annotators' accuracy is measured without them knowing.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from .. import roles
from ..models import Annotation, Generation, Review, Span
from ..signals import annotation_submitting
from .agreement import agreement_refresh
from .annotating import _clean_overall, _send_submitted
from .validation import UNSET, validate_spans

MAX_REVIEW_COMMENT_CHARS = 5_000


def review_set(*, annotation: Annotation, reviewer, verdict: str, comment: str = "") -> Review:
    """Accept or reject a submitted annotation (a second call replaces the verdict). Reviewers never judge
    their own work, nor a gold annotation."""
    if not roles.is_reviewer(reviewer):
        raise PermissionDenied("Only reviewers and admins review annotations.")
    if verdict not in Review.Verdict.values:
        raise ValidationError(
            f"The verdict must be one of {', '.join(Review.Verdict.values)} (got {verdict!r})."
        )
    comment = comment or ""
    if not isinstance(comment, str) or len(comment) > MAX_REVIEW_COMMENT_CHARS:
        raise ValidationError(f"The comment must be text of at most {MAX_REVIEW_COMMENT_CHARS} characters.")
    with transaction.atomic():
        locked = Annotation.objects.select_for_update().get(pk=annotation.pk)
        if locked.is_gold:
            raise ValidationError("A gold annotation is not reviewed; edit it instead.")
        if locked.status != Annotation.Status.SUBMITTED:
            raise ValidationError("Only submitted annotations can be reviewed.")
        if locked.annotator_id == reviewer.pk:
            raise PermissionDenied("You cannot review your own annotation.")
        review, _ = Review.objects.update_or_create(
            annotation=locked, defaults={"reviewer": reviewer, "verdict": verdict, "comment": comment}
        )
    return review


def review_clear(*, annotation: Annotation, reviewer) -> bool:
    """Withdraw the verdict on an annotation (it goes back to the queue). False if it had none."""
    if not roles.is_reviewer(reviewer):
        raise PermissionDenied("Only reviewers and admins review annotations.")
    deleted, _ = Review.objects.filter(annotation=annotation).delete()
    return bool(deleted)


def gold_save(
    *,
    generation: Generation,
    reviewer,
    spans: list[dict[str, Any]],
    overall_critique: Any = UNSET,
    rating: Any = UNSET,
) -> Annotation:
    """Create or replace the output's gold annotation with ``spans`` (the complete list, checked like an
    annotator's) and the overall critique and rating. The gold is owned by whoever saved it last.

    An output none of whose annotations is in yet gets a *honeypot* gold, which only admins may set; once
    annotations are in, the gold is *adjudicated*. The token rewards of the old gold are dropped and
    recomputed, and the output's agreement (annotators against gold) is recomputed.
    """
    if not roles.is_reviewer(reviewer):
        raise PermissionDenied("Only reviewers and admins build gold annotations.")
    if not isinstance(spans, list):
        raise ValidationError("The gold spans must be a list.")
    with transaction.atomic():
        locked = (
            Generation.objects.select_for_update().select_related("prompt__project").get(pk=generation.pk)
        )
        project = locked.prompt.project
        cleaned = validate_spans(locked.text, spans, project)
        updates = _clean_overall(overall_critique=overall_critique, rating=rating, time_spent=UNSET)
        gold = Annotation.objects.select_for_update().filter(generation=locked, is_gold=True).first()
        submitted = locked.annotations.filter(status=Annotation.Status.SUBMITTED, is_gold=False).exists()
        if gold is None:
            if not submitted and not roles.is_admin(reviewer):
                raise PermissionDenied("Only admins set gold on an output nobody has annotated (a honeypot).")
            if not cleaned and not (updates.get("overall_critique") or "").strip():
                raise ValidationError("A gold annotation needs at least one span or an overall critique.")
            gold = Annotation(
                generation=locked,
                is_gold=True,
                gold_origin=Annotation.GoldOrigin.ADJUDICATED
                if submitted
                else Annotation.GoldOrigin.HONEYPOT,
                status=Annotation.Status.SUBMITTED,
            )
        gold.annotator = reviewer
        gold.submitted_at = timezone.now()
        for name, value in updates.items():
            setattr(gold, name, value)
        gold.save()
        gold.spans.all().delete()
        Span.objects.bulk_create([Span(annotation=gold, **span) for span in cleaned])
        gold_id = gold.pk
        # The same event as a submission: its receivers drop the gold's stale token rewards and record their
        # recomputation in this transaction; agreement refreshes after the commit.
        annotation_submitting.send(sender=Annotation, annotation_id=gold_id)
        transaction.on_commit(lambda: _send_submitted(gold_id))
    return gold


def gold_delete(*, generation: Generation, reviewer) -> bool:
    """Remove an output's gold annotation (admins only). False if it had none."""
    if not roles.is_admin(reviewer):
        raise PermissionDenied("Only admins remove gold annotations.")
    with transaction.atomic():
        deleted, _ = Annotation.objects.filter(generation=generation, is_gold=True).delete()
        transaction.on_commit(lambda: agreement_refresh(generation_ids=[generation.pk]))
    return bool(deleted)


def gold_spans_from(annotation: Annotation) -> list[dict[str, Any]]:
    """An annotation's spans as a gold_save list (the no-JS "use as gold" button)."""
    return [
        {
            "start": s.start,
            "end": s.end,
            "text": s.text,
            "label": s.label,
            "weight": s.weight,
            "critique": s.critique,
        }
        for s in annotation.spans.all()
    ]
