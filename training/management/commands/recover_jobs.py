"""Recover jobs left running by a stopped worker (run by `make run` before it starts the workers)."""

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Re-queue orphaned generation jobs (they resume), mark orphaned training rounds failed (resumable) "
        "and orphaned exports failed (run them again)."
    )

    def handle(self, *args, **options):
        from annotations.datasets import exports_reap_stale
        from training.services import jobs_recover_after_restart

        result = jobs_recover_after_restart()
        exports_failed = exports_reap_stale(stale_after_s=0)
        if any(result.values()) or exports_failed:
            self.stdout.write(
                f"Recovered: {result['generation_jobs_requeued']} generation job(s) re-queued, "
                f"{result['generation_jobs_failed']} failed after too many restarts, "
                f"{result['rounds_failed']} round(s) marked failed (resume them on the training page), "
                f"{exports_failed} export(s) marked failed (run them again)."
            )
