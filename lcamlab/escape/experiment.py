r"""The saddle-escape experiment: one table of per-trial exit steps per configuration.

Protocol (the Adai paper, Theorems 1-2, Propositions 1 and 3; the **decisions** are the
project's, see :mod:`lcamlab.escape`): every trial starts on the index-1 saddle of the
actual training loss; its negative Hessian eigenvalue :math:`k\,L_0''(u_\text{ridge}) < 0`
is tuned by the sharpness :math:`k` under the data noise; a trial *leaves* once
:math:`|u_0 - u_\text{ridge}|` exceeds ``radius``
(:func:`~lcamlab.escape.regions.saddle_region`); trials still inside after ``budget``
iterations are censored. The warm-up, the mini-batch stream and the epochs are those
of :mod:`lcamlab.escape.simulate`; the learning rates and the grid those of
:mod:`lcamlab.escape.config`. (The valley experiment is the sharp-valley design of
:mod:`lcamlab.escape.design`.)

:func:`run_escape` runs every optimizer of a config with
:func:`~lcamlab.escape.simulate.simulate_batched`; the tests and ``lcamlab bench
escape`` check it against the per-trial reference
:func:`~lcamlab.escape.simulate.simulate_looped`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import torch

from lcamlab.escape.config import EscapeConfig
from lcamlab.escape.landscape import StyblinskiTangLandscape
from lcamlab.escape.regions import saddle_region
from lcamlab.escape.simulate import simulate_batched

__all__ = ["make_landscape", "trial_layout", "run_escape"]


def _resolve_device(device: str) -> torch.device:
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"Invalid device: {device!r} (CUDA is not available here; use --device cpu)")
    return resolved


def make_landscape(config: EscapeConfig) -> StyblinskiTangLandscape:
    """The training set and critical points of ``config`` on its device and dtype."""
    return StyblinskiTangLandscape(
        config.dim, config.n_samples, config.noise_scale, seed=config.seed,
        device=_resolve_device(config.device), dtype=config.torch_dtype(),
    )


def trial_layout(config: EscapeConfig) -> tuple[np.ndarray, np.ndarray]:
    """Per-row sharpness and trial index: rows are sharpness-major, ``k_index * trials + trial``."""
    ks = np.repeat(np.asarray(config.sharpness, dtype=np.float64), config.trials)
    trial = np.tile(np.arange(config.trials), len(config.sharpness))
    return ks, trial


def run_escape(
    config: EscapeConfig,
    *,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    r"""Run ``config`` for every optimizer; one row per trial.

    Returns:
        ``(frame, info)``: ``frame`` has columns ``experiment, optimizer, k, trial,
        escape_step`` (``budget + 1`` where censored or diverged), ``escaped``, ``diverged`` (the position
        overflowed before any escape: neither escaped nor censored), ``exposure``
        (:math:`\min(T, \text{budget})`), ``hessian`` (the negative Hessian eigenvalue
        at the saddle in :math:`\theta`, :math:`k L_0''(u_\text{ridge})`); ``info`` holds the
        seconds per optimizer, the critical points and the start point.
    """
    landscape = make_landscape(config)
    region = saddle_region(landscape, config.radius)
    ks, trial = trial_layout(config)
    sqrt_k = torch.as_tensor(np.sqrt(ks))
    points = landscape.points
    curvature = points.curvature_boundary[0]
    frames, seconds = [], {}
    bar = None
    for spec, key in zip(config.optimizers, config.keys):
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=config.budget, desc=f"{config.experiment} {key}", leave=False)
        done = [0]

        def _progress(steps: int) -> None:
            if bar is not None:
                bar.update(steps - done[0])
            done[0] = steps

        result = simulate_batched(landscape, spec, sqrt_k, region, progress=_progress,
                                  **config.simulation_options())
        if bar is not None:
            bar.close()
        seconds[key] = round(result.seconds, 3)
        if log is not None:
            diverged = int(result.diverged.sum())
            log(f"{config.experiment} {key}: {int(result.escaped.sum())}/{len(ks)} left in "
                f"{result.iterations} iterations, {result.seconds:.1f} s"
                + (f"; {diverged} diverged (their positions overflowed: a smaller k or learning rate)"
                   if diverged else ""))
        frames.append(pd.DataFrame({
            "experiment": config.experiment,
            "optimizer": key,
            "k": ks,
            "trial": trial,
            "escape_step": result.escape_step,
            "escaped": result.escaped,
            "diverged": result.diverged,
            "exposure": np.minimum(result.escape_step, config.budget),
            "hessian": ks * curvature,
        }))
    info = {
        "seconds_per_optimizer": seconds,
        "seconds_total": round(sum(seconds.values()), 3),
        "critical_points_u": {
            "shallow_min": points.shallow_min.tolist(), "boundary": points.boundary.tolist(),
            "deep_min": points.deep_min.tolist(), "barrier": points.barrier.tolist(),
            "curvature_shallow": points.curvature_shallow.tolist(),
            "curvature_boundary": points.curvature_boundary.tolist(),
        },
        "start_u": region.start.tolist(),
    }
    return pd.concat(frames, ignore_index=True), info

