r"""The optimizer registry: every optimizer of every experiment, built from one table.

An experiment names its optimizers as data: an :class:`OptimizerSpec` (kind,
learning rate, options, display key) that builds the optimizer over a flat
parameter, a trial-axis parameter (``(trials, ...)``, thousands of toy runs as
one tensor) or a model's parameters. The zoo, the toys, the escape experiments
and WRN training all build through :meth:`OptimizerSpec.build`, so a setting
(an LCAM orientation, a control) declared here reaches every experiment.

Kinds (:data:`KINDS`) and what they build:

==============  ==========================================  =========================================
kind            optimizer                                   options
==============  ==========================================  =========================================
``sgd``         ``torch.optim.SGD`` (heavy ball)            ``momentum`` (default 0), ``weight_decay``
``lcam``        :class:`lcamlab.optim.LCAM`                 ``momentum=(below, above)``, ``mean``, ...
``adam``        ``torch.optim.Adam``                        ``betas``, ``eps``, ``weight_decay``
``adamw``       ``torch.optim.AdamW``                       as Adam
``adagrad``     ``torch.optim.Adagrad``
``rmsprop``     ``torch.optim.RMSprop``
``adai``        :class:`lcamlab.optim.Adai`                 ``betas``, ``eps``, ``weight_decay``
``adaiw``       :class:`lcamlab.optim.AdaiW`                as Adai
``adarem``      :class:`lcamlab.optim.AdaRem`               ``beta``, ``weight_decay``
``adarem-s``    :class:`lcamlab.optim.AdaRemS`              as AdaRem
``scheduled``   :class:`lcamlab.optim.ScheduledMomentum`    ``momentum`` schedule (LCAM's controls,
                                                            :mod:`lcamlab.experiments.controls`)
==============  ==========================================  =========================================

Presets (:data:`PRESETS`) are the named settings the notebooks compare, keyed as
in :mod:`lcamlab.style` (colour and label): ``"momentum"`` is SGD with fixed
momentum 0.9 (the LCAM paper's "Fixed 0.9"), ``"lcam-above"`` is LCAM
``(0.9, 0.95)`` (more momentum when the loss is above its running mean),
``"lcam-below"`` LCAM ``(0.95, 0.9)``. Learning rates are per experiment: each
experiment keeps its own table of them as data and passes it to :func:`suite`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

__all__ = ["KINDS", "PRESETS", "OptimizerSpec", "preset", "suite", "build"]


def _torch_builder(cls_name: str) -> Callable[..., torch.optim.Optimizer]:
    def build_(params, lr, options, trial_axis):  # torch's elementwise optimizers: trials are independent
        return getattr(torch.optim, cls_name)(params, lr=lr, **options)
    return build_


def _suite_builder(cls_name: str) -> Callable[..., torch.optim.Optimizer]:
    def build_(params, lr, options, trial_axis):
        import lcamlab.optim as optim

        return getattr(optim, cls_name)(params, lr=lr, trial_axis=trial_axis, **options)
    return build_


# kind -> builder(params, lr, options, trial_axis). The one table of optimizer classes.
KINDS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "sgd": _torch_builder("SGD"),
    "adam": _torch_builder("Adam"),
    "adamw": _torch_builder("AdamW"),
    "adagrad": _torch_builder("Adagrad"),
    "rmsprop": _torch_builder("RMSprop"),
    "lcam": _suite_builder("LCAM"),
    "adai": _suite_builder("Adai"),
    "adaiw": _suite_builder("AdaiW"),
    "adarem": _suite_builder("AdaRem"),
    "adarem-s": _suite_builder("AdaRemS"),
    "scheduled": _suite_builder("ScheduledMomentum"),
}


def _freeze(value: Any) -> Any:
    """Lists (from JSON) become tuples, so specs stay hashable and compare equal after a round trip."""
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


@dataclasses.dataclass(frozen=True)
class OptimizerSpec:
    r"""An optimizer as data: what to build, with which settings, under which display key.

    Args:
        kind: a :data:`KINDS` key (``"sgd"``, ``"lcam"``, ``"adam"``, ...).
        lr: learning rate (a finite number > 0).
        options: extra keyword arguments of the optimizer as ``(name, value)``
            pairs, e.g. ``(("momentum", 0.9),)`` or ``(("momentum", (0.95, 0.9)),)``;
            sorted by name, so equal settings give equal specs (and equal cache keys).
        key: the :mod:`lcamlab.style` key (colour, label) and the name of this
            setting in result tables; derived from ``kind`` and ``momentum`` if omitted
            (:attr:`style_key`).
    """

    kind: str
    lr: float
    options: tuple[tuple[str, Any], ...] = ()
    key: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Invalid optimizer kind: {self.kind!r} (choose one of {', '.join(KINDS)})")
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not 0 < self.lr < math.inf:
            raise ValueError(f"Invalid learning rate: {self.lr!r} (must be a finite number > 0)")
        if self.key is not None and (not isinstance(self.key, str) or not self.key):
            raise ValueError(f"Invalid optimizer key: {self.key!r} (a non-empty name such as 'momentum')")
        options = self.options.items() if isinstance(self.options, Mapping) else self.options
        frozen = tuple(sorted((str(name), _freeze(value)) for name, value in options))
        object.__setattr__(self, "lr", float(self.lr))
        object.__setattr__(self, "options", frozen)
        # The optimizer class validates its own settings (one home of each rule): build it
        # once on a dummy parameter so a bad setting is named when the spec is made.
        try:
            self.build([torch.zeros(1, requires_grad=True)])
        except TypeError as error:
            raise ValueError(f"Invalid options for optimizer kind {self.kind!r}: {dict(frozen)} ({error})") from None

    # -- shorthand constructors ------------------------------------------------------------

    @classmethod
    def sgd(cls, lr: float) -> "OptimizerSpec":
        """Plain SGD."""
        return cls("sgd", lr)

    @classmethod
    def heavy_ball(cls, lr: float, momentum: float = 0.9) -> "OptimizerSpec":
        """SGD with fixed momentum (the paper's "Fixed 0.9")."""
        return cls("sgd", lr, (("momentum", float(momentum)),))

    @classmethod
    def lcam(cls, lr: float, below: float, above: float, **options: Any) -> "OptimizerSpec":
        """LCAM with ``momentum=(below, above)``."""
        return cls("lcam", lr, tuple({"momentum": (float(below), float(above)), **options}.items()))

    @classmethod
    def adam(cls, lr: float) -> "OptimizerSpec":
        return cls("adam", lr)

    @classmethod
    def adagrad(cls, lr: float) -> "OptimizerSpec":
        return cls("adagrad", lr)

    @classmethod
    def rmsprop(cls, lr: float) -> "OptimizerSpec":
        return cls("rmsprop", lr)

    # -- reading the settings --------------------------------------------------------------

    @property
    def kwargs(self) -> dict[str, Any]:
        """The options as keyword arguments."""
        return dict(self.options)

    @property
    def momentum(self) -> float | tuple[float, float] | None:
        """SGD's momentum (0 when unset), LCAM's ``(below, above)``; ``None`` for other kinds."""
        if self.kind == "sgd":
            return float(self.kwargs.get("momentum", 0.0))
        if self.kind == "lcam":
            pair = self.kwargs.get("momentum", (0.9, 0.95))  # LCAM's default
            pair = (pair, pair) if isinstance(pair, (int, float)) else pair
            return (float(pair[0]), float(pair[1]))
        return None

    @property
    def style_key(self) -> str:
        """The :mod:`lcamlab.style` key: ``key`` if given, else derived from the kind and momentum."""
        if self.key is not None:
            return self.key
        if self.kind == "lcam":
            below, above = self.momentum  # type: ignore[misc]
            return "lcam-above" if above > below else "lcam-below" if below > above else "lcam"
        if self.kind == "sgd" and self.momentum:
            return "momentum"
        return self.kind

    @property
    def label(self) -> str:
        """A short legend label, e.g. ``"LCAM (0.9, 0.95)"`` or ``"SGD+momentum 0.9"``."""
        from lcamlab import style

        if self.key is not None and ":" in self.key:  # a control of an LCAM setting (controls module)
            base, _, control = self.key.partition(":")
            return f"{style.optimizer_label(base)}: {control}"
        if self.kind == "lcam":
            below, above = self.momentum  # type: ignore[misc]
            return f"LCAM ({below:g}, {above:g})"
        if self.kind == "sgd" and self.momentum:
            return f"{style.optimizer_label('momentum')} {self.momentum:g}"
        return style.optimizer_label(self.kind)

    @property
    def takes_loss(self) -> bool:
        """Whether the built optimizer's ``step`` needs the mini-batch loss (the class's declared
        ``takes_loss``, as :func:`lcamlab.optim.takes_loss` reads it from an instance)."""
        return getattr(self._class(), "takes_loss", False) is True

    def _class(self) -> type:
        import lcamlab.optim as optim

        names = {"lcam": "LCAM", "adai": "Adai", "adaiw": "AdaiW", "adarem": "AdaRem", "adarem-s": "AdaRemS",
                 "scheduled": "ScheduledMomentum"}
        if self.kind in names:
            return getattr(optim, names[self.kind])
        return {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
                "adagrad": torch.optim.Adagrad, "rmsprop": torch.optim.RMSprop}[self.kind]

    # -- variants --------------------------------------------------------------------------

    def with_lr(self, lr: float) -> "OptimizerSpec":
        """The same setting at another learning rate."""
        return dataclasses.replace(self, lr=float(lr))

    def with_options(self, **options: Any) -> "OptimizerSpec":
        """The same setting with some options added or replaced."""
        return dataclasses.replace(self, options=tuple({**self.kwargs, **options}.items()))

    # -- building --------------------------------------------------------------------------

    def build(self, params: Iterable[Tensor] | Iterable[dict[str, Any]], *, trial_axis: bool = False,
              **overrides: Any) -> torch.optim.Optimizer:
        """The optimizer over ``params``.

        Args:
            params: parameters or param groups (a model's ``parameters()``, or one
                ``(trials, ...)`` tensor with ``trial_axis=True``).
            trial_axis: dim 0 of every parameter is an independent trial (passed to
                lcamlab's optimizers; torch's elementwise ones need no flag).
            overrides: options that win over the spec's (e.g. ``weight_decay`` from a
                training config, ``mean`` for LCAM's running mean).
        """
        return KINDS[self.kind](params, self.lr, {**self.kwargs, **overrides}, trial_axis)

    # -- serialisation ---------------------------------------------------------------------

    def to_config(self) -> dict[str, Any]:
        """JSON-able description (part of every cache key); :meth:`from_config` inverts it."""
        return {"kind": self.kind, "lr": self.lr, "options": {k: _jsonable(v) for k, v in self.options},
                "key": self.style_key}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "OptimizerSpec":
        """The spec described by :meth:`to_config`'s dict."""
        try:
            return cls(config["kind"], config["lr"], tuple(dict(config.get("options") or {}).items()),
                       config.get("key"))
        except (KeyError, TypeError) as error:
            raise ValueError(f"Invalid optimizer description {dict(config)!r}: {error}") from None


def _jsonable(value: Any) -> Any:
    return [_jsonable(v) for v in value] if isinstance(value, tuple) else value


# --------------------------------------------------------------------------------------
# Presets: the named settings the notebooks compare.
# --------------------------------------------------------------------------------------

# key -> (kind, options). The key is also the style key (colour, label).
PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    "sgd": ("sgd", {}),
    "momentum": ("sgd", {"momentum": 0.9}),               # the LCAM paper's "Fixed 0.9"
    "momentum-0.925": ("sgd", {"momentum": 0.925}),       # fixed momentum at the mean of (0.9, 0.95)
    "lcam-above": ("lcam", {"momentum": (0.9, 0.95)}),    # more momentum above the running mean
    "lcam-below": ("lcam", {"momentum": (0.95, 0.9)}),    # more momentum below it
    "adam": ("adam", {}),
    "adagrad": ("adagrad", {}),
    "rmsprop": ("rmsprop", {}),
    "adai": ("adai", {}),
    "adarem": ("adarem", {}),
}


def preset(key: str, lr: float, **options: Any) -> OptimizerSpec:
    """The :data:`PRESETS` setting ``key`` at learning rate ``lr`` (``options`` add or override)."""
    if key not in PRESETS:
        raise ValueError(f"Invalid optimizer: {key!r} (choose from {', '.join(PRESETS)})")
    kind, base = PRESETS[key]
    return OptimizerSpec(kind, lr, tuple({**base, **options}.items()), key)


def suite(keys: Sequence[str], lrs: Mapping[str, float], **options: Mapping[str, Any]) -> tuple[OptimizerSpec, ...]:
    """:func:`preset` for every key with its learning rate from ``lrs`` (an experiment's table).

    ``options`` maps a key to extra options for that preset.
    """
    missing = [k for k in keys if k not in lrs]
    if missing:
        raise ValueError(f"No learning rate for optimizer {missing[0]!r} (the table has {', '.join(lrs)})")
    return tuple(preset(k, lrs[k], **dict(options.get(k, {}))) for k in keys)


def build(kind: str, params: Iterable[Tensor] | Iterable[dict[str, Any]], lr: float, *,
          trial_axis: bool = False, **options: Any) -> torch.optim.Optimizer:
    """Shorthand for ``OptimizerSpec(kind, lr, options).build(params, trial_axis=...)``."""
    return OptimizerSpec(kind, lr, tuple(options.items())).build(params, trial_axis=trial_axis)
