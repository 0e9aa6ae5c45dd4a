"""Convert the embedded model (or check T2G_BASE_MODEL) once, so the first task does not wait for it."""

import time

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Build the base model's safetensors cache under var/models/base (once) and check it loads."

    def handle(self, *args, **options):
        from text2grad import model_store
        from training.worker import runtime

        started = time.perf_counter()
        try:
            path = runtime.base_dir()
        except model_store.ModelStoreError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Base model ready at {path} ({time.perf_counter() - started:.1f} s).")
        # The critique aligner's clause classifier trains once (~20 s) and is kept under var/: done here,
        # the first Suggest spans after `make run` never waits for it.
        from training.worker.alignment import alignment_warm_up

        self.stdout.write(f"Critique aligner ready ({alignment_warm_up():.1f} s).")
