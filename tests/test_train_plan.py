"""Planning the figures' run sets for the notebooks (lcamlab.train.plan): status, command, panels."""

from __future__ import annotations

import json

import pytest

from lcamlab.train.plan import describe_plan, panel_figures, plan_grid, prepare_panels
from lcamlab.train.runs import runs_frame


def test_plan_grid_lists_missing_runs_and_the_command(tmp_path):
    pytest.importorskip("lcamlab.train.grid")
    runs_dir = tmp_path / "runs"
    plan = plan_grid("fig5", dataset="cifar100", seeds=2, runs_dir=runs_dir, epochs=3, depth=28, widen=1)
    assert plan.status.state.tolist() == ["missing"] * 4 and plan.run_dirs == []
    assert plan.command == f"lcamlab grid fig5 --seeds 2 --dataset cifar100 --runs-dir {runs_dir} --epochs 3 --widen 1"
    # one finished and one partial run, written as the trainer writes them
    for config, epochs, finished in ((plan.configs[0], 3, True), (plan.configs[2], 1, False)):
        run_dir = runs_dir / config.run_id
        run_dir.mkdir(parents=True)
        (run_dir / "config.json").write_text(json.dumps({"config": config.to_dict(), "seed": config.seed}))
        (run_dir / "metrics.jsonl").write_text("".join(
            json.dumps({"epoch": e, "train_loss": 1.0 / e, "test_error": 10.0 - e}) + "\n" for e in range(1, epochs + 1)))
        if finished:
            (run_dir / "finished.json").write_text("{}")
    plan = plan_grid("fig5", dataset="cifar100", seeds=2, runs_dir=runs_dir, epochs=3, depth=28, widen=1)
    assert plan.status.state.tolist() == ["finished", "missing", "partial", "missing"]
    text = describe_plan(plan)
    assert "4 runs (1 finished, 1 partial, 2 missing)" in text
    assert "partial: fig5-cifar100-m0.93-0.9-s0 (1/3 epochs)" in text
    assert "missing: fig5-cifar100-m0.9-0.9-s1" in text and plan.command in text
    frame = runs_frame(plan.run_dirs)
    assert sorted(frame.groupby("group").epoch.max().items()) == [("0.9-0.9", 3), ("0.93-0.9", 1)]
    assert set(frame.state) == {"finished", "partial"}




def test_panel_figures_maps_datasets_to_their_panels():
    assert panel_figures(("fig3", "fig4"), ["cifar10", "cifar100"]) == {"cifar10": "fig3", "cifar100": "fig4"}
    assert panel_figures(("fig3", "fig4"), ["cifar100"]) == {"cifar100": "fig4"}
    assert panel_figures(("fig5",), ["cifar10", "cifar100"]) == {"cifar10": "fig5", "cifar100": "fig5"}
    with pytest.raises(ValueError, match=r"Invalid datasets: \['mnist'\]"):
        panel_figures(("fig3", "fig4"), ["cifar10", "mnist"])
    with pytest.raises(ValueError, match="Invalid figure: 'fig6'"):
        panel_figures(("fig6",), ["cifar10"])


def test_prepare_panels_plans_prints_and_keeps_what_it_printed(tmp_path):
    printed = []
    runs = prepare_panels(panel_figures(("fig5",), ["cifar10", "cifar100"]), seeds=2, data_dir=tmp_path,
                          log=printed.append, epochs=3, depth=10, widen=1)
    assert runs.text == "\n".join(printed)
    assert runs.runs_dir == tmp_path.resolve() / "runs" and runs.run_dirs == [] and runs.frame.empty
    assert [plan.figure for plan in runs.plans.values()] == ["fig5", "fig5"]
    assert [len(plan.status) for plan in runs.plans.values()] == [4, 4]
    assert printed[0].startswith("fig5 CIFAR-10: 4 runs (4 missing)")
    assert "lcamlab grid fig5 --seeds 2 --dataset cifar100" in printed[1]
    assert printed[-1] == "Runs read: 0 (0 epoch rows); WRN-10-1, 3 epochs planned"
    assert runs.provenance == {"runs_dir": str(tmp_path.resolve() / "runs"), "seeds": 2, "epochs": 3, "depth": 10,
                               "widen": 1, "synthetic_cifar": False}


def test_prepare_fmnist_plans_trains_and_reads_controls(tmp_path):
    from lcamlab.train.plan import prepare_fmnist

    printed = []
    planned = prepare_fmnist(("fig5-fmnist", "controls-fmnist"), seeds=2, data_dir=tmp_path, synthetic=True,
                             synthetic_train_images=32, synthetic_test_images=16, log=printed.append, epochs=2,
                             batch_size=16, device="cpu", channels_last=False)
    assert planned.frame.empty and len(planned.status) == 10 and set(planned.status.state) == {"missing"}
    assert planned.runs_dir == tmp_path.resolve() / "runs-fmnist"
    assert "Train the missing runs" in planned.text and planned.command.startswith("lcamlab grid fig5-fmnist")
    assert "--epochs 2" in planned.command and planned.text == "\n".join(printed)
    runs = prepare_fmnist(("fig5-fmnist", "controls-fmnist"), seeds=1, data_dir=tmp_path, synthetic=True,
                          synthetic_train_images=32, synthetic_test_images=16, run=True, log=None, epochs=2,
                          batch_size=16, device="cpu", channels_last=False)
    assert set(runs.status.state) == {"finished"}
    assert sorted(runs.frame.series.unique()) == ["0.9-0.9", "0.9-0.95", "0.9-0.95 matched", "0.9-0.95 shuffled",
                                                  "0.95-0.9"]
    assert set(runs.frame.figure) == {"fig5"} and runs.settings["epochs"] == 2
    assert "generated Fashion-MNIST-format data" in runs.setting_text and "1 seeds" in runs.setting_text
    with pytest.raises(ValueError, match="Invalid run set"):
        prepare_fmnist(("fig3",), seeds=1, data_dir=tmp_path)
