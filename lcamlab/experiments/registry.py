r"""The optimizer registry: every optimizer of every experiment, each declared once.

An experiment names its optimizers as data: an :class:`OptimizerSpec` (kind,
learning rate, options, display key) that builds the optimizer over a flat
parameter, a trial-axis parameter (``(trials, ...)``, thousands of toy runs as
one tensor) or a model's parameters. The zoo, the toys, the escape experiments
and WRN training all build through :meth:`OptimizerSpec.build`, so a setting
(an LCAM orientation, a control) declared here reaches every experiment.

Kinds (:data:`KINDS`, the one table of optimizer classes) and what they build:

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

Presets (:data:`PRESETS`) are the named optimizers of the suite, and the one
place an optimizer is declared: each :class:`Preset` holds its kind and
options, its legend label, its colour and marker in every figure, and the
experiment suites that include it (:func:`suite_keys`: the zoo, the toys,
``lcamlab train --optimizer``). ``"momentum"`` is SGD with fixed momentum 0.9
(the LCAM paper's "Fixed 0.9"), ``"lcam-above"`` is LCAM ``(0.9, 0.95)`` (more
momentum when the loss is above its running mean), ``"lcam-below"`` LCAM
``(0.95, 0.9)``; LCAM's pairs are written ``(below, above)`` throughout. Learning
rates are per experiment: each experiment keeps its own table of them as data
and passes it to :func:`suite`.

Adding an optimizer: its module in :mod:`lcamlab.optim`, its :data:`KINDS` row
if it is a new class, its :data:`PRESETS` entry, its row of ``tests/optim_db.py``.

A control of an LCAM setting (:mod:`lcamlab.experiments.controls`) is keyed
``"<lcam key>:<control>"`` (:func:`split_key`); :func:`label`, :func:`color` and
:func:`marker` take such keys too (the colour and marker are the LCAM setting's).
"""

from __future__ import annotations

import dataclasses
import importlib
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

__all__ = ["KINDS", "PRESETS", "SUITES", "Preset", "OptimizerSpec", "preset", "suite", "suite_keys", "build",
           "split_key", "label", "color", "marker"]

# kind -> (module, class). The one table of optimizer classes. lcamlab's own optimizers take
# ``trial_axis`` (dim 0 of every parameter is an independent trial); torch's elementwise ones
# need no flag (their trials are independent anyway).
KINDS: dict[str, tuple[str, str]] = {
    "sgd": ("torch.optim", "SGD"),
    "adam": ("torch.optim", "Adam"),
    "adamw": ("torch.optim", "AdamW"),
    "adagrad": ("torch.optim", "Adagrad"),
    "rmsprop": ("torch.optim", "RMSprop"),
    "lcam": ("lcamlab.optim", "LCAM"),
    "adai": ("lcamlab.optim", "Adai"),
    "adaiw": ("lcamlab.optim", "AdaiW"),
    "adarem": ("lcamlab.optim", "AdaRem"),
    "adarem-s": ("lcamlab.optim", "AdaRemS"),
    "scheduled": ("lcamlab.optim", "ScheduledMomentum"),
}


def _kind_class(kind: str) -> type:
    module, name = KINDS[kind]
    return getattr(importlib.import_module(module), name)  # lcamlab.optim on first use only


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
        key: the display key (a :data:`PRESETS` key or a control's ``"<lcam key>:<control>"``:
            colour, marker, label) and the name of this setting in result tables; derived
            from ``kind`` and ``momentum`` if omitted (:attr:`style_key`).
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
        """The display key: ``key`` if given, else derived from the kind and momentum
        (``"lcam-above"`` / ``"lcam-below"`` by LCAM's orientation, ``"momentum"`` for SGD with momentum)."""
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
        r"""The legend label. SGD and LCAM name their momentum: ``"SGD"``, ``"SGD+momentum 0.9"``,
        ``"LCAM (0.9, 0.95)"`` (LCAM's pair written ``(below, above)``), so a preset reads as its
        :func:`label` and any other setting as what it is; a control (``"<lcam key>:<control>"``) is
        :func:`label` of its key; any other optimizer its preset's label (its class name without one)."""
        key = self.style_key
        base, control = split_key(key)
        if control is not None:
            return label(key)
        if self.kind == "lcam":
            below, above = self.momentum  # type: ignore[misc]
            return f"LCAM ({below:g}, {above:g})"
        if self.kind == "sgd":
            return f"SGD+momentum {self.momentum:g}" if self.momentum else label("sgd")
        return label(base) if base in PRESETS else self._class().__name__

    @property
    def takes_loss(self) -> bool:
        """Whether the built optimizer's ``step`` needs the mini-batch loss (the class's declared
        ``takes_loss``, as :func:`lcamlab.optim.takes_loss` reads it from an instance)."""
        return getattr(self._class(), "takes_loss", False) is True

    def _class(self) -> type:
        return _kind_class(self.kind)

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
        options = {**self.kwargs, **overrides}
        if KINDS[self.kind][0] == "lcamlab.optim":
            options["trial_axis"] = trial_axis
        return self._class()(params, lr=self.lr, **options)

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
# Presets: every optimizer of the suite, declared once.
# --------------------------------------------------------------------------------------

#: The experiment suites whose optimizers are a list of presets (:func:`suite_keys`).
SUITES: dict[str, str] = {
    "zoo": "the optimizer zoo's 2-D landscapes (lcamlab.zoo, notebook 00)",
    "toys": "the weight-traction notebook's default optimizers (notebook 01's `optimizers`)",
    "train": "the names `lcamlab train --optimizer` accepts (each a kind: the momentum comes from the config)",
}


@dataclasses.dataclass(frozen=True)
class Preset:
    """One optimizer of the suite: what it builds and how every figure shows it.

    Attributes:
        kind: a :data:`KINDS` key.
        options: the preset's options (``{}``: the class's defaults).
        label: the legend label (:func:`label`); SGD and LCAM name their momentum, LCAM's pair
            as ``(below, above)``, so it is also :attr:`OptimizerSpec.label` of the preset (but for
            ``"lcam"``, LCAM at any pair: a spec of it names its pair).
        color: the colour in every figure (colour-blind safe: Okabe & Ito 2008, with Paul Tol's
            muted scheme for the extra entries; LCAM's two orientations in the LCAM paper's
            red and green, as the WRN figures' group colours of :mod:`lcamlab.style`).
        marker: the matplotlib marker where optimizers are told apart by markers too (the escape figures).
        suites: the :data:`SUITES` that include it.
    """

    kind: str
    options: Mapping[str, Any]
    label: str
    color: str
    marker: str = "o"
    suites: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Invalid optimizer kind: {self.kind!r} (choose one of {', '.join(KINDS)})")
        unknown = [s for s in self.suites if s not in SUITES]
        if unknown:
            raise ValueError(f"Invalid suite: {unknown[0]!r} (choose from {', '.join(SUITES)})")


# Keys are the names used throughout lcamlab: result tables, cache configs, figures. "lcam-above"
# is LCAM with beta_above > beta_below (it accelerates the above-mean, non-sparse phase),
# "lcam-below" the opposite orientation, "lcam" LCAM at any pair (`lcamlab train --optimizer lcam`
# takes its pair from the config). The order is every suite's order.
PRESETS: dict[str, Preset] = {
    "sgd": Preset("sgd", {}, "SGD", "#999999", "o", ("zoo", "toys", "train")),  # grey: the reference
    # black: the LCAM paper's "Fixed 0.9"
    "momentum": Preset("sgd", {"momentum": 0.9}, "SGD+momentum 0.9", "#000000", "s", ("zoo", "toys")),
    # slate: fixed momentum at the mean of LCAM's (0.9, 0.95)
    "momentum-0.925": Preset("sgd", {"momentum": 0.925}, "SGD+momentum 0.925", "#6B6B9A", "p"),
    "lcam": Preset("lcam", {}, "LCAM", "#D55E00", "o", ("train",)),  # vermillion
    # vermillion: the paper's red "0.9-0.95", more momentum above the running mean
    "lcam-above": Preset("lcam", {"momentum": (0.9, 0.95)}, "LCAM (0.9, 0.95)", "#D55E00", "P", ("zoo", "toys")),
    # bluish green: the paper's green "0.95-0.9", more momentum below it
    "lcam-below": Preset("lcam", {"momentum": (0.95, 0.9)}, "LCAM (0.95, 0.9)", "#009E73", "X", ("zoo", "toys")),
    "adai": Preset("adai", {}, "Adai", "#0072B2", "^", ("zoo", "toys", "train")),  # blue
    "adaiw": Preset("adaiw", {}, "AdaiW", "#332288", "o", ("train",)),  # indigo
    "adarem": Preset("adarem", {}, "AdaRem", "#CC79A7", "v", ("zoo", "toys", "train")),  # reddish purple
    "adarem-s": Preset("adarem-s", {}, "AdaRem-S", "#882255"),  # wine
    "adam": Preset("adam", {}, "Adam", "#E69F00", "D", ("zoo", "toys", "train")),  # orange
    "adamw": Preset("adamw", {}, "AdamW", "#DDCC77", "o", ("train",)),  # sand
    "adagrad": Preset("adagrad", {}, "AdaGrad", "#999933", "h", ("zoo", "toys")),  # olive
    "rmsprop": Preset("rmsprop", {}, "RMSprop", "#88CCEE", "<", ("zoo", "toys")),  # cyan
}


def preset(key: str, lr: float, **options: Any) -> OptimizerSpec:
    """The :data:`PRESETS` setting ``key`` at learning rate ``lr`` (``options`` add or override)."""
    if key not in PRESETS:
        raise ValueError(f"Invalid optimizer: {key!r} (choose from {', '.join(PRESETS)})")
    entry = PRESETS[key]
    return OptimizerSpec(entry.kind, lr, tuple({**entry.options, **options}.items()), key)


def suite(keys: Sequence[str], lrs: Mapping[str, float], **options: Mapping[str, Any]) -> tuple[OptimizerSpec, ...]:
    """:func:`preset` for every key with its learning rate from ``lrs`` (an experiment's table).

    ``options`` maps a key to extra options for that preset.
    """
    missing = [k for k in keys if k not in lrs]
    if missing:
        raise ValueError(f"No learning rate for optimizer {missing[0]!r} (the table has {', '.join(lrs)})")
    return tuple(preset(k, lrs[k], **dict(options.get(k, {}))) for k in keys)


def suite_keys(name: str) -> tuple[str, ...]:
    """The :data:`PRESETS` keys of suite ``name`` (a :data:`SUITES` key), in the table's order."""
    if name not in SUITES:
        raise ValueError(f"Invalid suite: {name!r} (choose from {', '.join(SUITES)})")
    return tuple(key for key, entry in PRESETS.items() if name in entry.suites)


def build(kind: str, params: Iterable[Tensor] | Iterable[dict[str, Any]], lr: float, *,
          trial_axis: bool = False, **options: Any) -> torch.optim.Optimizer:
    """Shorthand for ``OptimizerSpec(kind, lr, options).build(params, trial_axis=...)``."""
    return OptimizerSpec(kind, lr, tuple(options.items())).build(params, trial_axis=trial_axis)


# --------------------------------------------------------------------------------------
# Display: one label, colour and marker per key, control keys included.
# --------------------------------------------------------------------------------------


def split_key(key: str) -> tuple[str, str | None]:
    """``"lcam-above:shuffled"`` -> ``("lcam-above", "shuffled")``; a plain key -> ``(key, None)``.

    The inverse of :func:`lcamlab.experiments.controls.control_key`.
    """
    base, _, control = key.partition(":")
    return base, (control or None)


def _entry(key: str) -> tuple[Preset, str | None]:
    """The preset of ``key`` (case, spaces and underscores forgiven) and its control, if any."""
    base, control = split_key(str(key).strip().lower().replace("_", "-").replace(" ", "-"))
    if base not in PRESETS:
        raise KeyError(f"Unknown optimizer: {key!r} (choose from {', '.join(PRESETS)}, "
                       f"or '<lcam key>:<control>' for a control)")
    return PRESETS[base], control


def label(key: str) -> str:
    """The legend label of ``key``: its preset's (``"SGD+momentum 0.9"``), or for a control
    ``"<label of the LCAM setting>, <control> control"`` (``"LCAM (0.9, 0.95), shuffled control"``).

    Raises:
        KeyError: ``key`` names no preset.
    """
    entry, control = _entry(key)
    return f"{entry.label}, {control} control" if control else entry.label


def color(key: str) -> str:
    """The colour of ``key`` in every figure; a control has its LCAM setting's colour (figures tell
    controls apart by line style). Raises ``KeyError`` if ``key`` names no preset."""
    return _entry(key)[0].color


def marker(key: str) -> str:
    """The matplotlib marker of ``key``; a control has its LCAM setting's. Raises ``KeyError`` if
    ``key`` names no preset."""
    return _entry(key)[0].marker
