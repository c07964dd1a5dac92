"""Planning the figures' run sets for the notebooks (lcamlab.reports.plan): status, command, panels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lcamlab.reports.plan import describe_plan, panel_figures, plan_grid, prepare_panels
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
    from lcamlab.reports.plan import prepare_fmnist

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


def test_data_locations_follow_the_notebooks_data_dir(tmp_path, monkeypatch):
    from lcamlab.data import fashion_mnist
    from lcamlab.reports.plan import data_locations

    monkeypatch.delenv("LCAMLAB_DATA_DIR", raising=False)
    monkeypatch.delenv("LCAMLAB_FASHION_MNIST_DIR", raising=False)
    system = tmp_path / "system"  # stands in for /usr/share/datasets/fashion-mnist
    monkeypatch.setattr(fashion_mnist, "FASHION_MNIST_SYSTEM_DIR", system)
    checkout = tmp_path / "other-checkout" / "data"
    where = data_locations(checkout)
    assert where["cifar"] == checkout / "cifar"  # not the data/ of the checkout lcamlab is installed from
    assert where["fashion-mnist"] == where["fashion-mnist-cache"] == checkout / "fashion-mnist"
    fashion_mnist.write_synthetic_fashion_mnist(system, n_train=20, n_test=10)  # the system package installed
    where = data_locations(checkout)
    assert where["fashion-mnist"] == system and where["fashion-mnist-cache"] == checkout / "fashion-mnist"
    assert data_locations(checkout, cifar_dir=tmp_path / "c", fashion_dir=tmp_path / "f") == {
        "cifar": tmp_path / "c", "fashion-mnist": tmp_path / "f", "fashion-mnist-cache": tmp_path / "f"}
    monkeypatch.setenv("LCAMLAB_DATA_DIR", str(tmp_path / "env-cifar"))
    monkeypatch.setenv("LCAMLAB_FASHION_MNIST_DIR", str(tmp_path / "env-fashion"))
    where = data_locations(checkout)
    assert (where["cifar"], where["fashion-mnist"]) == (tmp_path / "env-cifar", tmp_path / "env-fashion")


def test_prepare_panels_looks_for_cifar_under_data_dir_and_says_so(tmp_path, monkeypatch):
    monkeypatch.delenv("LCAMLAB_DATA_DIR", raising=False)
    printed = []
    runs = prepare_panels(panel_figures(("fig3",), ["cifar10"]), seeds=[0, 2], data_dir=tmp_path / "data",
                          log=printed.append, epochs=3, depth=10, widen=1)
    plan = runs.plans["cifar10"]
    assert {c.data_dir for c in plan.configs} == {str((tmp_path / "data" / "cifar").resolve())}
    assert f"--data-dir {(tmp_path / 'data' / 'cifar').resolve()}" in plan.command
    assert "--seed-list 0 2" in plan.command
    assert f"CIFAR-10 is not in {(tmp_path / 'data' / 'cifar').resolve()}" in runs.text


def test_prepare_fmnist_caches_under_data_dir_when_the_files_are_read_only(tmp_path, monkeypatch):
    from lcamlab.data import fashion_mnist
    from lcamlab.reports.plan import prepare_fmnist

    monkeypatch.delenv("LCAMLAB_FASHION_MNIST_DIR", raising=False)
    system = tmp_path / "system"
    monkeypatch.setattr(fashion_mnist, "FASHION_MNIST_SYSTEM_DIR", system)
    _, digest = fashion_mnist.write_synthetic_fashion_mnist(system, n_train=32, n_test=16)
    data = tmp_path / "data"
    planned = prepare_fmnist(("fig3-fmnist",), seeds=[1], data_dir=data, log=None, data_md5=digest, epochs=1,
                             train_subset=32, test_subset=16, batch_size=16, device="cpu", channels_last=False)
    assert planned.runs_dir == data.resolve() / "runs-fmnist" and set(planned.status.state) == {"missing"}
    assert planned.command.startswith("lcamlab grid fig3-fmnist --seeds 1 --first-seed 1 --threads 1 --epochs 1")
    assert "--no-channels-last" in planned.command
    assert f"--runs-dir {data.resolve() / 'runs-fmnist'}" in planned.command
    runs = prepare_fmnist(("fig3-fmnist",), seeds=[1], data_dir=data, log=None, run=True, data_md5=digest, epochs=1,
                          train_subset=32, test_subset=16, batch_size=16, device="cpu", channels_last=False)
    assert set(runs.status.state) == {"finished"}
    assert list((data / "fashion-mnist" / "cache").glob("fashion-mnist-*.npz"))  # the notebook's data_dir
    assert not (system / "cache").exists()  # nothing written beside the system package's files
    assert all(Path(c.data_dir) == (data / "fashion-mnist").resolve() for c in runs.configs)


def test_figures_accepts_a_list_of_seeds_for_03_and_04(capsys):
    from lcamlab.cli import main as cli_main

    assert cli_main(["figures", "03", "--dry-run", "-p", "seeds", "[0, 1]"]) == 0
    assert "'seeds': [0, 1]" in capsys.readouterr().out
    assert cli_main(["figures", "04", "--dry-run", "-p", "seeds", "2", "-p", "fmnist_seeds", "[0, 3]"]) == 0
    assert cli_main(["figures", "04", "--dry-run", "-p", "seeds", "[0, 1.5]"]) == 2
    assert "list elements must be int" in capsys.readouterr().err
