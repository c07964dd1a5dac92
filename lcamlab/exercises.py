r"""Predict-then-check exercises for the notebooks: the check cell tells the learner whether they were right.

An exercise has two cells. The *predict* cell asks a question and holds a
variable the learner sets (``prediction = None`` as stored). The *check* cell
calls one of the functions below with that prediction and the **measured**
answer, computed in the notebook from the data it just produced (never typed
in), and shows one of:

* no prediction yet: the question again, and how to answer it;
* right: a short confirmation and the explanation;
* not quite: what was measured, and the explanation.

The functions return an :class:`Outcome` (``status`` is ``"unanswered"``,
``"right"`` or ``"wrong"``) so a teacher can collect answers, and the notebooks
run headlessly (papermill) with the stored ``None`` predictions without failing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Outcome", "check_choice", "check_number", "check_sign"]


@dataclass(frozen=True)
class Outcome:
    """The result of a check: ``status`` in {"unanswered", "right", "wrong"} and the message shown."""

    status: str
    message: str

    def _repr_markdown_(self) -> str:  # rendered by Jupyter
        return self.message

    def __str__(self) -> str:
        return self.message


_MARKS = {"unanswered": "✏️ **No prediction yet.**", "right": "✅ **Right.**", "wrong": "❌ **Not quite.**"}


def _outcome(status: str, text: str, why: str) -> Outcome:
    message = f"{_MARKS[status]} {text}"
    if why and status != "unanswered":
        message += f"\n\n*Why:* {why}"
    return Outcome(status, message)


def _normalise(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


def check_choice(prediction: Any, answer: Any, options: Sequence[Any], *, why: str = "") -> Outcome:
    """A multiple-choice prediction against the measured answer (one of ``options``; strings compare
    case-insensitively).

    Raises:
        ValueError: the measured ``answer`` is not among ``options`` (a broken exercise, not a wrong guess).
    """
    normalised = [_normalise(o) for o in options]
    if _normalise(answer) not in normalised:
        raise ValueError(f"Invalid exercise: the measured answer {answer!r} is not one of the options {list(options)}")
    shown = ", ".join(repr(o) for o in options)
    if prediction is None:
        return _outcome("unanswered", f"Set `prediction` to one of {shown} in the cell above and run both cells.", why)
    if _normalise(prediction) not in normalised:
        return _outcome("unanswered", f"{prediction!r} is not one of the options: choose one of {shown}.", why)
    if _normalise(prediction) == _normalise(answer):
        return _outcome("right", f"The measurement says {answer!r}.", why)
    return _outcome("wrong", f"You predicted {prediction!r}; the measurement says {answer!r}.", why)


def check_number(prediction: Any, answer: float, *, rel_tol: float = 0.25, abs_tol: float = 0.0,
                 unit: str = "", why: str = "") -> Outcome:
    """A numerical prediction, right when within ``rel_tol`` (relative) or ``abs_tol`` of the measured ``answer``."""
    if not (rel_tol >= 0 and abs_tol >= 0):
        raise ValueError(f"Invalid tolerances: rel_tol={rel_tol!r}, abs_tol={abs_tol!r} (must be >= 0)")
    if prediction is None:
        return _outcome("unanswered", "Set `prediction` to a number in the cell above and run both cells.", why)
    try:
        guess = float(prediction)
    except (TypeError, ValueError):
        return _outcome("unanswered", f"{prediction!r} is not a number: set `prediction` to one.", why)
    suffix = f" {unit}" if unit else ""
    if math.isclose(guess, float(answer), rel_tol=rel_tol, abs_tol=abs_tol):
        return _outcome("right", f"Measured: {answer:.3g}{suffix}; you said {guess:.3g}{suffix}.", why)
    return _outcome("wrong", f"Measured: {answer:.3g}{suffix}; you said {guess:.3g}{suffix} "
                             f"(within {rel_tol:.0%} counts as right).", why)


def check_sign(prediction: Any, low: float, high: float, *, why: str = "") -> Outcome:
    """A prediction of an effect's sign (``"+"``, ``"-"`` or ``"0"``) against its measured 95% interval.

    The interval decides: ``"+"`` when it lies above zero, ``"-"`` below, ``"0"`` when
    it contains zero (no effect detectable at this number of trials).
    """
    answer = "+" if low > 0 else "-" if high < 0 else "0"
    interval = f"[{low:.3g}, {high:.3g}]"
    outcome = check_choice(prediction, answer, ["+", "-", "0"], why=why)
    if outcome.status == "unanswered":
        return outcome
    return _outcome(outcome.status, f"The 95% interval of the effect is {interval}, so its sign is {answer!r}"
                                    f"{'' if outcome.status == 'right' else f'; you predicted {prediction!r}'}.", why)
