"""Recompute the agreement rows of every output (or one project's): after an import, or a change of rules."""

import time

from django.core.management.base import BaseCommand, CommandError

from annotations.models import Annotation, Project
from annotations.services import agreement_refresh


class Command(BaseCommand):
    help = "Recompute per-output agreement (Krippendorff's alpha, span F1) from the submitted annotations."

    def add_arguments(self, parser):
        parser.add_argument("--project", help="Only this project's outputs (by name)")

    def handle(self, *args, **options):
        annotations = Annotation.objects.filter(status=Annotation.Status.SUBMITTED)
        if options["project"]:
            project = Project.objects.filter(name=options["project"]).first()
            if project is None:
                raise CommandError(f"No project named {options['project']!r}")
            annotations = annotations.filter(generation__prompt__project=project)
        ids = set(annotations.values_list("generation_id", flat=True))
        started = time.perf_counter()
        written = agreement_refresh(generation_ids=ids)
        self.stdout.write(
            f"Agreement of {written} output(s) recomputed in {time.perf_counter() - started:.1f} s"
        )
