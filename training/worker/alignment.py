"""Worker-side: run a 'Suggest spans' request (quotes, line references, MiniLM, optionally an LLM)."""

from __future__ import annotations

import logging
import time

from django.conf import settings

from jobs import lifecycle
from text2grad import alignment
from training.models import AlignmentRequest

logger = logging.getLogger(__name__)


def alignment_request_run(*, request_id: int) -> None:
    request = AlignmentRequest.objects.select_related("annotation__generation__prompt__project").get(
        pk=request_id
    )
    if not request.claim():
        return
    try:
        proposals, note = _propose(request)
    except Exception as exc:
        logger.exception("Alignment request %s failed", request_id)
        request.mark_failed(f"{type(exc).__name__}: {exc}")
        return
    # A succeeded request's ``error`` is a note for the page: the LLM pass failed, the others did not.
    lifecycle.finish(request, AlignmentRequest.Status.SUCCEEDED, proposals=proposals, error=note)


def alignment_warm_up() -> float:
    """Load MiniLM and train (or load) the clause classifier before the first Suggest spans needs them:
    the first training takes ~20 s on 2 cores, which an annotator should never wait for. Returns seconds."""
    started = time.perf_counter()
    alignment.configure_cache_dir(settings.VAR_DIR / "cache" / "alignment")
    alignment.align_critique(
        "A warm-up sentence.", "The 'warm-up' is fine.", embedder=alignment.default_embedder()
    )
    return time.perf_counter() - started


def llm_aligner_for(project) -> alignment.LLMAligner | None:
    """The project's LLM pass (its endpoint, model and key variable), else the site-wide one, else None."""
    import os

    if project.llm_aligner_enabled:
        key_env = project.llm_aligner_key_env
        return alignment.LLMAligner(
            base_url=project.llm_aligner_url,
            model=project.llm_aligner_model,
            api_key=(os.environ.get(key_env) or None) if key_env else None,
        )
    if settings.T2G_LLM_ALIGNER_URL:
        return alignment.LLMAligner(
            base_url=settings.T2G_LLM_ALIGNER_URL,
            api_key=settings.T2G_LLM_ALIGNER_KEY or None,
            model=settings.T2G_LLM_ALIGNER_MODEL,
        )
    return None


def _propose(request: AlignmentRequest) -> tuple[list[dict], str]:
    """The proposals, and a note when the LLM pass was asked for but failed (the other passes still count)."""
    generation = request.annotation.generation
    project = generation.prompt.project
    # The clause classifier trains on first use; its weights are kept under var/ for the next process.
    alignment.configure_cache_dir(settings.VAR_DIR / "cache" / "alignment")
    found = alignment.align_critique(
        generation.text, request.critique, is_code=project.is_code, embedder=alignment.default_embedder()
    )
    note = ""
    aligner = llm_aligner_for(project) if request.use_llm else None
    if request.use_llm and aligner is None:
        note = "The LLM pass is not configured for this project any more; the other passes ran."
    elif aligner is not None:
        try:
            llm_found = aligner.align(generation.text, request.critique, prompt=generation.prompt.text)
        except alignment.LLMAlignerError as exc:
            logger.warning("LLM pass of alignment request %s failed: %s", request.pk, exc)
            note = f"The LLM pass failed, so these come from the other passes only: {exc}"[:2000]
        else:
            found = alignment.merge_llm(found, llm_found)
    existing = set(request.annotation.spans.values_list("start", "end"))
    proposals = []
    for proposal in sorted(found, key=lambda p: (p.start, p.end)):
        if (proposal.start, proposal.end) in existing:
            continue  # the annotator highlighted it already
        proposals.append(
            {
                "start": proposal.start,
                "end": proposal.end,
                "text": proposal.text_in(generation.text),
                "polarity": proposal.polarity,
                "score": round(proposal.score, 3),
                "method": proposal.method,
                "evidence": proposal.evidence,
                "state": "open",
            }
        )
    return proposals, note
