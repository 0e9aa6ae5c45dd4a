"""One reaper for every kind of job: a RUNNING job whose heartbeat stopped lost its worker; it is queued
again (with backoff) or failed with a message that says what happened and what to do. Queued jobs whose
task message went missing are dispatched again, and registered sweeps reconcile what has no job row."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from . import dispatch, lifecycle, registry
from .models import Outbox

logger = logging.getLogger(__name__)

REDISPATCH_QUEUED_AFTER_S = 10 * 60  # a queued job's last dispatch this old: its message may be gone


def backoff_s(requeues: int) -> int:
    return min(300, 10 * 2**requeues)


def reap(*, stale_after_s: float | None = None) -> dict:
    """Requeue or fail every RUNNING job of every kind whose heartbeat is older than ``stale_after_s``
    (the configured default: a few missed heartbeats; 0 at start-up, when nothing can be running)."""
    stale_after_s = lifecycle.stale_after_s() if stale_after_s is None else stale_after_s
    cutoff = timezone.now() - timedelta(seconds=stale_after_s)
    result = {}
    for label, kind in registry.KINDS.items():
        resumed, failed = _reap_kind(kind, cutoff, stale_after_s)
        if resumed or failed:
            logger.warning("Reaped %s: %d queued again, %d failed", label, len(resumed), len(failed))
        for pk in resumed + failed:
            if kind.cleanup:
                try:
                    kind.cleanup(pk)
                except Exception:
                    logger.exception("Cleanup of %s %s failed", label, pk)
        result[label] = {"resumed": len(resumed), "failed": len(failed)}
    return result


def _reap_kind(kind, cutoff, stale_after_s) -> tuple[list[int], list[int]]:
    model = kind.model
    now = timezone.now()
    with transaction.atomic():
        orphaned = list(
            model.objects.select_for_update(skip_locked=True)
            .filter(status=model.Status.RUNNING)
            .filter(Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, created_at__lt=cutoff))
            .values_list("pk", "requeues", "owner")
        )
        silent = f"{int(stale_after_s)} s" if stale_after_s else "a restart"
        resumed, failed = [], []
        for pk, requeues, owner in orphaned:
            who = f"worker {owner}" if owner else "its worker"
            if kind.on_lost == "resume" and requeues < kind.max_requeues:
                delay = backoff_s(requeues)
                model.objects.filter(pk=pk).update(
                    status=model.Status.QUEUED,
                    requeues=F("requeues") + 1,
                    owner="",
                    error=f"{who.capitalize()} stopped reporting (no heartbeat for {silent}); queued again "
                    f"to run in {delay} s: {kind.resume_note}",
                )
                dispatch.enqueue(kind.task, pk, countdown=delay)
                resumed.append(pk)
            else:
                if kind.on_lost == "resume":
                    reason = (
                        f"{who.capitalize()} stopped {requeues + 1} times while running this {kind.label} "
                        f"(killed or out of memory). {kind.given_up_note}"
                    )
                else:
                    reason = f"{who.capitalize()} stopped reporting (no heartbeat for {silent}). " + (
                        kind.lost_message
                    )
                model.objects.filter(pk=pk).update(
                    status=model.Status.FAILED, finished_at=now, owner="", error=reason[:10_000]
                )
                failed.append(pk)
    return resumed, failed


def requeue(job, note: str = "") -> bool:
    """Give the lane back: RUNNING → QUEUED (only while this run owns the job) and dispatch its task again
    in the same transaction, so it runs after the work already waiting in the lane and resumes from its
    committed progress. False when the job was no longer this run's (cancelled, reaped)."""
    model = type(job)
    with transaction.atomic():
        if not lifecycle.owned(job).update(status=model.Status.QUEUED, owner="", error=note[:10_000]):
            return False
        dispatch.enqueue(registry.kind_of(model).task, job.pk)
    return True


def redispatch_lost_messages(*, older_than_s: int = REDISPATCH_QUEUED_AFTER_S) -> int:
    """Dispatch again queued jobs whose last dispatch is older than ``older_than_s``: a worker that died
    holding the message (before its claim) would otherwise leave them queued until the broker's
    visibility timeout. Claims make the duplicate harmless."""
    cutoff = timezone.now() - timedelta(seconds=older_than_s)
    count = 0
    for kind in registry.KINDS.values():
        model = kind.model
        if model.objects.filter(status=model.Status.RUNNING).exists():
            continue  # they wait their turn behind it (a round retries "busy" on its own)
        queued = list(
            model.objects.filter(status=model.Status.QUEUED, created_at__lt=cutoff).values_list(
                "pk", flat=True
            )[:200]
        )
        if not queued:
            continue
        recent = {
            tuple(args)
            for args in Outbox.objects.filter(task_name=kind.task, created_at__gte=cutoff).values_list(
                "args", flat=True
            )
        }
        for pk in queued:
            if (pk,) not in recent:
                dispatch.enqueue(kind.task, pk)
                count += 1
    return count


def sweep() -> dict:
    """Run the reaper, the lost-message redispatch and every registered sweep. Idempotent."""
    result = {"reaped": reap(), "redispatched": redispatch_lost_messages()}
    for name, run in registry.SWEEPS.items():
        try:
            result[name] = run()
        except Exception:
            logger.exception("Sweep %s failed", name)
    return result
