r"""Learning-rate schedules of the WRN/CIFAR experiments, as pure functions.

The learning rate of iteration ``iteration`` (0-based, within the epoch) of
epoch ``epoch`` (0-based) is a function of those two numbers only, so a resumed
run recomputes it exactly and the runner sets it on the host every iteration
(a Python float: no device synchronisation).

* ``step`` (000 Figures 3/4, the "saddle trap"): :math:`\times 0.2` at the end
  of the 31st, 61st and 91st epoch, i.e. 1-based epochs 1-31 at 0.1, 32-61 at
  0.02, 62-91 at 0.004, 92-150 at 0.0008.
* ``lcam-exp`` (000 Figure 5, "final training"): the base rate for the first 31
  epochs, then ``lr *= 0.99985`` before every iteration of epoch 32 onwards.
* ``wrn`` (the Wide-ResNet paper's protocol, 000 Table 1 baseline):
  :math:`\times 0.2` at 0-based epochs 60, 120 and 160 of 200.
* ``cosine`` (000 Table 1 baseline): cosine annealing from the base rate to 0,
  evaluated per iteration.
* ``step-scaled``: ``step`` for a run of ``E`` epochs instead of 150: the
  :math:`\times 0.2` drops at 0-based epochs ``round(m E / 150)`` for
  ``m`` in (31, 61, 91) (:func:`scaled_milestones`; E = 15: epochs 3, 6, 9), so
  the saddle-trap protocol keeps its shape at a laptop's epoch budget.
* ``lcam-exp-scaled``: ``lcam-exp`` for ``E`` epochs of ``n`` iterations: the
  base rate until 0-based epoch ``s = round(31 E / 150)``, then a per-iteration
  factor ``d`` chosen so the rate at the end equals the paper's
  (:math:`0.99985^{119 \cdot 391}`, CIFAR's 391 iterations of batch 128 for
  119 epochs): :math:`d = 0.99985^{119 \cdot 391 / ((E - s) n)}`
  (:func:`scaled_exp_decay`).

Drops are applied by repeated multiplication (``lr * 0.2 * 0.2``), the same
floating-point arithmetic as ``torch.optim.lr_scheduler.MultiStepLR`` and the
authors' in-place ``group["lr"] *= 0.2``.
"""

from __future__ import annotations

import math

__all__ = ["learning_rate", "STEP_MILESTONES", "WRN_MILESTONES", "LCAM_EXP_DECAY", "LCAM_EXP_START",
           "PAPER_EPOCHS", "PAPER_ITERATIONS", "scaled_milestones", "scaled_exp_start", "scaled_exp_decay"]

# 0-based epochs at whose start the rate is multiplied by 0.2 (000 section 4: after 31, 61, 91).
STEP_MILESTONES = (31, 61, 91)
# Zagoruyko & Komodakis: x0.2 at epochs 60, 120, 160 of 200.
WRN_MILESTONES = (60, 120, 160)
STEP_FACTOR = 0.2
# 000 Figure 5: lr *= 0.99985 before every iteration from (1-based) epoch 32 on.
LCAM_EXP_DECAY = 0.99985
LCAM_EXP_START = 31  # 0-based first epoch of the decay
# The paper's run length and CIFAR's iterations per epoch (50 000 images, batch 128).
PAPER_EPOCHS = 150
PAPER_ITERATIONS = 391


def scaled_milestones(epochs: int) -> tuple[int, ...]:
    """The step schedule's drop epochs scaled from 150 to ``epochs``: ``round(m * epochs / 150)``, each >= 1."""
    return tuple(max(1, round(m * epochs / PAPER_EPOCHS)) for m in STEP_MILESTONES)


def scaled_exp_start(epochs: int) -> int:
    """The first decaying epoch (0-based) of ``lcam-exp-scaled``: ``round(31 * epochs / 150)``."""
    return min(max(1, round(LCAM_EXP_START * epochs / PAPER_EPOCHS)), epochs - 1) if epochs > 1 else 0


def scaled_exp_decay(epochs: int, iterations_per_epoch: int) -> float:
    """The per-iteration factor of ``lcam-exp-scaled``: the paper's total decay over this run's decay iterations."""
    paper_steps = (PAPER_EPOCHS - LCAM_EXP_START) * PAPER_ITERATIONS
    our_steps = max(1, (epochs - scaled_exp_start(epochs)) * iterations_per_epoch)
    return LCAM_EXP_DECAY ** (paper_steps / our_steps)


def _stepped(base_lr: float, epoch: int, milestones: tuple[int, ...]) -> float:
    lr = float(base_lr)
    for milestone in milestones:
        if epoch >= milestone:
            lr = lr * STEP_FACTOR
    return lr


def learning_rate(
    schedule: str,
    base_lr: float,
    epoch: int,
    iteration: int,
    iterations_per_epoch: int,
    epochs: int,
) -> float:
    r"""The learning rate of one iteration.

    .. math::

        \text{step:}\quad \eta = \eta_0\, 0.2^{\#\{m \in (31, 61, 91):\, e \ge m\}}

        \text{lcam-exp:}\quad \eta = \eta_0\, 0.99985^{\max(0,\,(e-31)\,n + i + 1)}

        \text{wrn:}\quad \eta = \eta_0\, 0.2^{\#\{m \in (60, 120, 160):\, e \ge m\}}

        \text{cosine:}\quad \eta = \tfrac{\eta_0}{2}\bigl(1 + \cos(\pi\,\tfrac{e n + i}{E n})\bigr)

    with :math:`e` the 0-based epoch, :math:`i` the 0-based iteration within it,
    :math:`n` the iterations per epoch and :math:`E` the number of epochs
    (000 section 4; digest section 2).

    Args:
        schedule: ``"step"``, ``"lcam-exp"``, ``"wrn"``, ``"cosine"``, ``"step-scaled"`` or ``"lcam-exp-scaled"``.
        base_lr: :math:`\eta_0` (> 0).
        epoch: 0-based epoch.
        iteration: 0-based iteration within the epoch.
        iterations_per_epoch: mini-batches per epoch (> 0).
        epochs: total epochs of the run (> 0; used by ``cosine``).

    Returns:
        The learning rate, a Python float.
    """
    if not (isinstance(base_lr, (int, float)) and not isinstance(base_lr, bool)
            and math.isfinite(base_lr) and base_lr > 0):
        raise ValueError(f"Invalid base learning rate: {base_lr!r} (must be a finite number > 0)")
    for name, value, minimum in (("epoch", epoch, 0), ("iteration", iteration, 0),
                                 ("iterations_per_epoch", iterations_per_epoch, 1), ("epochs", epochs, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"Invalid {name}: {value!r} (must be an integer >= {minimum})")
    if iteration >= iterations_per_epoch:
        raise ValueError(
            f"Invalid iteration: {iteration} (must be < iterations_per_epoch = {iterations_per_epoch})"
        )
    if schedule == "step":
        return _stepped(base_lr, epoch, STEP_MILESTONES)
    if schedule == "wrn":
        return _stepped(base_lr, epoch, WRN_MILESTONES)
    if schedule == "lcam-exp":
        decays = (epoch - LCAM_EXP_START) * iterations_per_epoch + iteration + 1
        return float(base_lr) if decays <= 0 else float(base_lr) * LCAM_EXP_DECAY ** decays
    if schedule == "step-scaled":
        return _stepped(base_lr, epoch, scaled_milestones(epochs))
    if schedule == "lcam-exp-scaled":
        decays = (epoch - scaled_exp_start(epochs)) * iterations_per_epoch + iteration + 1
        if decays <= 0:
            return float(base_lr)
        return float(base_lr) * scaled_exp_decay(epochs, iterations_per_epoch) ** decays
    if schedule == "cosine":
        progress = (epoch * iterations_per_epoch + iteration) / (epochs * iterations_per_epoch)
        return 0.5 * float(base_lr) * (1.0 + math.cos(math.pi * min(progress, 1.0)))
    raise ValueError(f"Invalid schedule: {schedule!r} "
                     f"(choose one of step, lcam-exp, wrn, cosine, step-scaled, lcam-exp-scaled)")
