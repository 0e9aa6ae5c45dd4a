"""Trainer-ready rows: token rewards per annotation, KTO (desirable / undesirable) and DPO (chosen / rejected)."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import combinations, groupby
from typing import Any

from django.db.models import Avg, Count

from ..models import Generation
from .formats import _chunks
from .names import annotator_names
from .query import DEFAULT_CHUNK, ExportQuery, annotation_filters, annotations_for, token_reward_model

_TOKEN_REWARD_COLUMNS = (
    "annotation_id",
    "annotation__generation_id",
    "annotation__generation__prompt_id",
    "annotation__generation__prompt__project__name",
    "annotation__generation__prompt__text",
    "annotation__generation__text",
    "annotation__generation__model_version__name",
    "annotation__annotator_id",
    "annotation__annotator__username",
    "annotation__rating",
    "tokenizer_fingerprint",
    "prompt_token_ids",
    "token_ids",
    "rewards",
    "annotation__generation__tokenizer_fingerprint",
    "annotation__generation__response_token_ids",
    "annotation__generation__behaviour_logprobs",
    "annotation__is_gold",
    "annotation__origin",
    "annotation__critic__name",
    "annotation__review__verdict",
    "annotation__generation__agreement__score",
)


def token_reward_rows(query: ExportQuery, *, chunk_size: int = DEFAULT_CHUNK) -> Iterator[dict[str, Any]]:
    """One row per TokenReward of the query's tokenizer: token ids and one reward per response token.

    ``behaviour_logprobs`` are the sampling-time log-probabilities, given only where the stored response
    ids are exactly the ones that were sampled (otherwise they would describe other tokens) and empty
    otherwise, e.g. for imported outputs.
    """
    name_of = annotator_names(query)
    rewards = token_reward_model().objects.filter(**annotation_filters(query, prefix="annotation__"))
    if query.tokenizer_fingerprint:
        rewards = rewards.filter(tokenizer_fingerprint=query.tokenizer_fingerprint)
    cursor = (
        rewards.order_by("annotation_id", "id")
        .values_list(*_TOKEN_REWARD_COLUMNS)
        .iterator(chunk_size=chunk_size)
    )
    for values in cursor:
        yield _token_reward_row(values, name_of)


def _token_reward_row(values: tuple, name_of) -> dict[str, Any]:
    """One export row from the values of ``_TOKEN_REWARD_COLUMNS``."""
    (
        annotation_id,
        generation_id,
        prompt_id,
        project,
        prompt,
        response,
        model_version,
        annotator_id,
        username,
        rating,
        fingerprint,
        prompt_token_ids,
        token_ids,
        token_rewards,
        generation_fingerprint,
        sampled_ids,
        behaviour_logprobs,
        is_gold,
        origin,
        critic,
        verdict,
        agreement,
    ) = values
    same_tokenizer = generation_fingerprint == fingerprint
    return {
        "annotation_id": annotation_id,
        "generation_id": generation_id,
        "prompt_id": prompt_id,
        "project": project,
        "model_version": model_version,
        "annotator": name_of(annotator_id, username),
        "rating": rating,
        "tokenizer_fingerprint": fingerprint,
        "prompt": prompt,
        "response": response,
        "prompt_token_ids": list(prompt_token_ids or []),
        "response_token_ids": list(token_ids),
        "rewards": [float(r) for r in token_rewards],
        "behaviour_logprobs": (
            [float(x) for x in behaviour_logprobs]
            if same_tokenizer and sampled_ids == token_ids and len(behaviour_logprobs or []) == len(token_ids)
            else []
        ),
        "is_gold": is_gold,
        "origin": origin,
        "critic": critic,
        "review": verdict,
        "agreement": agreement,
    }


def _rated_generations(query: ExportQuery):
    """(generation id, prompt id, mean rating, annotation count) of outputs with a rating, by prompt. The
    gold's rating is not one more vote: it counts only in a ``gold_only`` export, alone."""
    return (
        annotations_for(query)
        .filter(rating__isnull=False, is_gold=query.gold_only)
        .values("generation_id", "generation__prompt_id")
        .annotate(mean_rating=Avg("rating"), ratings=Count("id"))
        .order_by("generation__prompt_id", "generation_id")
        .values_list("generation_id", "generation__prompt_id", "mean_rating", "ratings")
    )


def _texts(generation_ids: list[int]) -> dict[int, tuple[str, str]]:
    rows = Generation.objects.filter(id__in=generation_ids).values_list("id", "prompt__text", "text")
    return {pk: (prompt, text) for pk, prompt, text in rows}


def kto_rows(query: ExportQuery, *, chunk_size: int = DEFAULT_CHUNK) -> Iterator[dict[str, Any]]:
    """TRL's unpaired preference rows: an output is desirable when its mean rating is high, else not.

    Outputs rated in between (by default a mean rating above 2 and below 4) are left out: a neutral
    output is neither a good nor a bad example.
    """
    cursor = _rated_generations(query).iterator(chunk_size=chunk_size)
    for batch in _chunks(cursor, chunk_size):
        kept = [
            row for row in batch if row[2] >= query.kto_desirable_min or row[2] <= query.kto_undesirable_max
        ]
        texts = _texts([row[0] for row in kept])
        for generation_id, prompt_id, mean_rating, ratings in kept:
            prompt, completion = texts[generation_id]
            yield {
                "prompt": prompt,
                "completion": completion,
                "label": bool(mean_rating >= query.kto_desirable_min),
                "prompt_id": prompt_id,
                "generation_id": generation_id,
                "rating": float(mean_rating),
                "ratings": ratings,
            }


def dpo_rows(query: ExportQuery, *, chunk_size: int = DEFAULT_CHUNK) -> Iterator[dict[str, Any]]:
    """TRL's preference pairs: every two outputs of one prompt whose mean ratings differ by the margin.

    Within a prompt, outputs are ranked by mean rating (ties by id); a pair is (better, worse). Pairs of
    identical texts are skipped: they teach nothing.
    """
    cursor = _rated_generations(query).iterator(chunk_size=chunk_size)
    groups: list[list[tuple]] = []
    buffered = 0

    def flush() -> Iterator[dict[str, Any]]:
        texts = _texts([row[0] for group in groups for row in group])
        for group in groups:
            ranked = sorted(group, key=lambda row: (-row[2], row[0]))
            for better, worse in combinations(ranked, 2):
                if better[2] - worse[2] < query.dpo_min_margin:
                    continue
                prompt, chosen = texts[better[0]]
                _, rejected = texts[worse[0]]
                if chosen == rejected:
                    continue
                yield {
                    "prompt": prompt,
                    "chosen": chosen,
                    "rejected": rejected,
                    "prompt_id": better[1],
                    "chosen_generation_id": better[0],
                    "rejected_generation_id": worse[0],
                    "chosen_rating": float(better[2]),
                    "rejected_rating": float(worse[2]),
                }

    for _prompt_id, group in groupby(cursor, key=lambda row: row[1]):
        group = list(group)
        if len(group) < 2:
            continue
        groups.append(group)
        buffered += len(group)
        if buffered >= chunk_size:
            yield from flush()
            groups, buffered = [], 0
    if groups:
        yield from flush()
