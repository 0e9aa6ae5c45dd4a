"""Housekeeping: jobs left running by a stopped process, and token rewards that never arrived."""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from jobs import dispatch, reaper


def jobs_recover_after_restart() -> dict:
    """Called by the embedded launcher before its workers start: nothing can be running yet, so every job
    left RUNNING is an orphan. Each kind does what the reaper does with a dead worker's job: generation
    jobs and exports are queued again (generation resumes after the outputs it had committed); rounds and
    suggestions end failed with a reason (a round is resumed from its checkpoint by an admin)."""
    return reaper.reap(stale_after_s=0)


# --- token rewards that never arrived (run by the reaper's sweep) ----------------------------------
REWARDS_OVERDUE_AFTER_S = 60
REWARDS_RETRY_EVERY_S = 5 * 60


def rewards_sweep_missing(*, overdue_after_s: int = REWARDS_OVERDUE_AFTER_S, limit: int = 100) -> int:
    """Queue the reward computation again for submitted annotations that still have no token rewards a
    minute after submission (a worker died holding the task, or the computation failed), at most once
    every few minutes each. The outbox already guarantees the first dispatch; this catches the rest."""
    from annotations.models import Annotation
    from jobs.models import Outbox

    now = timezone.now()
    overdue = list(
        Annotation.objects.filter(
            status=Annotation.Status.SUBMITTED,
            submitted_at__lt=now - timedelta(seconds=overdue_after_s),
            token_rewards__isnull=True,
        ).values_list("pk", flat=True)[:limit]
    )
    if not overdue:
        return 0
    recent = {
        tuple(args)
        for args in Outbox.objects.filter(
            task_name="training.compute_rewards",
            created_at__gte=now - timedelta(seconds=REWARDS_RETRY_EVERY_S),
        ).values_list("args", flat=True)
    }
    again = [pk for pk in overdue if (pk,) not in recent]
    with transaction.atomic():
        for pk in again:
            dispatch.enqueue("training.compute_rewards", pk)
    return len(again)
