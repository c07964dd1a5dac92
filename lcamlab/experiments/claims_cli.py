"""``lcamlab claims``: print the claims ledger, and write the README's findings from it.

``lcamlab claims [--data-dir DIR] [--notebook NAME] [--write-readme | --check]``

The ledger (``data/claims.csv``, :mod:`lcamlab.experiments.claims`) holds, for every
claim of the source papers that a notebook tests, the estimate with its 95%
interval and the verdict (computed by code). The notebooks write it; this
command shows it. ``--write-readme`` rewrites the block between
``<!-- findings:start -->`` and ``<!-- findings:end -->`` of README.md from the
ledger, so the README's findings cannot disagree with the data; ``--check``
exits with status 1 if the block is out of date (as the test suite checks).

Every form first verifies the ledger against the checksum in its sidecar
(:func:`lcamlab.experiments.claims.read_ledger`): a ledger that is missing,
damaged or edited by hand is refused in one line naming the file and the
notebooks to rerun, so no forged verdict is ever printed or published, and the
README's findings are never replaced from an empty ledger.
"""

from __future__ import annotations

import argparse
import math
import textwrap
from pathlib import Path

from lcamlab import paths
from lcamlab.experiments import claims

__all__ = ["configure_parser", "main", "format_ledger"]


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``lcamlab claims``."""
    parser.add_argument("--data-dir", default=None, help="the folder holding claims.csv (default: data/)")
    parser.add_argument("--notebook", default=None, help="show only this notebook's rows, e.g. 01_weight_traction")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write-readme", action="store_true",
                        help="rewrite README.md's findings block from the ledger")
    action.add_argument("--check", action="store_true",
                        help="exit with status 1 if README.md's findings block differs from the ledger")
    parser.add_argument("--readme", default=None, help=argparse.SUPPRESS)  # another README (tests)


def _number(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:+.4g}"


def format_ledger(ledger) -> str:
    """The ledger as text: per notebook, one block per claim (verdict, estimate, interval, n)."""
    if len(ledger) == 0:
        return "The claims ledger is empty: run the notebooks (lcamlab figures) to measure the claims."
    lines = []
    counts = ledger["verdict"].value_counts()
    lines.append(f"{len(ledger)} claims: " + ", ".join(f"{counts.get(v, 0)} {v}" for v in claims.VERDICTS))
    for notebook, rows in ledger.groupby("notebook", sort=True):
        lines.append("")
        lines.append(notebook)
        for _, r in rows.iterrows():
            lines.append(f"  {r['verdict'].upper():<22} {r['id']}  ({r['paper']} {r['section']})")
            lines.append(textwrap.fill(r["claim"], width=100, initial_indent="      ", subsequent_indent="      "))
            lines.append(f"      estimate {_number(r['estimate'])} [{_number(r['low'])}, {_number(r['high'])}], "
                         f"n = {int(r['n'])}; against {r['control']}")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    """Run ``lcamlab claims``."""
    path = claims.ledger_path(args.data_dir)
    if path.parent.is_file():
        raise claims.LedgerError(f"--data-dir {path.parent} is a file, not a folder: give the folder that holds "
                                 f"claims.csv (default: the repository's data/)")
    if not path.exists():  # (a folder in its place is refused by read_ledger, naming it)
        raise claims.LedgerError(f"no claims ledger at {path}: give the --data-dir that holds claims.csv "
                                 f"(default: the repository's data/), or measure the claims with `lcamlab figures`")
    ledger = claims.read_ledger(args.data_dir)
    shown = ledger if args.notebook is None else ledger[ledger["notebook"] == args.notebook]
    if args.notebook is not None and len(shown) == 0:
        known = ", ".join(sorted(set(ledger["notebook"]))) or "none"
        raise ValueError(f"No ledger rows of notebook {args.notebook!r} (notebooks with rows: {known})")
    readme = Path(args.readme) if args.readme else paths.REPO_ROOT / "README.md"
    if args.write_readme or args.check:
        text = readme.read_text(encoding="utf-8")
        updated = claims.with_findings(text, ledger)
        if args.check:
            if claims.findings_block(updated) != claims.findings_block(text):
                print(f"{readme.name}: the findings block differs from {claims.ledger_path(args.data_dir)}; "
                      f"run `lcamlab claims --write-readme`")
                return 1
            print(f"{readme.name}: the findings block matches the ledger ({len(ledger)} claims)")
            return 0
        if updated != text:
            from lcamlab import provenance

            provenance.atomic_write_text(readme, updated)
            print(f"rewrote the findings block of {readme} from {len(ledger)} ledger rows")
        else:
            print(f"{readme.name}: the findings block is up to date ({len(ledger)} claims)")
        return 0
    print(format_ledger(shown))
    return 0
