"""Reactions to annotation events: a submitted annotation gets its token rewards computed in the worker."""

from __future__ import annotations

from jobs import dispatch

from .models import TokenReward


def enqueue_rewards(sender, annotation_id: int, **kwargs) -> None:
    # Sent inside the submit transaction: the outbox row commits with the submission, or not at all,
    # and is published after the commit (or by the relay, if the broker is away then). Rows from an
    # earlier submission of the same annotation (a gold saved again) are stale: gone in the same commit,
    # so nothing reads them before the recomputation lands.
    TokenReward.objects.filter(annotation_id=annotation_id).delete()
    dispatch.enqueue("training.compute_rewards", annotation_id)


def connect() -> None:
    from annotations.signals import annotation_submitting

    annotation_submitting.connect(enqueue_rewards, dispatch_uid="t2g_rewards_on_submit")
