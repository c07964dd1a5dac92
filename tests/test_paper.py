"""The extraction of the LCAM paper's Figures 3-5 and Table 1 (lcamlab.paper, data/paper/)."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from lcamlab import paper
from lcamlab.cli import main as cli_main


@pytest.fixture(scope="module")
def source_text() -> str:
    try:
        path = paper.find_source()
    except FileNotFoundError:
        pytest.skip("000_2880b3189dc1ab7c.txt not available")
    return path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def extracted(source_text) -> pd.DataFrame:
    return paper.curves_frame(paper.parse_curves(source_text))


@pytest.fixture(scope="module")
def committed() -> pd.DataFrame:
    return paper.load_curves()


def _curve(frame, figure, dataset, metric, group):
    return paper.paper_curve(frame, figure, dataset, metric, group)


def test_twenty_curves_with_their_point_counts(extracted):
    keys = ["figure", "dataset", "metric", "group"]
    counts = extracted.groupby(keys, sort=False).size()
    assert len(counts) == 20
    # every point of the paper's section 4, counted in the pgfplots blocks
    expected = {
        ("fig3", "cifar10", "test_error"): [89, 89, 89, 89],
        ("fig3", "cifar10", "train_loss"): [89, 88, 89, 89],
        ("fig4", "cifar100", "test_error"): [147, 146, 144, 146],
        ("fig4", "cifar100", "train_loss"): [150, 150, 150, 150],
        ("fig5", "cifar10", "test_error"): [83, 78],
        ("fig5", "cifar100", "test_error"): [86, 83],
    }
    for (figure, dataset, metric), sizes in expected.items():
        assert counts.loc[figure, dataset, metric].tolist() == sizes
    assert len(extracted) == sum(sum(v) for v in expected.values())


def test_groups_follow_the_paper_colours_and_legends(source_text):
    curves = paper.parse_curves(source_text)
    colours = {(c.figure, c.dataset, c.color): c.group for c in curves}
    for figure, dataset in (("fig3", "cifar10"), ("fig4", "cifar100")):
        assert colours[(figure, dataset, "black")] == "0.9-0.9"
        assert colours[(figure, dataset, "blue")] == "0.95-0.95"
        assert colours[(figure, dataset, "green")] == "0.95-0.9"
        assert colours[(figure, dataset, "red")] == "0.9-0.95"
    assert colours[("fig5", "cifar10", "green")] == "0.9-0.95"
    assert colours[("fig5", "cifar100", "green")] == "0.93-0.9"
    assert colours[("fig5", "cifar100", "black")] == "0.9-0.9"
    legends = {(c.figure, c.group): c.legend for c in curves}
    assert legends[("fig3", "0.95-0.9")] == "0.95-0.9"
    assert legends[("fig4", "0.95-0.95")] == "Fixed 0.95"
    assert legends[("fig5", "0.93-0.9")] == "LCAM"


def test_start_epochs_and_ranges(extracted):
    starts = extracted.groupby(["figure", "dataset", "metric", "group"], sort=False).epoch.min()
    ends = extracted.groupby(["figure", "dataset", "metric", "group"]).epoch.max()
    assert (ends == 150).all()
    # CIFAR-10 panels start around epoch 62 (the figure's xmin is 45), CIFAR-100 near epoch 1
    assert starts.loc["fig3"].tolist() == [62, 62, 62, 62, 62, 63, 62, 62]
    assert starts.loc["fig4", "cifar100", "train_loss"].tolist() == [1, 1, 1, 1]
    assert starts.loc["fig4", "cifar100", "test_error"].tolist() == [4, 5, 7, 5]
    assert starts.loc["fig5"].tolist() == [68, 73, 65, 68]
    error = extracted[extracted.metric == "test_error"]
    loss = extracted[extracted.metric == "train_loss"]
    assert error[error.dataset == "cifar10"].value.between(3.9, 6.0).all()
    assert error[error.dataset == "cifar100"].value.between(18.7, 63.0).all()
    assert loss.value.between(1e-3, 4.1).all()
    # exact values at both ends of one curve (line 175 of the paper's text, black)
    black = _curve(extracted, "fig4", "cifar100", "train_loss", "0.9-0.9")
    assert black.value.iloc[0] == 3.909233331680298
    assert black.value.iloc[-1] == pytest.approx(0.007178, rel=1e-3)


def test_learning_rate_drops_in_the_cifar100_curves(extracted):
    drops = paper.detect_lr_drops(extracted, figure="fig4", dataset="cifar100", metric="train_loss", count=3)
    assert sorted(drops) == [32, 62, 92]
    assert sorted(paper.detect_lr_drops(extracted, figure="fig4", dataset="cifar100", metric="test_error",
                                        count=2)) == [32, 62]
    for group in paper.paper_groups(extracted, "fig4"):
        loss = _curve(extracted, "fig4", "cifar100", "train_loss", group).set_index("epoch").value
        # every group's average loss falls by more than a third at 32 and 62, and falls at 92
        for epoch in (32, 62):
            assert loss[epoch] < loss[epoch - 1] * (2 / 3), (group, epoch)
        assert loss[92] < loss[91], group
    # without the drops the detector finds something else: it is not hard-wired to 32/62/92
    shuffled = extracted.copy()
    mask = (shuffled.figure == "fig4") & (shuffled.metric == "train_loss") & (shuffled.epoch < 40)
    shuffled.loc[mask, "value"] = 1.0
    assert 32 not in paper.detect_lr_drops(shuffled, figure="fig4", dataset="cifar100", metric="train_loss")


def test_check_curves_passes_and_catches_damage(extracted):
    findings = paper.check_curves(extracted)
    assert any("[32, 62, 92]" in line for line in findings)
    damaged = extracted[~((extracted.figure == "fig5") & (extracted.group == "0.93-0.9"))]
    with pytest.raises(ValueError, match="expected 20 curves"):
        paper.check_curves(damaged)
    gap = extracted.drop(extracted[(extracted.figure == "fig3") & (extracted.epoch == 100)].index)
    with pytest.raises(ValueError, match="not consecutive"):
        paper.check_curves(gap)


def test_table1(source_text):
    table = paper.parse_table1(source_text)
    values = {(r.method, r.dataset): (r.epochs, r.test_error) for r in table.itertuples()}
    assert values[("WRN", "cifar10")] == (200, 4.00)
    assert values[("WRN", "cifar100")] == (200, 19.25)
    assert values[("Cosine Annealing", "cifar10")] == (200, 4.03)
    assert values[("Cosine Annealing", "cifar100")] == (200, 19.58)
    assert values[("Ours LCAM", "cifar10")] == (120, 3.98)
    assert values[("Ours LCAM", "cifar100")] == (120, 19.22)
    assert table.loc[(table.method == "Ours LCAM") & (table.dataset == "cifar100"), "note"].item() == "18.92 in 50%"


def test_committed_csv_matches_a_fresh_extraction(extracted, committed, source_text):
    assert list(committed.columns) == ["figure", "dataset", "metric", "group", "epoch", "value"]
    pd.testing.assert_frame_equal(committed.reset_index(drop=True), extracted.reset_index(drop=True),
                                  check_dtype=False, rtol=0, atol=0)
    sidecar = json.loads((paper.default_paper_dir() / "curves.json").read_text())
    assert sidecar["source_file"] == paper.SOURCE_NAME
    assert sidecar["source_sha256"] == paper.SOURCE_SHA256
    assert len(sidecar["curves"]) == 20
    table1 = paper.load_table1()
    pd.testing.assert_frame_equal(table1, paper.parse_table1(source_text), check_dtype=False)


def test_extract_writes_provenance_and_never_overwrites(tmp_path, capsys):
    out = tmp_path / "paper"
    assert cli_main(["paper", "extract", "--out-dir", str(out)]) == 0
    frame, metadata = paper.load_curves(out), json.loads((out / "curves.json").read_text())
    assert frame.groupby(["figure", "dataset", "metric", "group"]).ngroups == 20
    assert metadata["source_sha256"] == paper.SOURCE_SHA256 and "git_commit" in metadata
    capsys.readouterr()
    assert cli_main(["paper", "extract", "--out-dir", str(out)]) == 0
    assert capsys.readouterr().out.count("up to date") == 2
    (out / "table1.csv").write_text("method,epochs,dataset,test_error,note\nX,1,cifar10,1.0,\n")
    assert cli_main(["paper", "extract", "--out-dir", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert cli_main(["paper", "extract", "--out-dir", str(out), "--overwrite"]) == 0
    assert len(paper.load_table1(out)) == 6
    assert cli_main(["paper", "show", "--paper-dir", str(out), "--figure", "fig4"]) == 0
    shown = capsys.readouterr().out
    assert "8 curves" in shown and "Ours LCAM" in shown


def test_group_labels_round_trip():
    assert paper.group_label((0.9, 0.95)) == "0.9-0.95"
    assert paper.group_label(0.9) == "0.9-0.9"
    assert paper.group_label([0.93, 0.9]) == "0.93-0.9"
    assert paper.parse_group("0.95-0.9") == (0.95, 0.9)
    assert paper.group_name("0.9-0.9") == "Fixed 0.9"
    assert paper.group_name("0.93-0.9", "fig5") == "LCAM 0.93-0.9"
    with pytest.raises(ValueError, match="Invalid momentum"):
        paper.group_label((0.9, 1.2))
    with pytest.raises(ValueError, match="Invalid momentum group label"):
        paper.parse_group("fast")
    assert math.isclose(sum(paper.parse_group(paper.group_label((0.93, 0.9)))), 1.83)


def test_reading_tables_of_the_published_panels(committed):
    fig3 = paper.panel_table(committed, "fig3", "cifar10")
    assert fig3.group.tolist() == ["Fixed 0.9", "Fixed 0.95", "0.95-0.9", "0.9-0.95"]
    assert fig3["first epoch"].between(60, 64).all() and fig3["loss 32/31"].isna().all()  # CIFAR-10 starts after 62
    assert (fig3["loss 92/91"] > 0).all()
    fig4 = paper.panel_table(committed, "fig4", "cifar100")
    assert (fig4["loss 62/61"] < 0.5).all()  # every group's loss falls by more than half across the second drop
    final = paper.final_training_table(committed)
    assert final.group.tolist() == ["Fixed 0.9", "LCAM 0.9-0.95", "Fixed 0.9", "LCAM 0.93-0.9"]
    assert final.dataset.tolist() == ["CIFAR-10", "CIFAR-10", "CIFAR-100", "CIFAR-100"]
    wide = paper.table1_wide(paper.load_table1())
    assert wide.loc[wide.method == "Ours LCAM", "CIFAR-100"].item() == "19.22 (18.92 in 50%)"


def test_user_facing_text_cites_the_paper_not_a_file_number(capsys):
    import re

    from lcamlab.cli import build_parser

    help_text = build_parser(["paper"])._subparsers._group_actions[0].choices["paper"].format_help()
    assert "extract" in help_text
    assert cli_main(["paper", "show", "--figure", "fig5"]) == 0
    shown = capsys.readouterr().out
    for text in (help_text, shown, paper.__doc__):
        assert not re.search(r"(?<![\d.])(?<!\d )00[0-4](?![\d.])", text), text
