r"""Saddle and valley escape on the Styblinski-Tang training loss (the Adai paper, Appendix E, Figure 6).

**The diffusion picture.** A stochastic optimizer does not roll to the bottom of
a valley and stay: mini-batch noise keeps kicking it, so it jiggles around the
minimum like a particle in a warm bath. Every so often a run of kicks pushes it
over the ridge into the next valley. Such rare, memoryless events arrive at a
constant rate :math:`\Gamma`, so escape times are exponential (the Kramers escape
problem), and the rate depends on the barrier height :math:`\Delta L` over the
"temperature" the optimizer gives the noise:

.. math:: \Gamma \propto \exp\!\left(-\frac{\Delta L}{T}\right).

The Adai paper (Theorem 3, Propositions 2 and 4) works out the temperature: for SGD,
momentum and Adai it grows with the valley's sharpness :math:`k` (the gradient
noise grows with the Hessian), so :math:`\log\Gamma` is linear in :math:`1/k` and
sharp valleys are left much faster than flat ones (they *favour flat minima*);
Adam divides the noise by its own scale, its temperature grows only like
:math:`\sqrt k`, and :math:`\log\Gamma` is linear in :math:`1/\sqrt k`. At a saddle point
(the Adai paper, Theorems 1-2, Propositions 1 and 3) nothing is rare: the displacement
grows exponentially along the negative-curvature direction, with momentum
adding a drift.

**What is here.**

* :mod:`lcamlab.escape.landscape`: the training loss
  :math:`\frac1N\sum_j f(\sqrt k\,\theta - x_j)` over Gaussian samples, its exact
  critical points per coordinate (roots of the data-moment quartic's derivative).
* :mod:`lcamlab.escape.config`: :class:`EscapeConfig` (the cache key), the sharpness
  grids, and the calibrated learning rates (:data:`ESCAPE_LRS`, a table passed to
  :func:`lcamlab.experiments.registry.suite`) of SGD, momentum (0.9 and 0.925),
  Adam, Adai, AdaRem and LCAM in both orientations.
* :mod:`lcamlab.escape.regions`: start points and exit rules (valley, saddle).
* :mod:`lcamlab.escape.simulate`: the landscape as a trial problem of
  :mod:`lcamlab.experiments.trials`; all trials of all sharpness values as one tensor
  on the CPU or CUDA (``simulate_batched``) and the per-trial autograd reference
  (``simulate_looped``).
* :mod:`lcamlab.escape.experiment`: ``run_escape`` (one table per configuration).
* :mod:`lcamlab.escape.rates`: the rate, slope, saddle and LCAM tables, built on
  :mod:`lcamlab.experiments.stats` (censored exponential rates with 95% intervals,
  the exponential goodness of fit, the :math:`1/k` and :math:`1/\sqrt k` fits).
* :mod:`lcamlab.escape.cache`: results in ``data/escape/`` through the suite's
  verified cache (:mod:`lcamlab.experiments.cache`).
* :mod:`lcamlab.escape.report`: the notebook's printed findings, computed from the tables.
* :mod:`lcamlab.escape.plots`: the notebook's figures.
* :mod:`lcamlab.escape.cli`: ``lcamlab escape valley|saddle|points|show|run``.

**Escape v2** (the experiment that tests the diffusion theory itself; the
sections above describe the first experiment, which the saddle part and
``lcamlab escape valley`` still run):

* :mod:`lcamlab.escape.fused`: the fused runner, gradient, optimizer update,
  escape check and kick diagnostics in one compiled loop (:file:`fused_kernel.cpp`),
  float32, a counter-based Philox stream per trial (or the eager runner's stream
  for the parity tests), noise arms ``data`` / ``gauss`` / ``iso``;
* :mod:`lcamlab.escape.design`: the sharp-valley design (start at the global
  minimum, the Adai paper, Appendix E), per-(optimizer, arm) k grids calibrated by measured
  escape times, per-k budgets, LCAM with its controls, the power calculation,
  checkpoints per (optimizer, arm, k) and the cached point table;
* :mod:`lcamlab.escape.analysis`: per point rates, exponential tests and jump
  diagnostics; per (optimizer, arm) the maximum-likelihood Kramers fit
  :math:`\log\Gamma = a + p\log k - c\,k^{-\alpha}` with a profile interval of
  :math:`\alpha`; LCAM against its controls; the old two-line view.
* :mod:`lcamlab.escape.fused_numpy`: the kernel's loop in NumPy, the runner used where no
  C++ compiler is found (one line on stderr says so);
* :mod:`lcamlab.escape.widgets`: the notebook's sliders (sharpness, learning rate, optimizer,
  noise) over an escape-time histogram simulated live
  (:func:`lcamlab.escape.design.sample_escape_times`).

**Decisions** (the Adai paper's Appendix E lost its formulas in extraction; the project's choices):

1. The critical points are those of the *actual training loss* (a quartic per
   coordinate with the data's empirical moments as coefficients), not the
   noiseless -2.90 / 0.157 / 2.75: with :math:`\sigma = 1` data the valleys sit near
   -2.35 and +2.10 and the ridge near 0.25 (barrier about 7.4 instead of 25).
2. Every trial starts at the bottom of the shallower valley; a valley trial
   escapes at the first iteration after which any coordinate is past its ridge
   (option: all coordinates at once); trials not out within the budget are censored.
3. The rate is the censored maximum-likelihood estimate escapes / exposure with
   the exact Poisson (chi-square) 95% interval (profile likelihood on request).
4. Mini-batches of size 1 are drawn with replacement; an "epoch" (LCAM's running
   mean, AdaRem's :math:`\lambda^\tau`) is one pass, ``n_samples // batch_size`` iterations;
   LCAM uses the LCAM paper's epoch mean.
5. The saddle is the index-1 saddle of the same loss (coordinate 0 on its ridge,
   the rest at their minima); its negative curvature :math:`k L_0''(u_\text{ridge})` is
   tuned by :math:`k`, and a trial leaves when :math:`|u_0 - u_\text{ridge}| > r` (``radius``).
6. Learning rates are calibrated as in the Adai paper (Adai ten times momentum's; SGD-like
   temperatures); see :mod:`lcamlab.escape.config` for the rates and why.
7. Before the clock starts, each optimizer's state is warmed up for 1000 steps at
   the start point with the parameters held there (the Adai paper, Assumption 2,
   quasi-equilibrium); ``warmup=0`` gives the Adai paper's cold start, whose Adam and Adai
   escape times are measurably not exponential.
"""

from lcamlab.escape.cache import EscapeResult, load_or_run, load_result, result_path
from lcamlab.escape.config import (
    ESCAPE_LRS,
    OPTIMIZER_KEYS,
    EscapeConfig,
    default_optimizers,
    default_saddle_config,
    default_sharpness,
    quick_config,
    saddle_sharpness,
)
from lcamlab.escape.experiment import calibration_report, run_escape, run_saddle_escape, run_valley_escape
from lcamlab.escape.landscape import CriticalPoints, StyblinskiTangLandscape, critical_points, styblinski_tang
from lcamlab.escape.rates import rate_table, saddle_exponent_table, saddle_table, slope_table
from lcamlab.escape.regions import ExitRegion, saddle_region, valley_region
from lcamlab.escape.design import DesignConfig, load_or_run_design, run_design, sharp_valley_region
from lcamlab.escape.fused import simulate_fused
from lcamlab.escape.simulate import EscapeProblem, simulate_batched, simulate_looped
from lcamlab.experiments.stats import EscapeRate, LinearFit, censored_exponential_rate, exponential_gof, fit_log_rate

__all__ = [
    "DesignConfig",
    "load_or_run_design",
    "run_design",
    "sharp_valley_region",
    "simulate_fused",
    "ESCAPE_LRS",
    "OPTIMIZER_KEYS",
    "EscapeConfig",
    "EscapeProblem",
    "EscapeResult",
    "EscapeRate",
    "ExitRegion",
    "LinearFit",
    "CriticalPoints",
    "StyblinskiTangLandscape",
    "calibration_report",
    "censored_exponential_rate",
    "critical_points",
    "default_optimizers",
    "default_saddle_config",
    "default_sharpness",
    "exponential_gof",
    "fit_log_rate",
    "load_or_run",
    "load_result",
    "quick_config",
    "rate_table",
    "result_path",
    "run_escape",
    "run_saddle_escape",
    "run_valley_escape",
    "saddle_exponent_table",
    "saddle_region",
    "saddle_sharpness",
    "saddle_table",
    "simulate_batched",
    "simulate_looped",
    "slope_table",
    "styblinski_tang",
    "valley_region",
]
