r"""The training step: fast on one GPU, identical arithmetic on the CPU.

:class:`Engine` wraps a model and its optimizer. A training step is

.. math::

    L = \frac{1}{B}\sum_{j=1}^{B} \ell(f_\theta(x_j), y_j), \qquad
    \theta \leftarrow \text{optimizer}(\theta, \nabla_\theta L;\ L \text{ for LCAM})

with the speed choices of a modern loop and none of the authors' loop's stalls
(000 section 4 trains with a DataLoader, fp32 and ``loss.item()`` every step):

* the model runs in ``channels_last`` memory format under bf16 autocast on CUDA
  (fp32 master weights; the loss is computed in fp32), optionally ``torch.compile``\ d;
* the step never reads a value back to the host: it returns the mini-batch loss
  and the number of correct predictions as device tensors, which the runner
  accumulates and reads once per epoch; LCAM receives the loss *tensor* and keeps
  its running mean on the device (digest section 1);
* under DistributedDataParallel every replica takes its slice of the global batch
  and the loss handed to LCAM is the all-reduced global mean, so every replica
  makes the same below/above choice (see :mod:`lcamlab.train.distributed`).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lcamlab.optim import optimizer_step, takes_loss
from lcamlab.train.distributed import DistContext, all_reduce_sum, shard

__all__ = ["Engine"]


class Engine:
    r"""One model, one optimizer: the training step and the evaluation pass.

    Args:
        model: the network, already on ``device`` (build the optimizer after moving it).
        optimizer: any ``torch.optim`` optimizer; one that takes the loss
            (:func:`lcamlab.optim.takes_loss`: LCAM) receives the mini-batch loss
            :math:`L` as a 0-dim device tensor.
        device: where the model and the batches live.
        amp: bf16 autocast; only takes effect on CUDA (the CPU runs fp32, exactly).
        channels_last: NHWC memory format for the model and its inputs.
        compile: wrap the model with ``torch.compile``.
        distributed: wrap the model in DistributedDataParallel (the process group
            must be initialised, see :func:`lcamlab.train.distributed.init_from_env`).
        context: the data-parallel context (rank, world size); built from
            ``torch.distributed`` when ``distributed`` and not given.

    The model's parameter dtype sets the input dtype, so a float64 model trains in
    float64 on the CPU (exact comparisons in tests).
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        device: str | torch.device,
        amp: bool = True,
        channels_last: bool = True,
        compile: bool = False,
        distributed: bool = False,
        context: DistContext | None = None,
    ) -> None:
        self.device = torch.device(device)
        if distributed and context is None:
            import torch.distributed as dist

            if not dist.is_initialized():
                raise ValueError("Engine(distributed=True) needs an initialised torch.distributed process group")
            context = DistContext(rank=dist.get_rank(), world_size=dist.get_world_size(),
                                  local_rank=dist.get_rank(), backend=dist.get_backend())
        self.context = context if context is not None else DistContext()
        self.distributed = bool(distributed) and self.context.enabled
        self.channels_last = bool(channels_last)
        self.amp = bool(amp) and self.device.type == "cuda"
        model = model.to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model  # the bare module: its state_dict is what checkpoints hold
        self.optimizer = optimizer
        self.wants_loss = takes_loss(optimizer)
        first = next(model.parameters(), None)
        self.input_dtype = first.dtype if first is not None and first.is_floating_point() else torch.float32
        net: nn.Module = model
        if self.distributed:
            from torch.nn.parallel import DistributedDataParallel

            device_ids = [self.device.index if self.device.index is not None else torch.cuda.current_device()] \
                if self.device.type == "cuda" else None
            # BatchNorm buffers are synchronised from rank 0 at every forward (DDP's default)
            net = DistributedDataParallel(model, device_ids=device_ids, gradient_as_bucket_view=True)
        if compile:
            net = torch.compile(net)
        self.net = net
        self._training: bool | None = None  # the mode net is in (switching walks every module)

    def _set_mode(self, training: bool) -> None:
        if self._training is not training:
            self.net.train(training)
            self._training = training

    # ------------------------------------------------------------------------------------

    def _prepare(self, x: Tensor) -> Tensor:
        if x.dtype != self.input_dtype:
            x = x.to(self.input_dtype)
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def _forward(self, x: Tensor) -> Tensor:
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            logits = self.net(x)
        # the loss in fp32 (fp64 for a fp64 model), whatever precision the model ran in
        return logits if logits.dtype in (torch.float32, torch.float64) else logits.float()

    def train_step(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        r"""One optimisation step on the global batch ``(x, y)``.

        .. math::

            J_r = \frac{N}{B}\sum_{j \in \text{shard } r}\ell_j \quad(\text{DDP}), \qquad
            J = \frac{1}{B}\sum_j \ell_j \quad(\text{single process})

        Args:
            x: the global batch of inputs (every replica passes the same batch and
               keeps its slice).
            y: the labels, int64.

        Returns:
            ``(loss, correct)``: the global mean mini-batch loss :math:`L` (0-dim,
            detached, fp32/fp64, identical on every replica) and this replica's
            number of correct predictions (0-dim int64). Both stay on the device.
        """
        global_count = x.shape[0]
        if self.distributed:
            x = shard(x, self.context)
            y = shard(y, self.context)
        x = self._prepare(x)
        self._set_mode(True)
        self.optimizer.zero_grad(set_to_none=True)
        logits = self._forward(x)
        loss_sum = F.cross_entropy(logits, y, reduction="sum")
        if self.distributed:
            # DDP averages gradients over N replicas: scale so the average is the global mean's.
            objective = loss_sum * (self.context.world_size / global_count)
        else:
            objective = loss_sum / global_count
        objective.backward()
        with torch.no_grad():
            loss = loss_sum.detach().clone()
            all_reduce_sum(loss, self.context)
            loss = loss / global_count
            correct = (logits.argmax(dim=1) == y).sum()
        # the loss tensor as it is, on the device: no host sync
        optimizer_step(self.optimizer, loss)
        return loss, correct

    @torch.no_grad()
    def evaluate(self, batches: Iterable[tuple[Tensor, Tensor]]) -> dict[str, Tensor]:
        r"""Mean loss and error (%) over a whole evaluation set.

        .. math:: \text{loss} = \frac1n\sum_j \ell_j, \qquad \text{error} = \frac{100}{n}\,\#\{j: \arg\max f(x_j) \ne y_j\}

        Args:
            batches: an iterable of ``(x, y)`` global batches, e.g. a test
                :class:`lcamlab.data.DeviceLoader` (its ``epoch(0)``) or the loader
                itself when it is iterable.

        Returns:
            ``{"loss": 0-dim tensor, "error": 0-dim tensor}`` on the device (no host
            sync); under DDP each replica evaluates its slices and the sums are
            all-reduced.
        """
        if hasattr(batches, "epoch") and callable(batches.epoch):
            batches = batches.epoch(0)
        self._set_mode(False)
        loss_total = torch.zeros((), dtype=torch.float64, device=self.device)
        wrong_total = torch.zeros((), dtype=torch.float64, device=self.device)
        count = 0
        for x, y in batches:
            count += x.shape[0]
            if self.distributed:
                x = shard(x, self.context)
                y = shard(y, self.context)
            if x.shape[0] == 0:
                continue
            logits = self._forward(self._prepare(x))
            loss_total += F.cross_entropy(logits, y, reduction="sum").to(torch.float64)
            wrong_total += (logits.argmax(dim=1) != y).sum().to(torch.float64)
        if count == 0:
            raise ValueError("Invalid evaluation set: it holds no samples")
        totals = all_reduce_sum(torch.stack([loss_total, wrong_total]), self.context)
        return {"loss": totals[0] / count, "error": totals[1] * (100.0 / count)}
