r"""The escape simulation: the Styblinski-Tang landscape as a trial problem, batched and looped.

One optimizer setting at a time, all trials of all sharpness values advance
together as one ``(trials, dim)`` parameter (the optimizer's trial axis): the
sharpness is a per-trial ``(trials, 1)`` tensor :math:`\sqrt k` entering the loss
as :math:`f(\sqrt k\,\theta - x)`, so a step is a handful of tensor operations for
all trials at once, on the CPU or a CUDA device (the Adai paper, Appendix E and Figure 6).

:class:`EscapeProblem` is the landscape as a
:class:`lcamlab.experiments.trials.TrialProblem`; the loop itself is the shared
runner :func:`lcamlab.experiments.trials.run_trials`:

* **warm-up** (decision): before the clock starts, ``warmup`` optimizer steps are
  taken at the start point with the parameters put back after each one (one
  :func:`run_trials` call whose ``on_step`` restores them), so the optimizer's state
  (momentum buffer, Adam's and Adai's second moments, LCAM's running mean) is in
  equilibrium with the noise there, as the Adai paper's quasi-equilibrium assumption
  (Assumption 2) supposes. Without it (``warmup=0``, the Adai paper's cold start) Adam shows
  a dead time and Adai a burst of early escapes, and the exponential law fails at
  most of their sharpness values.
* **main run**: ``budget`` steps in blocks of ``chunk``; ``on_step`` records every
  step's per-coordinate "outside" (:meth:`ExitRegion.outside`), ``on_block`` turns
  the block's record into escape steps and stops once every trial has left. A
  trial's escape step is the first :math:`t \ge 1` after which it is outside; it
  keeps moving afterwards (its later path is ignored) so that every step stays one
  tensor operation for all trials.
* mini-batches: ``batch_size`` samples drawn uniformly *with replacement* from
  the training set at every iteration, independently per trial, from one seeded
  :class:`torch.Generator` in blocks of ``(steps, trials, batch_size)`` indices
  (:func:`minibatch_indices`): one block for the warm-up, then one per ``chunk``.
  Every optimizer setting replays the same index stream (common random numbers),
  so differences between optimizers are not sampling noise of the data order.
* epochs (LCAM's running mean, AdaRem's :math:`\lambda^\tau`): ``new_epoch()`` every
  ``epoch_length`` iterations of the main run, the first at its step 0 (a fresh
  epoch after the warm-up).

:func:`simulate_looped` is the reference: :func:`lcamlab.experiments.trials.looped`
runs the same body once per trial on a one-trial view of the same random stream,
with autograd on the literal loss instead of the analytic gradient, and stops each
trial at its escape; the tests and ``lcamlab bench escape`` check that both give
the same escape steps.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lcamlab.escape.landscape import StyblinskiTangLandscape, styblinski_tang
from lcamlab.escape.regions import ExitRegion
from lcamlab.experiments.registry import OptimizerSpec
from lcamlab.experiments.trials import TrialProblem, looped, run_trials

__all__ = [
    "minibatch_indices",
    "EscapeProblem",
    "SimulationResult",
    "simulate_batched",
    "simulate_looped",
    "cpu_threads",
]


def minibatch_indices(
    generator: torch.Generator, steps: int, trials: int, batch_size: int, n_samples: int, device: torch.device
) -> Tensor:
    """One block of mini-batch indices, ``(steps, trials, batch_size)`` (the shared random stream)."""
    return torch.randint(n_samples, (steps, trials, batch_size), generator=generator, device=device)


def _grad_from_y(y: Tensor, root: Tensor, batch_dim: int | None, constants: tuple[Tensor, Tensor]) -> Tensor:
    r""":math:`\sqrt k \cdot \operatorname{mean}_b f'(y_b)`, with :math:`f'(y) = (2y^2 - 16)\,y + 5/2`.

    ``constants`` are the 0-dim tensors -16 and 5/2 (two fused multiply-adds, no temporaries).
    """
    minus_16, five_halves = constants
    g = torch.addcmul(five_halves, torch.addcmul(minus_16, y, y, value=2.0), y)
    if batch_dim is not None:
        g = g.mean(batch_dim)
    return g.mul_(root)


class EscapeProblem:
    r"""The Styblinski-Tang escape landscape as a :class:`~lcamlab.experiments.trials.TrialProblem`.

    .. math::

        u = \sqrt k\,\theta, \qquad
        L = \tfrac1B\textstyle\sum_b f(u - x_b), \qquad
        g = \sqrt k\,\tfrac1B\textstyle\sum_b f'(u - x_b)

    Args:
        landscape: training set and critical points (its device and dtype are used).
        sqrt_k: per-trial :math:`\sqrt k`, ``(trials,)`` or ``(trials, 1)``.
        batch_size: samples per mini-batch.
        batch_axis: keep the batch axis of the indices and the kernel even at batch
            size 1 (the warm-up's arithmetic); otherwise batch size 1 draws
            ``(steps, trials)`` indices and uses the batch-free kernel.

    A block (:meth:`draw`) is the ``(steps, trials[, batch_size])`` index tensor of
    :func:`minibatch_indices`; a step's batch is its row of indices.
    """

    def __init__(self, landscape: StyblinskiTangLandscape, sqrt_k: Tensor, batch_size: int = 1, *,
                 batch_axis: bool = False) -> None:
        self.landscape = landscape
        self.batch_size = int(batch_size)
        self.batch_axis = bool(batch_axis)
        device, dtype = landscape.device, landscape.dtype
        self.root = sqrt_k.to(device=device, dtype=dtype).reshape(-1, 1)
        self.trials = int(self.root.shape[0])
        self._constants = (torch.full((), -16.0, dtype=dtype, device=device),
                           torch.full((), 2.5, dtype=dtype, device=device))

    def with_batch_axis(self) -> "EscapeProblem":
        """The same trials with the batch axis kept at batch size 1 (see ``batch_axis``)."""
        return EscapeProblem(self.landscape, self.root, self.batch_size, batch_axis=True)

    def rescaled(self, theta: Tensor) -> Tensor:
        r""":math:`u = \sqrt k\,\theta`."""
        return theta * self.root

    # -- the TrialProblem protocol --------------------------------------------------------

    def draw(self, generator: torch.Generator, steps: int) -> Tensor:
        indices = minibatch_indices(generator, steps, self.trials, self.batch_size, self.landscape.n_samples,
                                    self.landscape.device)
        return indices.squeeze(2) if self.batch_size == 1 and not self.batch_axis else indices

    def step_batch(self, block: Tensor, step: int) -> Tensor:
        return block[step]

    def loss_and_grad(self, theta: Tensor, batch: Tensor, *, need_loss: bool = True) -> tuple[Tensor | None, Tensor]:
        u = self.rescaled(theta)
        data = self.landscape.data
        if batch.dim() == 1:  # one sample per trial: no batch axis
            y = u - data.index_select(0, batch)
            grad = _grad_from_y(y, self.root, None, self._constants)
            return (styblinski_tang(y) if need_loss else None), grad
        y = u.unsqueeze(1) - data[batch]
        grad = _grad_from_y(y, self.root, 1, self._constants)
        return (styblinski_tang(y).mean(1) if need_loss else None), grad

    def minibatch_loss(self, theta: Tensor, batch: Tensor) -> Tensor:
        """The literal loss :math:`\\frac1B\\sum_b f(\\sqrt k\\,\\theta - x_b)` per trial (the autograd reference)."""
        u = self.rescaled(theta)
        data = self.landscape.data
        if batch.dim() == 1:
            return styblinski_tang(u - data.index_select(0, batch))
        return styblinski_tang(u.unsqueeze(1) - data[batch]).mean(1)

    def subset(self, index: slice) -> "EscapeProblem":
        return EscapeProblem(self.landscape, self.root[index], self.batch_size, batch_axis=self.batch_axis)

    def slice_block(self, block: Tensor, index: slice) -> Tensor:
        return block[:, index]


@dataclass
class SimulationResult:
    """Escape step per trial (``budget + 1`` where censored or diverged), flags, final positions and timing.

    ``diverged``: the trial's position overflowed (a NaN "outside" value) before any escape:
    neither escaped nor censored (the fused loop's rule, :class:`lcamlab.escape.fused.FusedResult`).

    ``iterations``: steps taken after the warm-up (batched); warm-up plus steps,
    summed over trials (looped).
    """

    escape_step: np.ndarray
    escaped: np.ndarray
    final_theta: np.ndarray
    iterations: int
    seconds: float
    diverged: np.ndarray


@contextlib.contextmanager
def cpu_threads(device: torch.device, threads: int = 1):
    """Run CPU tensor code with ``threads`` intra-op threads, restoring the setting afterwards.

    The simulation's tensors are small (trials x dim); splitting them over
    threads only adds synchronisation, which on a shared, busy machine costs
    far more than the arithmetic.
    """
    if torch.device(device).type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _stream_generator(seed: int, device: torch.device) -> torch.Generator:
    generator = torch.Generator(device=device)
    generator.manual_seed(int(seed) + 1)  # seed itself draws the training set
    return generator


def _overrides(spec: OptimizerSpec, lcam_mean: str) -> dict[str, Any]:
    """Build overrides of the escape experiments: LCAM's running mean."""
    return {"mean": lcam_mean} if spec.kind == "lcam" else {}


class _Left(Exception):
    """Raised by the looped reference's ``on_step`` when its one trial has left (stops the run there)."""

    def __init__(self, step: int) -> None:
        super().__init__(step)
        self.step = step


def _simulate(problem: TrialProblem, spec: OptimizerSpec, region: ExitRegion, *, budget: int, seed: int,
              epoch_length: int, lcam_mean: str, chunk: int, warmup: int, gradient: str = "analytic",
              warm_problem: TrialProblem | None = None, stop_at_escape: bool = False,
              progress: Callable[[int], None] | None = None) -> SimulationResult:
    """One optimizer on every trial of ``problem``: the body of both the batched run and the looped reference."""
    landscape = problem.landscape
    device, dtype = landscape.device, landscape.dtype
    trials = problem.trials
    started = time.perf_counter()
    start_u = landscape.tensor(region.start).expand(trials, -1)
    boundary = landscape.tensor(region.boundary)
    direction = landscape.tensor(region.direction)
    offset = region.offset(boundary, direction)
    theta = (start_u / problem.root).contiguous().requires_grad_(True)
    optimizer = spec.build([theta], trial_axis=True, **_overrides(spec, lcam_mean))
    escape_step = torch.full((trials,), budget + 1, dtype=torch.long, device=device)
    escaped = torch.zeros(trials, dtype=torch.bool, device=device)
    diverged = torch.zeros(trials, dtype=torch.bool, device=device)
    generator = _stream_generator(seed, device)
    # per-coordinate "outside" of every step of a block; reduced once per block,
    # because a small reduction per step costs more than the whole gradient
    outside = torch.empty(min(chunk, budget), trials, landscape.dim, dtype=dtype, device=device)

    def put_back(t: int, loss: Tensor | None) -> None:
        theta.copy_(start_theta)

    def record(t: int, loss: Tensor | None) -> None:
        s = t % chunk
        region.outside(problem.rescaled(theta), offset, direction, out=outside[s])
        if stop_at_escape and bool(((torch.amax(outside[s], 1) > 0) | torch.isnan(outside[s]).any(1)).all()):
            raise _Left(t)

    def bookkeeping(block_start: int, steps: int) -> bool:
        nonlocal escape_step, escaped, diverged
        crossed = torch.amax(outside[:steps], 2) > 0
        # a NaN "outside" value is a diverged position; it ends the trial, before any crossing at that step
        lost = torch.isnan(outside[:steps]).any(2)
        event = crossed | lost
        first = torch.argmax(event.to(torch.uint8), dim=0)
        fresh = event.any(0) & ~escaped & ~diverged
        at_first_lost = lost.gather(0, first.unsqueeze(0)).squeeze(0)
        diverged |= fresh & at_first_lost
        fresh &= ~at_first_lost
        escape_step = torch.where(fresh, first + (block_start + 1), escape_step)
        escaped |= fresh
        if progress is not None:
            progress(block_start + steps)
        return bool((escaped | diverged).all())

    with torch.no_grad():
        if warmup:
            # the optimizer's state (moments, momentum, running mean) sees the noise at the
            # start point while the parameters are put back after every step
            start_theta = theta.detach().clone()
            run_trials(warm_problem or problem, optimizer, theta, steps=warmup, generator=generator, block=warmup,
                       gradient=gradient, on_step=put_back)
        try:
            steps_done = run_trials(problem, optimizer, theta, steps=budget, generator=generator, block=chunk,
                                    epoch_length=epoch_length, epoch_at_start=True, gradient=gradient,
                                    on_step=record, on_block=bookkeeping)
        except _Left as left:
            steps_done = left.step + 1
            bookkeeping(left.step - left.step % chunk, left.step % chunk + 1)
    return SimulationResult(
        escape_step=escape_step.cpu().numpy(),
        escaped=escaped.cpu().numpy(),
        final_theta=theta.detach().cpu().numpy(),
        iterations=steps_done,
        seconds=time.perf_counter() - started,
        diverged=diverged.cpu().numpy(),
    )


def simulate_batched(
    landscape: StyblinskiTangLandscape,
    spec: OptimizerSpec,
    sqrt_k: Tensor,
    region: ExitRegion,
    *,
    budget: int,
    batch_size: int = 1,
    seed: int = 0,
    epoch_length: int | None = None,
    lcam_mean: str = "epoch",
    chunk: int = 256,
    warmup: int = 0,
    progress: Callable[[int], None] | None = None,
    threads: int = 1,
) -> SimulationResult:
    r"""Run all trials of one optimizer as one ``(trials, dim)`` tensor until all left or ``budget``.

    .. math::

        u_t = \sqrt k\,\theta_t, \qquad
        g_t = \sqrt k\,\tfrac1B\textstyle\sum_b f'(u_t - x_{b,t}), \qquad
        \theta_{t+1} = \text{optimizer}(\theta_t, g_t)

    Args:
        landscape: training set and critical points (its device and dtype are used).
        spec: the optimizer (LCAM gets ``mean=lcam_mean`` as a build override).
        sqrt_k: per-trial :math:`\sqrt k`, shape ``(trials,)``.
        region: start point and exit rule.
        budget: censoring iteration.
        batch_size, seed, epoch_length, lcam_mean, chunk, warmup: see
            :class:`~lcamlab.escape.config.EscapeConfig`.
        progress: called with the number of iterations done after every chunk.
        threads: torch's intra-op threads on the CPU during the run (default 1: see :func:`cpu_threads`).

    Returns:
        :class:`SimulationResult`.
    """
    problem = EscapeProblem(landscape, sqrt_k, batch_size)
    epoch_length = epoch_length or max(1, landscape.n_samples // batch_size)
    with cpu_threads(landscape.device, threads):
        return _simulate(problem, spec, region, budget=budget, seed=seed,
                         epoch_length=epoch_length, lcam_mean=lcam_mean, chunk=chunk, warmup=warmup,
                         warm_problem=problem.with_batch_axis(), progress=progress)


def simulate_looped(
    landscape: StyblinskiTangLandscape,
    spec: OptimizerSpec,
    sqrt_k: Tensor,
    region: ExitRegion,
    *,
    budget: int,
    batch_size: int = 1,
    seed: int = 0,
    epoch_length: int | None = None,
    lcam_mean: str = "epoch",
    chunk: int = 256,
    warmup: int = 0,
    trial_subset: Sequence[int] | None = None,
) -> SimulationResult:
    r"""The reference: one trial at a time, autograd on the literal loss, each stopping at its escape.

    Each trial reads its column of the same mini-batch index stream as
    :func:`simulate_batched` (drawn in the same blocks), differentiates
    :math:`\frac1B\sum_b f(\sqrt k\,\theta - x_b)` with autograd, steps its own
    one-trial optimizer and stops at its escape.

    Args:
        trial_subset: indices of the trials to run (default all); the results
            have one row per selected trial, in that order.
        Others: as :func:`simulate_batched`.
    """
    problem = EscapeProblem(landscape, sqrt_k, batch_size)
    epoch_length = epoch_length or max(1, landscape.n_samples // batch_size)
    chosen = None if trial_subset is None else [int(i) for i in trial_subset]

    def body(view: TrialProblem, trial: int) -> SimulationResult:
        return _simulate(view, spec, region, budget=budget, seed=seed,
                         epoch_length=epoch_length, lcam_mean=lcam_mean, chunk=chunk, warmup=warmup,
                         gradient="autograd", stop_at_escape=True)

    with cpu_threads(landscape.device):
        runs = looped(problem, body, chosen)
    if not runs:
        return SimulationResult(np.zeros(0, np.int64), np.zeros(0, bool), np.zeros((0, landscape.dim)), 0, 0.0,
                                np.zeros(0, bool))
    escape_step = np.concatenate([run.escape_step for run in runs])
    return SimulationResult(
        escape_step=escape_step,
        escaped=escape_step <= budget,
        final_theta=np.concatenate([run.final_theta for run in runs]).astype(np.float64),
        iterations=sum(warmup + run.iterations for run in runs),
        seconds=sum(run.seconds for run in runs),
        diverged=np.concatenate([run.diverged for run in runs]),
    )
