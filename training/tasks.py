"""Celery tasks: thin wrappers that take ids and call one worker-side service.

Nothing here imports torch at module level: the web process imports this module to enqueue.
"""

from __future__ import annotations

from celery import shared_task


@shared_task(name="training.generate", acks_late=True, soft_time_limit=6 * 3600, time_limit=6 * 3600 + 120)
def generate(job_id: int) -> None:
    from . import jobs

    jobs.generation_job_run(job_id=job_id)
