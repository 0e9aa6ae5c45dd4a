"""Views of the reward engine inside the annotation workflow: 'Suggest spans' and the token heatmap.

Access: the annotator who owns an annotation reads and changes it; researchers and admins read every
annotation; anyone else gets a 404, as if it did not exist.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from annotations import access, privacy
from annotations.models import Annotation

from .. import heatmap, selectors, services
from ..models import AlignmentRequest


def annotation_for(request: HttpRequest, pk: int, *, write: bool = False) -> Annotation:
    return access.annotation_for_user(request.user, pk, write=write)


def _suggestions(request: HttpRequest, alignment: AlignmentRequest, *, error: str = "", status: int = 200):
    context = {
        "alignment": alignment,
        "error": error,
        "editable": alignment.annotation.annotator_id == request.user.pk,
    }
    return render(request, "training/_suggestions.html", context, status=status)


@require_POST
@login_required
def annotation_suggest(request: HttpRequest, pk: int) -> HttpResponse:
    annotation = annotation_for(request, pk, write=True)
    # The annotate page sends the overall critique as typed (it may not be autosaved yet).
    critique = (
        request.POST.get("critique") or request.POST.get("overall_critique") or annotation.overall_critique
    )
    try:
        alignment = services.alignment_request_create(
            annotation=annotation, critique=critique, use_llm=request.POST.get("use_llm") == "1"
        )
    except ValueError as exc:
        return render(
            request, "training/_suggestions.html", {"alignment": None, "error": str(exc)}, status=400
        )
    return _suggestions(request, alignment)


@require_GET
@login_required
def alignment_status(request: HttpRequest, pk: int) -> HttpResponse:
    alignment = get_object_or_404(AlignmentRequest, pk=pk)
    annotation_for(request, alignment.annotation_id)
    return _suggestions(request, alignment)


@require_POST
@login_required
def alignment_decide(request: HttpRequest, pk: int, index: int, decision: str) -> HttpResponse:
    alignment = get_object_or_404(AlignmentRequest, pk=pk)
    annotation_for(request, alignment.annotation_id, write=True)
    if decision not in ("accept", "reject", "flip"):
        raise Http404("Unknown decision")
    try:
        if decision == "flip":
            services.alignment_proposal_flip(request=alignment, index=index, user=request.user)
        else:
            services.alignment_proposal_decide(
                request=alignment,
                index=index,
                accept=decision == "accept",
                user=request.user,
                label=request.POST.get("label") or None,
                critique=request.POST.get("critique") or None,
            )
    except (ValueError, ValidationError) as exc:
        message = " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
        alignment.refresh_from_db()
        return _suggestions(request, alignment, error=message, status=400)
    alignment.refresh_from_db()
    response = _suggestions(request, alignment)
    if decision == "accept":
        response["HX-Trigger"] = "spans-changed"  # the annotate page reloads its span list and highlights
    return response


@require_GET
@login_required
@vary_on_headers("HX-Request")
def annotation_heatmap(request: HttpRequest, pk: int) -> HttpResponse:
    annotation = annotation_for(request, pk)
    row = selectors.latest_token_reward(annotation)
    cells, summary = [], {}
    if row is not None:
        spans = [(s.start, s.end, s.label, s.critique) for s in annotation.spans.all()]
        # The worker spells the tokens when it computes the rewards: the web process loads no tokenizer.
        token_strings = row.token_strings if len(row.token_strings) == len(row.token_ids) else None
        cells = heatmap.heatmap_cells(
            annotation.generation.text, row.offsets, row.rewards, row.token_ids, spans, token_strings
        )
        summary = {
            "tokens": len(row.rewards),
            "negative": sum(1 for r in row.rewards if r < 0),
            "positive": sum(1 for r in row.rewards if r > 0),
        }
    project = annotation.generation.prompt.project
    colors = {label.get("name"): label.get("color", "") for label in project.label_set}
    # Each span with its label's colour, so the page's label chips match the workspace's.
    span_rows = [(span, colors.get(span.label, "")) for span in annotation.spans.all()]
    context = {
        "annotation": annotation,
        "span_rows": span_rows,
        "annotator_name": privacy.annotator_name(
            request.user, annotation.annotator_id, annotation.annotator.get_username()
        ),
        "row": row,
        "cells": cells,
        "summary": summary,
    }
    template = "training/_heatmap.html" if request.htmx else "training/heatmap.html"
    return render(request, template, context)
