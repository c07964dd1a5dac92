r"""The LCAM paper's claims about weight coupling and traction, measured against controls.

Four measurements, each over many independent trials (dim 0 of the toys) with
95% confidence intervals, each cached in ``data/toys`` through
:mod:`lcamlab.experiments.cache` (CSV + JSON sidecar with provenance, a file name
that hashes the full configuration, verified on every read;
:mod:`~lcamlab.toys.measurements.common`). Every measurement derives its cache
configuration itself from its config dataclass, and lives with it in one module:

1. :mod:`.phase`, :func:`measure_phase_agreement`, *does the loss tell the phase?* (the LCAM paper's eq. 12,
   section 3.4): how often LCAM's below/above decision matches the true phase of
   the light weight :math:`\Theta_n`, over a grid of mass ratios and noise levels
   of :class:`~lcamlab.toys.SpringPair`.
2. :mod:`.traction`, :func:`measure_traction`: drift of the spring after a fixed budget for every
   momentum asymmetry :math:`\beta_\text{above} - \beta_\text{below}`, for LCAM
   *and its controls* (:mod:`lcamlab.experiments.controls`) on the same
   mini-batches: the phase-shuffled control (LCAM's momentum values in LCAM's
   proportions, the choice decoupled from the loss) and the mean-matched one
   (fixed momentum at LCAM's realised mean). LCAM minus shuffled is the effect of
   *loss control*; LCAM minus matched the effect of the asymmetry beyond the mean
   momentum (the LCAM paper's section 3.4; the earlier LCAM paper's sections 3.2 and 4 for the other reading of
   which phase accelerates the quick group).
3. :mod:`.sparsity`, :func:`measure_sparsity`: dataset sparsity x optimizer on
   :class:`~lcamlab.toys.ProductChain`, every optimizer over a learning-rate grid;
   each optimizer's best rate per sparsity is chosen on a *tuning* seed and
   reported on a separate *evaluation* seed (no winner's curse), with the rare-
   and frequent-feature losses separately and LCAM's controls at LCAM's rate
   (the LCAM paper's sections 3.3 and 4).
4. :mod:`.oscillation`, :func:`measure_oscillation`: the oscillation index :math:`Q` of the AdaRem paper's section
   3.2.2 over a learning-rate sweep per optimizer (Q against the final loss), at
   the AdaRem paper's convention (the same base learning rate, the AdaRem paper's section 4.1.1) and at
   matched progress (each trial's path up to the first step at a common
   excess-loss level).

:func:`claim_rows` (:mod:`.ledger`) turns the four tables into rows of the claims ledger
(:mod:`lcamlab.experiments.claims`), verdicts computed by code.

Confidence intervals: Student-t intervals for means over trials
(:func:`lcamlab.experiments.stats.mean_ci`) and for paired differences wherever two settings share their
trials' mini-batches (same seed: common random numbers,
:func:`lcamlab.experiments.stats.paired_ci`).
"""

from lcamlab.toys.measurements import ledger, oscillation, phase, sparsity, traction
from lcamlab.toys.measurements.common import MEASUREMENT_VERSION, cached_table
from lcamlab.toys.measurements.ledger import (
    AGREEMENT_MARGIN,
    LOG10_MARGIN,
    NOTEBOOK,
    PROGRESS_MARGIN,
    Q_MARGIN,
    claim_rows,
)
from lcamlab.toys.measurements.oscillation import (
    CONVENTION,
    OSCILLATION_CONTRASTS,
    OscillationConfig,
    first_reaching,
    measure_oscillation,
    oscillation_index_until,
)
from lcamlab.toys.measurements.phase import PhaseAgreementConfig, measure_phase_agreement, phase_agreement
from lcamlab.toys.measurements.sparsity import (
    SPARSITY_RATES,
    SparsityConfig,
    SparsityResult,
    best_rates,
    measure_sparsity,
)
from lcamlab.toys.measurements.traction import TractionConfig, centre_of_mass_drift, measure_traction

# The cache binding, then every measurement module's names and the ledger's (the shared column
# helpers of .common stay there).
__all__ = ["MEASUREMENT_VERSION", "cached_table", *phase.__all__, *traction.__all__, *sparsity.__all__,
           *oscillation.__all__, *ledger.__all__]
