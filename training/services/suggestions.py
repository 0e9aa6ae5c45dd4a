"""Suggested spans ("Suggest spans" on the annotate page): queue an alignment of a critique, then accept,
reject or flip its proposals. The worker fills the proposals (``training/worker/alignment.py``).

Suggest spans: how a critique is read (issue 17)
------------------------------------------------
`text2grad/alignment/` runs, per critique: quotes (`quotes.py`, narrowed to the occurrence the critique
means by `occurrences.py`: an ordinal, or in code the line the sentence describes; a backticked name in
code becomes its line), line and ordinal references (`references.py`: lines, sentences, list items,
questions), "X, not Y" corrections (`phrases.py`), then MiniLM similarity for what is left
(`semantic.py`). Polarity and scope come from `classifier.py`: two logistic regressions on MiniLM
embeddings plus hashed word n-grams, trained at first use on `alignment/data/clauses.tsv` (labelled
critique clauses, committed as data; the fitted weights are cached under `var/cache/alignment/` by the
worker, never committed). A sentence the scope model reads as a remark on the whole output or a
suggested fix gets no span. In the page, each open suggestion has Accept, **Flip to good/poor** (the
place is right, the verdict is not: `POST /suggestions/<id>/<index>/flip/`, stored on the
proposal as `flipped`) and Reject; `.../accept/` also takes an optional `label` (any project label) to
accept under another label, and an optional `critique`: the span's own. A flipped proposal's critique
sentence argues the other verdict ("… is fine" on a poor span), so it is never stored with the flipped
label: the page asks for the annotator's critique, and without one the span gets a short note that says
what the annotator decided.
"""

from __future__ import annotations

import re

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction

from annotations.models import Span
from jobs import dispatch

MAX_CRITIQUE_CHARS = 20_000
# A proposal's ``method`` → the origin of the span it becomes when accepted (anything else: aligned).
PROPOSAL_ORIGINS = {"llm": Span.Origin.LLM, "critic": Span.Origin.CRITIC}


def llm_pass_available(project) -> bool:
    """Whether Suggest spans may offer the LLM pass: the project's endpoint, or the site-wide one."""
    return project.llm_aligner_enabled or bool(settings.T2G_LLM_ALIGNER_URL)


def alignment_request_create(*, annotation, critique: str, use_llm: bool = False):
    """Queue an alignment of ``critique`` to the annotation's output; the worker fills the proposals."""
    from ..models import AlignmentRequest

    critique = (critique or "").strip()
    if not critique:
        raise ValueError("Write a critique first: the suggestions come from what it says.")
    if len(critique) > MAX_CRITIQUE_CHARS:
        raise ValueError(f"The critique is too long to align (over {MAX_CRITIQUE_CHARS:,} characters).")
    if use_llm and not llm_pass_available(annotation.generation.prompt.project):
        raise ValueError("This project has no LLM endpoint: an admin sets one in the project's settings.")
    with transaction.atomic():
        request = AlignmentRequest.objects.create(annotation=annotation, critique=critique, use_llm=use_llm)
        dispatch.enqueue("training.align_critique", request.pk)
    return request


def _critique_sentence(critique: str, evidence: str) -> str:
    """The sentence of the critique a proposal came from: the span's own critique once accepted."""
    sentences = [part.strip() for part in re.split(r"(?<=[.!?])\s+", critique) if part.strip()]
    chosen = next((sentence for sentence in sentences if evidence and evidence in sentence), None)
    return (chosen or evidence or critique)[:2000]


def _open_proposal(locked, index: int) -> dict:
    if not 0 <= index < len(locked.proposals):
        raise ValueError("No such suggestion.")
    proposal = locked.proposals[index]
    if proposal.get("state") != "open":
        raise ValueError(f"This suggestion was {proposal.get('state')} already.")
    return proposal


def _span_critique(proposal: dict, critique: str, label: str, typed: str | None) -> str:
    """The accepted span's critique: the annotator's own when typed; else the critique sentence the
    proposal came from, unless the proposal was flipped (that sentence argues the other verdict)."""
    typed = (typed or "").strip()
    if typed:
        return typed[:2000]
    if proposal.get("flipped"):
        return f"Marked {label} by the annotator, against the aligner's reading of the overall critique."
    return _critique_sentence(critique, proposal["evidence"])


def alignment_proposal_decide(
    *, request, index: int, accept: bool, user, label: str | None = None, critique: str | None = None
):
    """Accept a proposal or reject it. Returns the span or None.

    The span's origin says where the proposal came from: ``llm`` (the LLM aligner), ``critic`` (the
    project's learned critic, pre-annotation) or ``aligned`` (the similarity aligner).

    ``label`` (accept only) stores the span under that project label instead of the first label of the
    proposal's polarity: the annotator agrees with the place but reads the critique differently. The
    proposal then records the label's polarity, so the list shows what was accepted.

    ``critique`` (accept only) is the span's critique as the annotator wrote it (see ``_span_critique``).
    """
    from annotations.services import span_create

    from ..models import AlignmentRequest

    with transaction.atomic():
        locked = AlignmentRequest.objects.select_for_update().get(pk=request.pk)
        proposal = _open_proposal(locked, index)
        span = None
        if accept:
            project = locked.annotation.generation.prompt.project
            if label:
                chosen = project.label(label)
                if chosen is None:
                    raise ValueError("The project has no such label.")
                if chosen.get("polarity") in (-1, 1) and chosen["polarity"] != proposal["polarity"]:
                    proposal["polarity"] = chosen["polarity"]
                    proposal["flipped"] = not proposal.get("flipped", False)
            else:
                label = next(
                    (
                        item["name"]
                        for item in project.label_set
                        if item.get("polarity") == proposal["polarity"]
                    ),
                    None,
                )
                if label is None:
                    raise ValueError("The project has no label with this polarity.")
            span = span_create(
                annotation=locked.annotation,
                start=proposal["start"],
                end=proposal["end"],
                text=proposal["text"],
                label=label,
                critique=_span_critique(proposal, locked.critique, label, critique),
                origin=PROPOSAL_ORIGINS.get(proposal.get("method"), Span.Origin.ALIGNED),
                score=proposal["score"],
                user=user,
            )
        proposal["state"] = "accepted" if accept else "rejected"
        locked.save(update_fields=["proposals"])
    request.refresh_from_db()
    return span


def alignment_proposal_flip(*, request, index: int, user) -> dict:
    """Turn an open proposal's polarity around (poor ↔ good) before it is accepted; flipping twice restores it.

    The aligner reads praise as criticism now and then; the annotator fixes the label, not the place.
    Returns the proposal as stored.
    """
    from ..models import AlignmentRequest

    with transaction.atomic():
        locked = AlignmentRequest.objects.select_for_update().select_related("annotation").get(pk=request.pk)
        if locked.annotation.annotator_id != getattr(user, "pk", None):
            raise PermissionDenied("Only the annotator who wrote this annotation can change it.")
        proposal = _open_proposal(locked, index)
        proposal["polarity"] = -proposal["polarity"]
        proposal["flipped"] = not proposal.get("flipped", False)
        locked.save(update_fields=["proposals"])
    request.refresh_from_db()
    return proposal
