"""The error catalogue of ``lcamlab grid``: the grid bound and hostile inputs against the submitit backend.

Each case ends as one line ``lcamlab: error: ...`` (exit 2) or a status that says what is known, never a
traceback, never an allocation that grows until the kernel kills the process.
"""

from __future__ import annotations

import importlib.util
import json
import re
import socket
import subprocess
import sys
import time

import pytest

from lcamlab import cli
from lcamlab.train.grid import figure_configs

RUNS = ["fig5-fmnist", "--seeds", "1", "--threads", "1"]


def one_line(capsys, argv, status=2):
    assert cli.main(argv) == status
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lcamlab: error: "), err
    return err[0]


def test_a_billion_seeds_is_refused_before_planning(capsys):
    started = time.perf_counter()
    line = one_line(capsys, ["grid", "fig3", "--seeds", "1000000000", "--status"])
    assert "Invalid --seeds 1000000000" in line and "4000000000 runs" in line and "GB available" in line
    assert time.perf_counter() - started < 60  # measured, not planned (planning them took 24 GB before)
    with pytest.raises(ValueError, match="would plan"):
        figure_configs("fmnist", seeds=10**12)


@pytest.mark.parametrize("argv, words", [
    (["grid", "fig3", "--seeds", "-5", "--status"], "must be > 0"),
    (["grid", "fig3", "--seeds", "3", "--first-seed", str(2**63 - 2), "--status"], "at most 2**63-1"),
    (["grid", "fig3", "--first-seed", "-1", "--status"], "must be >= 0"),
])
def test_seed_bounds(capsys, argv, words):
    assert words in one_line(capsys, argv)


@pytest.mark.parametrize("extra, words", [
    (["--executor", "local", "--time", "0"], "Invalid --time '0'"),
    (["--executor", "local", "--time", "abc"], "Invalid --time 'abc'"),
    (["--executor", "local", "--time", "99999999999"], "below 4294967294 minutes"),
    (["--executor", "local"], "needs --time"),
    (["--executor", "local", "--time", "0:20", "--signal-delay", "30"], "not shorter than --time"),
    (["--executor", "slurm", "--time", "1"], "--signal-delay 90 s: not shorter"),
    (["--executor", "local", "--time", "10", "--cpus", "4"], "--cpus does not apply to --executor local"),
    (["--executor", "debug", "--time", "10"], "--time does not apply to --executor debug"),
    (["--gpus", "1"], "applies to a submitted grid only"),
    (["--wait"], "applies to a submitted grid only"),
    (["--executor", "local", "--time", "10", "--status"], "has no effect with --status"),
    # a value of 0 is given too (0 == False in Python): refused with --status, not ignored
    (["--executor", "slurm", "--slurm-array-parallelism", "0", "--status"],
     "--slurm-array-parallelism has no effect with --status"),
    (["--executor", "local", "--max-requeue", "0", "--status"], "--max-requeue has no effect with --status"),
    (["--executor", "slurm", "--time", "10", "--slurm-partition", "a b"], "Invalid --slurm-partition 'a b'"),
    (["--executor", "local", "--time", "10", "--gpus", "-1"], "Invalid --gpus -1"),
    (["--executor", "pbs", "--time", "10"], "Invalid --executor 'pbs': choose one of slurm, local, debug"),
    (["--executor", "pbs", "--status"], "Invalid --executor 'pbs'"),
    (["--executor", "local", "--time", "10", "--slurm-partition", "gpu"],
     "--slurm-partition does not apply to --executor local (it applies to --executor slurm)"),
    (["--executor", "local", "--time", "10", "--mem", "16"], "--mem does not apply to --executor local"),
    (["--executor", "debug", "--gpus", "1"], "--gpus does not apply to --executor debug"),
    (["--executor", "slurm", "--time", "10", "--slurm-partition", "gpu,"], "Invalid --slurm-partition 'gpu,'"),
    (["--executor", "slurm", "--time", "10", "--cpus", "0"], "Invalid --cpus 0: must be >= 1"),
    (["--executor", "slurm", "--time", "10", "--mem", "0"], "Invalid --mem 0.0"),
    (["--executor", "slurm", "--time", "10", "--mem", "inf"], "Invalid --mem inf"),
    (["--executor", "slurm", "--time", "10", "--slurm-array-parallelism", "0"],
     "Invalid --slurm-array-parallelism 0"),
    (["--executor", "local", "--time", "10", "--max-requeue", "-1"], "Invalid --max-requeue -1: must be >= 0"),
    (["--executor", "local", "--time", "10", "--signal-delay", "-1"], "Invalid --signal-delay -1: must be >= 0"),
    (["--executor", "local", "--time", "1:2:3:4"], "Invalid --time '1:2:3:4'"),
    (["--executor", "local", "--time", "-5"], "Invalid --time '-5'"),
])
def test_resources_are_checked_before_anything_is_submitted(tmp_path, capsys, extra, words):
    pytest.importorskip("submitit")
    assert words in one_line(capsys, ["grid", *RUNS, "--runs-dir", str(tmp_path), *extra])
    assert not (tmp_path / "submitit").exists()


@pytest.mark.parametrize("text, minutes", [("90", 90), ("1:30", 1.5), ("12:00:00", 720), ("2-00", 2880),
                                           ("1-02:03", 1563), ("0-00:00:30", 0.5)])
def test_time_formats(text, minutes):
    from lcamlab.train.slurm import parse_time

    assert parse_time(text) == pytest.approx(minutes)


def test_local_time_limit_is_the_seconds_asked_for(tmp_path):
    """submitit's local controller truncates int(60 * timeout_min): --time 2:03 must still be 123 s, not 122."""
    submitit = pytest.importorskip("submitit")
    from lcamlab.train.slurm import Resources, make_executor, parse_time

    seen = []
    for text in ("2:03", "4:05", "8:10", "0:30", "90"):
        executor = make_executor("local", tmp_path, Resources(time_min=parse_time(text), signal_delay_s=5))
        assert isinstance(executor, submitit.LocalExecutor)
        seen.append(int(60 * executor.parameters["timeout_min"]))
    assert seen == [123, 245, 490, 30, 5400]


def test_more_gpus_than_the_machine_has(tmp_path, capsys):
    import torch

    pytest.importorskip("submitit")
    count = torch.cuda.device_count()
    line = one_line(capsys, ["grid", *RUNS, "--runs-dir", str(tmp_path), "--executor", "local", "--time", "10",
                             "--gpus", str(count + 1)])
    assert f"this machine has {count} CUDA device(s)" in line


def test_without_submitit_one_line_names_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "submitit", None)  # import submitit -> ImportError
    line = one_line(capsys, ["grid", *RUNS, "--runs-dir", str(tmp_path), "--executor", "local", "--time", "10"])
    assert 'pip install "lcamlab[cluster]"' in line


def test_not_on_a_slurm_cluster(tmp_path, capsys, monkeypatch):
    pytest.importorskip("submitit")
    monkeypatch.setenv("PATH", str(tmp_path))  # no srun
    line = one_line(capsys, ["grid", *RUNS, "--runs-dir", str(tmp_path), "--executor", "slurm", "--time", "10"])
    assert "srun" in line and "--executor local" in line


def test_an_unknown_partition_is_named_with_the_clusters(tmp_path, capsys, monkeypatch):
    pytest.importorskip("submitit")
    from test_grid_slurm import _fake_slurm

    _fake_slurm(tmp_path, monkeypatch)
    line = one_line(capsys, ["grid", *RUNS, "--runs-dir", str(tmp_path / "runs"), "--executor", "slurm",
                             "--time", "10", "--slurm-partition", "gpu,bigmem"])
    assert "no partition bigmem" in line and "cpu, gpu" in line
    assert not (tmp_path / "sbatch_script.sh").exists()


def _record(runs, entries):
    folder = runs / "submitit"
    folder.mkdir(parents=True)
    (folder / "jobs.json").write_text(json.dumps(entries))


def _status(capsys, runs):
    assert cli.main(["grid", *RUNS, "--runs-dir", str(runs), "--status"]) == 0
    return capsys.readouterr().out


def test_status_with_no_job_ids_and_with_a_damaged_record(tmp_path, capsys):
    (tmp_path / "submitit").mkdir()  # submitit's folder without a record: plain status
    out = _status(capsys, tmp_path)
    assert "job_state" not in out and "3 missing" in out
    for damaged in ('{"x": ', '["4242"]', '{"x": {"job_id": 4242, "executor": "local"}}',
                    '{"x": {"job_id": "4242", "executor": "pbs"}}', b"\xff\xfe"):
        path = tmp_path / "submitit" / "jobs.json"
        path.write_bytes(damaged if isinstance(damaged, bytes) else damaged.encode())
        line = one_line(capsys, ["grid", *RUNS, "--runs-dir", str(tmp_path), "--status"])
        assert "jobs.json is not a readable job record" in line and "move it away" in line
        if importlib.util.find_spec("submitit") is None:
            continue
        # and a submission reads it first: the same line, nothing submitted
        line = one_line(capsys, ["grid", *RUNS, "--runs-dir", str(tmp_path), "--executor", "debug"])
        assert "jobs.json is not a readable job record" in line
        assert sorted(child.name for child in (tmp_path / "submitit").iterdir()) == ["jobs.json"]


def test_a_grid_folder_from_another_machine(tmp_path, capsys):
    run_id = "fig5-fashion-mnist-m0.9-0.9-s0"
    _record(tmp_path, {run_id: {"job_id": "1", "executor": "local", "host": "elsewhere", "submitted": "-"}})
    out = _status(capsys, tmp_path)
    assert "UNKNOWN (local job on elsewhere)" in out  # pid 1 here is not that job


def test_a_killed_task_is_reported_and_its_run_can_be_submitted_again(tmp_path, capsys):
    pytest.importorskip("submitit")
    from lcamlab.train.slurm import Resources, submit_grid

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a controller that is gone and left no result: killed
    run_id = "fig5-fashion-mnist-m0.9-0.9-s0"
    _record(tmp_path, {run_id: {"job_id": str(dead.pid), "executor": "local", "host": socket.gethostname(),
                                "submitted": "-"}})
    assert "ENDED WITHOUT RESULT (killed?)" in _status(capsys, tmp_path)
    configs = figure_configs("fig5-fmnist", seeds=1, runs_dir=str(tmp_path))
    messages = []
    # not blocked by the dead job; submitted (to a debug executor: nothing runs until its result is asked)
    submitted = submit_grid(configs[:1], "debug", Resources(), log=messages.append)
    assert len(submitted) == 1 and "submitted as job DEBUG_" in messages[0]


def test_a_live_job_is_not_submitted_twice(tmp_path, capsys):
    pytest.importorskip("submitit")
    from lcamlab.train.slurm import Resources, submit_grid

    # a process whose command line is a submitit local controller's, as a running job's is
    live = subprocess.Popen([sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)",
                             "submitit.local._local"], stdout=subprocess.PIPE, text=True)
    try:
        assert live.stdout.readline() == "up\n"  # its command line is in /proc now (before exec it was pytest's)
        run_id = "fig5-fashion-mnist-m0.9-0.9-s0"
        _record(tmp_path, {run_id: {"job_id": str(live.pid), "executor": "local", "host": socket.gethostname(),
                                    "submitted": "-"}})
        assert re.search(rf"{live.pid}\s+RUNNING", _status(capsys, tmp_path))
        messages = []
        configs = figure_configs("fig5-fmnist", seeds=1, runs_dir=str(tmp_path))
        submitted = submit_grid(configs, "debug", Resources(), log=messages.append)
        assert [config.run_id for config, _ in submitted] == [c.run_id for c in configs[1:]]
        assert f"already submitted as job {live.pid} (RUNNING), not submitted again" in messages[0]
    finally:
        live.kill()
        live.wait()
        live.stdout.close()
