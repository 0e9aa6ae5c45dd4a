"""Run :func:`text2grad.engine.ppo_update` as one of several processes (``torchrun``; gloo on CPU, NCCL on GPU).

There is no DistributedDataParallel wrapper: the trainable parameters (LoRA factors and the value head)
are a few MB, so after each backward their gradients are summed in one flat ``all_reduce``. That keeps
the reference model trick (``disable_adapter()``, which DDP's unused-parameter tracking dislikes) and lets
the engine divide every loss by the *global* token count of the minibatch, so the summed gradient is
exactly the single-process gradient (DDP would average per-rank means, which differs whenever ranks hold
different numbers of tokens).

Each rank calls ``ppo_update`` with the *same* samples in the same order and the same generator seed;
the engine shards the work (:func:`shard_indices`) and keeps all ranks' parameters and optimiser states
identical, so any rank (by convention rank 0) can save the model version and checkpoint.

>>> collective = init_distributed()  # doctest: +SKIP
>>> sync_trainable_parameters(policy, collective)  # doctest: +SKIP
>>> metrics = ppo_update(policy, samples, config, kl_ctl, optimizer=opt, collective=collective)  # doctest: +SKIP
>>> if collective.rank == 0: save_policy_atomic(policy, version_dir)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os

import torch
import torch.distributed as dist
from torch import Tensor

from text2grad.engine import shard_indices
from text2grad.policy import PolicyWithValueHead

logger = logging.getLogger(__name__)

__all__ = [
    "TorchDistCollective",
    "init_distributed",
    "local_device",
    "shard_indices",
    "sync_trainable_parameters",
    "trainable_parameters_in_sync",
]


class TorchDistCollective:
    """:class:`text2grad.engine.Collective` over an initialised ``torch.distributed`` process group."""

    def __init__(self, group: dist.ProcessGroup | None = None) -> None:
        if not dist.is_initialized():
            raise RuntimeError("torch.distributed is not initialised; call init_distributed() first")
        self.group = group
        self.rank = dist.get_rank(group)
        self.world_size = dist.get_world_size(group)

    def all_reduce_sum(self, tensor: Tensor) -> Tensor:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM, group=self.group)
        return tensor

    def all_gather(self, tensor: Tensor) -> list[Tensor]:
        tensor = tensor.contiguous()
        out = [torch.empty_like(tensor) for _ in range(self.world_size)]
        dist.all_gather(out, tensor, group=self.group)
        return out


def local_device() -> torch.device:
    """This process's device: ``cuda:LOCAL_RANK`` when GPUs exist, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def init_distributed(backend: str | None = None) -> TorchDistCollective:
    """Join the process group described by torchrun's environment (RANK, WORLD_SIZE, MASTER_ADDR/PORT).

    ``backend`` defaults to NCCL with GPUs and gloo on CPU. Idempotent: an existing group is reused.
    """
    if not dist.is_initialized():
        backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
        if backend == "nccl":
            torch.cuda.set_device(local_device())
        dist.init_process_group(backend=backend)
        logger.info(
            "joined process group: rank %s of %s (%s)", dist.get_rank(), dist.get_world_size(), backend
        )
    return TorchDistCollective()


@torch.no_grad()
def sync_trainable_parameters(
    policy: PolicyWithValueHead, collective: TorchDistCollective, src: int = 0
) -> None:
    """Copy rank ``src``'s LoRA and value-head weights to every rank.

    ``build_policy`` seeds the LoRA initialisation, so ranks normally agree already; this makes it a
    guarantee (e.g. if a rank's RNG was consumed differently before building).
    """
    for param in policy.trainable_parameters():
        dist.broadcast(param.data, src=src, group=collective.group)


@torch.no_grad()
def trainable_parameters_in_sync(policy: PolicyWithValueHead, collective: TorchDistCollective) -> bool:
    """True when every rank holds bit-identical trainable parameters (a cheap sanity check per round)."""
    flat = torch.cat([p.detach().reshape(-1).float() for p in policy.trainable_parameters()])
    gathered = collective.all_gather(flat)
    return all(torch.equal(gathered[0], other) for other in gathered[1:])
