"""Run a project's machine critic over its outputs (from CI, a cron job or a shell): the same job as the
project's Machine critics page, queued on the critics lane, or run here with --now."""

from __future__ import annotations

import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from annotations.models import MachineCriticConfig, MachineCriticJob, Project
from annotations.services import machine as machine_services


class Command(BaseCommand):
    help = (
        "Configure (with --critic-settings) and run a machine critic over a project's outputs: its drafts "
        "(origin=machine) wait in the review queue. Queued on the critics lane unless --now."
    )

    def add_arguments(self, parser):
        parser.add_argument("--project", required=True, help="Project name or id")
        parser.add_argument("--critic", required=True, help="The critic's registry name (unit-tests, ...)")
        parser.add_argument(
            "--critic-settings", help="The critic's settings as a JSON object (saved on the project)"
        )
        parser.add_argument("--now", action="store_true", help="Run in this process and wait for the end")

    def handle(self, *args, **options):
        reference = options["project"]
        project = Project.objects.filter(pk=int(reference)).first() if reference.isdigit() else None
        project = project or Project.objects.filter(name=reference).first()
        if project is None:
            raise CommandError(f"No project {reference!r}")
        config = MachineCriticConfig.objects.filter(project=project, name=options["critic"]).first()
        try:
            if options["critic_settings"] is not None or config is None:
                settings = json.loads(options["critic_settings"] or "{}")
                config = machine_services.machine_critic_configure(
                    project=project, name=options["critic"], critic_settings=settings
                )
            job = machine_services.machine_critic_run_start(config=config)
        except (ValidationError, json.JSONDecodeError) as exc:
            raise CommandError("; ".join(getattr(exc, "messages", [str(exc)]))) from None
        if not options["now"]:
            self.stdout.write(f"Queued machine critic job {job.pk} over {job.progress_total} outputs")
            return
        from annotations.machine import machine_critic_run

        machine_critic_run(job_id=job.pk)
        job = MachineCriticJob.objects.get(pk=job.pk)
        report = job.report or {}
        self.stdout.write(
            f"Job {job.pk} {job.status}: {report.get('written', 0)} written, {report.get('skipped', 0)} "
            f"skipped, {report.get('failed', 0)} failed"
        )
        if job.status != MachineCriticJob.Status.SUCCEEDED:
            raise CommandError(job.error or f"The job ended {job.status}")
