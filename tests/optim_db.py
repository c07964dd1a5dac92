"""The optimizer table of the common tests, in the style of torch's ``optim_db`` / ``OptimizerInfo``.

One :class:`OptimizerInfo` per optimizer class: a few valid settings, a valid
param-group override, the invalid hyperparameters with the message each must
raise, and what the optimizer supports. ``test_optim_common.py`` runs every
property test for every row; a new optimizer gets those tests by adding a row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from lcamlab.optim import LCAM, Adai, AdaiW, AdaRem, AdaRemS, ScheduledMomentum


@dataclass(frozen=True)
class Invalid:
    """Hyperparameters that must raise ``ValueError`` matching ``match``."""

    kwargs: dict[str, Any]
    match: str
    #: also refused as a param-group override (False for optimizer-wide settings)
    in_group: bool = True


@dataclass(frozen=True)
class OptimizerInfo:
    cls: type
    #: valid constructor settings (without params); every property test runs each
    settings: tuple[dict[str, Any], ...]
    #: a valid override for a second param group, different from every setting
    group_override: dict[str, Any]
    invalid: tuple[Invalid, ...]
    #: the key of the class's extra state in ``state_dict()`` (saved checkpoints depend on it)
    state_key: str
    #: the per-parameter state created by the first step of a parameter with ``ndim >= 2``
    state_keys: frozenset[str]
    #: what the constructor needs besides params (the invalid cases are built on it)
    required: dict[str, Any] = field(default_factory=lambda: {"lr": 0.1})
    takes_loss: bool = False
    #: ``new_epoch`` changes the trajectory
    has_epochs: bool = False
    supports_foreach: bool = True
    supports_trial_axis: bool = True
    #: param groups with different settings behave as separate optimizers
    #: (False for Adai, whose mean second moment spans all groups)
    groups_independent: bool = True
    #: public state beyond the parameters and ``opt.state``, compared wherever two
    #: runs must agree; tensors are per trial (dim 0) with ``trial_axis``
    observe: Callable[[Any], dict[str, Any]] = lambda opt: {}
    #: a per-trial ``(T,)`` statistic that must differ between trials of the trial
    #: test, showing that per-trial state mattered (``None``: not checked)
    trial_statistic: Callable[[Any], Any] | None = None
    #: whether a compiled step with these settings has a graph break (so no
    #: ``fullgraph=True``): a callable momentum schedule runs as Python
    graph_breaks: Callable[[dict[str, Any]], bool] = lambda settings: False

    @property
    def name(self) -> str:
        return self.cls.__name__


def _lcam_observables(opt: LCAM) -> dict[str, Any]:
    return {"phase_fractions": opt.phase_fractions(), "last_below": opt.last_below,
            "last_mean": opt.last_mean, "momentum_now": opt.momentum_now()}


def _epoch(opt: AdaRem) -> dict[str, Any]:
    return {"epoch": opt.epoch}


_COMMON_INVALID = (
    Invalid(dict(lr=-0.1), "Invalid learning rate: -0.1"),
    Invalid(dict(lr="0.1"), "Invalid learning rate"),
    Invalid(dict(lr=None), "Invalid learning rate"),
    Invalid(dict(lr=float("inf")), "Invalid learning rate"),
    Invalid(dict(weight_decay=-1e-4), "Invalid weight_decay value: -0.0001"),
    Invalid(dict(trial_axis=1), "Invalid trial_axis", in_group=False),
    Invalid(dict(trial_axis="no"), "Invalid trial_axis", in_group=False),
    Invalid(dict(foreach="maybe"), "Invalid foreach"),
    Invalid(dict(foreach=1), "Invalid foreach"),
)

_ADAI_INVALID = _COMMON_INVALID + (
    Invalid(dict(betas=(-0.1, 0.99)), "beta0 value: -0.1"),
    Invalid(dict(betas=(0.1, 1.0)), "beta2 value: 1.0"),
    Invalid(dict(betas=(0.1,)), "betas"),
    Invalid(dict(eps=0.0), "eps value: 0.0"),
    Invalid(dict(eps=0), "eps value: 0"),
    Invalid(dict(eps=1.5), "eps value: 1.5"),
)

_ADAREM_INVALID = _COMMON_INVALID + (
    Invalid(dict(lr=-1.0), "learning rate: -1.0"),
    Invalid(dict(beta=1.0), "beta value: 1.0"),
    Invalid(dict(beta=-0.1), "beta value: -0.1"),
    Invalid(dict(lam=1.5), "lam value: 1.5"),
    Invalid(dict(weight_decay=-0.1), "weight_decay value: -0.1"),
    Invalid(dict(eps=0.0), "eps value: 0.0"),
)

def _every_third_step(t: int) -> float:
    """A callable momentum schedule (module level, so the optimizer pickles)."""
    return 0.9 if t % 3 == 0 else 0.5


_ADAI_STATE = frozenset({"step", "exp_avg", "exp_avg_sq", "beta1_prod"})

optim_db: list[OptimizerInfo] = [
    OptimizerInfo(
        cls=LCAM,
        settings=(
            dict(lr=0.05, momentum=(0.9, 0.95), weight_decay=1e-3),
            dict(lr=0.001, momentum=(0.95, 0.8), initial_momentum=0.9, nesterov=True, maximize=True,
                 weight_decay=1e-2, mean="ema", ema_decay=0.8),
        ),
        group_override=dict(lr=0.01, momentum=(0.5, 0.8)),
        invalid=_COMMON_INVALID + (
            Invalid(dict(momentum=(0.9, 1.0)), "Invalid momentum above value: 1.0"),
            Invalid(dict(momentum=(0.9, 2)), "Invalid momentum above value: 2"),
            Invalid(dict(momentum=(-0.1, 0.9)), "Invalid momentum below value: -0.1"),
            Invalid(dict(momentum=(0.9, 0.9, 0.9)), "Invalid momentum"),
            Invalid(dict(momentum="0.9"), "Invalid momentum"),
            Invalid(dict(initial_momentum=1.5), "Invalid initial_momentum: 1.5"),
            Invalid(dict(nesterov="yes"), "Invalid nesterov"),
            Invalid(dict(nesterov=True, momentum=(0.0, 0.9)), "Nesterov"),
            Invalid(dict(maximize=1), "Invalid maximize"),
            Invalid(dict(mean="median"), "Invalid mean: 'median'", in_group=False),
            Invalid(dict(mean="ema", ema_decay=1.0), "Invalid ema_decay: 1.0", in_group=False),
        ),
        state_key="lcam",
        state_keys=frozenset({"momentum_buffer"}),
        takes_loss=True,
        has_epochs=True,
        observe=_lcam_observables,
        trial_statistic=lambda opt: opt.phase_fractions()[:, 0],
    ),
    OptimizerInfo(
        cls=Adai,
        settings=(
            dict(lr=0.1),
            dict(lr=0.05, betas=(0.2, 0.95), eps=1e-2, weight_decay=0.05),
            dict(lr=0.05, weight_decay=0.3, decoupled=True),
        ),
        group_override=dict(lr=0.03, betas=(0.2, 0.95), eps=1e-2, weight_decay=0.1, decoupled=True),
        invalid=_ADAI_INVALID + (Invalid(dict(decoupled="yes"), "decoupled"),),
        state_key="adai",
        state_keys=_ADAI_STATE,
        groups_independent=False,
    ),
    OptimizerInfo(
        cls=AdaiW,
        settings=(dict(lr=0.05, weight_decay=0.3),),
        group_override=dict(lr=0.03, weight_decay=0.1, eps=1e-2),
        invalid=_ADAI_INVALID,
        state_key="adai",
        state_keys=_ADAI_STATE,
        groups_independent=False,
    ),
    OptimizerInfo(
        cls=AdaRem,
        settings=(
            dict(lr=0.1, lam=0.9, weight_decay=0.05),
            dict(lr=0.05, beta=0.5, lam=0.5, eps=1e-3),
        ),
        group_override=dict(lr=0.02, beta=0.5, lam=0.5, weight_decay=0.2, eps=1e-4),
        invalid=_ADAREM_INVALID,
        state_key="adarem",
        state_keys=frozenset({"momentum_buffer"}),
        has_epochs=True,
        observe=_epoch,
    ),
    OptimizerInfo(
        cls=AdaRemS,
        settings=(
            dict(lr=0.2, lam=0.9, weight_decay=0.05),
            dict(lr=0.1, beta=0.0, weight_decay=0.1, sphere_lr=False),
        ),
        group_override=dict(lr=0.02, beta=0.5, lam=0.5, weight_decay=0.2, spherical=True),
        invalid=_ADAREM_INVALID + (
            Invalid(dict(spherical="auto"), "spherical"),
            Invalid(dict(spherical=1), "spherical"),
            Invalid(dict(sphere_lr=1), "sphere_lr"),
        ),
        state_key="adarem_s",
        state_keys=frozenset({"momentum_buffer", "radius", "alpha"}),
        has_epochs=True,
        observe=_epoch,
    ),
    OptimizerInfo(
        cls=ScheduledMomentum,
        settings=(
            dict(lr=0.05, momentum=0.9, weight_decay=1e-3),
            # a schedule long enough for every common test, alternating like LCAM's two values
            dict(lr=0.02, momentum=torch.tensor([0.9, 0.95] * 500, dtype=torch.float64), nesterov=True),
            dict(lr=0.02, momentum=_every_third_step, maximize=True),
        ),
        group_override=dict(lr=0.01, weight_decay=0.1),
        invalid=_COMMON_INVALID + (
            Invalid(dict(momentum=1.0), "Invalid momentum: 1.0", in_group=False),
            Invalid(dict(momentum=torch.tensor([0.5, 1.5])), "every value must lie in", in_group=False),
            Invalid(dict(momentum=torch.zeros(2, 2, 2)), "schedule shape", in_group=False),
            Invalid(dict(momentum="0.9"), "Invalid momentum", in_group=False),
            Invalid(dict(nesterov="yes"), "Invalid nesterov"),
            Invalid(dict(maximize=1), "Invalid maximize"),
        ),
        state_key="scheduled_momentum",
        state_keys=frozenset({"momentum_buffer"}),
        observe=lambda opt: {"steps_taken": opt.steps_taken},
        graph_breaks=lambda settings: callable(settings["momentum"]),
    ),
]
