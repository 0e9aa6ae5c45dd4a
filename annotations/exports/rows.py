"""Rows of each kind, by name: the one entry point the writers and the API use."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from .query import DEFAULT_CHUNK, ExportQuery, annotation_filters, annotations_for, token_reward_model
from .spans import spans_rows
from .trainer import dpo_rows, kto_rows, token_reward_rows

ROW_BUILDERS: dict[str, Callable[..., Iterator[dict[str, Any]]]] = {
    "spans": spans_rows,
    "token-rewards": token_reward_rows,
    "kto": kto_rows,
    "dpo": dpo_rows,
}


def rows_for(kind: str, query: ExportQuery, *, chunk_size: int = DEFAULT_CHUNK) -> Iterator[dict[str, Any]]:
    return ROW_BUILDERS[kind](query, chunk_size=chunk_size)


def estimate_total(kind: str, query: ExportQuery) -> int:
    """Rows to expect, for the progress bar: exact for spans and token rewards, an upper bound for kto,
    and 0 (unknown) for dpo, whose pair count is only known once the outputs are ranked."""
    if kind == "spans":
        return annotations_for(query).count()
    if kind == "token-rewards":
        rewards = token_reward_model().objects.filter(**annotation_filters(query, prefix="annotation__"))
        if query.tokenizer_fingerprint:
            rewards = rewards.filter(tokenizer_fingerprint=query.tokenizer_fingerprint)
        return rewards.count()
    if kind == "kto":
        return annotations_for(query).filter(rating__isnull=False).values("generation_id").distinct().count()
    return 0
