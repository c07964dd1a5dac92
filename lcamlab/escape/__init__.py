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

**What is here.** Two experiments on one landscape: the *valley* experiment (the
sharp-valley design: does escape follow Kramers' law, at the theory's temperature?) and
the *saddle* experiment (how fast each optimizer leaves an index-1 saddle).

* :mod:`lcamlab.escape.landscape`: the training loss
  :math:`\frac1N\sum_j f(\sqrt k\,\theta - x_j)` over Gaussian samples, its exact
  critical points per coordinate (roots of the data-moment quartic's derivative).
* :mod:`lcamlab.escape.regions`: start points and exit rules in :math:`u = \sqrt k\,\theta`
  (a half-space past the ridge, the saddle's slab).
* :mod:`lcamlab.escape.loop`: the fast escape step, one numba loop over tiles of trials
  (mini-batch draw or noise arm ``data`` / ``gauss`` / ``iso``, gradient, optimizer update,
  escape check, kick diagnostics; in the landscape's dtype, float32 for the design; a
  counter-based Philox stream per trial, or the eager runner's stream for the parity tests);
  :mod:`lcamlab.escape.fused` runs every trial of one optimizer through it.
* :mod:`lcamlab.escape.simulate`: the eager reference runner on the real :mod:`lcamlab.optim`
  optimizers, all trials of all sharpness values as one tensor on the CPU or CUDA
  (``simulate_batched``) and the per-trial autograd loop (``simulate_looped``).

The valley experiment (``lcamlab escape run``):

* :mod:`lcamlab.escape.design`: the sharp-valley design (every trial starts at the global,
  sharp minimum, the Adai paper, Appendix E), its learning rates (:data:`~lcamlab.escape.design.DESIGN_LRS`),
  per-(optimizer, arm) k grids calibrated by measured escape times, per-k budgets, LCAM with
  its controls, the power calculation, checkpoints per (optimizer, arm, k) and the cached
  point table;
* :mod:`lcamlab.escape.analysis`: per point rates, exponential tests and jump
  diagnostics; per (optimizer, arm) the maximum-likelihood Kramers fit
  :math:`\log\Gamma = a + p\log k - c\,k^{-\alpha}` with a profile interval of
  :math:`\alpha`; LCAM against its controls; the old two-line view;
* :mod:`lcamlab.escape.widgets`: the notebook's sliders (sharpness, learning rate, optimizer,
  noise) over an escape-time histogram simulated live
  (:func:`lcamlab.escape.design.sample_escape_times`).

The saddle experiment (``lcamlab escape saddle``, on the eager runner):

* :mod:`lcamlab.escape.config`: :class:`EscapeConfig` (the cache key), the sharpness grid and
  the calibrated learning rates (:data:`SADDLE_LRS`, a table passed to
  :func:`lcamlab.experiments.registry.suite`) of SGD, momentum (0.9 and 0.925), Adam, Adai,
  AdaRem and LCAM in both orientations;
* :mod:`lcamlab.escape.experiment`: ``run_escape`` (one table per configuration);
* :mod:`lcamlab.escape.rates`: the mean exit times and their power law in the negative
  curvature, built on :mod:`lcamlab.experiments.stats`;
* :mod:`lcamlab.escape.cache`: results in ``data/escape/`` through the suite's
  verified cache (:mod:`lcamlab.experiments.cache`).

Both: :mod:`lcamlab.escape.report` (the notebook's printed findings and tables, computed from
the tables), :mod:`lcamlab.escape.plots` (the notebook's figures), :mod:`lcamlab.escape.cli`
(``lcamlab escape run|saddle|show|points``).

**Decisions** (the Adai paper's Appendix E lost its formulas in extraction; the project's choices):

1. The critical points are those of the *actual training loss* (a quartic per
   coordinate with the data's empirical moments as coefficients), not the
   noiseless -2.90 / 0.157 / 2.75: with :math:`\sigma = 1` data the valleys sit near
   -2.35 and +2.10 and the ridge near 0.25 (barrier about 7.4 instead of 25).
2. Every valley trial starts at the bottom of the sharp (deep, global) valley and
   escapes at the first iteration after which any coordinate is past its ridge;
   trials not out within their budget are censored.
3. The rate is the censored maximum-likelihood estimate escapes / exposure with
   the exact Poisson (chi-square) 95% interval.
4. Mini-batches of size 1 are drawn with replacement; an "epoch" (LCAM's running
   mean, AdaRem's :math:`\lambda^\tau`) is one pass, ``n_samples // batch_size`` iterations;
   LCAM uses the LCAM paper's epoch mean.
5. The saddle is the index-1 saddle of the same loss (coordinate 0 on its ridge,
   the rest at their shallow minima); its negative curvature :math:`k L_0''(u_\text{ridge})` is
   tuned by :math:`k`, and a trial leaves when :math:`|u_0 - u_\text{ridge}| > r` (``radius``).
6. Learning rates are calibrated as in the Adai paper (Adai ten times momentum's; SGD-like
   temperatures); see :mod:`lcamlab.escape.design` (valley) and :mod:`lcamlab.escape.config`
   (saddle) for the rates and why.
7. Before the clock starts, each optimizer's state is warmed up for 1000 steps at
   the start point with the parameters held there (the Adai paper, Assumption 2,
   quasi-equilibrium); ``warmup=0`` gives the Adai paper's cold start, whose Adam and Adai
   escape times are measurably not exponential.
"""

from lcamlab.escape.cache import EscapeResult, load_or_run, load_result
from lcamlab.escape.config import SADDLE_LRS, EscapeConfig, default_optimizers, quick_config, saddle_sharpness
from lcamlab.escape.design import DesignConfig, load_or_run_design, run_design, sharp_valley_region
from lcamlab.escape.experiment import run_escape
from lcamlab.escape.fused import simulate_fused
from lcamlab.escape.landscape import CriticalPoints, StyblinskiTangLandscape, critical_points, styblinski_tang
from lcamlab.escape.rates import saddle_exponent_table, saddle_table
from lcamlab.escape.regions import ExitRegion, saddle_region, valley_region
from lcamlab.escape.simulate import EscapeProblem, simulate_batched, simulate_looped
from lcamlab.experiments.stats import EscapeRate, LinearFit, censored_exponential_rate, exponential_gof, fit_log_rate

__all__ = [
    "CriticalPoints",
    "DesignConfig",
    "EscapeConfig",
    "EscapeProblem",
    "EscapeRate",
    "EscapeResult",
    "ExitRegion",
    "LinearFit",
    "SADDLE_LRS",
    "StyblinskiTangLandscape",
    "censored_exponential_rate",
    "critical_points",
    "default_optimizers",
    "exponential_gof",
    "fit_log_rate",
    "load_or_run",
    "load_or_run_design",
    "load_result",
    "quick_config",
    "run_design",
    "run_escape",
    "saddle_exponent_table",
    "saddle_region",
    "saddle_sharpness",
    "saddle_table",
    "sharp_valley_region",
    "simulate_batched",
    "simulate_fused",
    "simulate_looped",
    "styblinski_tang",
    "valley_region",
]
