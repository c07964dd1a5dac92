"""The escape notebook's printed findings: every sentence computed from the tables, never typed in.

Each function takes tables of :mod:`lcamlab.escape.analysis` (the valley experiment) or
:mod:`lcamlab.escape.rates` (the saddle), or a cached result, and returns the text (or table) the notebook
``notebooks/02_saddle_escape.ipynb`` shows, so the notebook is parameters,
narrative and calls, and the wording of a verdict lives in one tested place.
"""

from __future__ import annotations

import math

import pandas as pd

from lcamlab.experiments import registry

__all__ = [
    "ARM_LABELS",
    "SCALING_OPTIONS",
    "JUMP_OPTIONS",
    "alpha_verdict",
    "design_summary",
    "alpha_summary",
    "jump_summary",
    "control_summary",
    "claim_rows",
    "source_line",
    "design_table",
    "design_line",
    "short_verdict",
    "alpha_view",
    "rare_view",
    "gof_view",
    "gof_line",
    "jump_view",
    "control_view",
    "two_line_view",
    "saddle_view",
    "statements_markdown",
    "scaling_comparison",
    "scaling_exercise",
    "jump_exercise",
    "control_exercise",
]

# --------------------------------------------------------------------------------------
# The valley experiment (the sharp-valley design): is escape diffusive, and at which temperature?
# --------------------------------------------------------------------------------------

def alpha_verdict(row) -> str:
    """One verdict per fit, from its interval, its goodness of fit and the theory's alpha."""
    expected = row.expected
    other = 0.5 if expected == 1.0 else 1.0
    name = "1" if expected == 1.0 else "1/2"
    if row.deviance_p < 0.01:
        return (f"Kramers' form does not describe these rates (deviance p = {row.deviance_p:.2g}): "
                f"not diffusive escape")
    inside = row.alpha_low <= expected <= row.alpha_high
    if inside and (row.alpha_low <= other <= row.alpha_high):
        return f"consistent with alpha = {name}, but cannot tell it from {other:g} at this n"
    if inside:
        return f"consistent with diffusion at the theory's temperature (alpha = {name})"
    side = "steeper" if row.alpha_low > expected else "shallower"
    return f"not at the theory's temperature: alpha excludes {name} ({side} dependence on k)"


def design_summary(points: pd.DataFrame, metadata: dict) -> str:
    """The design actually run: optimizers, arms, k grids, trials per k, work and time."""
    info = metadata.get("calibration") or {}
    lines = [f"escape v2 (sharp valley, batch 1): {points['trials'].iloc[0]} trials per (optimizer, arm, k), "
             f"{points.groupby(['optimizer', 'arm']).ngroups} (optimizer, arm) settings x "
             f"{points['k_index'].nunique()} k values; {metadata.get('trial_steps', 0):.3g} trial-steps in "
             f"{metadata.get('simulation_seconds', float('nan')):.0f} s of simulation (escape loop, "
             f"{metadata.get('threads', 1)} thread{'s' if metadata.get('threads', 1) != 1 else ''})"]
    for (optimizer, arm), group in points.groupby(["optimizer", "arm"], sort=False):
        ks = group["k"]
        lines.append(f"  {optimizer:>20} / {arm:<5}: k {ks.min():.3g} .. {ks.max():.3g} (ratio {ks.max() / ks.min():.2f}); "
                     f"mean escape time {group['mean_time'].max():.3g} .. {group['mean_time'].min():.3g} it; "
                     f"budgets {group['budget'].min()} .. {group['budget'].max()}; "
                     f"censored {1 - group['escapes'].sum() / group['trials'].sum():.2%}")
    if info:
        lines.append(f"  ({len(info)} calibrations: k range from mean escape time about 1e5 down to about 30 it)")
    return "\n".join(lines)


def alpha_summary(alphas: pd.DataFrame) -> str:
    """Alpha with its 95% profile interval per optimizer and arm, what it excludes, and the verdict."""
    lines = ["log Gamma = a + p log k - c k^(-alpha), maximum likelihood on censored escape times:"]
    for row in alphas.itertuples():
        low = f"{row.alpha_low:.2f}" + ("(open)" if row.open_low else "")
        high = f"{row.alpha_high:.2f}" + ("(open)" if row.open_high else "")
        lines.append(
            f"  {row.optimizer:>20} / {row.arm:<5}: alpha {row.alpha:5.2f} [{low}, {high}] (se {row.alpha_se:.2f}); "
            f"excludes 1: {'yes' if row.excludes_1 else 'no'}, 1/2: {'yes' if row.excludes_half else 'no'}; "
            f"p {row.p:+.2f}; exponent {row.exponent_high:.1f} -> {row.exponent_low:.1f}; "
            f"fit p {row.deviance_p:.2f}; KS rejects {row.ks_rejected}/{row.points}: {alpha_verdict(row)}")
    return "\n".join(lines)


def jump_summary(jumps: pd.DataFrame) -> str:
    """Escapes preceded by a kick above the threshold within the window, against chance, per optimizer and arm."""
    lines = ["escapes with a kick > 6 noise SDs in the 20 steps before (pooled over k) vs chance:"]
    for row in jumps.itertuples():
        if row.arm != "data":
            lines.append(f"  {row.optimizer:>20} / {row.arm:<5}: no kick above 6 SDs is possible (Gaussian, |z| <= 5.8); "
                         f"median largest kick before an escape {row.kick_median:.1f} SDs")
            continue
        lines.append(f"  {row.optimizer:>20} / {row.arm:<5}: {row.kick_fraction:.1%} "
                     f"[{row.kick_fraction_lower:.1%}, {row.kick_fraction_upper:.1%}] vs chance {row.kick_chance:.1%} "
                     f"(flattest k {row.kick_fraction_flattest:.0%}, sharpest k {row.kick_fraction_sharpest:.0%}); "
                     f"median largest kick {row.kick_median:.1f} SDs; kicks > 6 SDs on {row.kick_per_step:.1%} of steps")
    return "\n".join(lines)


def control_summary(controls: pd.DataFrame) -> str:
    """LCAM's escape rate against its phase-shuffled and mean-matched controls (same lr, same mini-batches)."""
    lines = []
    for row in controls.itertuples():
        if row.ratio_lower > 1:
            how = "faster than"
        elif row.ratio_upper < 1:
            how = "slower than"
        else:
            how = "indistinguishable from"
        alpha = (f"; alpha {row.alpha_lcam:.2f} vs {row.alpha_control:.2f} "
                 f"[{row.alpha_control_low:.2f}, {row.alpha_control_high:.2f}]" if hasattr(row, "alpha_lcam")
                 and row.alpha_lcam == row.alpha_lcam else "")
        lines.append(f"{row.lcam} leaves the sharp valley {row.rate_ratio:.2f}x [{row.ratio_lower:.2f}, "
                     f"{row.ratio_upper:.2f}] the rate of its {row.control} control ({how}; per-k ratios "
                     f"{row.ratio_min:.2f}-{row.ratio_max:.2f}; LCAM below-fraction {row.below_fraction:.2f}, "
                     f"mean momentum {row.momentum_mean:.3f}){alpha}.")
    return "\n".join(lines)


def claim_rows(alphas: pd.DataFrame, jumps: pd.DataFrame, controls: pd.DataFrame,
               notebook: str = "02_saddle_escape") -> list[dict]:
    """Notebook 02's rows of the claims ledger (:mod:`lcamlab.experiments.claims`), verdicts computed here."""
    from lcamlab.experiments.claims import claim_row

    rows = []
    for row in alphas.itertuples():
        if registry.split_key(row.optimizer)[1]:  # the controls have their own rows
            continue
        expected = row.expected
        if row.deviance_p < 0.01 or (not row.open_low and not row.open_high and not
                                     (row.alpha_low <= expected <= row.alpha_high)):
            decided = "does not hold"
        elif row.alpha_low <= expected <= row.alpha_high and not (
                row.alpha_low <= (0.5 if expected == 1.0 else 1.0) <= row.alpha_high):
            decided = "holds"
        else:
            decided = "cannot tell at this n"
        label = registry.label(row.optimizer)
        rows.append(claim_row(
            f"escape.kramers_alpha.{row.optimizer}.{row.arm}", notebook=notebook,
            paper="Adai", section="Theorem 3, Propositions 2 and 4; Appendix E",
            claim=(f"Escape from a sharp valley is diffusive for {label}, at a temperature proportional to "
                   f"{'η√k' if expected == 0.5 else 'ηk'}: log rate = a + p log k − c k^−α with "
                   f"α = {'1/2' if expected == 0.5 else '1'}"),
            measured=(f"α (maximum likelihood on censored escape times, {ARM_LABELS.get(row.arm, row.arm)} noise, "
                      f"{row.points} k values)"),
            control=(f"the alternatives α = {'1' if expected == 0.5 else '1/2'} and 2/3 (single jumps), and the "
                     f"goodness of fit of the Kramers form (verdict 'does not hold' when its p < 0.01)"),
            estimate=row.alpha, low=row.alpha_low, high=row.alpha_high, n=int(row.escapes), predicted=1,
            verdict_text=decided))
    for row in jumps.itertuples():
        if row.arm != "data" or registry.split_key(row.optimizer)[1]:
            continue
        excess = row.kick_fraction - row.kick_chance
        half = (row.kick_fraction_upper - row.kick_fraction_lower) / 2
        rows.append(claim_row(
            f"escape.no_jumps.{row.optimizer}", notebook=notebook, paper="Adai",
            section="Theorem 3 (Gaussian diffusion assumption); Appendix E",
            claim=(f"Escapes of {registry.label(row.optimizer)} from a sharp valley are diffusive: not preceded by "
                   f"a large single kick more often than chance"),
            measured=("fraction of escapes with a kick > 6 noise SDs in the 20 steps before, minus its chance rate "
                      "(data noise, batch 1)"),
            control="chance rate of such a kick in a 20-step window (from the kicks' frequency)",
            estimate=excess, low=excess - half, high=excess + half, n=int(row.escapes), predicted=-1,
            verdict_text="does not hold" if excess - half > 0 else ("holds" if excess + half < 0.02 else
                                                                   "cannot tell at this n")))
    for row in controls.itertuples():
        label = registry.label(row.lcam)
        claim = (f"The loss-controlled timing of {label}'s momentum switch changes how fast it leaves a sharp valley"
                 if row.control == "shuffled" else
                 f"{label}'s two momentum values, beyond their realised mean, change how fast it leaves a sharp "
                 f"valley")
        rows.append(claim_row(
            f"escape.lcam_vs_{row.control}.{row.lcam}", notebook=notebook, paper="LCAM",
            section="Algorithm 1 (the loss-controlled switch)", claim=claim,
            measured=f"log escape-rate ratio LCAM / control, mean over {row.points} k values (data noise)",
            control=f"{row.control} control ({_CONTROL_TEXT[row.control]})",
            estimate=math.log(row.rate_ratio), low=math.log(row.ratio_lower), high=math.log(row.ratio_upper),
            n=int(row.points), predicted=1 if row.rate_ratio >= 1 else -1,
            verdict_text=None))
    return rows


# --------------------------------------------------------------------------------------
# The notebook's tables (rendered with lcamlab.style.show_table) and its Markdown findings
# --------------------------------------------------------------------------------------

#: How each noise arm is named in the notebook's tables.
ARM_LABELS = {"data": "data (batch 1)", "gauss": "Gaussian", "iso": "isotropic (null)"}


def _labelled(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    out.insert(0, "setting", [registry.label(k) for k in out["optimizer"]])
    out.insert(1, "noise", [ARM_LABELS.get(a, a) for a in out["arm"]])
    return out


def source_line(name: str, entry, seconds: float) -> str:
    """Where a cached result came from and what it cost, without contradicting itself.

    ``entry``: a :class:`lcamlab.experiments.cache.CachedTable` or :class:`lcamlab.escape.cache.EscapeResult`;
    ``seconds``: the wall time the notebook just spent getting it (reading, or computing).
    """
    meta = entry.metadata
    simulated = meta.get("simulation_seconds", meta.get("seconds_total"))
    steps = meta.get("trial_steps")
    when = str(meta.get("created_utc", ""))[:10]
    work = f"{float(simulated):.1f} s of simulation" if simulated is not None else "its simulation"
    if steps:
        work += f", {float(steps):.3g} trial-steps"
    if entry.from_cache:
        return (f"{name}: read from the cache ({entry.path.name}) in {seconds:.2f} s; "
                f"computed {('on ' + when) if when else 'earlier'} in {work}")
    return f"{name}: computed now in {seconds:.1f} s ({work}) and saved as {entry.path.name}"


def design_table(points: pd.DataFrame) -> pd.DataFrame:
    """One row per (setting, noise arm): its k grid, the mean escape times it spans, budgets, censoring."""
    rows = []
    for (optimizer, arm), group in points.groupby(["optimizer", "arm"], sort=False):
        rows.append({"optimizer": optimizer, "arm": arm, "k from": group["k"].min(), "k to": group["k"].max(),
                     "mean escape time, flattest k": group["mean_time"].max(),
                     "mean escape time, sharpest k": group["mean_time"].min(),
                     "largest budget": int(group["budget"].max()),
                     "censored (%)": 100 * (1 - group["escapes"].sum() / group["trials"].sum())})
    return _labelled(pd.DataFrame(rows)).drop(columns=["optimizer", "arm"])


def design_line(points: pd.DataFrame) -> str:
    """The size of a design: trials per point, settings, k values."""
    return (f"{int(points['trials'].iloc[0])} trials per (setting, noise, k); "
            f"{points.groupby(['optimizer', 'arm']).ngroups} (setting, noise) pairs x {points['k_index'].nunique()} "
            f"k values; {int(points['escapes'].sum()):,} escapes in all")


def short_verdict(row) -> str:
    """A few words per Kramers fit (the table's last column; :func:`alpha_verdict` says it in full)."""
    expected = row.expected
    other = 0.5 if expected == 1.0 else 1.0
    name = "1" if expected == 1.0 else "1/2"
    if row.deviance_p < 0.01:
        return "Kramers' law does not fit"
    inside = row.alpha_low <= expected <= row.alpha_high
    if inside and row.alpha_low <= other <= row.alpha_high:
        return "cannot tell 1 from 1/2"
    if inside:
        return f"α = {name}: diffusion at the theory's temperature"
    return f"α ≠ {name}: {'steeper' if row.alpha_low > expected else 'shallower'} in k than the theory"


def alpha_view(alphas: pd.DataFrame) -> pd.DataFrame:
    """The Kramers fits for the notebook: setting, noise, alpha with its interval, theory, fit p, verdict."""
    out = _labelled(alphas)
    out["theory α"] = ["1/2" if e == 0.5 else "1" for e in out["expected"]]
    out["verdict"] = [short_verdict(r) for r in alphas.itertuples()]
    out["α low"] = [f"{lo:.3g}" + (" (open)" if o else "") for lo, o in zip(out["alpha_low"], out["open_low"])]
    out["α high"] = [f"{hi:.3g}" + (" (open)" if o else "") for hi, o in zip(out["alpha_high"], out["open_high"])]
    out = out.rename(columns={"alpha": "α", "deviance_p": "fit p", "k_ratio": "k ratio", "points": "k values"})
    return out[["setting", "noise", "α", "α low", "α high", "theory α", "k ratio", "fit p", "verdict"]]


def rare_view(rare: pd.DataFrame) -> pd.DataFrame:
    """The refit on rare-event points only: alpha, its interval (open ends marked), points kept, fit p."""
    out = alpha_view(rare)
    out["k values"] = rare["points"].to_numpy()
    return out[["setting", "noise", "α", "α low", "α high", "k values", "fit p", "verdict"]]


def gof_view(points: pd.DataFrame, *, level: float = 0.05, rare: float = 200.0) -> pd.DataFrame:
    """Per (setting, noise): points where the exponential law is rejected, overall and at mean time >= ``rare``."""
    rows = []
    for (optimizer, arm), group in points.groupby(["optimizer", "arm"], sort=False):
        slow = group[group["mean_time"] >= rare]
        rows.append({"optimizer": optimizer, "arm": arm, "k values": len(group),
                     "rejected": int((group["ks_p"] < level).sum()),
                     f"k values with mean time ≥ {rare:g}": len(slow),
                     "rejected there": int((slow["ks_p"] < level).sum())})
    return _labelled(pd.DataFrame(rows)).drop(columns=["optimizer", "arm"])


def gof_line(points: pd.DataFrame, *, level: float = 0.05, rare: float = 200.0) -> str:
    """Rejections of the exponential law against what chance alone gives."""
    slow = points[points["mean_time"] >= rare]
    return (f"The exponential law is rejected (p < {level:g}) at {int((points['ks_p'] < level).sum())} of "
            f"{len(points)} points, where chance alone would reject about {level * len(points):.0f}; at the "
            f"{len(slow)} points with mean escape time ≥ {rare:g} iterations, at {int((slow['ks_p'] < level).sum())}.")


def jump_view(jumps: pd.DataFrame) -> pd.DataFrame:
    """Escapes after a large kick against chance (data noise only: Gaussian kicks cannot reach 6 SDs)."""
    data = jumps[jumps["arm"] == "data"]
    out = _labelled(data)
    out["after a kick (%)"] = 100 * out["kick_fraction"]
    out["95% low"] = 100 * out["kick_fraction_lower"]
    out["95% high"] = 100 * out["kick_fraction_upper"]
    out["chance (%)"] = 100 * out["kick_chance"]
    out["flattest k (%)"] = 100 * out["kick_fraction_flattest"]
    out["sharpest k (%)"] = 100 * out["kick_fraction_sharpest"]
    out = out.rename(columns={"kick_median": "median largest kick (SDs)"})
    return out[["setting", "escapes", "after a kick (%)", "95% low", "95% high", "chance (%)", "flattest k (%)",
                "sharpest k (%)", "median largest kick (SDs)"]]


def control_view(controls: pd.DataFrame) -> pd.DataFrame:
    """LCAM against its controls: the pooled rate ratio with its interval, the per-k range, realised momentum, alpha."""
    out = controls.copy()
    out.insert(0, "LCAM", [registry.label(k) for k in out["lcam"]])
    out["rate ratio LCAM / control"] = out["rate_ratio"]
    columns = ["LCAM", "control", "rate ratio LCAM / control", "ratio_lower", "ratio_upper", "ratio_min", "ratio_max",
               "below_fraction", "momentum_mean"]
    names = {"ratio_lower": "95% low", "ratio_upper": "95% high", "ratio_min": "smallest per-k ratio",
             "ratio_max": "largest per-k ratio", "below_fraction": "LCAM's below fraction",
             "momentum_mean": "LCAM's mean momentum", "alpha_lcam": "α LCAM", "alpha_control": "α control"}
    if "alpha_lcam" in out:
        columns += ["alpha_lcam", "alpha_control"]
    return out[columns].rename(columns=names)


def two_line_view(lines_table: pd.DataFrame) -> pd.DataFrame:
    """The old view: R^2 of straight lines of log rate against 1/k and 1/sqrt(k), and which is larger."""
    out = _labelled(lines_table)
    out["larger R² with"] = out["better"].map({"1/k": "1/k", "1/sqrt(k)": "1/√k"})
    return out.rename(columns={"r2_inv_k": "R² vs 1/k", "r2_inv_sqrt_k": "R² vs 1/√k",
                               "r2_difference": "difference"})[
        ["setting", "noise", "R² vs 1/k", "R² vs 1/√k", "difference", "larger R² with"]]


def saddle_view(times: pd.DataFrame, exponents: pd.DataFrame) -> pd.DataFrame:
    """Per optimizer: the power law of the saddle exit time in the negative curvature, and censored trials."""
    censored = times.groupby("optimizer", sort=False)["censored"].sum()
    trials = times.groupby("optimizer", sort=False)["trials"].sum()
    out = exponents.copy()
    out["censored trials"] = [int(censored.get(k, 0)) for k in exponents["optimizer"]]
    out["trials"] = [int(trials.get(k, 0)) for k in exponents["optimizer"]]
    out["optimizer"] = [registry.label(k) for k in exponents["optimizer"]]
    return out.rename(columns={"exponent": "exponent p", "exponent_lower": "95% low", "exponent_upper": "95% high",
                               "r2": "R²"})[
        ["optimizer", "exponent p", "95% low", "95% high", "R²", "censored trials", "trials"]]


_CONTROL_TEXT = {"shuffled": "same two momenta at LCAM's proportions, choice independent of the loss",
                 "matched": "fixed momentum at LCAM's realised mean"}


def statements_markdown(alphas: pd.DataFrame, jumps: pd.DataFrame) -> str:
    """What the README may say about escape, computed from the data, as Markdown bullets."""
    fits = alphas.set_index(["optimizer", "arm"])
    jump = jumps.set_index(["optimizer", "arm"])
    out = []
    for key in ("sgd", "adam"):
        parts = []
        for arm in ("data", "gauss", "iso"):
            if (key, arm) in fits.index:
                r = fits.loc[(key, arm)]
                parts.append(f"{ARM_LABELS[arm]} noise α = {r.alpha:.2f} [{r.alpha_low:.2f}, {r.alpha_high:.2f}] "
                             f"(fit p {r.deviance_p:.2g})")
        if parts:
            theory = "1/2" if key == "adam" else "1"
            out.append(f"- **{registry.label(key)}** (diffusion theory: α = {theory}): " + "; ".join(parts) + ".")
    if ("sgd", "data") in jump.index:
        j = jump.loc[("sgd", "data")]
        driven = ("escape from the sharp valley is driven by single large kicks, not by diffusion"
                  if j.kick_fraction_lower > j.kick_chance else "no excess of large kicks before escapes")
        out.append(f"- With batch-1 data noise, {j.kick_fraction:.0%} of SGD's escapes follow a kick above 6 noise "
                   f"SDs within 20 steps (chance {j.kick_chance:.0%}): {driven}.")
    out.append("- Which of 1/k and 1/√k a straight line of log rate prefers is fixed by the algebra (the dynamics "
               "depend on ηk, Adam's on η√k) and is not evidence for the theory; the ratio of Adam's slope to SGD's "
               "depends on Adam's calibrated learning rate.")
    return "\n".join(out)


def scaling_comparison(base, scaled) -> dict:
    """Two samples of escape times (:class:`lcamlab.escape.fused.FusedResult`): rates, intervals, ratio, verdict.

    ``verdict`` is ``"the same"`` when the two 95% rate intervals overlap, else ``"shorter"`` or ``"longer"``
    (the mean escape time of ``scaled`` against ``base``).
    """
    from lcamlab.experiments.stats import censored_exponential_rate

    a = censored_exponential_rate(base.exposure.astype(float), base.escaped)
    b = censored_exponential_rate(scaled.exposure.astype(float), scaled.escaped)
    if b.lower > a.upper:
        verdict = "shorter"
    elif b.upper < a.lower:
        verdict = "longer"
    else:
        verdict = "the same"
    return {"mean": a.mean_time, "mean_scaled": b.mean_time, "ratio": b.mean_time / a.mean_time,
            "identical": float((base.escape_step == scaled.escape_step).mean()), "verdict": verdict}


# --------------------------------------------------------------------------------------
# The notebook's exercises: the measured answer and its explanation, from the data
# --------------------------------------------------------------------------------------

#: The options of the notebook's exercises.
SCALING_OPTIONS = ("shorter", "the same", "longer")
JUMP_OPTIONS = ("more often than chance", "about as often as chance", "less often than chance")


def scaling_exercise(sgd: dict, adam: dict) -> tuple[str, str]:
    """Exercise 1 (double k, halve the learning rate): the measured answer for SGD and why, from two
    :func:`scaling_comparison` results."""
    why = (f"SGD's mean escape time goes from {sgd['mean']:.0f} to {sgd['mean_scaled']:.0f} iterations, and "
           f"{sgd['identical']:.0%} of the trials leave at exactly the same step. In u = √k θ the SGD step is "
           "u ← u − ηk f′(u − x): only the product ηk enters, so the same mini-batches give the same path. Adam's "
           "step is η√k m̂/√v̂: doubling k and halving η shrinks its effective step η√k by √2, and its mean escape "
           f"time (k = 10 → 20) goes from {adam['mean']:.0f} to {adam['mean_scaled']:.0f} iterations "
           f"({adam['verdict']}). Plotting log rate against 1/k or 1/√k only re-expresses this algebra.")
    return sgd["verdict"], why


def jump_exercise(jumps: pd.DataFrame, alphas: pd.DataFrame, optimizer: str = "sgd") -> tuple[str, str]:
    """Exercise 2: whether ``optimizer``'s escapes with data noise follow a kick above 6 SDs more often than
    chance (the 95% interval against the chance rate), and why."""
    j = jumps.set_index(["optimizer", "arm"]).loc[(optimizer, "data")]
    if j["kick_fraction_lower"] > j["kick_chance"]:
        answer = JUMP_OPTIONS[0]
    elif j["kick_fraction_upper"] < j["kick_chance"]:
        answer = JUMP_OPTIONS[2]
    else:
        answer = JUMP_OPTIONS[1]
    label = registry.label(optimizer)
    why = (f"{j['kick_fraction']:.1%} [{j['kick_fraction_lower']:.1%}, {j['kick_fraction_upper']:.1%}] of "
           f"{label}'s {int(j['escapes']):,} escapes follow a kick above 6 SDs, where chance gives "
           f"{j['kick_chance']:.1%}. Diffusion escapes through many small kicks, which leaves the largest kick before "
           "an escape at its chance rate; an excess means that single samples throw the parameters over the ridge.")
    fits = alphas.set_index(["optimizer", "arm"])
    if (optimizer, "data") in fits.index:
        p = float(fits.loc[(optimizer, "data"), "deviance_p"])
        why += (f" Kramers' law, a diffusion law, is rejected for {label} with data noise (fit p = {p:.2g}, "
                "section 3)." if p < 0.01 else
                f" Kramers' law is not rejected for {label} with data noise at this size (fit p = {p:.2g}).")
    return answer, why


def control_exercise(controls: pd.DataFrame, lcam: str = "lcam-above") -> tuple[float, float, str]:
    """Exercise 3: the 95% interval of log(rate of ``lcam`` / rate of its shuffled control), and why."""
    table = controls.set_index(["lcam", "control"])
    row = table.loc[(lcam, "shuffled")]
    low, high = math.log(row["ratio_lower"]), math.log(row["ratio_upper"])
    label = registry.label(lcam)
    detected = low > 0 or high < 0
    why = (f"{label} leaves at {row['rate_ratio']:.2f}x [{row['ratio_lower']:.2f}, {row['ratio_upper']:.2f}] the "
           f"rate of its shuffled control (per k from {row['ratio_min']:.2f}x to {row['ratio_max']:.2f}x), with the "
           "same two momenta in the same proportions and the same mini-batches: "
           + ("the timing of the switch alone changes the escape rate." if detected else
              "at this number of trials the timing of the switch makes no detectable difference."))
    other = "lcam-below" if lcam == "lcam-above" else "lcam-above"
    if (other, "shuffled") in table.index:
        o = table.loc[(other, "shuffled")]
        opposite = (row["rate_ratio"] - 1) * (o["rate_ratio"] - 1) < 0
        why += (f" The other orientation, {registry.label(other)}, leaves at {o['rate_ratio']:.2f}x "
                f"[{o['ratio_lower']:.2f}, {o['ratio_upper']:.2f}] its shuffled control's rate"
                + (": the direction of the effect follows the orientation." if opposite else "."))
    why += (" The LCAM papers make no prediction about escape from sharp valleys: the measurement says whether "
            "loss control matters here, not whether it helps generalisation.")
    return low, high, why
