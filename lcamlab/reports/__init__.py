"""Our WRN/CIFAR runs next to the paper's: seed aggregation, Table 1 and the paired panels.

===========================  ===============================================================
module                       concern
===========================  ===============================================================
:mod:`.tables`               seed aggregation, final values, win rate, Table 1 (rows,
                             comparison with the paper's, markdown, cached CSV), group summaries
:mod:`.plots`                our runs over the paper's curves per group; Table 1 as a figure
:mod:`.panels`               what notebooks 03/04 show, one call per cell (the paper's and
                             our tables shown as HTML, figures saved, Table 1 stored and drawn)
:mod:`.fmnist`               the same protocol on Fashion-MNIST: curves with controls, Table 1
                             at our scale (paired intervals, win rates), claims-ledger rows
===========================  ===============================================================

Reports read runs (through :mod:`lcamlab.train.runs`) and never train: planning
and completing the run sets is :mod:`lcamlab.train.plan`'s job. Every public
name is available from ``lcamlab.reports`` directly; :func:`runs_frame` and
:func:`run_inventory` (reading run folders) are re-exported from
:mod:`lcamlab.train.runs`.
"""

from lcamlab.reports import fmnist, panels, plots, tables
from lcamlab.reports.fmnist import (
    Effect,
    FmnistReport,
    describe_fmnist,
    drop_epochs_for,
    effect_vs_fixed,
    fmnist_claims,
    fmnist_report,
    fmnist_frame,
    fmnist_table,
    fmnist_table_display,
    fmnist_table_markdown,
    plot_fmnist,
    series_label,
    series_order,
    training_speed,
)
from lcamlab.reports.panels import (
    PAPER_WIN_RATES,
    Table1Report,
    describe_groups,
    describe_table1,
    group_tables,
    plot_panels,
    show_groups,
    show_markdown,
    show_paper_final,
    show_paper_panels,
    table1_report,
)
from lcamlab.reports.plots import plot_groups, plot_table1
from lcamlab.reports.tables import (
    DATASET_NAMES,
    PAPER_SOURCE,
    aggregate_seeds,
    final_values,
    group_summary,
    save_table1,
    table1_comparison,
    table1_display,
    table1_markdown,
    table1_rows,
    win_rate,
)
from lcamlab.train.runs import run_inventory, runs_frame

# The package exports exactly what its modules export, and the run readers.
__all__ = [*tables.__all__, "runs_frame", "run_inventory", *plots.__all__, *panels.__all__, *fmnist.__all__]
