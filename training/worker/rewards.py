"""Compute and store submitted annotations' token rewards for the base tokenizer.

One path for every caller: :func:`rewards_store_for` takes annotation ids and writes their rows. A
submission's task (``training.compute_rewards``, also what the reaper's sweep queues again for rewards
that never arrived) calls it for one annotation; a round calls :func:`rewards_store_missing` for the
rows its snapshot lacks; a recomputation of a project goes through the same :func:`token_rewards_store`
in chunks. ``token_rewards_store`` tokenizes a whole batch in one call (``text2grad.rewards``' batch
path). Idempotent: a TokenReward row is keyed by (annotation, tokenizer fingerprint) and rewritten in
place, so running twice, or after spans change, leaves one correct row. When the base model (and so the
tokenizer) changes, ``rewards_recompute_all`` writes rows for the new fingerprint.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from functools import lru_cache

from django.db import transaction

from annotations.models import Annotation, Project
from annotations.services import agreement_refresh
from text2grad import rewards
from text2grad.generation import encode_prompt
from training.models import TokenReward

logger = logging.getLogger(__name__)

BATCH = 500  # annotations tokenized per call when recomputing many


@lru_cache(maxsize=2)
def _tokenizer_for(base_dir: str):
    from text2grad import model_store

    tokenizer = model_store.load_tokenizer(base_dir)
    return tokenizer, model_store.tokenizer_fingerprint(tokenizer)


def base_tokenizer():
    """(tokenizer, fingerprint) of the configured base model, loaded once per process."""
    from .runtime import base_dir

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


def _submitted():
    return (
        Annotation.objects.filter(status=Annotation.Status.SUBMITTED)
        .select_related("generation__prompt__project")
        .prefetch_related("spans")
    )


def rewards_store_for(
    annotation_ids, *, missing_only: bool = False, tokenizer=None, fingerprint: str | None = None
) -> list[TokenReward]:
    """Compute and store the token rewards of these annotations (submitted ones: drafts are skipped), in id
    order, for the base tokenizer unless one is given. ``missing_only`` leaves alone the annotations that
    already have a row for this tokenizer. Returns the rows written."""
    if tokenizer is None:
        tokenizer, fingerprint = base_tokenizer()
    queryset = _submitted().filter(pk__in=list(annotation_ids)).order_by("id")
    if missing_only:
        queryset = queryset.exclude(token_rewards__tokenizer_fingerprint=fingerprint)
    annotations = list(queryset)
    if not annotations:
        return []
    return token_rewards_store(annotations=annotations, tokenizer=tokenizer, fingerprint=fingerprint)


def rewards_store_missing(annotation_ids, *, tokenizer, fingerprint: str) -> list[TokenReward]:
    """The rows a round's snapshot lacks for its tokenizer, written before it reads them."""
    return rewards_store_for(annotation_ids, missing_only=True, tokenizer=tokenizer, fingerprint=fingerprint)


def annotation_rewards_compute(*, annotation_id: int) -> TokenReward | None:
    """Compute (or recompute) one annotation's token rewards (a submission's task). Drafts are skipped."""
    rows = rewards_store_for([annotation_id])
    return rows[0] if rows else None


def token_rewards_store(
    *, annotations: Sequence[Annotation], tokenizer, fingerprint: str
) -> list[TokenReward]:
    """Write the TokenReward rows of ``annotations`` (spans and project prefetched), in their order.

    One batched tokenizer call per reward scheme; the chat-templated prompt is encoded once per prompt.
    """
    by_scheme: dict[rewards.RewardScheme, list[int]] = defaultdict(list)
    schemes = [scheme_for(a.generation.prompt.project) for a in annotations]
    for index, scheme in enumerate(schemes):
        by_scheme[scheme].append(index)
    computed: list[rewards.TokenizedRewards | None] = [None] * len(annotations)
    for scheme, indices in by_scheme.items():
        batch = rewards.batch_tokenized_rewards(
            tokenizer,
            [annotations[i].generation.text for i in indices],
            [span_rewards(annotations[i]) for i in indices],
            scheme,
        )
        for index, result in zip(indices, batch, strict=True):
            computed[index] = result
    prompt_ids: dict[int, list[int]] = {}
    rows = []
    with transaction.atomic():
        for annotation, scheme, result in zip(annotations, schemes, computed, strict=True):
            prompt = annotation.generation.prompt
            if prompt.pk not in prompt_ids:
                prompt_ids[prompt.pk] = encode_prompt(tokenizer, prompt.chat_messages())
            row, _ = TokenReward.objects.update_or_create(
                annotation=annotation,
                tokenizer_fingerprint=fingerprint,
                defaults={
                    "prompt_token_ids": prompt_ids[prompt.pk],
                    "token_ids": result.response_ids,
                    "offsets": [list(pair) for pair in result.response_offsets],
                    "rewards": result.rewards,
                    "token_strings": tokenizer.convert_ids_to_tokens(result.response_ids),
                    "scheme": {**prompt.project.reward_scheme, "conflict": scheme.conflict},
                },
            )
            rows.append(row)
    # Token offsets are known now: the outputs' agreement gains its token-level alpha.
    agreement_refresh(generation_ids={annotation.generation_id for annotation in annotations})
    return rows


def rewards_recompute_all(*, project_id: int | None = None, missing_only: bool = False) -> int:
    """Recompute every submitted annotation's rewards for the current base tokenizer. Returns the count."""
    tokenizer, fingerprint = base_tokenizer()
    queryset = _submitted().order_by("id")
    if project_id is not None:
        queryset = queryset.filter(generation__prompt__project_id=project_id)
    if missing_only:
        queryset = queryset.exclude(token_rewards__tokenizer_fingerprint=fingerprint)
    count = 0
    chunk: list[Annotation] = []
    for annotation in queryset.iterator(chunk_size=BATCH):
        chunk.append(annotation)
        if len(chunk) == BATCH:
            count += len(token_rewards_store(annotations=chunk, tokenizer=tokenizer, fingerprint=fingerprint))
            chunk = []
    if chunk:
        count += len(token_rewards_store(annotations=chunk, tokenizer=tokenizer, fingerprint=fingerprint))
    logger.info("Recomputed token rewards for %d annotation(s) (tokenizer %s)", count, fingerprint[:12])
    return count
