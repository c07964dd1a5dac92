"""``lcamlab paper``: extract the LCAM paper's published curves and Table 1, and summarise them.

Command line::

    lcamlab paper extract [--source FILE] [--out-dir data/paper] [--overwrite]
    lcamlab paper show [--figure fig4] [--dataset cifar100]
    python -m lcamlab.paper extract          # the same
"""

from __future__ import annotations

import argparse

import pandas as pd

from lcamlab.paper.analysis import check_curves, curve_summary
from lcamlab.paper.parse import FIGURES, SOURCE_NAME
from lcamlab.paper.store import extract, load_curves, load_table1
from lcamlab.train.groups import group_name

__all__ = ["configure_parser", "main"]


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """``lcamlab paper extract|show``."""
    sub = parser.add_subparsers(dest="paper_command", metavar="ACTION", required=True)
    ext = sub.add_parser("extract",
                         help="extract the LCAM paper's Figure 3-5 curves and Table 1 into CSV (+ JSON provenance)",
                         description="Extract every point of the LCAM paper's Figures 3-5 and its Table 1 into "
                                     "curves.csv / table1.csv with provenance sidecars, and check them.")
    ext.add_argument("--source", default=None,
                     help=f"path of {SOURCE_NAME} (default: $LCAMLAB_SEEDS_DIR or ../shared/seeds/)")
    ext.add_argument("--out-dir", default=None, help="output folder (default: the repository's data/paper)")
    ext.add_argument("--overwrite", action="store_true", help="replace existing files whose content differs")
    show = sub.add_parser("show", help="summarise the extracted curves and Table 1",
                          description="Print one line per published curve, the detected learning-rate drops and Table 1.")
    show.add_argument("--paper-dir", default=None, help="folder holding curves.csv (default: data/paper)")
    show.add_argument("--figure", choices=FIGURES, default=None, help="only this figure")
    show.add_argument("--dataset", choices=("cifar10", "cifar100"), default=None, help="only this dataset")


def main(args: argparse.Namespace) -> int:
    """Run ``lcamlab paper extract`` or ``lcamlab paper show``."""
    if args.paper_command == "extract":
        result = extract(args.source, args.out_dir, overwrite=args.overwrite)
        for name in ("curves", "table1"):
            print(f"{result[name]}: {result['status'][name]}")
        for line in result["findings"]:
            print(line)
        return 0
    curves = load_curves(args.paper_dir)
    table1 = load_table1(args.paper_dir)
    shown = curves
    if args.figure:
        shown = shown[shown.figure == args.figure]
    if args.dataset:
        shown = shown[shown.dataset == args.dataset]
    if shown.empty:
        raise ValueError(f"No published curve for figure={args.figure} dataset={args.dataset}")
    summary = curve_summary(shown)
    summary["name"] = [group_name(g, f) for g, f in zip(summary.group, summary.figure)]
    with pd.option_context("display.width", 140, "display.max_rows", 100):
        print(f"{summary.shape[0]} curves")
        print(summary.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        for line in check_curves(curves):
            print(line)
        print("\nThe LCAM paper's Table 1 (test error %):")
        print(table1.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    return 0
