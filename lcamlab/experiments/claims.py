r"""The claims ledger: every claim of the source papers that the suite tests, with its verdict.

One machine-readable table, ``data/claims.csv`` with a provenance sidecar. Each
row is one claim as tested by one notebook:

===============  ==========================================================================
column           meaning
===============  ==========================================================================
``id``           stable identifier, e.g. ``traction.drift_flips.asymmetry``
``notebook``     the notebook that measured it (its rows are replaced when it reruns)
``paper``        the paper that makes the claim (a :data:`PAPERS` key)
``section``      where in the paper
``claim``        the claim in one sentence
``measured``     what was measured (the statistic)
``control``      what it was measured against
``estimate``     the estimate, with ``low`` / ``high`` its 95% interval
``n``            the number of independent units (trials, seeds) behind the interval
``verdict``      ``holds`` / ``does not hold`` / ``cannot tell at this n``, from :func:`verdict`
===============  ==========================================================================

Verdicts are computed by code from the interval and the predicted direction,
never typed: :func:`verdict`. The README's findings are generated from the
ledger (:func:`findings_markdown`), and a test checks that they agree, so prose
cannot disagree with data.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from lcamlab import paths, provenance

__all__ = ["PAPERS", "VERDICTS", "COLUMNS", "FINDINGS_START", "FINDINGS_END", "Paper", "verdict", "claim_row",
           "ledger_path", "read_ledger", "update_ledger", "findings_markdown", "citation", "references_markdown",
           "findings_block", "with_findings"]


@dataclass(frozen=True)
class Paper:
    """A source paper, cited by title, authors and year."""

    title: str
    authors: str
    year: int
    venue: str

    def cite(self) -> str:
        return f"{self.authors} ({self.year}). *{self.title}*. {self.venue}."


#: The source papers (the project's ``shared/seeds`` files), by the short names used in the ledger.
PAPERS: dict[str, Paper] = {
    "LCAM": Paper("Asymmetric Momentum: A Rethinking of Gradient Descent",
                  "Gongyue Zhang, Dinghuang Zhang, Shuwen Zhao, Donghan Liu, Carrie M. Toptan, Honghai Liu", 2023,
                  "ICLR 2024 submission"),
    "LCAM-v1": Paper("A Simple Asymmetric Momentum Make SGD Greatest Again",
                     "Gongyue Zhang, Dinghuang Zhang, Shuwen Zhao, Donghan Liu, Carrie M. Toptan, Honghai Liu", 2023,
                     "arXiv preprint (the earlier version of the LCAM paper)"),
    "AdaRem": Paper("Adaptive Gradient Method with Resilience and Momentum",
                    "Jie Liu, Chen Lin, Chuming Li, Lu Sheng, Ming Sun, Junjie Yan, Wanli Ouyang", 2020,
                    "arXiv preprint 2010.11041"),
    "Adai": Paper("Adaptive Inertia: Disentangling the Effects of Adaptive Learning Rate and Momentum",
                  "Zeke Xie, Xinrui Wang, Huishuai Zhang, Issei Sato, Masashi Sugiyama", 2022, "ICML 2022"),
}

VERDICTS = ("holds", "does not hold", "cannot tell at this n")
COLUMNS = ("id", "notebook", "paper", "section", "claim", "measured", "control", "estimate", "low", "high", "n",
           "verdict")


def citation(paper: str) -> str:
    """``"Zhang et al. (2023), Asymmetric Momentum: ..."``: a short in-text citation of a :data:`PAPERS` key."""
    p = PAPERS[paper]
    first = p.authors.split(",")[0].split()[-1]
    return f"{first} et al. ({p.year}), *{p.title}*"


def references_markdown(keys: Iterable[str] | None = None) -> str:
    """A references list (markdown) of the given :data:`PAPERS` keys (default all)."""
    return "\n".join(f"- {PAPERS[k].cite()}" for k in (keys or PAPERS))


def verdict(low: float, high: float, *, predicted: int, n: int, margin: float = 0.0, min_n: int = 2) -> str:
    r"""The verdict on a claim from the 95% interval ``[low, high]`` of its effect.

    The claim predicts the effect's sign (``predicted`` = +1 or -1). With a
    margin :math:`m \ge 0` below which an effect is practically nil:

    * **holds**: the interval lies beyond :math:`m` on the predicted side
      (``low > m`` for +1, ``high < -m`` for -1);
    * **does not hold**: the interval lies on the other side of zero
      (``high < 0`` for +1, ``low > 0`` for -1), or, with :math:`m > 0`, inside
      :math:`(-m, m)` (an effect too small to matter, shown with this precision);
    * **cannot tell at this n**: anything else (the interval straddles zero or
      the margin), or fewer than ``min_n`` units, or an undefined interval.
    """
    if predicted not in (1, -1):
        raise ValueError(f"Invalid predicted sign: {predicted!r} (+1 or -1)")
    if not margin >= 0:
        raise ValueError(f"Invalid margin: {margin!r} (must be >= 0)")
    if n < min_n or not (math.isfinite(low) and math.isfinite(high)) or low > high:
        return "cannot tell at this n"
    lo, hi = (low, high) if predicted > 0 else (-high, -low)  # the predicted side made positive
    if lo > margin:
        return "holds"
    if hi < 0 or (margin > 0 and -margin < lo and hi < margin):
        return "does not hold"
    return "cannot tell at this n"


def claim_row(id: str, *, notebook: str, paper: str, section: str, claim: str, measured: str, control: str,
              estimate: float, low: float, high: float, n: int, predicted: int, margin: float = 0.0,
              verdict_text: str | None = None) -> dict[str, Any]:
    """One ledger row; its verdict from :func:`verdict` (or ``verdict_text``, which must be one of :data:`VERDICTS`)."""
    if paper not in PAPERS:
        raise ValueError(f"Invalid paper: {paper!r} (choose from {', '.join(PAPERS)})")
    decided = verdict(low, high, predicted=predicted, n=n, margin=margin) if verdict_text is None else verdict_text
    if decided not in VERDICTS:
        raise ValueError(f"Invalid verdict: {decided!r} (one of {VERDICTS})")
    return {"id": id, "notebook": notebook, "paper": paper, "section": section, "claim": claim,
            "measured": measured, "control": control, "estimate": float(estimate), "low": float(low),
            "high": float(high), "n": int(n), "verdict": decided}


def ledger_path(data_dir: str | os.PathLike | None = None) -> Path:
    """``<data_dir>/claims.csv`` (default the repository's ``data/``)."""
    return (Path(data_dir) if data_dir is not None else paths.DATA_DIR) / "claims.csv"


def read_ledger(data_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """The ledger (empty with the right columns if there is none yet)."""
    path = ledger_path(data_dir)
    if not path.exists():
        return pd.DataFrame(columns=list(COLUMNS))
    text_columns = ("id", "notebook", "paper", "section", "claim", "measured", "control", "verdict")
    frame = pd.read_csv(path, dtype={c: str for c in text_columns}, keep_default_na=False)
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"Invalid claims ledger {path}: columns {missing} are missing "
                         f"(rebuild it with `lcamlab figures`)")
    frame = frame[list(COLUMNS)]
    for column in ("estimate", "low", "high"):
        frame[column] = pd.to_numeric(frame[column].replace("", "nan"))
    return frame


def update_ledger(rows: Iterable[Mapping[str, Any]], notebook: str,
                  data_dir: str | os.PathLike | None = None, *, write: bool = True,
                  **provenance_extra: Any) -> pd.DataFrame:
    """Replace ``notebook``'s rows of the ledger by ``rows`` and write it (atomically, with provenance).

    Rows of other notebooks are kept. Rows are sorted by ``id``, so the file is the
    same whatever order the notebooks ran in. With ``write=False`` (a notebook's
    quick build, whose small samples must not replace the committed rows) nothing
    is written: the ledger as it would be is returned.
    """
    new = pd.DataFrame([dict(r) for r in rows], columns=list(COLUMNS))
    if (new["notebook"] != notebook).any():
        raise ValueError(f"Invalid ledger rows: every row must belong to notebook {notebook!r}")
    if new["id"].duplicated().any():
        raise ValueError(f"Invalid ledger rows: duplicate ids {sorted(new['id'][new['id'].duplicated()])}")
    old = read_ledger(data_dir)
    kept = old[old["notebook"] != notebook]
    clash = set(kept["id"]) & set(new["id"])
    if clash:
        raise ValueError(f"Invalid ledger rows: ids {sorted(clash)} already belong to another notebook")
    frame = pd.concat([kept, new], ignore_index=True) if len(kept) else new
    frame = frame.sort_values("id", kind="stable").reset_index(drop=True)
    if not write:
        return frame
    path = ledger_path(data_dir)
    # The sidecar records what wrote it; its timestamp is left out so an unchanged ledger is byte-identical.
    metadata = provenance.run_metadata({"notebooks": sorted(set(frame["notebook"]))}, **provenance_extra)
    metadata.pop("created_utc", None)
    provenance.save_table(path, frame, metadata, overwrite=True)
    return read_ledger(data_dir)


def _number(x: float) -> str:
    if not math.isfinite(x):
        return "n/a"
    if x != 0 and (abs(x) >= 1000 or abs(x) < 0.001):
        return f"{x:.3g}"
    return f"{x:.3f}".rstrip("0").rstrip(".") if abs(x) >= 1 else f"{x:.3f}"


def findings_markdown(ledger: pd.DataFrame) -> str:
    """The README's findings: one line per ledger row, grouped by notebook, generated from the data."""
    lines = []
    for notebook, rows in ledger.groupby("notebook", sort=True):
        lines.append(f"**{notebook}**")
        lines.append("")
        for _, r in rows.iterrows():
            lines.append(f"- *{r['verdict']}*: {r['claim']} ({citation(r['paper'])}, {r['section']}). "
                         f"{r['measured']} against {r['control']}: {_number(r['estimate'])} "
                         f"[{_number(r['low'])}, {_number(r['high'])}], n = {int(r['n'])}.")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


#: The markers of the README's generated findings block.
FINDINGS_START = "<!-- findings:start -->"
FINDINGS_END = "<!-- findings:end -->"


def findings_block(text: str) -> str:
    """The text between the findings markers of ``text`` (a README), stripped.

    Raises:
        ValueError: the markers are missing or out of order.
    """
    start, end = text.find(FINDINGS_START), text.find(FINDINGS_END)
    if start < 0 or end < start:
        raise ValueError(f"No findings block: the README needs a line {FINDINGS_START} and, after it, "
                         f"a line {FINDINGS_END}")
    return text[start + len(FINDINGS_START):end].strip()


def with_findings(text: str, ledger: pd.DataFrame) -> str:
    """``text`` (a README) with its findings block replaced by :func:`findings_markdown` of ``ledger``."""
    findings_block(text)  # the markers exist
    start, end = text.find(FINDINGS_START), text.find(FINDINGS_END)
    body = findings_markdown(ledger).strip() if len(ledger) else "_No claims measured yet._"
    return text[:start + len(FINDINGS_START)] + "\n" + body + "\n" + text[end:]
