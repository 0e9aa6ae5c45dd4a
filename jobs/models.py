"""The rows every piece of background work shares: the outbox of work to hand to the broker, the abstract
``Job`` that generation jobs, training rounds, alignment requests and exports extend, and the liveness
record of each worker process."""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class Outbox(models.Model):
    """A task that a committed change needs. Written in the same transaction as the change
    (``dispatch.enqueue``), published to the broker after commit, and again by the relay until it is."""

    task_name = models.CharField(max_length=200)
    args = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    available_at = models.DateTimeField(help_text="Not published before this time (retry backoff).")
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0, help_text="Failed publish attempts.")
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["available_at"], condition=Q(sent_at__isnull=True), name="outbox_unsent"),
            models.Index(fields=["task_name", "created_at"], name="outbox_task_created"),
        ]

    def __str__(self) -> str:
        state = "sent" if self.sent_at else "pending"
        return f"{self.task_name}{tuple(self.args)} ({state})"


class Job(models.Model):
    """Shared shape of a worker job: claimed with a conditional update (QUEUED → RUNNING), fenced by
    ``attempts`` (each claim bumps it, and a run writes only while the row still carries its number),
    kept alive by a heartbeat, reaped when the heartbeat stops (``jobs.reaper``)."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True)
    progress_step = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # The fencing token: bumped by every claim; a run whose number is no longer on the row lost the job.
    attempts = models.PositiveSmallIntegerField(default=0)
    # Times the job was queued again because its worker stopped mid-run.
    requeues = models.PositiveSmallIntegerField(default=0)
    owner = models.CharField(max_length=200, blank=True, help_text="host:pid of the worker running it.")
    cancel_requested = models.BooleanField(default=False)

    # The statuses a job never leaves (queries filter on them; ``is_finished`` asks the same of one row).
    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    class Meta:
        abstract = True

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED

    @property
    def percent(self) -> int:
        if not self.progress_total:
            return 100 if self.status == self.Status.SUCCEEDED else 0
        return min(100, round(100 * self.progress_step / self.progress_total))

    def claim(self) -> bool:
        """Move QUEUED → RUNNING for this process; False if another worker got there first."""
        from .lifecycle import claim

        won = claim(type(self), self.pk)
        if won is not None:
            self.refresh_from_db()
        return won is not None

    def mark_failed(self, reason: str) -> None:
        from .lifecycle import fail

        fail(self, reason)
        self.refresh_from_db()

    def report_progress(self, step: int, total: int | None = None) -> None:
        from .lifecycle import progress

        progress(self, step, total)


class WorkerBeat(models.Model):
    """One worker process's liveness: written every few seconds by a thread in the worker's main
    process (independent of the broker), read by /healthz and the admins' page header."""

    name = models.CharField(max_length=200, unique=True)
    lanes = models.CharField(max_length=200, help_text="Comma-separated queues it consumes.")
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    seen_at = models.DateTimeField()
    broker_ok = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} [{self.lanes}]"
