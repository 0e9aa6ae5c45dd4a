"""Worker-side: compute and store each submitted annotation's token rewards for the base tokenizer.

Idempotent: a TokenReward row is keyed by (annotation, tokenizer fingerprint) and rewritten in place, so
running the task twice, or after spans change, leaves one correct row. When the base model (and so the
tokenizer) changes, ``rewards_recompute_all`` writes rows for the new fingerprint.
"""

from __future__ import annotations

import logging
from functools import lru_cache

from django.db import transaction

from annotations.models import Annotation, Project, TokenReward

from . import rewards
from .generation import encode_prompt

logger = logging.getLogger(__name__)


@lru_cache(maxsize=2)
def _tokenizer_for(base_dir: str):
    from . import model_store

    tokenizer = model_store.load_tokenizer(base_dir)
    return tokenizer, model_store.tokenizer_fingerprint(tokenizer)


def base_tokenizer():
    """(tokenizer, fingerprint) of the configured base model, loaded once per process."""
    from .jobs import base_dir

    return _tokenizer_for(str(base_dir()))


def scheme_for(project: Project) -> rewards.RewardScheme:
    config = project.reward_scheme or {}
    return rewards.RewardScheme(
        good=float(config.get("good", 1.0)),
        poor=float(config.get("poor", -1.0)),
        outside=float(config.get("outside", 0.0)),
        conflict=str(config.get("conflict", "negative")),
    )


def span_rewards(annotation: Annotation) -> list[rewards.SpanReward]:
    return [
        rewards.SpanReward(start=s.start, end=s.end, polarity=s.polarity, weight=s.weight)
        for s in annotation.spans.all()
    ]


def annotation_rewards_compute(*, annotation_id: int) -> TokenReward | None:
    """Compute (or recompute) one annotation's token rewards. Drafts are skipped."""
    annotation = (
        Annotation.objects.select_related("generation__prompt__project")
        .prefetch_related("spans")
        .filter(pk=annotation_id)
        .first()
    )
    if annotation is None or annotation.status != Annotation.Status.SUBMITTED:
        return None
    tokenizer, fingerprint = base_tokenizer()
    return _store(annotation, tokenizer, fingerprint)


def _store(annotation: Annotation, tokenizer, fingerprint: str) -> TokenReward:
    generation = annotation.generation
    project = generation.prompt.project
    scheme = scheme_for(project)
    result = rewards.token_rewards(tokenizer, generation.text, span_rewards(annotation), scheme)
    prompt_ids = encode_prompt(tokenizer, generation.prompt.chat_messages())
    with transaction.atomic():
        row, _ = TokenReward.objects.update_or_create(
            annotation=annotation,
            tokenizer_fingerprint=fingerprint,
            defaults={
                "prompt_token_ids": prompt_ids,
                "token_ids": result.response_ids,
                "offsets": [list(pair) for pair in result.response_offsets],
                "rewards": result.rewards,
                "scheme": {**project.reward_scheme, "conflict": scheme.conflict},
            },
        )
    return row


def rewards_recompute_all(*, project_id: int | None = None, missing_only: bool = False) -> int:
    """Recompute every submitted annotation's rewards for the current base tokenizer. Returns the count."""
    tokenizer, fingerprint = base_tokenizer()
    queryset = (
        Annotation.objects.filter(status=Annotation.Status.SUBMITTED)
        .select_related("generation__prompt__project")
        .prefetch_related("spans")
        .order_by("id")
    )
    if project_id is not None:
        queryset = queryset.filter(generation__prompt__project_id=project_id)
    if missing_only:
        queryset = queryset.exclude(token_rewards__tokenizer_fingerprint=fingerprint)
    count = 0
    for annotation in queryset.iterator(chunk_size=500):
        _store(annotation, tokenizer, fingerprint)
        count += 1
    logger.info("Recomputed token rewards for %d annotation(s) (tokenizer %s)", count, fingerprint[:12])
    return count
