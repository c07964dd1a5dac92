"""The notebooks' support layer: planning our WRN/CIFAR and Fashion-MNIST runs, and the reports
that set them next to the LCAM paper's.

===========================  ===============================================================
module                       concern
===========================  ===============================================================
:mod:`.plan`                 planning and completing the figures' run sets for notebooks
                             03/04 (status, the ``lcamlab grid`` command, where data are)
:mod:`.tables`               seed aggregation, final values, win rate, Table 1 (rows,
                             comparison with the paper's, markdown, cached CSV), group summaries
:mod:`.plots`                our runs over the paper's curves per group; Table 1 as a figure
:mod:`.panels`               what notebooks 03/04 show, one call per cell (the paper's and
                             our tables shown as HTML, figures returned, Table 1 stored)
:mod:`.fmnist`               the same protocol on Fashion-MNIST: curves with controls, Table 1
                             at our scale (paired intervals, win rates), claims-ledger rows
===========================  ===============================================================

**Layers.** This package sits above the engines: it imports :mod:`lcamlab.train`
(the run sets, the runner, reading runs back) and :mod:`lcamlab.paper` (the
published curves), and neither of them imports it (``tests/test_layout.py``
checks that no import cycle exists). Library functions return figures and
tables; the notebooks name and save every figure the same way,
``style.show(fig, name, figures_dir)``.

Every public name of the report modules is available from ``lcamlab.reports``
directly, and :func:`runs_frame` (reading run folders) is re-exported from
:mod:`lcamlab.train.runs`; the planning functions are used as ``from lcamlab.reports import plan``.
"""

from lcamlab.reports import fmnist, panels, plan, plots, tables
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
from lcamlab.train.runs import runs_frame

# The package exports exactly what its modules export, and the run readers.
__all__ = [*tables.__all__, "runs_frame", *plots.__all__, *panels.__all__, *fmnist.__all__]
