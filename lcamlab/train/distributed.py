r"""Data-parallel helpers: the runner under ``torchrun --nproc_per_node N``.

``torchrun`` starts N copies of the same program with ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` in the environment;
:func:`init_from_env` joins them into one process group (NCCL on CUDA, gloo on
the CPU). Every replica draws the *same* global batch (the loader's randomness
is a function of the seed and the epoch) and keeps its own slice of it
(:func:`shard`), so the global batch is ``batch_size`` whatever N is.

Exactness. Replica :math:`r` holding :math:`n_r` of the :math:`B` samples of a
global batch minimises

.. math:: J_r = \frac{N}{B}\sum_{j \in r} \ell_j ,

and DistributedDataParallel averages gradients over the :math:`N` replicas, so
every replica applies :math:`\nabla \frac{1}{B}\sum_j \ell_j`, the single-process
gradient, even when the shards are unequal (the last batch of an epoch). The
loss that enters LCAM's running mean is the all-reduced global mean, so every
replica makes the same below/above choice (digest section 1: "every replica
must make the same choice").

BatchNorm computes its statistics per replica (over :math:`n_r` samples, not
:math:`B`); the runner converts it to :class:`torch.nn.SyncBatchNorm` on CUDA
(``sync_batchnorm``), which restores the single-process statistics. SyncBatchNorm
does not run on the CPU, so the CPU parity test uses a model without BatchNorm.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["DistContext", "init_from_env", "shard", "all_reduce_sum", "broadcast_object", "gather_objects"]


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a data-parallel job (rank 0 of 1 when alone)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None
    owns_group: bool = False  # True when init_from_env created the process group

    @property
    def enabled(self) -> bool:
        """True when more than one replica takes part."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on the replica that writes files and prints (rank 0)."""
        return self.rank == 0

    def destroy(self) -> None:
        """Leave the process group if this context created it."""
        if self.owns_group and dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


def init_from_env(device_type: str) -> DistContext:
    """Join the torchrun job described by the environment, if any.

    Args:
        device_type: ``"cuda"`` (NCCL backend) or ``"cpu"`` (gloo backend).

    Returns:
        The context; a single-process context when ``WORLD_SIZE`` is unset or 1.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistContext()
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed support")
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    owns = False
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
        owns = True
    return DistContext(rank=rank, world_size=world_size, local_rank=local_rank,
                       backend=dist.get_backend(), owns_group=owns)


def shard(batch: Tensor, context: DistContext) -> Tensor:
    """This replica's contiguous slice of a global batch (sizes differ by at most one)."""
    if not context.enabled:
        return batch
    return torch.tensor_split(batch, context.world_size)[context.rank]


def all_reduce_sum(tensor: Tensor, context: DistContext) -> Tensor:
    """Sum ``tensor`` over the replicas, in place (asynchronous on CUDA streams; no host sync)."""
    if context.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def broadcast_object(value, context: DistContext):
    """Rank 0's ``value`` on every replica (host objects: configs, decisions, errors)."""
    if not context.enabled:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(value, context: DistContext) -> list:
    """``[value of rank 0, value of rank 1, ...]`` on every replica."""
    if not context.enabled:
        return [value]
    out = [None] * context.world_size
    dist.all_gather_object(out, value)
    return out
