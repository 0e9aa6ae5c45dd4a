"""Reactions to annotation events: a submitted annotation gets its token rewards computed in the worker."""

from __future__ import annotations

from jobs import dispatch


def enqueue_rewards(sender, annotation_id: int, **kwargs) -> None:
    # Sent after the submit transaction commits, so the worker sees the submitted row.
    dispatch.send("training.compute_rewards", annotation_id)


def connect() -> None:
    from annotations.signals import annotation_submitted

    annotation_submitted.connect(enqueue_rewards, dispatch_uid="t2g_rewards_on_submit")
