"""The four measurements' tables as rows of the claims ledger (:mod:`lcamlab.experiments.claims`).

Predictions, controls and margins are fixed here, in code, before any number is read;
the verdicts are computed by :func:`lcamlab.experiments.claims.claim_row`.
"""

from __future__ import annotations

import math
from typing import Any

from lcamlab.experiments.claims import claim_row
from lcamlab.experiments.registry import label
from lcamlab.toys.measurements.oscillation import OSCILLATION_CONTRASTS, OscillationConfig
from lcamlab.toys.measurements.sparsity import SparsityConfig
from lcamlab.toys.measurements.traction import TractionConfig

__all__ = ["NOTEBOOK", "PROGRESS_MARGIN", "LOG10_MARGIN", "Q_MARGIN", "AGREEMENT_MARGIN", "claim_rows"]


#: The notebook whose ledger rows :func:`claim_rows` writes.
NOTEBOOK = "01_weight_traction"


# Margins below which an effect counts as practically nil (claims.verdict's `margin`):
# * progress of the spring (fractions of the way from start to optimum): 0.002, a fifth of a
#   percent of the way, invisible in any picture of the spring;
# * log10 losses: 0.05 decades (a 12% change of the loss);
# * the oscillation index Q (>= 1): 0.05;
# * phase agreement (a probability): 0.25 around chance, i.e. the loss "tells the phase" only if
#   it is right more than three times in four, and is shown not to if its interval lies within
#   (0.25, 0.75).
PROGRESS_MARGIN = 0.002
LOG10_MARGIN = 0.05
Q_MARGIN = 0.05
AGREEMENT_MARGIN = 0.25


def _row_of(frame: Any, **where: Any) -> Any | None:
    mask = None
    for column, value in where.items():
        m = (frame[column] - value).abs() < 1e-9 if isinstance(value, float) else frame[column] == value
        mask = m if mask is None else mask & m
    rows = frame[mask]
    return None if rows.empty else rows.iloc[0]


def _negated(row: Any | None, column: str) -> Any | None:
    """``row`` with the difference in ``column`` (and its interval) turned round: b - a from a - b."""
    if row is None:
        return None
    row = row.copy()
    row[column], row[f"{column}_low"], row[f"{column}_high"] = (-row[column], -row[f"{column}_high"],
                                                               -row[f"{column}_low"])
    return row


def _fmt(x: float) -> str:
    return f"{x:g}"


def claim_rows(phase: Any, traction: Any, sparsity: Any, oscillation: Any, *, traction_config: TractionConfig,
               sparsity_config: SparsityConfig, oscillation_config: OscillationConfig,
               notebook: str = NOTEBOOK) -> list[dict[str, Any]]:
    """The notebook's rows of the claims ledger (:func:`lcamlab.experiments.claims.claim_row`).

    Every prediction (the sign a claim predicts), control and margin is fixed
    here, in code, before any number is read (margins: the ``*_MARGIN``
    constants). Measurement 1's rows (the LCAM paper's eq. 12: does the loss tell the light
    weight's phase?) take, per learning rate of the grid, the cell most
    favourable to the claim (highest agreement): if the claim fails there it
    fails everywhere on the grid. The traction rows take the paper's two pairs
    (the most negative and most positive asymmetry); the sparsity rows the least
    and most sparse data.

    Args:
        phase: :func:`measure_phase_agreement`'s table.
        traction: :func:`measure_traction`'s table.
        sparsity: :func:`measure_sparsity`'s ``best`` table.
        oscillation: :func:`measure_oscillation`'s table.
        traction_config, sparsity_config, oscillation_config: the configurations
            that made them (for the descriptions).

    Rows whose inputs a configuration left out (e.g. a quick build without some
    optimizer) are skipped.
    """
    rows: list[dict[str, Any]] = []

    def add(id_: str, paper: str, section: str, claim: str, measured: str, control: str, row: Any,
            column: str, predicted: int, margin: float, shift: float = 0.0) -> None:
        if row is None or not math.isfinite(float(row[column])):
            return
        rows.append(claim_row(
            id_, notebook=notebook, paper=paper, section=section, claim=claim, measured=measured, control=control,
            estimate=float(row[column]) - shift, low=float(row[f"{column}_low"]) - shift,
            high=float(row[f"{column}_high"]) - shift, n=int(row["trials"]), predicted=predicted, margin=margin))

    # -- does the loss tell the phase? (measurement 1) -------------------------------------------
    for lr, cells in (phase.groupby("lr", sort=True) if len(phase) else ()):
        best = cells.loc[cells["agreement"].idxmax()]
        add(f"m1.phase.loss_tells_phase.lr{_fmt(float(lr))}", "LCAM", "3.4, eq. 12",
            "Comparing the loss with its running mean tells which side of its swing the quick group Θn is on.",
            f"Agreement of LCAM's phase with Θn's own loss phase, minus 0.5, on the spring at lr {_fmt(float(lr))} "
            f"in the most favourable of {len(cells)} cells (mass ratio {_fmt(float(best['mass_ratio']))}, "
            f"noise {_fmt(float(best['noise']))}),",
            "chance (0.5)", best, "agreement", +1, AGREEMENT_MARGIN, shift=0.5)

    # -- traction (measurement 2) -----------------------------------------------------------------
    tc = traction_config
    spring = (f"after {tc.steps} steps on the spring (mass ratio {_fmt(tc.mass_ratio)}, coupling {_fmt(tc.coupling)}, "
              f"noise {_fmt(tc.noise)}, lr {_fmt(tc.lr)})")
    shuffled = "its phase-shuffled control (same momentum values and proportions, choice independent of the loss)"
    matched = "its mean-matched control (fixed momentum at LCAM's realised mean)"
    if len(traction):
        for side, a in (("below", float(traction["asymmetry"].min())), ("above", float(traction["asymmetry"].max()))):
            if (side == "below") != (a < 0) or a == 0:
                continue
            below, above = tc.pair(a)
            name = f"LCAM ({_fmt(below)}, {_fmt(above)})"
            vs_shuffled = _row_of(traction, asymmetry=a, setting="LCAM - shuffled")
            vs_matched = _row_of(traction, asymmetry=a, setting="LCAM - matched")
            towards = "sparse (heavy) group Θs" if side == "below" else "non-sparse (light) group Θn"
            add(f"m2.traction.lean.{side}", "LCAM", "3.4",
                f"More momentum in the {side}-mean phase moves the weights towards the {towards}.",
                f"Lean (Θs progress − Θn progress) of {name} {spring},", shuffled,
                vs_shuffled, "lean", +1 if side == "below" else -1, PROGRESS_MARGIN)
            add(f"m2.traction.com_drift.{side}", "LCAM", "3.4",
                "The centre of mass drifts with the orientation of the asymmetry: "
                + ("ahead with (0.95, 0.9)." if side == "below" else "behind with (0.9, 0.95)."),
                f"Centre-of-mass progress of {name} {spring},", matched,
                vs_matched, "com", +1 if side == "below" else -1, PROGRESS_MARGIN)
            if side == "above":
                add("m2.traction.quick_group.lcam_reading", "LCAM", "3.4",
                    "More momentum in the above-mean phase accelerates the quick group Θn: LCAM (0.9, 0.95).",
                    f"Θn progress of {name} {spring},", shuffled, vs_shuffled, "theta_n", +1, PROGRESS_MARGIN)
            else:
                add("m2.traction.quick_group.lcam_v1_reading", "LCAM-v1", "3.2, 4",
                    "More momentum in the horizontal (below-mean) phase accelerates the quick group W_Q: "
                    "LCAM (0.95, 0.9).",
                    f"Θn progress of {name} {spring},", shuffled, vs_shuffled, "theta_n", +1, PROGRESS_MARGIN)

    # -- sparsity (measurement 3) -----------------------------------------------------------------
    sc = sparsity_config
    if len(sparsity):
        paired = sparsity[sparsity["kind"] == "paired"]
        ends = sorted({float(sparsity["sparsity"].min()), float(sparsity["sparsity"].max())})
        datasets = [(ends[0], "non-sparse")] + ([(ends[-1], "sparse")] if len(ends) > 1 else [])
        names = {key: label(key) for key in ("lcam-above", "lcam-below")}

        def on(s: float, who: str) -> str:
            return (f"Log10 excess loss at step {sc.budget} on the product chain at sparsity {_fmt(s)}, {who} at "
                    f"its best rate (chosen on a separate tuning seed),")

        for s, dataset in datasets:
            favoured, other = ("lcam-above", "lcam-below") if dataset == "non-sparse" else ("lcam-below", "lcam-above")
            phase_name = "non-sparse (above)" if favoured == "lcam-above" else "sparse (below)"
            cifar = "CIFAR-10" if dataset == "non-sparse" else "CIFAR-100"
            contrast = _row_of(paired, sparsity=s, setting=f"{favoured} - {other}")
            if contrast is None:  # the table holds "lcam-below - lcam-above": turn it round
                contrast = _negated(_row_of(paired, sparsity=s, setting=f"{other} - {favoured}"), "log10_loss")
            add(f"m3.sparsity.orientation.{dataset}", "LCAM", f"4 ({cifar})",
                f"On {dataset} data, accelerating the {phase_name} phase, {names[favoured]}, trains faster than "
                f"the opposite orientation.",
                on(s, names[favoured]), f"{names[other]} at its own best rate", contrast, "log10_loss", -1,
                LOG10_MARGIN)
            add(f"m3.sparsity.loss_control.{dataset}", "LCAM", "3.4, 4",
                f"On {dataset} data the loss-controlled phase choice of {names[favoured]} speeds up training.",
                on(s, names[favoured]), shuffled + " at the same rate",
                _row_of(paired, sparsity=s, setting=f"{favoured} - {favoured}:shuffled"), "log10_loss", -1,
                LOG10_MARGIN)
            add(f"m3.sparsity.asymmetry.{dataset}", "LCAM", "4",
                f"On {dataset} data the asymmetric momentum of {names[favoured]} beats symmetric momentum.",
                on(s, names[favoured]), matched.replace("realised mean", "realised mean in this cell")
                + " at the same rate",
                _row_of(paired, sparsity=s, setting=f"{favoured} - {favoured}:matched"), "log10_loss", -1,
                LOG10_MARGIN)
            for key in ("adagrad", "adam"):
                name = label(key)
                add(f"m3.sparsity.adaptive.{key}.{dataset}", "LCAM", "1, 3.3",
                    f"On {dataset} data {name} " + ("falls behind" if dataset == "non-sparse" else "beats")
                    + " SGD with momentum.",
                    on(s, name), f"{label('momentum')} at its own best rate",
                    _row_of(paired, sparsity=s, setting=f"{key} - momentum"), "log10_loss",
                    +1 if dataset == "non-sparse" else -1, LOG10_MARGIN)

    # -- oscillation (measurement 4) --------------------------------------------------------------
    oc = oscillation_config
    if len(oscillation):
        paired_q = oscillation[oscillation["part"] == "paired"]
        names = {"adarem": "AdaRem", "momentum": "SGD with momentum", "sgd": "plain SGD", "adam": "Adam"}
        short = {key: label(key) for key in ("adarem", "momentum", "sgd", "adam")}
        for a, b in OSCILLATION_CONTRASTS:
            claim = f"{names[a]} oscillates less than {names[b]} (a smaller oscillation index Q)."
            # At the AdaRem paper's convention SGD and SGD+momentum share one rate, where plain SGD is ten
            # times slower: only AdaRem against SGD+momentum is tested there, the comparison of the AdaRem
            # paper's Figure 2 that its convention was made for.
            for regime, tag in (("convention", "convention"), ("matched progress", "matched_progress")):
                if regime == "convention" and (a, b) != ("adarem", "momentum"):
                    continue
                row = _row_of(paired_q, key=f"{a} - {b}", regime=regime)
                if row is None:
                    continue
                if regime == "convention":
                    measured = (f"Q over {oc.steps} steps on the spring, {short[a]} at lr {_fmt(float(row['lr']))} "
                                f"(the AdaRem paper's convention, its section 4.1.1: one base rate),")
                    control = f"{short[b]} at the same rate"
                else:
                    measured = (f"Q up to the first step at {_fmt(oc.progress_fraction * 100)}% of the initial excess "
                                f"loss (matched progress) on the spring, {short[a]} at lr {_fmt(float(row['lr']))}, "
                                f"over the trials where both reached it,")
                    control = f"{short[b]} at lr {_fmt(float(row['lr_reference']))}"
                add(f"m4.oscillation.{a}_vs_{b}.{tag}", "AdaRem", "3.2.2", claim, measured, control, row, "Q", -1,
                    Q_MARGIN)
    return rows
