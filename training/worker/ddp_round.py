"""One rank of a training round run by several processes: ``torchrun --nproc_per_node N -m training.worker.ddp_round``.

The Celery task (see ``rounds.round_run`` with ``T2G_TRAIN_PROCS`` > 1) claims the round and computes any
missing token rewards first, then launches this module; every rank loads the same snapshot and runs the
same trainer (``text2grad.trainer.train`` with a ``Collective``), and the gradients of the trainable
parameters are summed across ranks (gloo on CPU, NCCL on GPUs). Rank 0 calls the hooks that write the
metrics, checkpoints and the new version, exactly as a single-process round does.
"""

from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--round-id", type=int, required=True)
    parser.add_argument("--backend", choices=["gloo", "nccl"], default=None)
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "text2grad_web.settings")
    import django

    django.setup()
    import torch.distributed as dist

    from text2grad.distributed import init_distributed
    from text2grad.trainer import Stopped
    from training.models import TrainingRound
    from training.worker import rounds

    collective = init_distributed(args.backend)
    try:
        training_round = TrainingRound.objects.select_related("base_version").get(pk=args.round_id)
        if training_round.status != TrainingRound.Status.RUNNING:
            sys.stderr.write(f"round {args.round_id} is {training_round.status}, not running\n")
            return 2
        try:
            rounds._run(training_round, collective=collective)
        except Stopped:
            return rounds.EXIT_CANCELLED
        except rounds.RoundLost:
            return rounds.EXIT_LOST
        dist.barrier()
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
