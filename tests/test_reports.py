"""Seed aggregation, Table 1 arithmetic and the paper-overlay plots (lcamlab.reports),
on synthetic run folders written in the training contract's format."""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from lcamlab import paper, reports, style  # noqa: E402
from lcamlab.train.runs import load_runs, read_run  # noqa: E402


def write_run(runs_dir: Path, *, dataset="cifar10", momentum=(0.9, 0.95), seed=0, epochs=(1, 2, 3),
              test_error=None, train_loss=None, planned=None, finished=False, schedule="lcam-exp",
              wrapped=True, run_id=None) -> Path:
    """A run folder as lcamlab.train writes it: config.json, metrics.jsonl, finished.json."""
    label = paper.group_label(momentum)
    run_dir = runs_dir / (run_id or f"fig5-{dataset}-m{label}-s{seed}")
    run_dir.mkdir(parents=True)
    config = {"dataset": dataset, "momentum": list(momentum), "seed": seed, "schedule": schedule,
              "epochs": planned or max(epochs, default=1), "optimizer": "lcam", "depth": 10, "widen": 1}
    record = {"config": config, "seed": seed, "lcamlab_version": "0.1.0"} if wrapped else config
    (run_dir / "config.json").write_text(json.dumps(record))
    lines = []
    for i, epoch in enumerate(epochs):
        lines.append(json.dumps({
            "epoch": epoch,
            "train_loss": train_loss[i] if train_loss is not None else 2.0 / epoch,
            "train_accuracy": 50.0, "test_error": test_error[i] if test_error is not None else 50.0 - epoch,
            "test_loss": 1.0, "lr": 0.1, "phase_below": 0.4, "phase_above": 0.6,
            "epoch_seconds": 1.0, "images_per_second": 100.0,
        }))
    (run_dir / "metrics.jsonl").write_text("".join(line + "\n" for line in lines))
    if finished:
        (run_dir / "finished.json").write_text("{}")
    return run_dir


@pytest.fixture(scope="module")
def paper_curves():
    return paper.load_curves()


@pytest.fixture(scope="module")
def paper_table1():
    return paper.load_table1()


def test_read_run_formats_torn_line_and_repeated_epoch(tmp_path):
    wrapped = write_run(tmp_path, seed=0, epochs=(1, 2), test_error=[40.0, 30.0])
    flat = write_run(tmp_path, seed=1, epochs=(1, 2), test_error=[41.0, 31.0], wrapped=False, finished=True)
    with (wrapped / "metrics.jsonl").open("a") as handle:
        handle.write(json.dumps({"epoch": 2, "train_loss": 0.5, "test_error": 29.0}) + "\n")  # resumed: epoch 2 again
        handle.write('{"epoch": 3, "train_lo')  # torn by a crash
    run = read_run(wrapped)
    assert run.metrics.epoch.tolist() == [1, 2]
    assert run.metrics.test_error.tolist() == [40.0, 29.0]
    assert (run.group, run.seed, run.finished, run.epochs_done) == ("0.9-0.95", 0, False, 2)
    assert read_run(flat).finished and read_run(flat).seed == 1
    (flat / "metrics.jsonl").write_text('{"epoch": 1}\nnot json\n{"epoch": 2}\n')
    with pytest.raises(ValueError, match="damaged"):
        read_run(flat)
    with pytest.raises(FileNotFoundError, match="config.json"):
        read_run(tmp_path / "nothing")


def test_load_runs_filters(tmp_path):
    write_run(tmp_path, dataset="cifar10", momentum=(0.9, 0.9), seed=0, finished=True)
    write_run(tmp_path, dataset="cifar100", momentum=(0.93, 0.9), seed=0, epochs=(1,), planned=3)
    write_run(tmp_path, dataset="cifar10", momentum=(0.9, 0.95), seed=0, schedule="step", run_id="fig3-x")
    (tmp_path / "stray-folder").mkdir()
    assert len(load_runs(tmp_path)) == 3
    assert [r.run_id for r in load_runs(tmp_path, schedule="lcam-exp", dataset="cifar10")] == [
        "fig5-cifar10-m0.9-0.9-s0"]
    assert len(load_runs(tmp_path, momentum=(0.93, 0.9))) == 1
    assert len(load_runs(tmp_path, dataset=("cifar10", "cifar100"), schedule="lcam-exp")) == 2
    assert load_runs(tmp_path / "absent") == []


def test_one_state_vocabulary_for_started_diverged_and_finished_runs(tmp_path):
    from lcamlab.train.runs import epochs_done, run_state

    started = write_run(tmp_path, momentum=(0.95, 0.9), seed=0, epochs=(), planned=5)  # no epoch finished yet
    diverged = write_run(tmp_path, momentum=(0.9, 0.9), seed=1, epochs=(1,), planned=5)
    (diverged / "diverged.json").write_text("{}")
    done = write_run(tmp_path, momentum=(0.9, 0.9), seed=2, epochs=(1, 2), finished=True)
    with (done / "metrics.jsonl").open("a") as handle:
        handle.write('{"epoch": 3, "te')  # torn last line: not an epoch
    assert [run_state(p) for p in (started, diverged, done, tmp_path / "absent")] == [
        "partial", "diverged", "finished", "missing"]
    assert [epochs_done(p) for p in (started, diverged, done)] == [0, 1, 2]
    runs = {r.run_id: r for r in load_runs(tmp_path)}
    first, second, third = (runs[p.name] for p in (started, diverged, done))
    assert (first.state, first.diverged, first.epochs_done, first.epochs_planned) == ("partial", False, 0, 5)
    assert (second.state, second.diverged, second.finished) == ("diverged", True, False)
    assert (third.state, third.epochs_done, third.group, third.momentum) == ("finished", 2, "0.9-0.9", (0.9, 0.9))
    frame = reports.runs_frame(list(runs.values()))
    assert set(frame.run_id) == {diverged.name, done.name}  # a run without epochs adds no rows
    with pytest.raises(ValueError, match="Cannot read a run"):
        reports.runs_frame([42])


def test_aggregate_mean_and_band_with_a_partial_seed(tmp_path):
    write_run(tmp_path, seed=0, epochs=(1, 2, 3), test_error=[10.0, 8.0, 6.0], finished=True)
    write_run(tmp_path, seed=1, epochs=(1, 2, 3), test_error=[12.0, 9.0, 7.0], finished=True)
    write_run(tmp_path, seed=2, epochs=(1, 2), test_error=[14.0, 13.0], planned=3)  # still training
    frame = reports.runs_frame(load_runs(tmp_path))
    agg = reports.aggregate_seeds(frame, "test_error").set_index("epoch")
    assert agg.n.tolist() == [3, 3, 2]
    np.testing.assert_allclose(agg["mean"].to_numpy(), [12.0, 10.0, 6.5], rtol=1e-15)
    assert agg["min"].tolist() == [10.0, 8.0, 6.0]
    assert agg["max"].tolist() == [14.0, 13.0, 7.0]
    assert reports.aggregate_seeds(reports.runs_frame([]), "test_error").empty


def test_table1_arithmetic_on_known_values(tmp_path):
    # at epoch 120: fixed 0.9 = [4.0, 4.2, 4.1, 4.3]; LCAM = [3.9, 4.3, 4.0, 4.3] (seed 3 ties)
    baseline = [4.0, 4.2, 4.1, 4.3]
    lcam = [3.9, 4.3, 4.0, 4.3]
    epochs = (1, 119, 120, 121)
    for seed in range(4):
        write_run(tmp_path, momentum=(0.9, 0.9), seed=seed, epochs=epochs, test_error=[50, 9, baseline[seed], 1])
        write_run(tmp_path, momentum=(0.9, 0.95), seed=seed, epochs=epochs, test_error=[50, 9, lcam[seed], 1])
    write_run(tmp_path, momentum=(0.9, 0.95), seed=7, epochs=epochs, test_error=[50, 9, 1.0, 1])  # no partner
    frame = reports.runs_frame(load_runs(tmp_path))
    rows = reports.table1_rows(frame, epoch=120).set_index("group")
    ours = rows.loc["0.9-0.95"]
    values = lcam + [1.0]
    mean = sum(values) / 5
    assert ours.epoch == 120 and ours.n_seeds == 5
    assert ours["mean"] == pytest.approx(mean, rel=1e-12)
    assert ours["std"] == pytest.approx(math.sqrt(sum((v - mean) ** 2 for v in values) / 4), rel=1e-12)  # ddof=1
    assert ours.best == 1.0 and ours.worst == 4.3
    # paired by seed: seeds 0 and 2 win, seed 1 loses, seed 3 ties (no win), seed 7 has no partner
    assert (ours.wins, ours.pairs, ours.win_rate) == (2, 4, 0.5)
    base = rows.loc["0.9-0.9"]
    assert math.isnan(base.win_rate) and base["std"] == pytest.approx(np.std(baseline, ddof=1), rel=1e-12)
    population = reports.table1_rows(frame, epoch=120, ddof=0).set_index("group")
    assert population.loc["0.9-0.9", "std"] == pytest.approx(np.std(baseline), rel=1e-12)
    assert reports.win_rate({0: 1.0, 1: 2.0}, {0: 2.0, 1: 2.0}) == (1, 2, 0.5)
    assert math.isnan(reports.win_rate({0: 1.0}, {1: 2.0})[2])
    with pytest.raises(ValueError, match="Invalid epoch"):
        reports.final_values(frame, epoch=0)


def test_table1_falls_back_to_the_last_common_epoch(tmp_path):
    write_run(tmp_path, dataset="cifar100", momentum=(0.9, 0.9), seed=0, epochs=range(1, 6),
              test_error=[30, 28, 26, 24, 22], planned=150)
    write_run(tmp_path, dataset="cifar100", momentum=(0.93, 0.9), seed=0, epochs=range(1, 5),
              test_error=[31, 27, 25, 23], planned=150)
    write_run(tmp_path, dataset="cifar10", momentum=(0.9, 0.9), seed=0, epochs=range(1, 4),
              test_error=[9, 8, 7], planned=3, finished=True)
    rows = reports.table1_rows(reports.runs_frame(load_runs(tmp_path)), epoch=120)
    c100 = rows[rows.dataset == "cifar100"].set_index("group")
    assert c100.epoch.tolist() == [4, 4]  # the last epoch both CIFAR-100 runs have
    assert c100.loc["0.93-0.9", "mean"] == 23 and c100.loc["0.9-0.9", "mean"] == 24
    assert (c100.loc["0.93-0.9", "wins"], c100.loc["0.93-0.9", "pairs"]) == (1, 1)
    assert math.isnan(c100.loc["0.93-0.9", "std"])  # one seed: no sample std
    assert rows[rows.dataset == "cifar10"].epoch.item() == 3


def test_comparison_markdown_and_cached_save(tmp_path, paper_table1):
    for seed, (b, l) in enumerate([(4.0, 3.9), (4.2, 4.1), (4.1, 4.2)]):
        write_run(tmp_path / "runs", momentum=(0.9, 0.9), seed=seed, epochs=(120,), test_error=[b])
        write_run(tmp_path / "runs", momentum=(0.9, 0.95), seed=seed, epochs=(120,), test_error=[l])
    frame = reports.runs_frame(load_runs(tmp_path / "runs"))
    rows = reports.table1_rows(frame, epoch=120)
    comparison = reports.table1_comparison(paper_table1, rows)
    assert len(comparison) == 6 + 2
    text = reports.table1_markdown(comparison)
    assert "| LCAM paper | Ours LCAM | 120 | 3.98 | 19.22 (18.92 in 50%) |" in text
    shown = reports.table1_display(comparison)
    assert list(shown.columns) == ["source", "method", "epochs", "CIFAR-10", "CIFAR-100"]
    assert shown.loc[shown.method == "Ours LCAM", "CIFAR-100"].item() == "19.22 (18.92 in 50%)"
    assert "<table" in style.table_html(shown)
    assert "4.07 ± 0.15 (best 3.90; n=3; win 67%)" in text
    finals = reports.final_values(frame, epoch=120)
    first = reports.save_table1(comparison, tmp_path / "data", finals=finals, config={"epoch": 120})
    assert first["status"] == "written" and first["csv"].exists() and first["markdown"].read_text() == text
    sidecar = json.loads(first["csv"].with_suffix(".json").read_text())
    assert sidecar["config"] == {"epoch": 120} and len(sidecar["runs"]) == 6
    again = reports.save_table1(comparison, tmp_path / "data", finals=finals, config={"epoch": 120})
    assert again == {**first, "status": "cached"}
    other = reports.save_table1(comparison, tmp_path / "data", finals=finals.assign(value=finals.value + 1),
                                config={"epoch": 120})
    assert other["csv"] != first["csv"] and first["csv"].exists()


def _band_count(ax) -> int:
    return sum(1 for c in ax.collections if c.__class__.__name__ in ("PolyCollection", "FillBetweenPolyCollection"))


@pytest.mark.parametrize("state", ["missing", "partial", "complete"])
def test_plot_groups_with_runs_missing_partial_or_complete(tmp_path, paper_curves, state):
    groups = paper.paper_groups(paper_curves, "fig4")
    runs_dir = tmp_path / "runs"
    if state != "missing":
        for group in groups:
            for seed in range(2):
                last = 150 if state == "complete" or seed == 0 else 40
                epochs = range(1, last + 1)
                write_run(runs_dir, dataset="cifar100", momentum=paper.parse_group(group), seed=seed,
                          epochs=epochs, schedule="step", planned=150, finished=last == 150,
                          test_error=[60 * 0.98 ** e + seed for e in epochs],
                          train_loss=[4 * 0.96 ** e for e in epochs])
    frame = reports.runs_frame(load_runs(runs_dir))
    fig, axes = reports.plot_groups(frame, paper_curves, dataset="cifar100", groups=groups, figure="fig4",
                                    drop_epochs=paper.STEP_DROP_EPOCHS)
    error_ax, loss_ax = axes
    dashed = [l for l in error_ax.lines if l.get_linestyle() == "--"]
    solid = [l for l in error_ax.lines if l.get_linestyle() == "-"]
    assert len(dashed) == 4  # the paper's four groups always
    assert [l.get_color() for l in dashed] == [style.paper_group_color(paper.parse_group(g)) for g in groups]
    assert len(solid) == (0 if state == "missing" else 4)
    assert _band_count(error_ax) == (0 if state == "missing" else 4)
    assert loss_ax.get_yscale() == "log"
    assert style.figure_problems(fig) == []  # the figure checklist, in every state
    shown = paper_curves[(paper_curves.figure == "fig4") & (paper_curves.dataset == "cifar100")]
    first = min([shown.epoch.min()] + ([frame.epoch.min()] if len(frame) else []))
    assert error_ax.get_xlim()[0] == pytest.approx(max(0.0, first - 2))  # the axis starts where the data do
    legend = [t.get_text() for t in fig.legends[0].get_texts()][::2]  # column-major: groups on row 1
    keys = {t.get_text(): h for t, h in zip(fig.legends[0].get_texts(), fig.legends[0].legend_handles)}
    # a group's entry is drawn as its lines are: dashed (the paper's curve) without runs, solid with them
    assert keys[legend[0]].get_linestyle() == ("--" if state == "missing" else "-")
    assert ("ours: mean over seeds, band min-max" in keys) == (state != "missing")
    if state == "missing":
        assert legend[0] == "Fixed 0.9 (no runs)"
    else:
        assert legend[0] == "Fixed 0.9 (2 seeds, 150 ep)"
        mean_line = solid[0]
        x, y = mean_line.get_data()
        assert len(x) == 150
        # epochs 41-150 average one seed in the partial case, two seeds otherwise
        expected = 60 * 0.98 ** 100 + (0.0 if state == "partial" else 0.5)
        assert y[99] == pytest.approx(expected, rel=1e-12)
    paths = style.save_figure(fig, f"fig4_{state}", tmp_path / "figures", formats=("png",))
    assert paths[0].stat().st_size > 1000
    plt.close(fig)


def test_plot_groups_without_paper_metric_and_plot_table1(tmp_path, paper_curves, paper_table1):
    write_run(tmp_path, dataset="cifar10", momentum=(0.9, 0.9), seed=0, epochs=(1, 2))
    frame = reports.runs_frame(load_runs(tmp_path))
    fig, axes = reports.plot_groups(frame, paper_curves, dataset="cifar10", groups=["0.9-0.9", "0.9-0.95"],
                                    figure="fig5")
    texts = [t.get_text() for t in axes[1].texts]
    assert any("no train loss curve" in t for t in texts)  # the paper's Figure 5 has no loss panel
    assert len([l for l in axes[0].lines if l.get_linestyle() == "--"]) == 2
    plt.close(fig)
    finals = reports.final_values(frame, epoch=120)
    fig, axes = reports.plot_table1(finals, paper_table1,
                                    groups={"cifar10": ["0.9-0.9", "0.9-0.95"], "cifar100": ["0.9-0.9", "0.93-0.9"]})
    assert "epoch 2" in axes[0].get_title() and "no runs yet" in axes[1].get_title()
    assert len(axes[1].lines) == 3  # only the paper's three rows
    assert any(t.get_text() == "no runs" for t in axes[1].texts)
    assert style.save_figure(fig, "table1", tmp_path, formats=("png",))[0].exists()
    plt.close(fig)
    with pytest.raises(ValueError, match="Invalid dataset"):
        reports.plot_groups(frame, paper_curves, dataset="mnist", groups=["0.9-0.9"])


def test_group_summary_reads_the_paper_at_the_same_epoch(tmp_path, paper_curves):
    write_run(tmp_path, dataset="cifar10", momentum=(0.9, 0.95), seed=0, epochs=range(1, 101),
              test_error=[5.0] * 100, schedule="step")
    summary = reports.group_summary(reports.runs_frame(load_runs(tmp_path)), paper_curves=paper_curves,
                                    figure="fig3")
    row = summary.iloc[0]
    published = paper.paper_curve(paper_curves, "fig3", "cifar10", "test_error", "0.9-0.95")
    assert row.epoch == 100 and row["mean"] == 5.0
    assert row.paper == published.loc[published.epoch == 100, "value"].item()
    assert isinstance(summary, pd.DataFrame)


def test_notebook_panels_figures_summary_and_table1(tmp_path, paper_curves, paper_table1):
    for seed, (b, l) in enumerate([(4.0, 3.9), (4.2, 4.1)]):
        write_run(tmp_path / "runs", momentum=(0.9, 0.9), seed=seed, epochs=(119, 120), test_error=[9.0, b])
        write_run(tmp_path / "runs", momentum=(0.9, 0.95), seed=seed, epochs=(119, 120), test_error=[9.0, l])
    frame = reports.runs_frame(load_runs(tmp_path / "runs"))
    panels = {"cifar10": "fig5", "cifar100": "fig5"}
    drawn = reports.plot_panels(frame, paper_curves, panels,
                                title="Figure {number} of the LCAM paper: final training on {dataset}")
    for dataset, (fig, _) in drawn.items():  # as the notebooks do: they name and save every figure
        style.save_figure(fig, f"{panels[dataset]}_{dataset}", tmp_path / "figures")
    assert [fig._suptitle.get_text() for fig, _ in drawn.values()] == [
        "Figure 5 of the LCAM paper: final training on CIFAR-10", "Figure 5 of the LCAM paper: final training on CIFAR-100"]
    legend = [t.get_text() for fig, _ in drawn.values() for t in fig.legends[0].get_texts()]
    assert "the LCAM paper's Figure 5" in legend and not any("000" in t for t in legend)
    assert (tmp_path / "figures" / "fig5_cifar100.pdf").exists() and (tmp_path / "figures" / "fig5_cifar10.png").exists()
    (shown,) = reports.show_groups(frame, paper_curves, {"cifar10": "fig5"}, epochs_planned=150, drop_epochs=(),
                                   show=False)
    assert shown["epoch"] == 120 and shown["lowest"] == "LCAM 0.9-0.95"
    assert shown["table"].set_index("group").loc["LCAM 0.9-0.95", "test error, mean (%)"] == pytest.approx(4.0)
    provenance = {"runs_dir": "runs", "seeds": 2, "epochs": 150, "depth": 28, "widen": 10, "synthetic_cifar": False}
    table = reports.table1_report(frame, paper_table1, paper_curves, ["cifar10", "cifar100"], epoch=120,
                                  data_dir=tmp_path / "data", provenance=provenance, show=False, log=None)
    style.save_figure(table.figure[0], "table1", tmp_path / "figures")
    assert table.saved["status"] == "written" and (tmp_path / "figures" / "table1.png").exists()
    sidecar = json.loads(table.saved["csv"].with_suffix(".json").read_text())
    assert sidecar["config"] == {"table_epoch": 120, "baseline": "0.9-0.9", **provenance}
    assert table.text.endswith("(+ .json, .md)") and "4.00 ± 0.14 (best 3.90; n=2; win 100%)" in table.text
    again = reports.table1_report(frame, paper_table1, paper_curves, ["cifar10"], epoch=120, data_dir=tmp_path / "data",
                                  provenance=provenance, show=False, log=None)
    assert again.saved == {**table.saved, "status": "cached"}
    words = reports.describe_table1(table.rows, paper_table1)
    assert "CIFAR-10 LCAM 0.9-0.95 at epoch 120: 4.00 % mean over 2 seed(s)" in words
    assert "beats fixed 0.9 on 2/2 seeds (100 %, paper: about 80 %)" in words
    assert "CIFAR-10: our LCAM mean minus the paper's LCAM row (3.98 %): +0.02 points at epoch 120" in words
    plt.close("all")


# ----------------------------------------------------------------------------- Fashion-MNIST


def write_fmnist_run(runs_dir: Path, *, momentum, seed, test_error, control=None, figure="fig5"):
    from lcamlab.reports.fmnist import series_label

    label = paper.group_label(momentum)
    run_dir = write_run(runs_dir, momentum=momentum, seed=seed, epochs=(1, 2), test_error=[60.0, test_error],
                        finished=True, dataset="fashion-mnist",
                        run_id=f"{figure}-fashion-mnist-m{label}{'-' + control if control else ''}-s{seed}")
    record = json.loads((run_dir / "config.json").read_text())
    record["config"].update(control=control, figure=figure)
    (run_dir / "config.json").write_text(json.dumps(record))
    assert series_label(label, control).startswith(label)
    return run_dir


def test_fmnist_table_paired_intervals_win_rates_and_controls(tmp_path):
    from lcamlab.experiments import stats

    fixed = [20.0, 21.0, 19.0, 20.5]
    lcam = [19.5, 21.5, 18.0, 20.0]
    shuffled = [20.0, 21.0, 18.5, 21.0]
    matched = [19.0, 22.0, 18.5, 20.0]
    for seed in range(4):
        write_fmnist_run(tmp_path, momentum=(0.9, 0.9), seed=seed, test_error=fixed[seed])
        write_fmnist_run(tmp_path, momentum=(0.9, 0.95), seed=seed, test_error=lcam[seed])
        write_fmnist_run(tmp_path, momentum=(0.9, 0.95), seed=seed, test_error=shuffled[seed], control="shuffled")
        write_fmnist_run(tmp_path, momentum=(0.9, 0.95), seed=seed, test_error=matched[seed], control="matched")
    frame = reports.fmnist_frame(sorted(tmp_path.iterdir()))
    assert set(frame.series) == {"0.9-0.9", "0.9-0.95", "0.9-0.95 shuffled", "0.9-0.95 matched"}
    assert reports.series_order(frame) == ["0.9-0.9", "0.9-0.95", "0.9-0.95 shuffled", "0.9-0.95 matched"]
    table = reports.fmnist_table(frame, figure="fig5").set_index("series")
    row = table.loc["0.9-0.95"]
    assert row.epoch == 2 and row.seeds == 4 and row["mean"] == pytest.approx(np.mean(lcam), rel=1e-12)
    assert row["std"] == pytest.approx(np.std(lcam, ddof=1), rel=1e-12) and row.best == 18.0
    assert (row.wins, row.win_rate) == (3, 0.75)  # seeds 0, 2, 3 lower; seed 1 higher
    mean, low, high, n = stats.paired_ci(lcam, fixed)
    assert (row.diff_vs_fixed, row.diff_low, row.diff_high) == pytest.approx((mean, low, high), rel=1e-12)
    control = table.loc["0.9-0.95 shuffled"]
    mean, low, high, n = stats.paired_ci(lcam, shuffled)
    assert (control.lcam_minus_control, control.control_low, control.control_high, control.control_n) == \
        pytest.approx((mean, low, high, 4), rel=1e-12)
    assert math.isnan(table.loc["0.9-0.9", "win_rate"])
    markdown = reports.fmnist_table_markdown(table.reset_index())
    assert "| LCAM 0.9-0.95 | 4 | 2 |" in markdown and "3/4 (75%)" in markdown
    rows = reports.fmnist_claims(table.reset_index(), notebook="04_final_training", setting="test", kind="final")
    ids = [r["id"] for r in rows]
    assert ids == ["fmnist.final.lcam_0.9-0.95_vs_fixed09", "fmnist.final.lcam_0.9-0.95_vs_shuffled",
                   "fmnist.final.lcam_0.9-0.95_vs_matched"]
    assert all(r["verdict"] == "cannot tell at this n" and r["n"] == 4 for r in rows)
    with pytest.raises(ValueError, match="Invalid kind"):
        reports.fmnist_claims(table.reset_index(), notebook="x", setting="", kind="other")
    fig, (error_ax, _) = reports.plot_fmnist(frame, figure="fig5", drop_epochs=[2], drop_label="decay starts")
    assert style.figure_problems(fig) == []  # every epoch in view (epoch 1's 60 % too), every entry drawn
    assert error_ax.get_ylim()[1] >= 60.0
    assert len([c for c in error_ax.collections if c.__class__.__name__.endswith("PolyCollection")]) == 2  # groups only
    lines = {l.get_color(): l for l in error_ax.lines if l.get_transform() == error_ax.transData}
    lcam, control = lines[style.paper_group_color((0.9, 0.95))], lines["#7b3294"]
    assert lcam.get_zorder() > control.get_zorder()  # LCAM drawn over its controls
    assert "decay starts" in [t.get_text() for t in fig.legends[0].get_texts()]
    assert error_ax.get_yscale() == "log"
    plt.close(fig)
    wide = tmp_path / "wide"
    for seed, error in enumerate((5.0, 40.0)):  # two seeds far apart: the t-interval reaches below 0
        write_fmnist_run(wide, momentum=(0.9, 0.9), seed=seed, test_error=error)
    fig, (error_ax, _) = reports.plot_fmnist(reports.fmnist_frame(sorted(wide.iterdir())), figure="fig5")
    assert error_ax.get_yscale() == "linear" and style.figure_problems(fig) == []  # the whole band in view
    plt.close(fig)


def test_fmnist_claims_verdicts_and_report(tmp_path):
    runs_dir = tmp_path / "runs"
    rng = np.random.default_rng(0)
    for seed in range(8):
        base = 20.0 + rng.normal()
        for pair, shift in (((0.9, 0.9), 0.0), ((0.95, 0.95), 1.0), ((0.95, 0.9), 0.5), ((0.9, 0.95), -1.0)):
            write_fmnist_run(runs_dir, momentum=pair, seed=seed, test_error=base + shift + 0.01 * seed, figure="fig3")
    frame = reports.fmnist_frame(sorted(runs_dir.iterdir()))
    table = reports.fmnist_table(frame, figure="fig3")
    rows = {r["id"]: r for r in reports.fmnist_claims(table, notebook="03_momentum_groups", setting="s",
                                                         kind="groups", frame=frame, figure="fig3")}
    assert rows["fmnist.groups.red_vs_fixed09"]["verdict"] == "holds"
    assert rows["fmnist.groups.fixed095_vs_fixed09"]["verdict"] == "holds"
    assert rows["fmnist.groups.green_vs_fixed09"]["verdict"] == "does not hold"
    assert rows["fmnist.groups.red_vs_green"]["estimate"] == pytest.approx(-1.5, abs=1e-9)

    class Runs:  # what lcamlab.reports.plan.prepare_fmnist returns, as far as the report reads it
        pass

    runs = Runs()
    runs.frame, runs.runs_dir, runs.setting_text = frame, runs_dir, "s"
    runs.settings = {"epochs": 2, "arch": "fmnet"}
    report = reports.fmnist_report(runs, figure="fig3", kind="groups", notebook="03_momentum_groups",
                                   data_dir=tmp_path / "data", stem="fig3_fmnist", title="t", show=False, log=None)
    style.save_figure(report.figure[0], "fig3_fmnist", tmp_path / "figures")
    assert (tmp_path / "figures" / "fig3_fmnist.png").stat().st_size > 5000
    assert (tmp_path / "data" / "paper_reproduction" / "fig3_fmnist.csv").is_file()
    ledger = report.ledger
    assert set(ledger.id) == set(rows) and set(ledger.notebook) == {"03_momentum_groups"}
    assert reports.drop_epochs_for("step-scaled", 12) == [3, 6, 8]
    assert reports.drop_epochs_for("lcam-exp-scaled", 12) == [3]
    plt.close("all")


def test_paper_tables_for_the_notebooks(paper_curves, paper_table1):
    tables = reports.show_paper_panels(paper_curves, {"cifar10": "fig3", "cifar100": "fig4"}, show=False)
    assert list(tables) == ["cifar10", "cifar100"] and len(tables["cifar100"]) == 4
    figure5, table1 = reports.show_paper_final(paper_curves, paper_table1, show=False)
    assert len(figure5) == 4 and table1.method.tolist() == ["WRN", "Cosine Annealing", "Ours LCAM"]


def test_fmnist_display_speed_and_exercise_effects(tmp_path):
    fixed, lcam = [20.0, 21.0, 19.0, 20.5], [19.5, 21.5, 18.0, 20.0]
    for seed in range(4):
        write_fmnist_run(tmp_path, momentum=(0.9, 0.9), seed=seed, test_error=fixed[seed])
        write_fmnist_run(tmp_path, momentum=(0.9, 0.95), seed=seed, test_error=lcam[seed])
        write_fmnist_run(tmp_path, momentum=(0.9, 0.95), seed=seed, test_error=lcam[seed] + 1, control="shuffled")
    frame = reports.fmnist_frame(sorted(tmp_path.iterdir()))
    table = reports.fmnist_table(frame, figure="fig5")
    shown = reports.fmnist_table_display(table).set_index("series")
    assert shown.loc["LCAM 0.9-0.95", "lower than fixed 0.9 on"] == "3/4 seeds (75%)"
    assert shown.loc["LCAM 0.9-0.95, shuffled control", "LCAM minus this control (pp) [95% CI]"].startswith("-1.00 [")
    assert "LCAM minus this control (pp) [95% CI]" not in reports.fmnist_table_display(table.iloc[:2]).columns
    speed = reports.training_speed(frame)
    assert (speed["runs"], speed["epochs"], speed["median"]) == (12, 24, 100.0)
    assert speed["run_median_s"] == 2.0 and speed["total_s"] == 24.0

    class Runs:
        pass

    runs = Runs()
    runs.frame = frame
    from_runs = reports.effect_vs_fixed(runs, "0.9-0.95", figure="fig5")
    from_table = reports.effect_vs_fixed(table, "0.9-0.95")
    assert from_runs == from_table and (from_runs.wins, from_runs.seeds) == (3, 4)
    assert from_runs.mean == pytest.approx(np.mean(np.subtract(lcam, fixed)), rel=1e-12)
    assert from_runs.coin_probability == pytest.approx(5 / 16)  # 3 or 4 heads of 4 fair coins
    assert "lower than fixed 0.9 on 3 of 4 seeds" in from_runs.text
    missing = reports.effect_vs_fixed(None, "0.95-0.95")
    assert missing.seeds == 0 and math.isnan(missing.low) and "not measured" in missing.text
    assert reports.effect_vs_fixed(table, "0.95-0.95").seeds == 0


def test_notebooks_03_04_cite_papers_not_file_numbers():
    import re

    from lcamlab import figures

    for stem in ("03_momentum_groups", "04_final_training"):
        nb = json.loads((figures.NOTEBOOKS_DIR / f"{stem}.ipynb").read_text())
        text = "\n".join("".join(c["source"]) for c in nb["cells"])
        assert not re.search(r"(?<![\d.])(?<!\d )00[0-4](?![\d.])", text), stem
        assert "Asymmetric Momentum: A Rethinking of Gradient Descent" in text and "## References" in text
        headings = [int(m) for m in re.findall(r"^## (\d+)\.", text, flags=re.M)]
        assert headings == list(range(1, len(headings) + 1)), (stem, headings)
        assert "references_markdown" in text and "print(" not in text.replace("print(claims", "")
