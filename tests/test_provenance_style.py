"""Provenance records, atomic writes, no silent overwrite; the shared figure style."""

from __future__ import annotations

import json
import os

import matplotlib
import pytest
import torch

matplotlib.use("Agg")

from lcamlab import __version__, provenance, style  # noqa: E402
from lcamlab.experiments.registry import PRESETS  # noqa: E402


def test_run_metadata_records_everything():
    meta = provenance.run_metadata({"lr": 0.1, "pair": (0.9, 0.95)}, seed=7, device="cpu", wall_seconds=1.5)
    for key in ("config", "seed", "lcamlab_version", "git_commit", "torch_version", "device", "created_utc"):
        assert key in meta
    assert meta["config"] == {"lr": 0.1, "pair": [0.9, 0.95]}
    assert meta["seed"] == 7 and meta["lcamlab_version"] == __version__
    assert meta["torch_version"] == torch.__version__ and meta["device"].startswith("cpu")
    assert meta["wall_seconds"] == 1.5
    json.dumps(meta)  # serialisable


def test_save_table_writes_sidecar_and_refuses_overwrite(tmp_path):
    path = tmp_path / "res" / "table.csv"
    meta = provenance.run_metadata({"a": 1}, seed=0)
    provenance.save_table(path, {"x": [1, 2], "y": [0.5, 0.25]}, meta)
    frame, loaded = provenance.load_table(path)
    assert frame["y"].tolist() == [0.5, 0.25] and loaded["config"] == {"a": 1}
    with pytest.raises(FileExistsError, match="never overwrites"):
        provenance.save_table(path, {"x": [3]}, meta)
    provenance.save_table(path, {"x": [3]}, meta, overwrite=True)
    assert provenance.load_table(path)[0]["x"].tolist() == [3]
    with pytest.raises(ValueError, match="Invalid table path"):
        provenance.save_table(tmp_path / "t.txt", {"x": [1]}, meta)


def test_atomic_writes_leave_no_temporary_files(tmp_path):
    provenance.atomic_write_json(tmp_path / "a.json", {"k": (1, 2)})
    provenance.atomic_torch_save({"w": torch.ones(2)}, tmp_path / "c.pt")
    assert json.loads((tmp_path / "a.json").read_text()) == {"k": [1, 2]}
    assert torch.load(tmp_path / "c.pt")["w"].sum().item() == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "c.pt"]


def test_atomic_write_keeps_old_file_when_serialisation_fails(tmp_path):
    target = tmp_path / "state.pt"
    provenance.atomic_torch_save({"epoch": 1}, target)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("cannot pickle")

    with pytest.raises(RuntimeError):
        provenance.atomic_torch_save({"bad": Unpicklable()}, target)
    assert torch.load(target)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["state.pt"]


def test_style_colours_and_saving(tmp_path):
    assert style.optimizer_color("LCAM-above") == PRESETS["lcam-above"].color
    assert style.optimizer_color("adam") != style.optimizer_color("adai")
    assert style.paper_group_color((0.9, 0.95)) == style.PAPER_GROUP_COLORS[(0.9, 0.95)]
    with pytest.raises(KeyError, match="Unknown optimizer"):
        style.optimizer_color("lbfgs")
    fig, ax = style.new_figure(1, 2, width="single")
    ax[0].plot([0, 1], [1, 0])
    paths = style.save_figure(fig, "demo", tmp_path)
    assert [p.suffix for p in paths] == [".png", ".pdf"] and all(p.stat().st_size > 0 for p in paths)
    with pytest.raises(ValueError, match="Invalid figure name"):
        style.save_figure(fig, "../escape", tmp_path)
    with pytest.raises(ValueError, match="Invalid width"):
        style.new_figure(width="huge")


@pytest.mark.parametrize("failing", ["png", "pdf"])
def test_figures_are_written_as_a_pair_or_not_at_all(tmp_path, failing):
    """Ctrl-C (or any error) while rendering leaves the previous PNG and PDF, never one without the other."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    old = style.save_figure(fig, "pair", tmp_path)
    before = {p.name: p.read_bytes() for p in old}
    real = fig.savefig

    def savefig(path, format=None, **kwargs):
        if format == failing:
            raise KeyboardInterrupt
        return real(path, format=format, **kwargs)

    fig.savefig = savefig
    ax.plot([0, 1], [1, 0])
    with pytest.raises(KeyboardInterrupt):
        style.save_figure(fig, "pair", tmp_path)
    assert {p.name: p.read_bytes() for p in old} == before  # the old pair, untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pair.pdf", "pair.png"]  # no temporary left
    with pytest.raises(KeyboardInterrupt):
        style.save_figure(fig, "fresh", tmp_path)
    assert not list(tmp_path.glob("fresh*")) and not list(tmp_path.glob(".fresh*"))  # neither of a new pair
    plt.close(fig)


_DIGEST_SCRIPT = """
import hashlib, sys, matplotlib
matplotlib.use("Agg")
from lcamlab import style
from lcamlab.experiments import preset
from lcamlab.toys import SpringPair, run_many
from lcamlab.toys.animation import write_trajectory_gif
style.apply()
fig, ax = style.new_figure()
ax.plot([0, 1, 2], [1, 3, 2], label="Θn α"); ax.legend(); ax.set_title("title $x^2$")
paths = style.save_figure(fig, "x", sys.argv[1])
runs = run_many(SpringPair(3), [preset("momentum", 0.02), preset("lcam-above", 0.02)], steps=30)
gif = write_trajectory_gif(runs, sys.argv[1] + "/t.gif", frames=4)
print(" ".join(hashlib.sha256(p.read_bytes()).hexdigest() for p in [*paths, gif]))
"""


def test_rebuilt_figures_are_byte_identical(tmp_path):
    """Same inputs, two separate processes: the PNG, PDF and GIF files are the same bytes (no dates embedded)."""
    import subprocess
    import sys

    digests = []
    for name in ("first", "second"):
        folder = tmp_path / name
        folder.mkdir()
        done = subprocess.run([sys.executable, "-c", _DIGEST_SCRIPT, str(folder)], capture_output=True, text=True,
                              timeout=300, check=True)
        digests.append(done.stdout.split())
    assert len(digests[0]) == 3 and digests[0] == digests[1]


def test_an_unchanged_table_keeps_its_provenance(tmp_path):
    """Rewriting the same numbers leaves CSV and sidecar untouched (a rebuild that changes nothing keeps git clean)."""
    import pandas as pd

    from lcamlab.provenance import save_table

    path = tmp_path / "t.csv"
    frame = pd.DataFrame({"x": [0.1, 0.2]})
    save_table(path, frame, {"git_commit": "first"})
    save_table(path, frame, {"git_commit": "second"}, overwrite=True)
    assert json.loads(path.with_suffix(".json").read_text())["git_commit"] == "first"
    save_table(path, pd.DataFrame({"x": [0.1, 0.3]}), {"git_commit": "third"}, overwrite=True)
    assert json.loads(path.with_suffix(".json").read_text())["git_commit"] == "third"
    assert path.read_text().splitlines()[-1] == "0.3"


_ESCAPE_DIGEST_SCRIPT = """
import hashlib, os, sys
threads = int(sys.argv[2])
os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:threads])  # the escape loop uses every CPU it may run on
for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[name] = str(threads)
import matplotlib
matplotlib.use("Agg")
import pandas as pd
import torch
torch.set_num_threads(threads)
from lcamlab import style
from lcamlab.escape import EscapeConfig, analysis, default_optimizers, load_or_run, plots, saddle_sharpness
from lcamlab.escape import rates
from lcamlab.escape.design import load_or_run_design, quick_design
from lcamlab.escape.fused import default_threads
assert default_threads() == threads
data = sys.argv[1] + "/data"
entry = load_or_run_design(quick_design(), data, log=None)  # computed here, with this many threads
alphas = analysis.alpha_table(entry.frame)
saddle = load_or_run(EscapeConfig(experiment="saddle", sharpness=saddle_sharpness(3, 0.25, 4.0), trials=30, budget=400,
                                  warmup=100, optimizers=default_optimizers(["sgd", "adam"]), seed=0, device="cpu"), data)
times = saddle.saddle()
figures = {"escape_rate_vs_sharpness": plots.plot_kramers(entry.frame, alphas)[0], "escape_alpha": plots.plot_alpha(alphas)[0],
           "escape_jumps": plots.plot_jumps(entry.frame, entry.metadata["trace"])[0],
           "escape_saddle_times": plots.plot_saddle(times, rates.saddle_exponent_table(times))[0]}
for name, fig in figures.items():
    style.check_figure(fig, name)
    for path in style.save_figure(fig, name, sys.argv[1] + "/figures"):
        print(path.name, hashlib.sha256(path.read_bytes()).hexdigest())
"""


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs two CPUs (and Linux's affinity mask) to compare one thread with two")
def test_escape_figures_are_byte_identical_for_any_thread_count(tmp_path):
    """The escape figures computed from scratch with 1 and with 2 threads (escape loop, torch, numba, BLAS) are the
    same PNG and PDF bytes: the simulation, the fits and the drawing depend on the inputs only."""
    import subprocess
    import sys

    digests = []
    for threads in (1, 2):
        done = subprocess.run([sys.executable, "-c", _ESCAPE_DIGEST_SCRIPT, str(tmp_path / str(threads)), str(threads)],
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        digests.append(done.stdout.splitlines())
    assert len(digests[0]) == 8 and digests[0] == digests[1]
