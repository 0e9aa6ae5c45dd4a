"""Recover jobs left running by a stopped worker (run by `make run` before it starts the workers)."""

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Re-queue orphaned generation jobs and mark orphaned training rounds failed (resumable)."

    def handle(self, *args, **options):
        from training.services import jobs_recover_after_restart

        result = jobs_recover_after_restart()
        if any(result.values()):
            self.stdout.write(
                f"Recovered: {result['generation_jobs_requeued']} generation job(s) re-queued, "
                f"{result['rounds_failed']} round(s) marked failed (resume them on the training page)."
            )
