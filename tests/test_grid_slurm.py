"""``lcamlab grid --executor``: submitit's local executor (a forced time-out, requeue and exact resume), its debug
executor, and the Slurm submission script (a stand-in ``sbatch``/``sacct``/``sinfo`` on the PATH)."""

from __future__ import annotations

import json
import os
import stat

import pytest
import torch

pytest.importorskip("submitit")

from lcamlab import cli
from lcamlab.data.fashion_mnist import write_synthetic_fashion_mnist
from lcamlab.train.grid import figure_configs, grid_status
from lcamlab.train.runner import train
from lcamlab.train.runs import read_run
from lcamlab.train.slurm import JOBS_NAME, SUBMITIT_DIR, Resources, job_states, read_jobs, submit_grid, wait_for


def _tiny(tmp_path, n_train=48, **changes):
    folder, digest = write_synthetic_fashion_mnist(tmp_path / "fm", n_train=n_train, n_test=24)
    tiny = dict(data_dir=str(folder), data_md5=digest, train_subset=n_train, test_subset=24, epochs=2,
                batch_size=16, device="cpu", channels_last=False)
    tiny.update(changes)
    return tiny


def _flags(tiny, runs):
    flags = ["--runs-dir", str(runs), "--threads", "1", "--no-channels-last"]
    for key in ("data_dir", "data_md5", "train_subset", "test_subset", "epochs", "batch_size", "device"):
        flags += ["--" + key.replace("_", "-"), str(tiny[key])]
    return flags


def _hold_until_signalled(after_steps):
    """An ``on_epoch_end`` for the task: after epoch 1's checkpoint, let ``after_steps`` optimizer steps of epoch 2
    change the model in memory, then hold the task until a signal ends it (submitit's USR2 handler exits from inside
    the wait), so the time-out lands mid-epoch however fast the machine is. A session resumed after epoch 1 never
    holds; on a machine so slow that the signal comes before epoch 1 ends, the next session holds instead."""

    def hold(epoch, run_dir, row):
        import time

        from torch.optim.optimizer import register_optimizer_step_post_hook

        if epoch != 1:
            return
        steps = []

        def after_step(optimizer, args, kwargs):
            steps.append(1)
            if len(steps) == after_steps:
                while True:  # no time limit here: the controller's time-out signal ends the wait
                    time.sleep(0.05)

        register_optimizer_step_post_hook(after_step)

    return hold


@pytest.mark.slow
def test_local_executor_times_out_requeues_and_resumes_exactly(tmp_path, capsys):
    """A run held past --time: signalled (USR2 at --time minus --signal-delay), checkpointed by submitit's protocol
    (GridTask.checkpoint), requeued, resumed from its epoch checkpoint, and bitwise equal to the same run trained
    without interruption; --status then shows the local job's state next to the run's. A second task of the array,
    whose data folder is missing, fails and is reported in one line with its log."""
    tiny = _tiny(tmp_path, n_train=128, epochs=3)  # 8 steps per epoch
    runs = tmp_path / "runs"
    config, second = figure_configs("fig3-fmnist", seeds=1, runs_dir=str(runs), **tiny)[:2]
    broken = second.replace(data_dir=str(tmp_path / "no-data"))
    # 20 s per task, USR2 after 15 s: the task starts (Python, torch: 5 s on a loaded 2-core machine) and trains
    # epoch 1 well within 15 s, then waits for the signal; a start slower than that holds in the next session
    # (3 requeues allowed). The handler needs milliseconds of the 5 s left before the controller's hard stop.
    submitted = submit_grid([config, broken], "local", Resources(time_min=20 / 60, signal_delay_s=5, max_requeue=3),
                            threads=1, on_epoch_end=_hold_until_signalled(after_steps=3))
    lines = []
    assert wait_for(submitted, log=lines.append) == 1
    job_id, broken_id = (job.job_id for _, job in submitted)
    assert lines[0] == f"{config.run_id}: job {job_id} ended, run finished after 3 epochs"
    assert lines[1].startswith(f"{broken.run_id}: job {broken_id} failed (FileNotFoundError: ") and \
        lines[1].endswith(f"); its log: {runs / SUBMITIT_DIR / f'{broken_id}_0_log.err'}") and "\n" not in lines[1]
    log = (runs / SUBMITIT_DIR / f"{job_id}_0_log.out").read_text()  # submitit's log and the task's stdout
    signalled = log.rindex("Caught signal SIGUSR2")  # the last signal: the held session's (see above)
    assert "epoch   2/3" not in log[log.rindex("epoch   1/3", 0, signalled):signalled]  # it came mid-epoch 2
    after = log[signalled:]
    assert "this job is timed-out" in after and "Calling checkpoint method" in after and "Requeued job" in after
    assert "resuming after epoch 1" in after and "epoch   3/3" in after
    run_dir = runs / config.run_id
    sessions = json.loads((run_dir / "config.json").read_text())["sessions"]
    assert len(sessions) >= 2 and sessions[0]["start_epoch"] == 0 and sessions[-1]["start_epoch"] == 1
    reference = config.replace(runs_dir=str(tmp_path / "reference"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the task's (--threads 1): a sum over 2 threads rounds differently
    try:
        train(reference, progress="none")  # the uninterrupted run
    finally:
        torch.set_num_threads(threads)
    parts, whole = read_run(run_dir), read_run(tmp_path / "reference" / config.run_id)
    assert len(parts.metrics) == 3
    for column in ("train_loss", "train_accuracy", "test_error", "test_loss", "lr", "phase_below"):
        assert parts.metrics[column].tolist() == whole.metrics[column].tolist()
    weights = [torch.load(folder / "checkpoint.pt", weights_only=True)["model"] for folder in
               (run_dir, tmp_path / "reference" / config.run_id)]
    assert all(torch.equal(weights[0][name], weights[1][name]) for name in weights[1])
    assert job_states(runs, [config.run_id, broken.run_id]) == {config.run_id: (job_id, "COMPLETED"),
                                                                 broken.run_id: (broken_id, "FAILED")}
    capsys.readouterr()
    assert cli.main(["grid", "fig3-fmnist", "--seeds", "1", "--status", *_flags(tiny, runs)]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.strip().startswith("fig3-")}
    assert rows[config.run_id] == ["finished", "3", "3", job_id, "COMPLETED"]
    assert rows[broken.run_id] == ["missing", "0", "3", broken_id, "FAILED"]  # it failed before its run folder
    assert len(rows) == 4 and out.rstrip().endswith("1 finished; 3 missing")
    assert out.splitlines()[0].split() == ["run_id", "state", "epochs_done", "epochs", "job", "job_state"]


def test_debug_executor_trains_the_grid_and_skips_it_the_second_time(tmp_path, capsys):
    tiny = _tiny(tmp_path)
    runs = tmp_path / "runs"
    flags = _flags(tiny, runs)
    assert cli.main(["grid", "fig5-fmnist", "--seeds", "1", *flags, "--executor", "debug"]) == 0
    out = capsys.readouterr().out
    assert out.count("submitted as job DEBUG_") == 3 and "3 finished" in out
    configs = figure_configs("fig5-fmnist", seeds=1, runs_dir=str(runs), **tiny)
    assert set(grid_status(configs).state) == {"finished"}
    assert read_jobs(runs) == {}  # a debug job has no id to look up later
    # the same runs, trained locally in this process, give the same numbers
    local = configs[1].replace(runs_dir=str(tmp_path / "local"))
    train(local, progress="none")
    assert read_run(runs / local.run_id).metrics.test_loss.tolist() == \
        read_run(tmp_path / "local" / local.run_id).metrics.test_loss.tolist()
    assert cli.main(["grid", "fig5-fmnist", "--seeds", "1", *flags, "--executor", "debug"]) == 0
    out = capsys.readouterr().out
    assert out.count("finished, not submitted") == 3 and "nothing to submit" in out


def _fake_slurm(tmp_path, monkeypatch, sacct_state="RUNNING"):
    """``srun``, ``sbatch``, ``sacct`` and ``sinfo`` stand-ins: sbatch keeps the script and answers job 4242."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scripts = {
        "srun": "exit 0",
        "sbatch": f'cp "$1" {tmp_path}/sbatch_script.sh; echo "Submitted batch job 4242"',
        "sacct": f'echo "JobID|State|NodeList"; for i in 0 1 2; do echo "4242_$i|{sacct_state}|node1"; done',
        "sinfo": 'echo "gpu*"; echo "cpu"',
    }
    for name, body in scripts.items():
        path = bin_dir / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def test_slurm_array_script_status_and_no_second_submission(tmp_path, monkeypatch, capsys):
    from submitit import SlurmJob

    _fake_slurm(tmp_path, monkeypatch)
    monkeypatch.setattr(SlurmJob.watcher, "_finished", set())
    tiny = _tiny(tmp_path)
    runs = tmp_path / "runs"
    flags = _flags(tiny, runs)
    assert cli.main(["grid", "fig5-fmnist", "--seeds", "1", *flags, "--executor", "slurm", "--slurm-partition",
                     "gpu", "--gpus", "1", "--cpus", "4", "--mem", "16", "--time", "1:30:00",
                     "--slurm-array-parallelism", "2", "--signal-delay", "120", "--max-requeue", "5"]) == 0
    out = capsys.readouterr().out
    assert [f"submitted as job 4242_{i}" in out for i in range(3)] == [True] * 3
    script = (tmp_path / "sbatch_script.sh").read_text()
    for line in ("--array=0-2%2", "--partition=gpu", "--time=90", "--gpus-per-node=1", "--cpus-per-task=4",
                 "--mem=16384MB", "--job-name=lcamlab-fig5-fmnist", "--signal=USR2@120"):
        assert f"#SBATCH {line}\n" in script
    record = json.loads((runs / SUBMITIT_DIR / JOBS_NAME).read_text())
    assert {entry["job_id"] for entry in record.values()} == {"4242_0", "4242_1", "4242_2"}
    assert cli.main(["grid", "fig5-fmnist", "--seeds", "1", "--status", *flags]) == 0
    out = capsys.readouterr().out
    assert out.count("RUNNING") == 3 and "4242_1" in out
    # two submissions of one grid: the runs whose job still runs are not submitted again
    assert cli.main(["grid", "fig5-fmnist", "--seeds", "1", *flags, "--executor", "slurm", "--time", "60"]) == 0
    out = capsys.readouterr().out
    assert out.count("not submitted again") == 3 and "nothing to submit" in out
