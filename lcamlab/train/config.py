"""The training configuration: one flat dataclass whose defaults are the paper's.

Every default below is the published WRN/CIFAR protocol (000 section 4, 001
section 4): WRN-28-10 without dropout, batch 128, SGD learning rate 0.1 with
coupled weight decay 5e-4, 150 epochs, the "saddle trap" step schedule of
Figures 3/4, LCAM with momentum (0.9, 0.95) (000's CIFAR-10 choice), the
ImageNet normalisation the authors used. A run stores its configuration in
``config.json`` and in every checkpoint (nanoGPT style), so a run can be
resumed, audited and compared without the command line that started it.

Fields split in two kinds:

* *experiment* fields change the numbers a run produces (model, data, optimizer,
  schedule, seed, precision);
* *location* fields (:data:`LOCATION_FIELDS`) only say where and how fast a run
  is computed (folders, device, ``torch.compile``); they may differ when a run is
  resumed elsewhere, and the grid ignores them when it compares a stored run
  with the requested one.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lcamlab.experiments.controls import SCHEDULED_CONTROLS
from lcamlab.experiments.registry import suite_keys

__all__ = [
    "TrainConfig",
    "OPTIMIZERS",
    "SCHEDULES",
    "DATASETS",
    "ARCHS",
    "DATASET_ARCHS",
    "LOCATION_FIELDS",
    "config_differences",
]

#: The names ``--optimizer`` accepts: the registry's ``train`` suite, each an optimizer kind whose
#: momentum and weight decay come from the config (:func:`lcamlab.train.runner.optimizer_spec`).
OPTIMIZERS: tuple[str, ...] = suite_keys("train")
SCHEDULES = ("step", "lcam-exp", "wrn", "cosine", "step-scaled", "lcam-exp-scaled")
DATASETS = ("cifar10", "cifar100", "fashion-mnist")
NORMALIZATION_NAMES = ("imagenet", "cifar10", "cifar100", "fashion-mnist")
#: ``wrn``: the Wide-ResNet of the paper (:mod:`lcamlab.models.wrn`); ``fmnet``: the small
#: airbench-style CNN for 28x28x1 Fashion-MNIST (:mod:`lcamlab.models.small`).
ARCHS = ("wrn", "fmnet")
#: The one rule for the model: ``--arch`` not given means the data set's model (the first one listed
#: for it); an arch not listed for a data set cannot take its images (the WRN's first convolution
#: expects 3 colour channels, Fashion-MNIST has 1), so it is refused before anything is created.
DATASET_ARCHS: dict[str, tuple[str, ...]] = {"cifar10": ("wrn", "fmnet"), "cifar100": ("wrn", "fmnet"),
                                             "fashion-mnist": ("fmnet",)}

# Fields added after the first runs were stored: a stored config without them had this value.
ADDED_FIELD_DEFAULTS = {"arch": "wrn", "control": None, "control_reference": None, "control_values": None,
                        "augment_pad": None}

# Fields that say where/how fast a run is computed, not what it computes.
LOCATION_FIELDS = frozenset({"data_dir", "download", "device", "compile", "runs_dir", "run_id"})


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class TrainConfig:
    r"""Everything that defines a WRN/CIFAR training run (000 section 4).

    The defaults reproduce one run of 000 Figure 3 (CIFAR-10, the red "0.9-0.95"
    group). The learning rate at iteration ``i`` of epoch ``e`` is
    :math:`\eta(e, i)` from :func:`lcamlab.train.schedules.learning_rate`.

    Build one from a flat mapping with :meth:`from_overrides` (unknown keys are
    rejected); :meth:`validate` checks every value and runs on construction.
    """

    # --- data (000 section 4: CIFAR-10/100, 50 000 train / 10 000 test images) ---
    dataset: str = field(default="cifar10", metadata=_help("cifar10, cifar100 or fashion-mnist"))
    data_dir: str | None = field(default=None, metadata=_help(
        "folder holding the CIFAR python archive or its extracted folder "
        "(default: $LCAMLAB_DATA_DIR, else <repo>/data/cifar)"))
    download: bool = field(default=False, metadata=_help("download the official archive if it is missing"))
    data_md5: str | None = field(default=None, metadata=_help(
        "expected MD5 of a custom archive, e.g. a synthetic one (default: the official CIFAR MD5)"))
    # the authors normalise with the ImageNet mean/std (digest decision: default to theirs)
    # fashion-mnist is greyscale: its own statistics (a 3-channel default is replaced by them)
    normalization: str = field(default="imagenet", metadata=_help(
        "input normalisation statistics: imagenet (the authors' choice), cifar10, cifar100 or fashion-mnist "
        "(used automatically for --dataset fashion-mnist)"))
    train_subset: int | None = field(default=None, metadata=_help(
        "use only the first N training images (tiny runs and tests; default: all 50 000)"))
    test_subset: int | None = field(default=None, metadata=_help(
        "use only the first N test images (default: all 10 000)"))

    # crop padding of the augmentation: None = the dataset's (CIFAR 4 as in 000; Fashion-MNIST 2)
    augment_pad: int | None = field(default=None, metadata=_help(
        "zero padding of the random-crop augmentation (default: 4 for CIFAR, 2 for fashion-mnist)"))

    # --- model (000 section 4: WRN-28-10, no dropout, ~36.5 M parameters) ---
    # None: the data set's model (DATASET_ARCHS), resolved by validate(), so a stored config names it
    arch: str | None = field(default=None, metadata=_help(
        "wrn (Wide-ResNet, --depth/--widen) or fmnet (the small CNN; 1 or 3 channels) (default: the data set's "
        "model: wrn for cifar10/cifar100, fmnet for fashion-mnist, whose 1-channel images the WRN cannot take)"))
    depth: int = field(default=28, metadata=_help("Wide-ResNet depth (6n+4: 10, 16, 22, 28, ...)"))
    widen: int = field(default=10, metadata=_help("Wide-ResNet widening factor k"))
    dropout: float = field(default=0.0, metadata=_help("dropout inside the residual blocks (paper: 0)"))

    # --- optimisation (000 section 4: SGD lr 0.1, weight decay 5e-4, batch 128) ---
    epochs: int = field(default=150, metadata=_help("number of epochs (Figures 3-5: 150)"))
    batch_size: int = field(default=128, metadata=_help(
        "global mini-batch size (split across replicas under torchrun)"))
    eval_batch_size: int = field(default=1000, metadata=_help(
        "test-set batch size (no effect on the numbers beyond float rounding)"))
    lr: float = field(default=0.1, metadata=_help("base learning rate (SGD/LCAM: 0.1)"))
    weight_decay: float = field(default=5e-4, metadata=_help(
        "weight decay (coupled L2 for sgd/lcam/adai/adam; decoupled for adaiw/adamw/adarem)"))
    optimizer: str = field(default="lcam", metadata=_help(
        "sgd, lcam, adai, adaiw, adarem, adam or adamw"))
    # (below, above): the momentum after a step whose loss is below / at-or-above the epoch's
    # running mean. 000 Figure 3 red group "0.9-0.95" (its CIFAR-10 choice); CIFAR-100: (0.93, 0.9).
    momentum: tuple[float, float] = field(default=(0.9, 0.95), metadata=_help(
        "LCAM momentum pair (below, above); sgd: one value or an equal pair"))
    # None: LCAM's default min(below, above), i.e. 0.9 for every published group but fixed 0.95
    initial_momentum: float | None = field(default=None, metadata=_help(
        "LCAM momentum of the very first step (default min(below, above))"))
    # "step": x0.2 after epochs 31/61/91 (Figures 3/4); "lcam-exp": Figure 5; "wrn": the WRN
    # paper's x0.2 at 60/120/160; "cosine": cosine annealing per iteration
    # "step-scaled" / "lcam-exp-scaled": the same two schedules with their epochs scaled to the epoch budget
    schedule: str = field(default="step", metadata=_help(
        "learning-rate schedule: step, lcam-exp, wrn, cosine, step-scaled or lcam-exp-scaled"))
    # LCAM's controls: ScheduledMomentum with the momentum pair of the reference LCAM run
    control: str | None = field(default=None, metadata=_help(
        "train a control of LCAM instead: shuffled or matched (needs --control-values)"))
    control_reference: str | None = field(default=None, metadata=_help(
        "the LCAM run the control's values come from (provenance; a run folder name)"))
    control_values: tuple[float, ...] | None = field(default=None, metadata=_help(
        "shuffled: the reference run's below-fraction per epoch; matched: its mean momentum (one value)"))

    # --- reproducibility and speed ---
    seed: int = field(default=0, metadata=_help(
        "seed of the initialisation and of the data order/augmentation"))
    device: str = field(default="auto", metadata=_help("auto (cuda if available), cpu, cuda or cuda:N"))
    amp: bool = field(default=True, metadata=_help("bf16 autocast on CUDA (ignored on the CPU)"))
    channels_last: bool = field(default=True, metadata=_help("channels_last memory format"))
    compile: bool = field(default=False, metadata=_help("torch.compile the model"))
    # Under torchrun on CUDA, BatchNorm statistics over the global batch (as on one GPU)
    sync_batchnorm: bool = field(default=True, metadata=_help(
        "under torchrun on CUDA, convert BatchNorm to SyncBatchNorm (global-batch statistics, as on one GPU)"))

    # --- bookkeeping ---
    runs_dir: str = field(default="data/runs", metadata=_help("folder holding one sub-folder per run"))
    run_id: str | None = field(default=None, metadata=_help(
        "name of the run folder (default: derived from the config, e.g. lcam-cifar10-step-m0.9-0.95-s0)"))
    figure: str | None = field(default=None, metadata=_help(
        "the paper figure a grid run belongs to (fig3/fig4/fig5; names the run, no effect on training)"))

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------------------------

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """Names of all configuration fields, in declaration order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_overrides(cls, overrides: Mapping[str, Any] | None = None, **more: Any) -> TrainConfig:
        """The paper's configuration with some fields replaced.

        Args:
            overrides: ``{field: value}``; keys may use dashes (``"batch-size"``).
            **more: further overrides as keywords.

        Returns:
            A validated :class:`TrainConfig`.

        Raises:
            ValueError: an unknown key (the message lists the valid ones) or a bad value.
        """
        values = dict(overrides or {})
        values.update(more)
        known = set(cls.field_names())
        clean: dict[str, Any] = {}
        for key, value in values.items():
            name = str(key).replace("-", "_")
            if name not in known:
                raise ValueError(
                    f"Unknown training config key: {key!r} (valid keys: {', '.join(cls.field_names())})"
                )
            clean[name] = value
        return cls(**clean)  # validated by __post_init__

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        """Rebuild a stored configuration (``config.json`` / checkpoint), lists back to tuples."""
        return cls.from_overrides(values)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready flat dict (the momentum pair as a list)."""
        values = dataclasses.asdict(self)
        values["momentum"] = list(values["momentum"])
        if values.get("control_values") is not None:
            values["control_values"] = list(values["control_values"])
        return values

    def replace(self, **changes: Any) -> TrainConfig:
        """A validated copy with some fields changed (unknown names rejected)."""
        return TrainConfig.from_overrides({**self.to_dict(), **changes})

    def experiment_dict(self) -> dict[str, Any]:
        """The fields that change the numbers (everything but :data:`LOCATION_FIELDS`)."""
        return {k: v for k, v in self.to_dict().items() if k not in LOCATION_FIELDS}

    @property
    def crop_pad(self) -> int:
        """The crop padding actually used: :attr:`augment_pad`, else 2 for fashion-mnist and 4 for CIFAR."""
        if self.augment_pad is not None:
            return self.augment_pad
        return 2 if self.dataset == "fashion-mnist" else 4

    def _validate_control(self) -> None:
        if self.control is None:
            if self.control_values is not None or self.control_reference is not None:
                raise ValueError("Invalid control_values/control_reference without --control (shuffled or matched)")
            return
        # LCAM's scheduled controls (lcamlab.experiments.controls): ``shuffled`` draws LCAM's two momentum
        # values at the reference run's realised per-epoch below-fraction, independently of the loss;
        # ``matched`` uses fixed momentum at the reference run's realised mean momentum. (A bound is a
        # plain ``--optimizer sgd`` run.)
        if self.control not in SCHEDULED_CONTROLS:
            raise ValueError(f"Invalid control: {self.control!r} (choose one of {', '.join(SCHEDULED_CONTROLS)})")
        if self.optimizer != "lcam":
            raise ValueError(f"Invalid optimizer {self.optimizer!r} for a control: a control replaces LCAM "
                             f"(--optimizer lcam with the reference run's momentum pair)")
        if self.control_values is None:
            return  # a planned control whose reference run is not trained yet (the grid fills the values)
        values = self.control_values
        if isinstance(values, (int, float)) and not isinstance(values, bool):
            values = (values,)
        if not isinstance(values, (list, tuple)) or not values or any(
                isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) for v in values):
            raise ValueError(f"Invalid control_values: {self.control_values!r} (a list of numbers)")
        values = tuple(float(v) for v in values)
        if self.control == "matched":
            if len(values) != 1 or not 0.0 <= values[0] < 1.0:
                raise ValueError(f"Invalid control_values for matched: {values} (one mean momentum in [0, 1))")
        else:
            if len(values) != self.epochs or any(not 0.0 <= v <= 1.0 for v in values):
                raise ValueError(f"Invalid control_values for shuffled: {len(values)} values (need one "
                                 f"below-fraction in [0, 1] per epoch: {self.epochs})")
        self.control_values = values

    # ------------------------------------------------------------------------------------

    def validate(self) -> None:
        """Check every field; normalise the momentum to a float pair.

        Raises:
            ValueError: naming the bad value and what is allowed.
        """
        if self.dataset not in DATASETS:
            raise ValueError(f"Invalid dataset: {self.dataset!r} (choose one of {', '.join(DATASETS)})")
        if self.dataset == "fashion-mnist" and self.normalization == "imagenet":
            self.normalization = "fashion-mnist"  # the 3-channel default cannot normalise greyscale images
        if (self.dataset == "fashion-mnist") != (self.normalization == "fashion-mnist"):
            raise ValueError(f"Invalid normalization {self.normalization!r} for dataset {self.dataset!r} "
                             f"(fashion-mnist images are greyscale: use normalization fashion-mnist with "
                             f"dataset fashion-mnist, and a colour one otherwise)")
        if self.arch is None:
            self.arch = DATASET_ARCHS[self.dataset][0]
        if self.arch not in ARCHS:
            raise ValueError(f"Invalid arch: {self.arch!r} (choose one of {', '.join(ARCHS)})")
        if self.arch not in DATASET_ARCHS[self.dataset]:
            works = DATASET_ARCHS[self.dataset]
            raise ValueError(f"Invalid --arch {self.arch} for --dataset {self.dataset}: that model cannot take its "
                             f"images; use --arch {' or '.join(works)} (or leave --arch out: each data set gets "
                             f"its model)")
        if self.augment_pad is not None and (isinstance(self.augment_pad, bool) or not isinstance(
                self.augment_pad, int) or self.augment_pad < 0):
            raise ValueError(f"Invalid augment_pad: {self.augment_pad!r} (an integer >= 0, or None)")
        self._validate_control()
        if self.normalization not in NORMALIZATION_NAMES:
            raise ValueError(
                f"Invalid normalization: {self.normalization!r} (choose one of {', '.join(NORMALIZATION_NAMES)})"
            )
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"Invalid optimizer: {self.optimizer!r} (choose one of {', '.join(OPTIMIZERS)})")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"Invalid schedule: {self.schedule!r} (choose one of {', '.join(SCHEDULES)})")
        _positive_int("epochs", self.epochs)
        _positive_int("batch_size", self.batch_size)
        _positive_int("eval_batch_size", self.eval_batch_size)
        _positive_int("widen", self.widen)
        _positive_int("depth", self.depth)
        if (self.depth - 4) % 6 != 0:
            raise ValueError(f"Invalid depth: {self.depth} (a Wide-ResNet has depth 6n+4: 10, 16, 22, 28, 40, ...)")
        for name in ("train_subset", "test_subset"):
            value = getattr(self, name)
            if value is not None:
                _positive_int(name, value)
        _finite_number("lr", self.lr, minimum=0.0, strict=True)
        _finite_number("weight_decay", self.weight_decay, minimum=0.0)
        _finite_number("dropout", self.dropout, minimum=0.0)
        if not self.dropout < 1.0:
            raise ValueError(f"Invalid dropout: {self.dropout} (must be in [0, 1))")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"Invalid seed: {self.seed!r} (must be an integer >= 0)")
        self.momentum = _momentum_pair(self.momentum)
        if self.optimizer == "sgd" and self.momentum[0] != self.momentum[1]:
            raise ValueError(
                f"Invalid momentum for sgd: {self.momentum} (plain SGD has one momentum; "
                f"use --optimizer lcam for an asymmetric pair)"
            )
        if self.initial_momentum is not None:
            _unit_interval("initial_momentum", self.initial_momentum)
            self.initial_momentum = float(self.initial_momentum)
        for name in ("amp", "channels_last", "compile", "download", "sync_batchnorm"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"Invalid {name}: {getattr(self, name)!r} (expected true or false)")
        if not isinstance(self.device, str) or not self.device:
            raise ValueError(f"Invalid device: {self.device!r} (auto, cpu, cuda or cuda:N)")
        if self.device != "auto":
            import torch

            try:
                torch.device(self.device)
            except RuntimeError as error:
                raise ValueError(f"Invalid device: {self.device!r} (auto, cpu, cuda or cuda:N)") from error
        if self.data_md5 is not None and (not isinstance(self.data_md5, str) or len(self.data_md5) != 32
                                          or any(c not in "0123456789abcdefABCDEF" for c in self.data_md5)):
            raise ValueError(f"Invalid data_md5: {self.data_md5!r} (32 hexadecimal digits)")
        if self.run_id is not None and (not self.run_id or "/" in self.run_id or self.run_id in (".", "..")):
            raise ValueError(f"Invalid run_id: {self.run_id!r} (a folder name without '/')")
        # a newline or other control character in a folder name breaks every listing and log line that shows it
        if self.run_id is not None and any(ord(c) < 32 or ord(c) == 127 for c in self.run_id):
            raise ValueError(f"Invalid run_id: {self.run_id!r} (a folder name without control characters such as a "
                             f"newline or tab)")
        if self.figure is not None and self.figure not in ("fig3", "fig4", "fig5"):
            raise ValueError(f"Invalid figure: {self.figure!r} (fig3, fig4, fig5 or None)")


def config_differences(stored: Mapping[str, Any], requested: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Experiment fields whose values differ: ``{name: (stored, requested)}``.

    Location fields (:data:`LOCATION_FIELDS`) are ignored; a field missing on one
    side (a config written by another lcamlab version) counts as different, unless it
    is one added later (:data:`ADDED_FIELD_DEFAULTS`) and the other side has its default.
    """
    names = (set(stored) | set(requested)) - LOCATION_FIELDS
    differences = {}
    for name in sorted(names):
        missing = ADDED_FIELD_DEFAULTS.get(name, "<missing>")
        a, b = stored.get(name, missing), requested.get(name, missing)
        if isinstance(a, (list, tuple)):
            a = tuple(a)
        if isinstance(b, (list, tuple)):
            b = tuple(b)
        if a != b:
            differences[name] = (a, b)
    return differences


def _positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"Invalid {name}: {value!r} (must be an integer > 0)")


def _finite_number(name: str, value: Any, *, minimum: float, strict: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = value > minimum if strict else value >= minimum
    if not ok:
        bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
        raise ValueError(f"Invalid {name}: {value!r} (must be a finite number {bound})")


def _unit_interval(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"Invalid {name}: {value!r} (must be in [0, 1))")
    return float(value)


def _momentum_pair(value: Any) -> tuple[float, float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = (value, value)
    if not isinstance(value, (list, tuple)) or len(value) not in (1, 2):
        raise ValueError(f"Invalid momentum: {value!r} (expected BELOW ABOVE, e.g. 0.9 0.95, or one value)")
    if len(value) == 1:
        value = (value[0], value[0])
    below = _unit_interval("momentum below value", value[0])
    above = _unit_interval("momentum above value", value[1])
    return (below, above)
