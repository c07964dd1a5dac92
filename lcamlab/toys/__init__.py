"""Toy coupled-weight systems that make weight coupling and weight traction visible.

The LCAM paper (000 sections 3.1-3.4, 001 section 3) explains its optimizer with
a picture: a light, quick, non-sparse weight group and a heavy, slow, sparse one
held together like the two ends of a spring. This package turns the picture into
systems one can measure:

* :class:`SpringPair` (:mod:`lcamlab.toys.spring`): the two-group spring, a
  quadratic with diffusion-picture gradient noise (004 section 2);
* :class:`ProductChain` (:mod:`lcamlab.toys.product_chain`): the product model
  of 000 eq. (1) trained on data with frequent and rare features;
* :func:`run` (:mod:`lcamlab.toys.runner`): one runner for every optimizer,
  all trials as one tensor, recording trajectories, losses and LCAM's phases;
* :mod:`lcamlab.toys.measurements`: the paper's claims as measurements with
  confidence intervals against LCAM's controls (phase-shuffled, mean-matched)
  and at tuned learning rates, cached in ``data/toys`` with provenance, and
  their rows of the claims ledger (:func:`~lcamlab.toys.measurements.claim_rows`);
* :mod:`lcamlab.toys.plots`, :mod:`lcamlab.toys.widgets` (ipywidgets sliders,
  imported lazily) and :mod:`lcamlab.toys.animation` (GIF) for the notebook
  ``notebooks/01_weight_traction.ipynb``.
"""

from lcamlab.toys.base import ToySystem, grid_cells
from lcamlab.toys.product_chain import ProductChain
from lcamlab.toys.runner import OptimizerSpec, ToyRun, loss_phases, run, run_looped, run_many, suite
from lcamlab.toys.spring import SpringPair

__all__ = [
    "ToySystem",
    "SpringPair",
    "ProductChain",
    "OptimizerSpec",
    "ToyRun",
    "run",
    "run_many",
    "run_looped",
    "loss_phases",
    "suite",
    "grid_cells",
]
