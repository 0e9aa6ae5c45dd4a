"""The one access rule for annotations and their spans, used by every page and fragment of both apps.

Authors read and change their own annotations; researchers and admins read all and change none. Anyone
else gets a 404, so ids leak nothing; a researcher or admin who tries to change one gets a 403.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import Http404

from . import roles, selectors
from .models import Annotation, Span


def refusal(user) -> Exception:
    """What a user who may not use an annotation gets: researchers and admins 403 (they may read it),
    anyone else 404 (for them another person's annotation does not exist)."""
    if roles.can_read_all_feedback(user):
        return PermissionDenied("Researchers and admins can read annotations but not change them.")
    return Http404("No such annotation.")


def check(user, annotation: Annotation, *, write: bool) -> None:
    if annotation.annotator_id == user.pk:
        return
    if roles.can_read_all_feedback(user) and not write:
        return
    raise refusal(user)


def annotation_for_user(user, pk: int, *, write: bool = False) -> Annotation:
    """The annotation if ``user`` may see it (and change it, with ``write``); otherwise 404 or 403.

    For a write only the row itself is loaded: the service locks it and reads what it needs.
    """
    try:
        if write:
            annotation = Annotation.objects.only("pk", "annotator_id", "generation_id", "status").get(pk=pk)
        else:
            annotation = selectors.annotation_for_page(pk)
    except Annotation.DoesNotExist:
        raise Http404("No such annotation.") from None
    check(user, annotation, write=write)
    return annotation


def span_for_user(user, pk: int) -> Span:
    """A span of an annotation ``user`` may change; otherwise 404 or 403."""
    span = selectors.span_with_annotation(pk)
    if span is None:
        raise Http404("No such span.")
    check(user, span.annotation, write=True)
    return span
