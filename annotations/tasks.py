"""Celery tasks for the annotations app: thin wrappers that take ids and call one service."""

from __future__ import annotations

from celery import shared_task


@shared_task(
    name="annotations.export_run", acks_late=True, soft_time_limit=2 * 3600, time_limit=2 * 3600 + 60
)
def export_run(export_id: int) -> None:
    from .exports import jobs as export_jobs

    # A redelivered message finds the export claimed or finished and does nothing; an export whose
    # worker died is requeued by the reaper (jobs.reaper), which notices within a minute.
    export_jobs.export_run(export_id=export_id)


@shared_task(name="annotations.expire_leases", ignore_result=True)
def expire_leases() -> int:
    """Periodic (``CELERY_BEAT_SCHEDULE``): mark lapsed leases expired and drop their untouched drafts."""
    from . import services

    return services.assignments_expire()


@shared_task(name="annotations.expire_exports", ignore_result=True)
def expire_exports() -> int:
    """Periodic (``CELERY_BEAT_SCHEDULE``): delete export files older than T2G_EXPORT_RETENTION_DAYS."""
    from .exports import jobs as export_jobs

    return export_jobs.exports_expire()


@shared_task(name="annotations.import_run", acks_late=True, soft_time_limit=3600, time_limit=3600 + 60)
def import_run(import_id: int) -> None:
    from .imports import jobs as import_jobs

    # Claimed like every job: a redelivered message does nothing; a run whose worker died is queued
    # again by the reaper and resumes after the chunks it committed.
    import_jobs.prompt_import_run(import_id=import_id)


@shared_task(name="annotations.webhook_deliver", acks_late=True, soft_time_limit=60, time_limit=90)
def webhook_deliver(delivery_id: int) -> str:
    """One attempt at a webhook delivery; the service schedules the next one through the outbox."""
    from . import webhooks

    return webhooks.webhook_deliver(delivery_id=delivery_id)


@shared_task(
    name="annotations.machine_critic_run", acks_late=True, soft_time_limit=6 * 3600, time_limit=6 * 3600 + 60
)
def machine_critic_run(job_id: int) -> None:
    from .machine import machine_critic_run as run

    # Claimed like every job: a redelivered message does nothing; a run whose worker died is queued
    # again by the reaper and resumes after the outputs it wrote.
    run(job_id=job_id)
