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

**Stored precision.** A number is stored at the precision its interval gives it
(:func:`carried`, applied once, in :func:`claim_row`, before the verdict is
decided): ``estimate``, ``low`` and ``high`` are rounded to the decimal place
:math:`10^{\lfloor \log_{10} w \rfloor - 2}` of the interval's width
:math:`w = \mathrm{high} - \mathrm{low}`, a step between 0.1% and 1% of the
width, so rounding moves a bound by at most 0.5% of the width. Without a usable
width (zero or undefined) six significant digits are kept. Digits below that are
noise (a thread count changes them in the 7th significant digit), and storing
them would make every rebuild rewrite the ledger.

**Checksum.** The sidecar ``claims.json`` holds, besides the provenance of the
run that wrote the file, a ``ledger`` record: the SHA-256 of ``claims.csv``'s
bytes, its row count, and per notebook the SHA-256 of that notebook's rows with
the commit and device that computed them. Every read (:func:`read_ledger`: the
``lcamlab claims`` commands, the notebooks' :func:`update_ledger`) checks it, so
a hand-edited verdict, a file cut short or overwritten is refused in one line
naming the file, the notebooks whose rows changed and the fix (rerun them:
``lcamlab figures NN``). A checksum detects edits; it is no signature (whoever
edits both files can forge it): the git history of ``data/claims.*`` is the
authority. A notebook whose rows are unchanged keeps its record, and a ledger
whose rows are all unchanged is not rewritten at all, so a rebuild that computes
the same numbers leaves both files byte-identical.

The ledger stores neither the predicted sign nor the margin of a row (and some
rows are decided by their own rules, e.g. notebook 02's goodness-of-fit test), so
a row's verdict cannot be recomputed from the file alone; the checksum is what
ties each verdict to the code that computed it.
"""

from __future__ import annotations

import io
import json
import math
import os
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from lcamlab import paths, provenance
from lcamlab.experiments.cache import move_aside, sha256  # the caches' way of keeping a damaged file, their checksum

__all__ = ["PAPERS", "VERDICTS", "COLUMNS", "FINDINGS_START", "FINDINGS_END", "LEDGER_FORMAT", "LedgerError",
           "Paper", "verdict", "carried", "claim_row", "ledger_path", "read_ledger", "update_ledger",
           "findings_markdown", "citation", "references_markdown", "findings_block", "with_findings"]


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
_NUMBERS = ("estimate", "low", "high")
#: Layout of the sidecar's ``ledger`` record (the checksums); bump when it changes.
LEDGER_FORMAT = 1


class LedgerError(ValueError):
    """The claims ledger is missing, damaged or edited by hand (the message names the file and the fix)."""


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


def carried(x: float, low: float, high: float) -> float:
    r"""``x`` at the precision the interval ``[low, high]`` carries (the rule of the module docstring).

    Rounded to :math:`10^{\lfloor \log_{10}(\mathrm{high} - \mathrm{low}) \rfloor - 2}`; with a zero
    or undefined width, to six significant digits; a non-finite ``x`` is returned as it is.
    """
    x = float(x)
    if not math.isfinite(x) or x == 0:
        return x
    width = float(high) - float(low)
    if math.isfinite(width) and width > 0:
        return round(x, 2 - math.floor(math.log10(width)))
    return round(x, 5 - math.floor(math.log10(abs(x))))


def claim_row(id: str, *, notebook: str, paper: str, section: str, claim: str, measured: str, control: str,
              estimate: float, low: float, high: float, n: int, predicted: int, margin: float = 0.0,
              verdict_text: str | None = None) -> dict[str, Any]:
    """One ledger row; its verdict from :func:`verdict` (or ``verdict_text``, which must be one of :data:`VERDICTS`).

    ``estimate``, ``low`` and ``high`` are stored at the precision they carry (:func:`carried`); the
    verdict is decided on the stored numbers, so a row never contradicts its own interval.
    """
    if paper not in PAPERS:
        raise ValueError(f"Invalid paper: {paper!r} (choose from {', '.join(PAPERS)})")
    estimate, low, high = (carried(x, low, high) for x in (estimate, low, high))
    decided = verdict(low, high, predicted=predicted, n=n, margin=margin) if verdict_text is None else verdict_text
    if decided not in VERDICTS:
        raise ValueError(f"Invalid verdict: {decided!r} (one of {VERDICTS})")
    if low > high or (decided == "holds" and not (all(map(math.isfinite, (estimate, low, high))) and n >= 1)):
        # what read_ledger refuses as "no code writes it": never written in the first place
        raise ValueError(f"Invalid ledger row {id!r}: interval [{low}, {high}], estimate {estimate}, n = {n} "
                         f"with verdict {decided!r} (an interval upside down, or 'holds' without a finite one)")
    return {"id": id, "notebook": notebook, "paper": paper, "section": section, "claim": claim,
            "measured": measured, "control": control, "estimate": estimate, "low": low,
            "high": high, "n": int(n), "verdict": decided}


def ledger_path(data_dir: str | os.PathLike | None = None) -> Path:
    """``<data_dir>/claims.csv`` (default the repository's ``data/``)."""
    return (Path(data_dir) if data_dir is not None else paths.DATA_DIR) / "claims.csv"


def _figures_command(notebooks: Iterable[str]) -> str:
    """``lcamlab figures 01 02``: the command that rebuilds these notebooks' rows (all of them if none is known)."""
    numbers = sorted({str(nb).partition("_")[0] for nb in notebooks if str(nb)})
    return " ".join(["lcamlab figures", *numbers])


def _refused(path: Path, problem: str, notebooks: Iterable[str] = ()) -> LedgerError:
    owners = sorted(set(notebooks))
    whose = f"the rows of {', '.join(owners)}" if owners else "its rows"
    return LedgerError(f"claims ledger {path} {problem}; it is not used. Rebuild {whose} by rerunning the notebook "
                       f"that owns them (the `notebook` column): `{_figures_command(owners)}`")


def _text_frame(data: bytes, path: Path) -> pd.DataFrame:
    """The ledger's CSV bytes as a table of strings (exactly what is stored, nothing converted)."""
    try:
        frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
    except (ValueError, pd.errors.ParserError) as error:  # EmptyDataError and UnicodeDecodeError are ValueErrors
        raise _refused(path, f"is not a readable CSV table ({' '.join(str(error).split())})") from None
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise _refused(path, f"lacks the column(s) {', '.join(missing)}")
    return frame[list(COLUMNS)]


def _digests(text: pd.DataFrame) -> dict[str, str]:
    """Per notebook, the SHA-256 of its rows as CSV (of the string table, so a read reproduces the write's bytes)."""
    return {nb: sha256(rows.to_csv(index=False).encode("utf-8"))
            for nb, rows in text.groupby("notebook", sort=True)}


def _typed(text: pd.DataFrame, path: Path) -> pd.DataFrame:
    """The string table with its numbers converted, every value checked (even a matching checksum may be forged)."""
    invalid = [*((c, ~text[c].map(_is_number).astype(bool)) for c in _NUMBERS),
               ("n", ~text["n"].map(lambda v: v.isascii() and v.isdecimal()).astype(bool)),
               ("verdict", ~text["verdict"].isin(VERDICTS)), ("paper", ~text["paper"].isin(list(PAPERS))),
               ("id", text["id"].duplicated(keep=False))]
    for column, bad in invalid:
        if bad.any():
            raise _refused(path, f"has an invalid {column} {text[column][bad].iloc[0]!r}", text["notebook"][bad])
    frame = text.copy()
    for column in _NUMBERS:
        frame[column] = [float(v) if v else math.nan for v in text[column]]  # NaN is stored as an empty field
    frame["n"] = text["n"].astype(int)
    # rows no code writes: an interval upside down; "holds" without a finite interval or without units
    # (verdict() and every notebook's own rule need both)
    finite = frame[list(_NUMBERS)].map(math.isfinite).all(axis=1)
    for column, bad in (("low", frame["low"] > frame["high"]),
                        ("verdict", (frame["verdict"] == "holds") & ~(finite & (frame["n"] >= 1)))):
        if bad.any():
            raise _refused(path, f"has an invalid {column} {text[column][bad].iloc[0]!r} (in row "
                                 f"{text['id'][bad].iloc[0]!r}, which no code writes)", text["notebook"][bad])
    return frame


def _is_number(value: str) -> bool:
    """Whether ``value`` is a number as the ledger writes it: a float's text, or empty for NaN."""
    if value == "":  # NaN
        return True
    try:
        number = float(value)
    except ValueError:
        return False
    return value == value.strip() and not math.isnan(number)  # NaN is written as an empty field, never "nan"


def _notebook_records(record: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The per-notebook records of a sidecar's ``ledger`` record (what is not a record is left out)."""
    notebooks = record.get("notebooks")
    return {str(nb): r for nb, r in notebooks.items() if isinstance(r, dict)} if isinstance(notebooks, dict) else {}


def _verified(path: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """``(typed ledger, the sidecar's ledger record)`` of the ledger at ``path``; :class:`LedgerError` if not sound."""
    sidecar = path.with_suffix(".json")
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise _refused(path, "is a folder, not a file") from None
    if not sidecar.is_file():
        raise _refused(path, f"has no sidecar {sidecar.name} (its provenance and checksum)")
    try:
        metadata = json.loads(sidecar.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _refused(path, f"has a sidecar {sidecar.name} that is not readable JSON ({error})") from None
    record = metadata.get("ledger") if isinstance(metadata, dict) else None
    if not isinstance(record, dict) or record.get("format") != LEDGER_FORMAT:
        raise _refused(path, f"has no checksum of format {LEDGER_FORMAT} in {sidecar.name} (written by an older "
                             f"lcamlab, or the sidecar was replaced)")
    if sha256(data) != record.get("sha256"):
        try:
            found = _digests(_text_frame(data, path))
        except LedgerError:  # unreadable as well: every notebook's rows are lost
            found = {}
        stored = _notebook_records(record)
        changed = [nb for nb in sorted(set(stored) | set(found))
                   if stored.get(nb, {}).get("sha256") != found.get(nb)] if found else list(stored)
        raise _refused(path, f"does not match the checksum in {sidecar.name} (edited by hand, cut short or "
                             f"overwritten)", changed)
    return _typed(_text_frame(data, path), path), record


def read_ledger(data_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """The ledger, verified against its checksum (empty with the right columns if there is none yet).

    Raises:
        LedgerError: the ledger is unreadable, has no valid sidecar, fails its checksum, or holds a
            value no code writes (a non-numeric number, a verdict outside :data:`VERDICTS`, an interval
            upside down, "holds" without a finite interval, ...); the
            message names the file and the command that rebuilds the rows concerned.
    """
    path = ledger_path(data_dir)
    if not path.exists():
        return pd.DataFrame(columns=list(COLUMNS))
    return _verified(path)[0]


def update_ledger(rows: Iterable[Mapping[str, Any]], notebook: str,
                  data_dir: str | os.PathLike | None = None, *, write: bool = True,
                  **provenance_extra: Any) -> pd.DataFrame:
    """Replace ``notebook``'s rows of the ledger by ``rows`` and write it (atomically, with provenance).

    Rows of other notebooks are kept. Rows are sorted by ``id``, so the file is the
    same whatever order the notebooks ran in. With ``write=False`` (a notebook's
    quick build, whose small samples must not replace the committed rows) nothing
    is written: the ledger as it would be is returned.

    A ledger whose rows come out unchanged is not rewritten (nor its sidecar, which
    keeps the commit that computed them); a notebook whose rows are unchanged keeps
    its checksum record. A damaged or edited ledger (:class:`LedgerError`) is moved
    aside (``claims.damaged-<time>.csv`` with its sidecar) with one warning, and the
    ledger is rebuilt from this notebook's rows: a notebook's build never stops on
    another's damaged rows, and rerunning the other notebooks (``lcamlab figures``)
    restores theirs.
    """
    new = pd.DataFrame([dict(r) for r in rows], columns=list(COLUMNS))
    if (new["notebook"] != notebook).any():
        raise ValueError(f"Invalid ledger rows: every row must belong to notebook {notebook!r}")
    if new["id"].duplicated().any():
        raise ValueError(f"Invalid ledger rows: duplicate ids {sorted(new['id'][new['id'].duplicated()])}")
    path = ledger_path(data_dir)
    old, record = pd.DataFrame(columns=list(COLUMNS)), {}
    if path.exists():
        try:
            old, record = _verified(path)
        except LedgerError as error:
            if write:
                moved = move_aside(path)
                warnings.warn(f"{error}. It was moved aside to {moved.name}; the ledger now starts again from the "
                              f"rows of {notebook}: rerun the other notebooks (`lcamlab figures`) to restore theirs",
                              stacklevel=2)
            else:
                warnings.warn(f"{error}. Quick build: this preview holds only {notebook}'s rows", stacklevel=2)
    kept = old[old["notebook"] != notebook]
    clash = set(kept["id"]) & set(new["id"])
    if clash:
        raise ValueError(f"Invalid ledger rows: ids {sorted(clash)} already belong to another notebook")
    frame = pd.concat([kept, new], ignore_index=True) if len(kept) else new
    frame = frame.sort_values("id", kind="stable").reset_index(drop=True)
    if not write:
        return frame
    data = frame.to_csv(index=False).encode("utf-8")
    if record.get("sha256") == sha256(data):
        return old  # the same rows, byte for byte: both files stay as they are
    digests = _digests(_text_frame(data, path))
    metadata = provenance.run_metadata({"notebooks": sorted(digests)}, **provenance_extra)
    metadata.pop("created_utc", None)  # the sidecar changes only when the rows do
    computed = {key: metadata[key] for key in ("git_commit", "git_dirty", "device")}
    previous = _notebook_records(record)
    metadata["ledger"] = {
        "format": LEDGER_FORMAT, "sha256": sha256(data), "rows": len(frame),
        "notebooks": {nb: (previous[nb] if previous.get(nb, {}).get("sha256") == digest
                           else {"sha256": digest, "rows": int((frame["notebook"] == nb).sum()), **computed})
                      for nb, digest in digests.items()},
    }
    # Sidecar first: a crash between the two writes leaves a mismatch that the next read reports.
    provenance.atomic_write_json(path.with_suffix(".json"), metadata)
    provenance.atomic_write_bytes(path, data)
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
    """``text`` (a README) with its findings block replaced by :func:`findings_markdown` of ``ledger``.

    Raises:
        ValueError: the markers are missing, or ``ledger`` has no rows (the findings would be deleted).
    """
    findings_block(text)  # the markers exist
    if not len(ledger):
        raise ValueError("the claims ledger has no rows: the README's findings are not replaced by nothing; "
                         "measure the claims first (`lcamlab figures`)")
    start, end = text.find(FINDINGS_START), text.find(FINDINGS_END)
    return text[:start + len(FINDINGS_START)] + "\n" + findings_markdown(ledger).strip() + "\n" + text[end:]
