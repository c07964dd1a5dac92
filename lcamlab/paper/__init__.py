"""The LCAM paper's published curves (Figures 3, 4, 5) and Table 1, as data.

The paper: Zhang et al. (2023), "Asymmetric Momentum: A Rethinking of Gradient Descent"
(:data:`lcamlab.experiments.claims.PAPERS` ``"LCAM"``).

===========================  ===============================================================
module                       concern
===========================  ===============================================================
:mod:`.parse`                the paper's text -> every ``\\addplot`` curve and Table 1 (tidy tables)
:mod:`.analysis`             panels, learning-rate drops, the extraction's checks, summaries
:mod:`.store`                ``data/paper/curves.csv`` / ``table1.csv``: extract, load back
:mod:`.cli`                  ``lcamlab paper extract|show``
===========================  ===============================================================

The momentum-group vocabulary (``"0.9-0.95"``, "Fixed 0.9") lives in
:mod:`lcamlab.train.groups` and is re-exported here. Every public name is
available from ``lcamlab.paper`` directly, e.g.::

    from lcamlab import paper
    curves = paper.load_curves()
    paper.paper_curve(curves, "fig3", "cifar10", "test_error", "0.9-0.95")
"""

from lcamlab.paper import analysis, cli, parse, store
from lcamlab.paper.analysis import (
    STEP_DROP_EPOCHS,
    check_curves,
    curve_summary,
    final_training_table,
    panel_table,
    table1_wide,
    detect_lr_drops,
    drop_ratios,
    paper_curve,
    paper_groups,
)
from lcamlab.paper.cli import configure_parser, main
from lcamlab.paper.parse import (
    FIGURES,
    LCAM_FINAL_PAIRS,
    METRICS,
    PAPER_COLOR_GROUPS,
    SOURCE_NAME,
    SOURCE_SHA256,
    PaperCurve,
    curves_frame,
    find_source,
    parse_curves,
    parse_table1,
)
from lcamlab.paper.store import default_paper_dir, extract, load_curves, load_table1
from lcamlab.train.groups import group_label, group_name, parse_group

# The package exports exactly what its modules export, and the group vocabulary.
__all__ = [*parse.__all__, *analysis.__all__, *store.__all__, "group_label", "parse_group", "group_name",
           *cli.__all__]
