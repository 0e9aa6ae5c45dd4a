"""Recompute token rewards for every submitted annotation (after the base model or tokenizer changes)."""

from django.core.management.base import BaseCommand, CommandError

from annotations.models import Project


class Command(BaseCommand):
    help = "Recompute stored token rewards for the current base tokenizer."

    def add_arguments(self, parser):
        parser.add_argument("--project", help="Only this project (by name)")
        parser.add_argument("--missing-only", action="store_true", help="Skip annotations already computed")
        parser.add_argument("--queue", action="store_true", help="Run in the worker instead of here")

    def handle(self, *args, **options):
        project_id = None
        if options["project"]:
            project = Project.objects.filter(name=options["project"]).first()
            if project is None:
                raise CommandError(f"No project named {options['project']!r}")
            project_id = project.pk
        if options["queue"]:
            from django.db import transaction

            from jobs import dispatch

            # Through the outbox like every other dispatch: a broker that is away now gets it from the relay.
            with transaction.atomic():
                dispatch.enqueue("training.recompute_all_rewards", project_id)
            self.stdout.write("Queued the recomputation; the worker runs it.")
            return
        from training.worker import rewards

        count = rewards.rewards_recompute_all(project_id=project_id, missing_only=options["missing_only"])
        self.stdout.write(f"Recomputed token rewards for {count} annotation(s).")
