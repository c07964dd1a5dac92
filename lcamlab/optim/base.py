r"""What every lcamlab optimizer shares: the trial axis, validation, the loss, epochs, state.

:class:`TrialOptimizer` is a ``torch.optim.Optimizer`` whose subclasses (LCAM,
Adai/AdaiW, AdaRem, AdaRem-S) write only their own arithmetic:

=================================  ====================================================================
concern                            owned here as
=================================  ====================================================================
trial axis                         ``trial_axis`` (a validated bool), :func:`trial_view`,
                                   :func:`trial_rows`, :func:`check_trial_shapes`
hyperparameters                    :func:`check_number`, :func:`check_bool`, :func:`check_pair`;
                                   one ``_validate_group(group)`` per class, run by
                                   :meth:`~TrialOptimizer.add_param_group` (so also by ``__init__``)
closure and loss                   :meth:`~TrialOptimizer.step`, a template around ``_step(loss)``
loss-taking / epoch protocol       ``takes_loss`` (class attribute), :meth:`~TrialOptimizer.new_epoch`,
                                   and for *any* optimizer, torch's included: :func:`takes_loss`,
                                   :func:`optimizer_step`, :func:`start_epoch`
checkpoints                        ``state_dict`` / ``load_state_dict`` with the class's extra state
                                   (``_extra_state`` / ``_load_extra_state``) under ``_state_key``
=================================  ====================================================================

The trial axis. With ``trial_axis=True`` dim 0 of every parameter indexes
independent trials: a ``(T, ...)`` parameter is ``T`` separate runs stored as one
tensor, and every statistic an optimizer takes over a tensor (LCAM's running
mean, Adai's mean second moment, AdaRem's maximum, AdaRem-S's norm) is taken
per trial. A per-trial value has shape ``(T,)``; :func:`trial_view` shapes it to
broadcast over a ``(T, ...)`` parameter.

The loss protocol. An optimizer whose update needs the mini-batch loss (LCAM)
declares ``takes_loss = True`` and receives the loss through ``step(loss=...)``
or as the return value of ``step(closure)``. Code that drives optimizers it does
not know calls :func:`optimizer_step` and :func:`start_epoch` instead of testing
for methods or signatures.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor
from torch.optim import Optimizer

__all__ = [
    "TrialOptimizer",
    "takes_loss",
    "optimizer_step",
    "start_epoch",
    "trial_view",
    "trial_rows",
    "check_trial_shapes",
    "resolve_foreach",
    "is_number",
    "check_number",
    "check_bool",
    "check_pair",
    "check_lr",
    "host_number",
    "foreach_descend_",
]


# --------------------------------------------------------------------------------------
# The protocol, for any optimizer
# --------------------------------------------------------------------------------------


def takes_loss(optimizer: Optimizer) -> bool:
    """Whether ``optimizer.step`` needs the mini-batch loss (LCAM); False for torch's optimizers.

    Reads the class attribute ``takes_loss`` (:class:`TrialOptimizer` declares it),
    so an optimizer outside lcamlab opts in by declaring ``takes_loss = True``.
    """
    flag = getattr(type(optimizer), "takes_loss", False)
    return isinstance(flag, bool) and flag


def optimizer_step(optimizer: Optimizer, loss: Any = None) -> Any:
    """One step of any optimizer: ``step(loss=loss)`` if it takes the loss, else ``step()``.

    The loss is passed as given (a device tensor stays on the device), so this
    adds no host synchronisation. Returns what ``step`` returns.
    """
    if takes_loss(optimizer):
        return optimizer.step(loss=loss)
    return optimizer.step()


def start_epoch(optimizer: Optimizer) -> None:
    """Mark an epoch boundary: calls ``optimizer.new_epoch()`` where it exists.

    LCAM restarts its running mean, AdaRem advances :math:`\\tau`; other
    optimizers (torch's) have no epochs and are left alone.
    """
    new_epoch = getattr(optimizer, "new_epoch", None)
    if callable(new_epoch):
        new_epoch()


# --------------------------------------------------------------------------------------
# The trial axis
# --------------------------------------------------------------------------------------


def trial_view(value: Any, like: Tensor) -> Any:
    """Shape a per-trial value ``(T,)`` to broadcast over ``like`` of shape ``(T, ...)``.

    Floats and 0-dim tensors (one value for all trials) are returned unchanged.
    """
    if not isinstance(value, Tensor) or value.dim() == 0:
        return value
    return value.view((-1,) + (1,) * (like.dim() - 1))


def trial_rows(t: Tensor) -> Tensor:
    """``t`` of shape ``(T, ...)`` as ``(T, n)``, one row per trial, for per-trial reductions."""
    # reshape, not flatten(1): a (T,) parameter becomes (T, 1)
    return t.reshape(t.shape[0], -1)


def check_trial_shapes(
    params: Iterable[Tensor], trials: int | None = None, *, source: str = "the first parameter"
) -> int | None:
    """Check that dim 0 of every parameter is the trial axis, of one length ``T`` for all.

    Args:
        params: the parameters (with ``trial_axis=True``).
        trials: the expected ``T``; ``None`` takes it from the first parameter.
        source: where ``trials`` came from, for the error message.

    Returns:
        ``T``, or ``None`` when ``params`` is empty and ``trials`` was not given.

    Raises:
        ValueError: naming the first parameter shape that does not fit.
    """
    for p in params:
        if p.dim() == 0:
            raise ValueError(
                f"Invalid parameter shape {tuple(p.shape)} for trial_axis=True: dim 0 of every "
                f"parameter must be the trial axis (a 0-dim parameter has none)"
            )
        if trials is None:
            trials = int(p.shape[0])
        elif p.shape[0] != trials:
            raise ValueError(
                f"Invalid parameter shape {tuple(p.shape)} for trial_axis=True: dim 0 of every "
                f"parameter must be the trial axis, of the same length for all parameters "
                f"({trials} trials, as in {source})"
            )
    return trials


def resolve_foreach(foreach: bool | None, params: Sequence[Tensor]) -> bool:
    """The ``foreach`` setting to use: as given, or by default when every parameter is on CUDA."""
    if foreach is None:
        return len(params) > 0 and all(p.is_cuda for p in params)
    return foreach


# --------------------------------------------------------------------------------------
# Validators: every message reads ``Invalid {name}: {value!r} ({what is expected})``
# --------------------------------------------------------------------------------------


def is_number(value: Any) -> bool:
    """A Python ``int`` or ``float`` (not a bool, not a tensor)."""
    return not isinstance(value, bool) and isinstance(value, (int, float))


def _fmt(x: float) -> str:
    return f"{x:g}"


def check_number(
    name: str,
    value: Any,
    low: float = 0.0,
    high: float = math.inf,
    *,
    low_open: bool = False,
    high_open: bool = True,
    note: str | None = None,
) -> float:
    """``value`` as a float if it is a number in the interval, else ``ValueError``.

    The interval is ``[low, high)`` by default (open or closed at each end by
    ``low_open`` / ``high_open``); ``high=inf`` asks for a finite number. NaN is
    never accepted. ``note`` (e.g. the paper's value) is appended to the message.
    """
    inside = is_number(value) and (low < value if low_open else low <= value) and (
        value < high if high_open else value <= high
    )
    if not inside:
        if high == math.inf:
            bounds = f"a finite number {'>' if low_open else '>='} {_fmt(low)}"
        else:
            bounds = f"in {'(' if low_open else '['}{_fmt(low)}, {_fmt(high)}{')' if high_open else ']'}"
        raise ValueError(f"Invalid {name}: {value!r} (must be {bounds}{'; ' + note if note else ''})")
    return float(value)


def check_lr(value: Any) -> float | Tensor:
    """A learning rate: a finite number >= 0, or a 0-dim floating tensor holding one (as torch's optimizers take).

    A tensor is kept as given, so a scheduler changes it in place and a compiled
    step reads it instead of baking the number into the graph (with a float
    learning rate, ``torch.compile`` recompiles the step whenever a scheduler
    changes it, for torch's own optimizers too). Checking a tensor's value reads
    it once, here.
    """
    if isinstance(value, Tensor):
        if value.dim() != 0 or not value.is_floating_point() or value.requires_grad:
            raise ValueError(
                f"Invalid learning rate: a tensor of shape {tuple(value.shape)}, dtype {value.dtype}"
                f"{', requiring grad' if value.requires_grad else ''} (a tensor learning rate must be "
                f"0-dim, floating point and not require grad, e.g. torch.tensor(0.1))"
            )
        check_number("learning rate", float(value))
        return value
    return check_number("learning rate", value)


def host_number(counter: Tensor) -> float | Tensor:
    """A CPU counter (a step, an epoch) as a Python number, or the tensor itself under ``torch.compile``.

    Eager code computes with the exact host number (reading a CPU tensor never
    synchronises a GPU); a compiled step must read the tensor, or dynamo would
    bake the number of the step it traced into the graph.
    """
    return counter if torch.compiler.is_compiling() else counter.item()


def foreach_descend_(params: list[Tensor], updates: list[Tensor], lr: float | Tensor) -> None:
    r""":math:`\theta \leftarrow \theta - \eta u` for lists, in place (``torch._foreach_add_(..., alpha=-lr)``).

    A tensor ``lr`` under ``torch.compile`` is multiplied in instead: ``alpha``
    is read on the host, which breaks the graph (torch's SGD does the same).
    """
    if isinstance(lr, Tensor) and torch.compiler.is_compiling():
        torch._foreach_add_(params, torch._foreach_mul(updates, -lr))
    else:
        torch._foreach_add_(params, updates, alpha=-lr)


def check_bool(name: str, value: Any, *, optional: bool = False, note: str | None = None) -> bool | None:
    """``value`` if it is ``True`` or ``False`` (or ``None`` with ``optional``), else ``ValueError``.

    Identity, not equality: ``1`` and ``0`` are refused.
    """
    if value is True or value is False or (optional and value is None):
        return value
    expected = "None, True or False" if optional else "True or False"
    raise ValueError(f"Invalid {name}: {value!r} (expected {expected}{'; ' + note if note else ''})")


def check_pair(name: str, value: Any, expected: str, *, one_number_for_both: bool = False) -> tuple[Any, Any]:
    """``value`` as a 2-tuple if it is a pair (tuple or list of two), else ``ValueError``.

    With ``one_number_for_both`` a single number ``x`` means ``(x, x)``. The
    entries are not checked: each has its own rule (:func:`check_number`).
    """
    if one_number_for_both and is_number(value):
        return (value, value)
    if isinstance(value, Tensor) or not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"Invalid {name}: {value!r} (expected {expected})")
    return (value[0], value[1])


# --------------------------------------------------------------------------------------
# The base class
# --------------------------------------------------------------------------------------


class TrialOptimizer(Optimizer):
    r"""A ``torch.optim.Optimizer`` with a trial axis, one validation path, the loss and epochs.

    A subclass provides:

    * ``_state_key``: the key of its extra state in :meth:`state_dict`;
    * ``_validate_group(group)``: checks (and normalises, e.g. lists to tuples)
      its own settings of one param group, after ``super()._validate_group(group)``
      which checks ``lr``, ``weight_decay`` and ``foreach``;
    * ``_step(loss)``: the update, under ``torch.no_grad``; ``loss`` is ``None``
      unless the class declares ``takes_loss = True``;
    * optionally ``new_epoch()``, ``_extra_state()`` / ``_load_extra_state(extra)``
      and ``_group_fallbacks`` (group settings an older pickle or state dict may lack).

    Validation runs once per param group, in :meth:`add_param_group`, which
    ``torch.optim.Optimizer.__init__`` calls for every group: defaults that a
    group does not override are checked there, and defaults that every group
    overrides are checked when a later group first uses them. Groups that
    :meth:`load_state_dict` brings in replace the old ones and go through the
    same check.

    Args:
        params: iterable of parameters or param-group dicts.
        defaults: the default settings of a param group.
        trial_axis: dim 0 of every parameter is an independent trial (see the
            module docstring); the same for all groups.
    """

    #: Whether :meth:`step` needs the mini-batch loss (read by :func:`takes_loss`).
    takes_loss: ClassVar[bool] = False
    #: The key of the class's extra state in :meth:`state_dict`.
    _state_key: ClassVar[str]
    #: Group settings that an older pickle or state dict may lack, with the value that reproduces it.
    _group_fallbacks: ClassVar[dict[str, Any]] = {"foreach": None}

    trial_view = staticmethod(trial_view)

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        defaults: dict[str, Any],
        *,
        trial_axis: bool = False,
    ) -> None:
        # Set before torch's __init__: group validation may read it.
        self.trial_axis = check_bool("trial_axis", trial_axis)
        super().__init__(params, defaults)

    # -- configuration -----------------------------------------------------------------

    def _validate_group(self, group: dict[str, Any]) -> None:
        """Check one param group's settings in place; subclasses extend it."""
        group["lr"] = check_lr(group["lr"])
        group["weight_decay"] = check_number("weight_decay value", group["weight_decay"])
        group["foreach"] = check_bool("foreach", group["foreach"], optional=True)

    def add_param_group(self, param_group: dict[str, Any]) -> None:  # noqa: D401 - torch API
        """Add a param group (torch's checks and defaults), then validate its settings.

        A group that fails validation is not kept: the optimizer is left as it was.
        """
        super().add_param_group(param_group)
        try:
            self._validate_group(self.param_groups[-1])
        except ValueError:
            self.param_groups.pop()
            raise

    def __getstate__(self) -> dict[str, Any]:
        # torch pickles only defaults, state and groups; the extra state travels along
        state = super().__getstate__()
        state[self._state_key] = self._extra_state_with_trial_axis()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickling, and torch's ``load_state_dict`` (which passes only state and groups)."""
        state = dict(state)
        extra = state.pop(self._state_key, None)
        super().__setstate__(state)
        for group in self.param_groups:
            for key, value in self._group_fallbacks.items():
                group.setdefault(key, value)
        if extra is not None:
            self.trial_axis = extra["trial_axis"]
            self._load_extra_state(extra)

    # -- epochs --------------------------------------------------------------------------

    def new_epoch(self) -> None:
        """Mark an epoch boundary. Optimizers without epoch state do nothing."""

    # -- the step ------------------------------------------------------------------------

    def _first_param(self) -> Tensor | None:
        return next((p for group in self.param_groups for p in group["params"]), None)

    def _params_with_grad(self, group: dict[str, Any]) -> Iterator[Tensor]:
        """The parameters of ``group`` that have a (dense) gradient."""
        for p in group["params"]:
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise ValueError(f"{type(self).__name__} does not support sparse gradients")
            yield p

    def _as_loss_tensor(self, loss: Any, device: torch.device) -> Tensor:
        """Check the loss's form and bring it to ``device`` (a float becomes float64).

        One loss, or with ``trial_axis`` one loss per trial, shape ``(T,)``.
        """
        name = type(self).__name__
        if isinstance(loss, Tensor):
            loss = loss.detach()
            if self.trial_axis:
                if loss.dim() != 1:
                    raise ValueError(
                        f"Invalid loss shape {tuple(loss.shape)}: with trial_axis=True {name} needs one "
                        f"loss per trial, a tensor of shape (trials,)"
                    )
            elif loss.numel() != 1:
                raise ValueError(
                    f"Invalid loss shape {tuple(loss.shape)}: {name} needs the scalar mini-batch loss "
                    f"(use loss.mean(), or trial_axis=True for a batch of independent trials)"
                )
            else:
                loss = loss.reshape(())
            return loss.to(device=device, non_blocking=True)
        if is_number(loss):
            if self.trial_axis:
                raise ValueError(
                    f"Invalid loss {loss!r}: with trial_axis=True {name} needs a (trials,) tensor of losses"
                )
            # MPS has no float64
            dtype = torch.float32 if device.type == "mps" else torch.float64
            return torch.tensor(float(loss), dtype=dtype, device=device)
        raise ValueError(f"Invalid loss {loss!r}: expected a float or a tensor")

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None, loss: Any = None) -> Any:
        """Update the parameters.

        Args:
            closure: re-evaluates the model and returns the loss (optional); it
                runs with gradients enabled.
            loss: for an optimizer that takes the loss (``takes_loss``), this
                iteration's mini-batch loss at the current parameters: a float, a
                0-dim tensor, or ``(T,)`` with ``trial_axis``; needed when no
                closure returns it. Other optimizers refuse it.

        Returns:
            The closure's loss if a closure was given, else ``None``.
        """
        closure_loss = None
        if closure is not None:
            with torch.enable_grad():
                closure_loss = closure()
        name = type(self).__name__
        if self.takes_loss:
            if loss is None:
                loss = closure_loss
            if loss is None:
                raise ValueError(
                    f"{name}.step needs this iteration's mini-batch loss: call step(loss=loss) "
                    f"or step(closure) with a closure that returns the loss"
                )
        elif loss is not None:
            raise TypeError(
                f"{name}.step takes no loss ({name}.takes_loss is False): call step(), or "
                f"lcamlab.optim.optimizer_step(optimizer, loss), which passes it only where it is used"
            )
        for group in self.param_groups:
            if "base_momentum" in group:
                raise ValueError(
                    f"{name} cannot follow a momentum-cycling scheduler: OneCycleLR or CyclicLR with "
                    f"cycle_momentum=True overwrites group['momentum'] / group['betas'][0], which "
                    f"{name} does not use as SGD's momentum (create the scheduler with cycle_momentum=False)"
                )
        first = self._first_param()
        if first is None:
            return closure_loss
        if self.takes_loss:
            loss = self._as_loss_tensor(loss, first.device)
        if self.trial_axis:
            # Every parameter about to move, across all groups, before anything moves.
            with_grad = (p for group in self.param_groups for p in group["params"] if p.grad is not None)
            if self.takes_loss:
                check_trial_shapes(with_grad, int(loss.shape[0]), source="the loss")
            else:
                check_trial_shapes(with_grad)
        self._step(loss)
        return closure_loss

    def _step(self, loss: Tensor | None) -> None:
        """The update itself (under ``torch.no_grad``); ``loss`` only with ``takes_loss``."""
        raise NotImplementedError

    # -- checkpointing -------------------------------------------------------------------

    def _extra_state(self) -> dict[str, Any]:
        """State beyond torch's (per-parameter state and groups), saved under ``_state_key``."""
        return {}

    def _load_extra_state(self, extra: dict[str, Any]) -> None:
        """Restore what :meth:`_extra_state` saved (after torch's state and groups are in place)."""

    def _extra_state_with_trial_axis(self) -> dict[str, Any]:
        return {"trial_axis": self.trial_axis, **self._extra_state()}

    def state_dict(self) -> dict[str, Any]:
        """torch's state dict plus ``trial_axis`` and the class's extra state under ``_state_key``."""
        state = super().state_dict()
        state[self._state_key] = self._extra_state_with_trial_axis()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the buffers, the groups and the extra state.

        Refuses a state dict without this class's entry (saved from another
        optimizer) or saved with another ``trial_axis``. The loaded groups go
        through the same validation as new ones (which also turns pairs that a
        serialisation made lists back into tuples).
        """
        name = type(self).__name__
        state_dict = dict(state_dict)
        extra = state_dict.pop(self._state_key, None)
        if extra is None:
            raise ValueError(
                f"Invalid {name} state dict: it has no {self._state_key!r} entry "
                f"(was it saved from another optimizer?)"
            )
        if extra["trial_axis"] != self.trial_axis:
            raise ValueError(
                f"Invalid {name} state dict: saved with trial_axis={extra['trial_axis']}, "
                f"this optimizer has trial_axis={self.trial_axis}"
            )
        super().load_state_dict(state_dict)
        for group in self.param_groups:
            self._validate_group(group)
        self._load_extra_state(extra)
