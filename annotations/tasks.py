"""Celery tasks for the annotations app: thin wrappers that take ids and call one service."""

from __future__ import annotations

from celery import shared_task


@shared_task(
    bind=True,
    name="annotations.export_run",
    acks_late=True,
    soft_time_limit=2 * 3600,
    time_limit=2 * 3600 + 60,
)
def export_run(self, export_id: int) -> None:
    from . import datasets

    # acks_late redelivers the message if the worker died mid-export; the time limit is far below the
    # broker's visibility timeout, so a redelivered message means that run is gone.
    redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
    datasets.export_run(export_id=export_id, previous_run_lost=redelivered)


@shared_task(name="annotations.expire_leases", ignore_result=True)
def expire_leases() -> int:
    """Periodic (``CELERY_BEAT_SCHEDULE``): mark lapsed leases expired and drop their untouched drafts."""
    from . import services

    return services.assignments_expire()


@shared_task(name="annotations.expire_exports", ignore_result=True)
def expire_exports() -> int:
    """Periodic (``CELERY_BEAT_SCHEDULE``): delete export files older than T2G_EXPORT_RETENTION_DAYS."""
    from . import datasets

    return datasets.exports_expire()


@shared_task(name="annotations.reap_stale_exports", ignore_result=True)
def reap_stale_exports() -> int:
    """Periodic (``CELERY_BEAT_SCHEDULE``): fail exports whose worker stopped writing, so "Export again"
    is offered at once instead of after the broker's redelivery hours later."""
    from . import datasets

    return datasets.exports_reap_stale()
