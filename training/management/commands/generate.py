"""Queue (or run here) sampling of K outputs per prompt of a project with the active model version."""

from django.core.management.base import BaseCommand, CommandError

from annotations.models import Project
from training import services


class Command(BaseCommand):
    help = "Sample outputs for a project's prompts with the active model version."

    def add_arguments(self, parser):
        parser.add_argument("--project", required=True)
        parser.add_argument("--per-prompt", type=int, default=1)
        parser.add_argument("--wait", action="store_true", help="Run in this process instead of the worker")

    def handle(self, *args, **options):
        project = Project.objects.filter(name=options["project"]).first()
        if project is None:
            raise CommandError(f"No project named {options['project']!r}")
        if not project.prompts.exists():
            raise CommandError(f"Project {project.name!r} has no prompts; import some first")
        try:
            if options["wait"]:
                from training.models import GenerationJob
                from training.worker import generation

                job = GenerationJob.objects.create(
                    project=project,
                    model_version=services.model_version_bootstrap(),
                    per_prompt=options["per_prompt"],
                )
                generation.generation_job_run(job_id=job.pk)
                job.refresh_from_db()
                self.stdout.write(f"Job {job.pk}: {job.status}, {job.progress_step} output(s).")
            else:
                job = services.generation_job_create(project=project, per_prompt=options["per_prompt"])
                self.stdout.write(f"Queued generation job {job.pk} for {project.name!r}; the worker runs it.")
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
