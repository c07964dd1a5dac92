"""Optimizers of the LCAM, Adai and AdaRem papers as ``torch.optim`` optimizers.

One optimizer per module; this file is the index.

==========================  ================  ===============================================================
class                       functional core   paper
==========================  ================  ===============================================================
:class:`LCAM`               :func:`lcam`      000 Algorithm 1: loss-controlled asymmetric momentum
:class:`Adai`               :func:`adai`      004 Algorithm 2: adaptive inertia
:class:`AdaiW`              :func:`adai`      004: Adai with decoupled weight decay
:class:`AdaRem`             :func:`adarem`    003 Algorithm 1: adaptive gradient with resilience and momentum
:class:`AdaRemS`            :func:`adarem_s`  003 Algorithm 2: AdaRem on the sphere (scale-invariant weights)
:class:`ScheduledMomentum`  :func:`lcam`      SGD with a prescribed momentum sequence: LCAM's controls
==========================  ================  ===============================================================

Every optimizer is a :class:`TrialOptimizer` (:mod:`lcamlab.optim.base`), which
owns what they share: the trial axis, hyperparameter validation, the closure and
the loss, epochs and checkpoints. Code that drives *any* optimizer (torch's
included) uses the protocol functions :func:`takes_loss`, :func:`optimizer_step`
and :func:`start_epoch` rather than testing for methods or signatures.

Every optimizer accepts ``trial_axis=True``: dim 0 of every parameter is then a
batch of independent trials (thousands of toy runs as one tensor), with every
per-optimizer statistic (LCAM's running mean, Adai's mean second moment,
AdaRem's maximum) taken per trial. torch's elementwise optimizers (SGD, Adam,
Adagrad, RMSprop) already treat trials independently and serve as baselines.
"""

from lcamlab.optim.adai import Adai, AdaiW, adai
from lcamlab.optim.adarem import AdaRem, adarem, resilience_factors
from lcamlab.optim.adarem_s import AdaRemS, adarem_s
from lcamlab.optim.base import TrialOptimizer, optimizer_step, start_epoch, takes_loss
from lcamlab.optim.lcam import LCAM, choose_momentum, ema_update, lcam, running_mean_update
from lcamlab.optim.scheduled import ScheduledMomentum

__all__ = [
    "TrialOptimizer", "takes_loss", "optimizer_step", "start_epoch",
    "LCAM", "lcam", "choose_momentum", "ema_update", "running_mean_update",
    "Adai", "AdaiW", "adai",
    "AdaRem", "adarem", "resilience_factors",
    "AdaRemS", "adarem_s",
    "ScheduledMomentum",
]
