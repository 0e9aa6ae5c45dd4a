"""Reads of token rewards (the worker writes them: ``training.worker.rewards``)."""

from __future__ import annotations

from annotations.models import Annotation

from ..models import TokenReward


def latest_token_reward(annotation: Annotation) -> TokenReward | None:
    """The annotation's most recently computed token rewards (the heatmap shows them)."""
    return TokenReward.objects.filter(annotation=annotation).order_by("-computed_at").first()
