"""Worker side of a machine critic run (``MachineCriticJob``, the ``critics`` lane): build the critic from
the job's name and settings, critique each output, and write each verdict as a submitted annotation by
the critic's machine annotator (``origin=machine``; its ``critic`` field holds the critic's record, the
job, the result's status, evidence and problems).

Each annotation commits with the job's progress, so a run queued again after its worker died resumes
after the outputs it wrote; an output the critic already annotated is skipped; cancel is honoured
between outputs. A critic that fails on an output (``status`` failed: no tests, an endpoint down) writes
nothing for it and is counted in the report with its problems; the run goes on. Code critics run the
output in the sandbox (``text2grad.sandbox``), never in this process.

Only workers import this module (it reaches the critics, and through the LLM critic's aligner, torch).
"""

from __future__ import annotations

import logging

from django.db import IntegrityError, transaction
from django.utils import timezone

from jobs import lifecycle
from text2grad.machine_critics import GOOD, CriticItem, CriticResult, build_critic

from .models import Annotation, Generation, MachineCriticJob, Span
from .services.machine import machine_annotator
from .services.validation import MAX_CRITIQUE_CHARS, MAX_OVERALL_CRITIQUE_CHARS, MAX_SPANS_PER_ANNOTATION
from .signals import annotation_submitted, annotation_submitting

logger = logging.getLogger(__name__)

MAX_REPORTED_PROBLEMS = 200


class RunLost(lifecycle.Lost):
    """The job was reaped or cancelled by someone else while this run wrote an output."""


def critic_item(generation: Generation) -> CriticItem:
    """What a critic reads: the prompt, the output, and the prompt's metadata (tests, entry point) with
    its reference answer."""
    prompt = generation.prompt
    metadata = dict(prompt.metadata or {})
    if prompt.reference and "reference" not in metadata:
        metadata["reference"] = prompt.reference
    return CriticItem(prompt.text, generation.text, metadata)


def _label_names(project) -> dict[int, str]:
    """The project's label for each polarity (its first good and first poor label)."""
    names = {}
    for label in project.label_set:
        names.setdefault(label.get("polarity"), label.get("name"))
    return names


def annotation_write(
    *, generation: Generation, result: CriticResult, user, job: MachineCriticJob
) -> Annotation:
    """One critic result as a submitted machine annotation with its spans (inside the caller's transaction);
    sends ``annotation_submitting`` so its token rewards are computed like anyone's."""
    labels = _label_names(generation.prompt.project)
    annotation = Annotation.objects.create(
        generation=generation,
        annotator=user,
        origin=Annotation.Origin.MACHINE,
        overall_critique=result.critique[:MAX_OVERALL_CRITIQUE_CHARS],
        rating=result.rating,
        status=Annotation.Status.SUBMITTED,
        submitted_at=timezone.now(),
        critic={
            **result.critic.as_dict(),
            "job": job.pk,
            "status": result.status,
            "evidence": [{"kind": e.kind, "detail": e.detail, "source": e.source} for e in result.evidence],
            "problems": list(result.problems),
            "spans": [
                {
                    "start": s.start,
                    "end": s.end,
                    "label": s.label,
                    "severity": s.severity,
                    "evidence": {"kind": s.evidence.kind, "detail": s.evidence.detail},
                }
                for s in result.spans
            ],
        },  # fmt: skip
    )
    spans = []
    for critique in result.spans[:MAX_SPANS_PER_ANNOTATION]:
        polarity = critique.polarity
        label = labels.get(polarity) or (GOOD if polarity > 0 else "poor")
        text = critique.text
        if critique.evidence.detail:
            text = f"{text}\nEvidence ({critique.evidence.kind}): {critique.evidence.detail}"
        spans.append(
            Span(
                annotation=annotation,
                start=critique.start,
                end=min(critique.end, len(generation.text)),
                text=generation.text[critique.start : critique.end],
                label=label,
                polarity=polarity,
                weight=critique.weight,
                critique=text[:MAX_CRITIQUE_CHARS],
                origin=Span.Origin.MACHINE,
            )
        )
    Span.objects.bulk_create([span for span in spans if span.start < span.end])
    annotation_submitting.send(sender=Annotation, annotation_id=annotation.pk)
    pk = annotation.pk
    transaction.on_commit(lambda: annotation_submitted.send_robust(sender=Annotation, annotation_id=pk))
    return annotation


def machine_critic_run(*, job_id: int) -> MachineCriticJob | None:
    """Claim a queued run and critique its outputs; None if it was not queued (a redelivery)."""
    job = lifecycle.claim(MachineCriticJob, job_id)
    if job is None:
        logger.info("Machine critic job %s is not queued any more; nothing to do", job_id)
        return None
    with lifecycle.running(job, f"Machine critic job {job_id}") as run:
        _run(job)
    if run.lost:
        return None
    job.refresh_from_db()
    return job


def _run(job: MachineCriticJob) -> None:
    asked = job.critic
    try:
        critic = build_critic(asked.get("name", ""), asked.get("settings") or {})
    except (KeyError, ValueError, TypeError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        lifecycle.fail(job, f"The critic's configuration is not valid: {message}. Change it and run again.")
        return
    record = critic.record.as_dict()
    user = machine_annotator(critic.name)
    ids = list(job.generation_ids)
    total = len(ids)
    report = {"written": 0, "skipped": 0, "failed": 0, "problems": [], **(job.report or {})}
    done = min(job.progress_step, total)
    if not lifecycle.progress(job, done, total, critic=record, report=report):
        raise RunLost
    while done < total:
        if lifecycle.cancel_requested(job):
            lifecycle.cancelled(
                job,
                f"Cancelled by a user after {done:,} of {total:,} outputs; the annotations written before "
                "are kept as drafts for review.",
            )
            return
        generation = Generation.objects.select_related("prompt__project").filter(pk=ids[done]).first()
        result = None
        if (
            generation is not None
            and not Annotation.objects.filter(generation=generation, annotator=user).exists()
        ):
            result = critic.critique(critic_item(generation))
        with transaction.atomic():
            if not lifecycle.owned(job).select_for_update().exists():
                raise RunLost
            if result is None:
                report["skipped"] += 1
            elif result.status == "failed" or (not result.spans and not result.critique.strip()):
                report["failed"] += 1
                if len(report["problems"]) < MAX_REPORTED_PROBLEMS:
                    problem = "; ".join(result.problems) or result.critique
                    report["problems"].append({"generation": generation.pk, "problem": problem[:500]})
            else:
                try:
                    with transaction.atomic():  # a savepoint: another run of this critic may have written it
                        annotation_write(generation=generation, result=result, user=user, job=job)
                    report["written"] += 1
                except IntegrityError:
                    report["skipped"] += 1
            if not lifecycle.progress(job, done + 1, total, report=report):
                raise RunLost
        done += 1
    lifecycle.finish(
        job, MachineCriticJob.Status.SUCCEEDED, progress_step=total, progress_total=total, report=report
    )
