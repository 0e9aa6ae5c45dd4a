"""Training's sections on pages of the annotations app: the project page shows the active model version
and the project's latest generation jobs. Registered with ``annotations.panels.register_project_section``
when the app starts (``TrainingConfig.ready``): ``annotations`` never imports ``training``.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest

from annotations.models import Project
from jobs import registry
from jobs.standing import duration_words, standing

from . import selectors
from .models import GenerationJob


def project_generation_section(request: HttpRequest, project: Project) -> tuple[str, dict]:
    return (
        "training/_project_generation.html",
        {
            "project": project,
            "jobs": selectors.generation_jobs_for_project(project.pk)[:5],
            "active_version": selectors.active_version(),
        },
    )


def project_generation_note(project: Project) -> str | None:
    """The annotator's queue, when a project has nothing waiting: what is being generated for it and when
    the first (or next) outputs should come, from the job's progress and the lane's turns; or that nothing
    is being generated. Registered with ``annotations.panels.register_queue_note``."""
    job = selectors.generation_job_pending(project.pk)
    if job is None:
        if selectors.project_has_outputs(project.pk):
            return None  # everything generated is taken or done; "Nothing waiting" says it
        return "No outputs are being generated for this project yet: an admin starts a generation job on the project page."
    chunk_s, basis = _chunk_seconds()
    total = job.progress_total or selectors.generation_job_size(job)
    version = job.model_version.name if job.model_version else "the active model"
    where = standing(job)
    if job.status == GenerationJob.Status.RUNNING:
        written = job.progress_step
        text = f"Generating {total} outputs with {version} now: {written} of {total} written"
        text += (
            f"; the {'first' if not written else 'next'} should arrive in {duration_words(chunk_s)}{basis}."
        )
    else:
        # Bulk jobs ahead give their turn after T2G_GENERATION_TURN_S, so ours starts within a turn per job
        # ahead (or sooner, when those finish first).
        ahead = max(0, (where.position or 1) - 1)
        turns_s = ahead * (settings.T2G_GENERATION_TURN_S + chunk_s)
        wait_s = min(turns_s, where.eta_s) if where.eta_s is not None else turns_s
        text = (
            f"{total} outputs with {version} are queued for this project behind {ahead} other job"
            f"{'' if ahead == 1 else 's'} on the generation lane; the first should arrive in "
            f"{duration_words(wait_s + chunk_s)}{basis}."
        )
    if where.lane_down:
        text += " No worker is generating right now; it goes on once one is back (admins are told)."
    return text


def _chunk_seconds() -> tuple[float, str]:
    """Seconds until a chunk of outputs commits (one chunk commits its outputs together), from the speed
    recent generation jobs measured here, and the words that say where the figure comes from."""
    outputs = max(1, settings.T2G_GENERATION_CHUNK)
    speed = selectors.generation_speed()
    if speed is None:
        return registry.kind_of(
            GenerationJob
        ).typical_s * outputs, " (a first guess: nothing generated here yet)"
    basis = f" (at {speed.tokens_per_s:.1f} tokens/s, as recent generation jobs here measured)"
    return speed.seconds_per_output * outputs, basis
