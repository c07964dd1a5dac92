r"""The batched trial runner and its per-trial looped reference.

Thousands of independent trials of a stochastic optimisation problem advance as
one ``(trials, ...)`` parameter tensor (dim 0 of every parameter is the trial
axis of lcamlab's optimizers; torch's elementwise optimizers need nothing). A
step is a fixed handful of tensor operations whatever the number of trials:

.. math::

    \text{batch}_t \sim \text{stream}(\text{seed}), \qquad
    L_t, g_t = \text{problem.loss\_and\_grad}(\theta_{t-1}, \text{batch}_t), \qquad
    \theta_t = \text{optimizer.step}(\theta_{t-1}, g_t;\ L_t)

The problem's physics (a spring toy, the Styblinski-Tang escape landscape) lives
in its own module and reaches the runner through the small :class:`TrialProblem`
protocol. The data stream depends only on the seed, never on the parameters, so
runs of different optimizers with the same seed see the same mini-batches
(common random numbers) and are compared trial by trial.

:func:`run_trials` is the batched runner: it calls ``new_epoch()`` at epoch
boundaries (:func:`lcamlab.optim.start_epoch`), hands the loss to the optimizers
that take it (:func:`lcamlab.optim.optimizer_step`), and reports every step and
every block of pre-drawn randomness to the caller's hooks (recording, escape
checks, early stops). :func:`looped` is the reference: the same body run once
per trial on a one-trial view of the problem that reads that trial's column of
the very same random stream; batched == looped checks that trials are independent
and that the batched arithmetic is right (``gradient="autograd"`` differentiates
the literal loss instead of the problem's analytic gradient).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import torch
from torch import Tensor

from lcamlab.optim import optimizer_step, start_epoch, takes_loss

__all__ = ["TrialProblem", "run_trials", "looped", "TrialView", "autograd_loss_and_grad"]

R = TypeVar("R")


class TrialProblem(Protocol):
    """What the runner needs from a problem with ``trials`` independent trials."""

    trials: int

    def draw(self, generator: torch.Generator, steps: int) -> Any:
        """The random data of ``steps`` consecutive steps for every trial (one block)."""

    def step_batch(self, block: Any, step: int) -> Any:
        """Step ``step``'s mini-batch within a block returned by :meth:`draw`."""

    def loss_and_grad(self, theta: Tensor, batch: Any, *, need_loss: bool = True) -> tuple[Tensor | None, Tensor]:
        """``(loss (trials,) or None, gradient like theta)`` at ``theta`` on ``batch``."""

    def minibatch_loss(self, theta: Tensor, batch: Any) -> Tensor:
        """The differentiable mini-batch loss, ``(trials,)`` (the autograd reference)."""

    def subset(self, index: slice) -> "TrialProblem":
        """The trials ``index`` as a problem of their own."""

    def slice_block(self, block: Any, index: slice) -> Any:
        """Those trials' part of a block."""


def autograd_loss_and_grad(problem: TrialProblem, theta: Tensor, batch: Any) -> tuple[Tensor, Tensor]:
    """Loss and gradient of the literal :meth:`TrialProblem.minibatch_loss` by autograd.

    Trials are independent, so the gradient of the summed loss is every trial's own gradient.
    """
    with torch.enable_grad():
        leaf = theta.detach().requires_grad_(True)
        loss = problem.minibatch_loss(leaf, batch)
        (grad,) = torch.autograd.grad(loss.sum(), leaf)
    return loss.detach(), grad


def run_trials(
    problem: TrialProblem,
    optimizer: torch.optim.Optimizer,
    theta: Tensor,
    *,
    steps: int,
    generator: torch.Generator,
    block: int = 1,
    epoch_length: int | None = None,
    epoch_at_start: bool = False,
    gradient: str = "analytic",
    need_loss: bool | None = None,
    on_step: Callable[[int, Tensor | None], None] | None = None,
    on_block: Callable[[int, int], bool] | None = None,
) -> int:
    """Advance every trial of ``problem`` by up to ``steps`` optimizer steps, in place.

    Args:
        problem: the trials (:class:`TrialProblem`).
        optimizer: built over ``[theta]`` (with ``trial_axis=True`` for lcamlab's).
        theta: the ``(trials, ...)`` parameter, updated in place.
        steps: number of steps.
        generator: the random stream (advanced by ``problem.draw``).
        block: steps of randomness drawn at once (part of the stream's definition).
        epoch_length: call ``new_epoch()`` every so many steps (``None``: never).
        epoch_at_start: also call it before step 0 (a fresh epoch after a warm-up).
        gradient: ``"analytic"`` (the problem's formulas) or ``"autograd"`` (the literal loss).
        need_loss: compute the loss at every step (default: only when the optimizer takes it).
        on_step: ``on_step(t, loss)`` after step ``t`` (0-based) with that step's loss
            (evaluated at the parameters before the step; ``None`` when not computed).
        on_block: ``on_block(block_start, steps_in_block)`` after every block; return
            True to stop early.

    Returns:
        the number of steps taken.
    """
    for name, value in (("steps", steps), ("block", block)):
        if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "steps" else 1):
            raise ValueError(f"Invalid {name}: {value!r} (must be an int >= {0 if name == 'steps' else 1})")
    if epoch_length is not None and (isinstance(epoch_length, bool) or not isinstance(epoch_length, int)
                                     or epoch_length < 1):
        raise ValueError(f"Invalid epoch_length: {epoch_length!r} (must be an int >= 1, or None)")
    if gradient not in ("analytic", "autograd"):
        raise ValueError(f"Invalid gradient: {gradient!r} (choose 'analytic' or 'autograd')")
    wants_loss = takes_loss(optimizer) if need_loss is None else bool(need_loss) or takes_loss(optimizer)
    done = 0
    for block_start in range(0, steps, block):
        count = min(block, steps - block_start)
        data = problem.draw(generator, count)
        for s in range(count):
            t = block_start + s
            if epoch_length is not None and t % epoch_length == 0 and (t > 0 or epoch_at_start):
                start_epoch(optimizer)
            batch = problem.step_batch(data, s)
            if gradient == "autograd":
                loss, grad = autograd_loss_and_grad(problem, theta, batch)
            else:
                loss, grad = problem.loss_and_grad(theta, batch, need_loss=wants_loss)
            theta.grad = grad
            optimizer_step(optimizer, loss)
            if on_step is not None:
                on_step(t, loss)
        done = block_start + count
        if on_block is not None and on_block(block_start, count):
            break
    return done


class _SharedStream:
    """The parent's blocks, drawn once and served to every trial's view in the same order.

    Each trial's body re-creates its generator from the seed and draws the same
    sequence of blocks, so the k-th draw of every view is the same block: it is
    drawn by the first view that needs it and read back by the others (the
    reference then costs one draw per block, like the batched run, not one per trial).
    """

    def __init__(self, parent: "TrialProblem") -> None:
        self.parent = parent
        self.blocks: list[tuple[int, Any]] = []  # (steps, block) in draw order

    def block(self, position: int, generator: torch.Generator, steps: int, served: int) -> Any:
        if position < len(self.blocks):
            drawn_steps, block = self.blocks[position]
            if drawn_steps == steps:
                return block
            raise ValueError(f"Invalid looped reference: draw {position} asked for {steps} steps, "
                             f"an earlier trial drew {drawn_steps} (the body must draw the same blocks)")
        # a block no earlier trial reached: bring this view's generator to where the batched
        # run's would be (replaying the blocks it was served from the store), then draw it
        for steps_j, _ in self.blocks[served:position]:
            self.parent.draw(generator, steps_j)
        block = self.parent.draw(generator, steps)
        self.blocks.append((steps, block))
        return block


class TrialView:
    """A one-trial view of a problem that reads that trial's column of the shared random stream.

    :meth:`draw` returns trial ``index``'s part of the block the batched run
    would draw at this point of the stream (all trials' randomness is drawn, so
    the stream is exactly the batched run's).
    """

    def __init__(self, parent: TrialProblem, index: int, stream: _SharedStream | None = None) -> None:
        self.parent = parent
        self.index = slice(index, index + 1)
        self.problem = parent.subset(self.index)
        self.trials = 1
        self._stream = stream if stream is not None else _SharedStream(parent)
        self._draws = 0       # blocks asked for so far
        self._advanced = 0    # blocks this view's generator has really drawn (a prefix of the store)

    def draw(self, generator: torch.Generator, steps: int) -> Any:
        position = self._draws
        known = position < len(self._stream.blocks)
        block = self._stream.block(position, generator, steps, self._advanced)
        if not known:
            self._advanced = position + 1
        self._draws += 1
        return self.parent.slice_block(block, self.index)

    def step_batch(self, block: Any, step: int) -> Any:
        return self.problem.step_batch(block, step)

    def loss_and_grad(self, theta: Tensor, batch: Any, *, need_loss: bool = True):
        return self.problem.loss_and_grad(theta, batch, need_loss=need_loss)

    def minibatch_loss(self, theta: Tensor, batch: Any) -> Tensor:
        return self.problem.minibatch_loss(theta, batch)

    def subset(self, index: slice) -> TrialProblem:
        return self.problem.subset(index)

    def slice_block(self, block: Any, index: slice) -> Any:
        return self.problem.slice_block(block, index)

    def __getattr__(self, name: str) -> Any:  # the problem's other attributes (knobs, dtype, ...)
        return getattr(self.problem, name)


def looped(problem: TrialProblem, body: Callable[[TrialProblem, int], R], trials: list[int] | None = None) -> list[R]:
    """The per-trial reference: ``body(view, i)`` for every trial ``i`` on its :class:`TrialView`.

    ``body`` is the same function that runs the batched experiment (building its
    own optimizer and generator from the seed), so the reference differs from the
    batched run only in running one trial at a time on that trial's slice of the
    same random stream.
    """
    chosen = range(problem.trials) if trials is None else trials
    stream = _SharedStream(problem)
    return [body(TrialView(problem, i, stream), i) for i in chosen]
