"""Recover jobs left running by a stopped worker (run by `make run` before it starts the workers)."""

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Every job still marked running belongs to no worker (none is running yet): generation jobs and "
        "exports are queued again, rounds and suggestions are marked failed with what to do next."
    )

    def handle(self, *args, **options):
        from training.services import jobs_recover_after_restart

        result = jobs_recover_after_restart()
        for kind, counts in result.items():
            if counts["resumed"] or counts["failed"]:
                self.stdout.write(
                    f"Recovered {kind}: {counts['resumed']} queued again, {counts['failed']} marked failed."
                )
