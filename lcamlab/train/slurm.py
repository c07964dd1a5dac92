"""``lcamlab grid --executor slurm|local|debug``: a grid's runs as one submitit job array.

`submitit <https://github.com/facebookincubator/submitit>`_ (the optional extra
``pip install "lcamlab[cluster]"``) runs a Python callable as Slurm jobs. A grid becomes one job
array whose tasks are the runs the grid would start here: missing and partial runs. Finished and
diverged runs are skipped, as :func:`lcamlab.train.grid.run_grid` skips them; a control whose
reference run is not finished yet is left for a later submission (it needs the reference's
values); a run whose recorded job is still queued or running is not submitted twice. Each task is
``run_grid`` on its one run (:class:`GridTask`), so the run-folder lock stays the guard: two tasks
for one run never both write (the second finds the run busy and skips it, or finds it finished).

Time-outs follow submitit's checkpointing protocol. Slurm sends ``USR2`` ``--signal-delay``
seconds before ``--time`` runs out (``#SBATCH --signal=USR2@<delay>``; submitit's local executor
does the same on this machine); submitit then calls :meth:`GridTask.checkpoint`, which returns the
same call as a ``DelayedSubmission``, and requeues the task (at most ``--max-requeue`` times after
time-outs; a ``USR2`` long before the limit counts as a preemption and is requeued without
counting). A task that Slurm preempts and requeues itself runs the same call again. Either way the
task finds its run partial and resumes it from ``checkpoint.pt``, which the trainer writes after
every epoch: at most the epoch in flight is computed again, and the trainer's exact resume (model,
optimizer, RNG and data-order state) makes the finished run equal to an uninterrupted one.

Executors:

* ``slurm``: ``sbatch`` job arrays (needs ``srun`` on the PATH: a Slurm login node);
* ``local``: submitit's LocalExecutor, one subprocess per task on this machine with the same
  time-out, signal and requeue: a grid tried out before it goes to a cluster;
* ``debug``: submitit's DebugExecutor, every task in this process one after the other (a failure
  opens pdb); resources do not apply, and no job id outlives the command.

Job ids go to :data:`JOBS_NAME` in the submitit folder ``<runs-dir>/submitit/`` (one entry per
run: job id, executor, host, time), beside submitit's logs (``<job id>_0_log.out``/``.err``), so
``lcamlab grid ... --status`` shows each run's job state next to its run state in a later session.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from lcamlab.train.config import TrainConfig

__all__ = [
    "EXECUTORS",
    "JOBS_NAME",
    "SUBMITIT_DIR",
    "Resources",
    "GridTask",
    "parse_time",
    "require_submitit",
    "make_executor",
    "submit_grid",
    "wait_for",
    "read_jobs",
    "job_states",
]

#: ``--executor`` values: submitit's Slurm, local (subprocess) and debug (in-process) executors.
EXECUTORS = ("slurm", "local", "debug")
#: The submitit folder below the runs folder: job scripts, pickles, logs and :data:`JOBS_NAME`.
SUBMITIT_DIR = "submitit"
#: The job record: ``{run_id: {"job_id", "executor", "host", "submitted"}}``.
JOBS_NAME = "jobs.json"

_INSTALL = 'pip install "lcamlab[cluster]"'
# Slurm states of a job that will still run (sacct's State column, first word).
_ACTIVE = ("PENDING", "RUNNING", "REQUEUED", "COMPLETING", "CONFIGURING", "PREEMPTED", "READY", "SUSPENDED",
           "RESIZING")


def require_submitit():
    """The ``submitit`` module, or one line naming the extra that installs it."""
    try:
        import submitit
    except ImportError:
        raise ValueError(f"--executor needs submitit, which is not installed: {_INSTALL}") from None
    return submitit


# ----------------------------------------------------------------------------- resources


@dataclass(frozen=True)
class Resources:
    """What every task of the array asks for (``None``: submitit's default); see :data:`_FLAGS`."""

    partition: str | None = None
    gpus: int | None = None
    time_min: float | None = None
    cpus: int | None = None
    mem_gb: float | None = None
    array_parallelism: int | None = None
    signal_delay_s: int | None = None
    max_requeue: int | None = None


# field -> (command-line flag, executors it applies to)
_FLAGS: dict[str, tuple[str, tuple[str, ...]]] = {
    "partition": ("--slurm-partition", ("slurm",)),
    "gpus": ("--gpus", ("slurm", "local")),
    "time_min": ("--time", ("slurm", "local")),
    "cpus": ("--cpus", ("slurm",)),
    "mem_gb": ("--mem", ("slurm",)),
    "array_parallelism": ("--slurm-array-parallelism", ("slurm",)),
    "signal_delay_s": ("--signal-delay", ("slurm", "local")),
    "max_requeue": ("--max-requeue", ("slurm", "local")),
}
# submitit's defaults for the signal delay (SlurmExecutor's sbatch string, LocalExecutor's controller).
_SIGNAL_DELAY_DEFAULT = {"slurm": 90, "local": 30}

_TIME_FORMATS = (  # Slurm's --time formats (sbatch(1))
    (re.compile(r"(\d+)"), ("minutes",)),
    (re.compile(r"(\d+):(\d+)"), ("minutes", "seconds")),
    (re.compile(r"(\d+):(\d+):(\d+)"), ("hours", "minutes", "seconds")),
    (re.compile(r"(\d+)-(\d+)"), ("days", "hours")),
    (re.compile(r"(\d+)-(\d+):(\d+)"), ("days", "hours", "minutes")),
    (re.compile(r"(\d+)-(\d+):(\d+):(\d+)"), ("days", "hours", "minutes", "seconds")),
)
_SECONDS = {"days": 86400, "hours": 3600, "minutes": 60, "seconds": 1}
# Slurm holds a time limit as a 32-bit count of minutes; 0xfffffffe (NO_VAL) and above mean "unset" and INFINITE.
_SLURM_NO_VAL = 0xFFFFFFFE


def parse_time(text: str) -> float:
    """A Slurm ``--time`` (``90``, ``MM:SS``, ``HH:MM:SS``, ``D-HH``, ``D-HH:MM``, ``D-HH:MM:SS``) in minutes."""
    for pattern, units in _TIME_FORMATS:
        match = pattern.fullmatch(text.strip())
        if match:
            seconds = sum(int(value) * _SECONDS[unit] for value, unit in zip(match.groups(), units))
            if 0 < seconds and math.ceil(seconds / 60) < _SLURM_NO_VAL:
                return seconds / 60
            break
    raise ValueError(f"Invalid --time {text!r}: a time limit above 0 and below {_SLURM_NO_VAL} minutes, in Slurm's "
                     f"format: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS (e.g. --time 90, "
                     f"--time 12:00:00, --time 2-00)")


def _check_resources(kind: str, resources: Resources) -> None:
    """Every resource given applies to ``kind`` and is in range; one line otherwise."""
    for spec in fields(Resources):
        value = getattr(resources, spec.name)
        flag, kinds = _FLAGS[spec.name]
        if value is None:
            continue
        if kind not in kinds:
            raise ValueError(f"{flag} does not apply to --executor {kind} (it applies to "
                             f"{' and '.join(f'--executor {k}' for k in kinds)}); leave it out")
        if spec.name == "partition":
            if not value.strip() or re.search(r"[\s]", value) or any(not part for part in value.split(",")):
                raise ValueError(f"Invalid --slurm-partition {value!r}: a partition name, or names separated by "
                                 f"commas, without spaces")
        elif spec.name in ("gpus", "signal_delay_s", "max_requeue"):
            if value < 0:
                raise ValueError(f"Invalid {flag} {value}: must be >= 0")
        elif spec.name in ("cpus", "array_parallelism") and value < 1:
            raise ValueError(f"Invalid {flag} {value}: must be >= 1")
        elif spec.name == "mem_gb" and not (value > 0 and math.isfinite(value)):
            raise ValueError(f"Invalid --mem {value}: the memory of one task in GB, above 0")
    if kind == "debug":
        return
    if resources.time_min is None:
        raise ValueError(f"--executor {kind} needs --time, the wall-clock limit of one task (e.g. --time 12:00:00): "
                         f"a run that needs longer is requeued and resumes from its last epoch")
    delay = resources.signal_delay_s if resources.signal_delay_s is not None else _SIGNAL_DELAY_DEFAULT[kind]
    if delay >= resources.time_min * 60:
        raise ValueError(f"Invalid --signal-delay {delay} s: not shorter than --time ({resources.time_min * 60:g} s), "
                         f"so the requeue signal would come after the time limit; give a longer --time or a "
                         f"smaller --signal-delay")
    if kind == "local" and resources.gpus:
        import torch

        have = torch.cuda.device_count()
        if resources.gpus > have:
            raise ValueError(f"Invalid --gpus {resources.gpus}: this machine has {have} CUDA device(s)")


def _check_partition(partition: str) -> None:
    """Every name of ``partition`` is a partition of this cluster (``sinfo``), when sinfo can tell."""
    sinfo = shutil.which("sinfo")
    if sinfo is None:
        return
    try:
        listing = subprocess.run([sinfo, "--noheader", "--format", "%P"], capture_output=True, text=True,
                                 timeout=60, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return  # sbatch will say it, with Slurm's words
    known = {name.strip().rstrip("*") for name in listing.split()}
    unknown = [name for name in partition.split(",") if name not in known]
    if known and unknown:
        raise ValueError(f"Invalid --slurm-partition {partition!r}: no partition {', '.join(unknown)} on this "
                         f"cluster (sinfo lists {', '.join(sorted(known))})")


def make_executor(kind: str, folder: str | os.PathLike, resources: Resources, *, name: str = "lcamlab"):
    """A submitit executor for ``kind`` (:data:`EXECUTORS`), its parameters set from ``resources``.

    The flags map to submitit's parameters: ``--time`` to ``time`` (Slurm, whole minutes, rounded
    up) or ``timeout_min`` (local), ``--gpus`` to ``gpus_per_node``, ``--cpus`` to
    ``cpus_per_task``, ``--mem`` to ``mem``, ``--slurm-partition`` to ``partition``,
    ``--slurm-array-parallelism`` to ``array_parallelism``, ``--signal-delay`` to
    ``signal_delay_s`` and ``--max-requeue`` to the executor's ``max_num_timeout``.
    """
    if kind not in EXECUTORS:
        raise ValueError(f"Invalid --executor {kind!r} (choose one of {', '.join(EXECUTORS)})")
    _check_resources(kind, resources)
    submitit = require_submitit()
    if kind == "debug":
        return submitit.DebugExecutor(folder)
    requeues = {} if resources.max_requeue is None else {"max_num_timeout": resources.max_requeue}
    given = {key: value for key, value in (("gpus_per_node", resources.gpus),
                                           ("signal_delay_s", resources.signal_delay_s)) if value is not None}
    if kind == "local":
        executor = submitit.LocalExecutor(folder, **requeues)
        # the controller truncates int(60 * timeout_min) to whole seconds, and 60 * (123 / 60) is 122.99...:
        # half a second more makes it the seconds asked for
        seconds = round(resources.time_min * 60)
        executor.update_parameters(timeout_min=(seconds + 0.5) / 60, **given)
        return executor
    if resources.partition is not None:
        _check_partition(resources.partition)
    try:
        executor = submitit.SlurmExecutor(folder, **requeues)
    except RuntimeError as error:  # no srun: not on a Slurm cluster
        raise ValueError(f"--executor slurm: {error} (run it on the cluster's login node; --executor local runs "
                         f"the same tasks as subprocesses here)") from None
    slurm = {"job_name": name, "time": math.ceil(resources.time_min), **given}
    for key, value in (("partition", resources.partition), ("cpus_per_task", resources.cpus),
                       ("array_parallelism", resources.array_parallelism)):
        if value is not None:
            slurm[key] = value
    if resources.mem_gb is not None:
        slurm["mem"] = f"{math.ceil(resources.mem_gb * 1024)}MB"
    executor.update_parameters(**slurm)
    return executor


# ----------------------------------------------------------------------------- the task


class GridTask:
    """One array task: complete one run of a grid (train, resume or skip), checkpointable for submitit.

    Calling it runs :func:`lcamlab.train.grid.run_grid` on the one run, so the task does what the
    local grid would do for that run, under the same run-folder lock. :meth:`checkpoint` is
    submitit's checkpointing protocol: on a time-out or preemption it returns the same call, which
    submitit requeues; the run folder holds the state (``checkpoint.pt`` after every epoch).
    """

    def __init__(self, *, threads: int | None = None, progress: str = "lines",
                 on_epoch_end: Callable | None = None) -> None:
        """``threads``: torch CPU threads (``None``: torch's default); ``progress``: as for
        :func:`lcamlab.train.runner.train`; ``on_epoch_end(epoch, run_dir, row)``: called in the task
        after every epoch's checkpoint, as by :func:`lcamlab.train.grid.run_grid` (it travels to the
        task in submitit's pickle, so it must be picklable by cloudpickle)."""
        self.threads = threads
        self.progress = progress
        self.on_epoch_end = on_epoch_end

    def __call__(self, config: TrainConfig) -> dict[str, Any]:
        """Complete the run of ``config``; returns where it stands (``run_id``, ``state``, ``epochs_done``)."""
        from lcamlab.train.grid import grid_status, run_grid

        if self.threads is not None:
            import torch

            torch.set_num_threads(self.threads)
        run_grid([config], progress=self.progress, on_epoch_end=self.on_epoch_end,
                 log=lambda line: print(line, flush=True))
        row = grid_status([config]).iloc[0]
        return {"run_id": config.run_id, "state": str(row["state"]), "epochs_done": int(row["epochs_done"])}

    def checkpoint(self, config: TrainConfig):
        """The requeued call (submitit calls this on ``USR2``): the same task, resumed from the run folder."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, config)


# ----------------------------------------------------------------------------- the job record


def _jobs_path(runs_dir: str | os.PathLike) -> Path:
    return Path(runs_dir) / SUBMITIT_DIR / JOBS_NAME


def read_jobs(runs_dir: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """The job record of a runs folder (``{}`` when nothing was submitted from it)."""
    path = _jobs_path(runs_dir)
    if not path.is_file():
        return {}
    try:
        record = json.loads(path.read_text())
        if not isinstance(record, dict) or not all(
                isinstance(entry, dict) and isinstance(entry.get("job_id"), str) and entry.get("executor") in EXECUTORS
                for entry in record.values()):
            raise ValueError("not a job record")
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise ValueError(f"{path} is not a readable job record ({error}); it only lists job ids, so move it away "
                         f"and run the command again (the runs themselves are untouched)") from None
    return record


def _record_jobs(runs_dir: str | os.PathLike, entries: dict[str, dict[str, Any]]) -> None:
    """Add ``entries`` to the job record, under a lock (two submissions at once both land)."""
    import fcntl

    path = _jobs_path(runs_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(JOBS_NAME + ".lock"), "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        record = {**read_jobs(runs_dir), **entries}
        temporary = path.with_name(f".{JOBS_NAME}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
        os.replace(temporary, path)


def _controller_alive(pid: int) -> bool:
    """Whether ``pid`` is a live submitit local controller: its command line names the controller's
    module, when ``/proc`` can tell (so a reused pid is not taken for the job), else it exists."""
    if Path("/proc/self/cmdline").is_file():
        try:
            return b"submitit.local._local" in Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _local_state(folder: Path, job_id: str) -> str:
    """A local job's state from its controller process and result file (states as Slurm names them)."""
    result = folder / f"{job_id}_0_result.pkl"
    if result.is_file():
        try:
            import cloudpickle

            outcome = cloudpickle.loads(result.read_bytes())[0]
        except Exception:  # a damaged result pickle: cloudpickle raises many types; all mean "cannot tell"
            return "UNKNOWN (damaged result file)"
        return "COMPLETED" if outcome == "success" else "FAILED"
    if job_id.isdigit() and _controller_alive(int(job_id)):
        return "RUNNING"
    return "ENDED WITHOUT RESULT (killed?)"


def job_states(runs_dir: str | os.PathLike, run_ids: Iterable[str]) -> dict[str, tuple[str, str]]:
    """``{run_id: (job_id, state)}`` for the runs of ``run_ids`` that have a recorded job.

    Slurm states come from ``sacct`` (one call for all jobs, through submitit); a local job's from
    its controller process and result file; a job submitted on another machine, or a Slurm job
    without submitit installed here, is reported as such instead of guessed.
    """
    record = read_jobs(runs_dir)
    wanted = {run_id: record[run_id] for run_id in run_ids if run_id in record}
    if not wanted:
        return {}
    folder = Path(runs_dir) / SUBMITIT_DIR
    host = socket.gethostname()
    states: dict[str, tuple[str, str]] = {}
    slurm_jobs = {}
    for run_id, entry in wanted.items():
        job_id = entry["job_id"]
        if entry["executor"] == "local":
            same_host = entry.get("host") == host
            state = _local_state(folder, job_id) if same_host else f"UNKNOWN (local job on {entry.get('host')})"
            states[run_id] = (job_id, state)
        else:
            slurm_jobs[run_id] = job_id
    if slurm_jobs:
        try:
            submitit = require_submitit()
        except ValueError:
            return {**states, **{run_id: (job_id, f"UNKNOWN ({_INSTALL} to ask Slurm)")
                                 for run_id, job_id in slurm_jobs.items()}}
        if shutil.which("sacct") is None:
            return {**states, **{run_id: (job_id, "UNKNOWN (no sacct here: not on the cluster?)")
                                 for run_id, job_id in slurm_jobs.items()}}
        jobs = {run_id: submitit.SlurmJob(folder, job_id) for run_id, job_id in slurm_jobs.items()}
        for run_id, job in jobs.items():
            states[run_id] = (job.job_id, job.state)
    return states


def _active(state: str) -> bool:
    return state.split(" ")[0] in _ACTIVE


# ----------------------------------------------------------------------------- submission


def submit_grid(configs: Sequence[TrainConfig], kind: str, resources: Resources = Resources(), *,
                name: str = "lcamlab", threads: int | None = None, on_epoch_end: Callable | None = None,
                log=print) -> list[tuple[TrainConfig, Any]]:
    """Submit the runs of a grid that still need training as one job array.

    Args:
        configs: the grid (:func:`lcamlab.train.grid.figure_configs`); all in one runs folder.
        kind: ``"slurm"``, ``"local"`` or ``"debug"`` (:data:`EXECUTORS`).
        resources: what each task asks for (checked against ``kind`` first).
        name: the Slurm job name.
        threads: torch CPU threads in each task (``None``: torch's default).
        on_epoch_end: called in each task after every epoch (:class:`GridTask`).
        log: where one line per run goes (submitted, or why not).

    Returns:
        ``(config, job)`` per submitted run, in grid order (empty when nothing needed training).

    Raises:
        GridConflictError: a run folder holds another configuration (nothing is submitted).
        ValueError: a resource does not apply or is out of range; submitit is missing; not on Slurm.
    """
    from lcamlab.train.grid import refuse_conflicts, resolve_control, run_state

    if kind not in EXECUTORS:
        raise ValueError(f"Invalid --executor {kind!r} (choose one of {', '.join(EXECUTORS)})")
    _check_resources(kind, resources)
    require_submitit()
    configs = refuse_conflicts(configs)
    runs_dirs = {config.runs_dir for config in configs}
    if len(runs_dirs) != 1:
        raise ValueError(f"A submitted grid lives in one runs folder, not {len(runs_dirs)}: {sorted(runs_dirs)}")
    runs_dir = runs_dirs.pop()
    active = {run_id: state for run_id, state in job_states(runs_dir, [c.run_id for c in configs]).items()
              if _active(state[1])}
    pending = []
    for config in configs:
        state = run_state(Path(config.runs_dir) / config.run_id)
        if state in ("finished", "diverged"):
            log(f"{config.run_id}: {state}, not submitted")
        elif config.run_id in active:
            job_id, job_state = active[config.run_id]
            log(f"{config.run_id}: already submitted as job {job_id} ({job_state}), not submitted again")
        elif config.control is not None and config.control_values is None and \
                resolve_control(config).control_values is None:
            log(f"{config.run_id}: its reference run {config.control_reference} is not finished; submit the grid "
                f"again once it is")
        else:
            pending.append(config)
    if not pending:
        return []
    folder = Path(runs_dir) / SUBMITIT_DIR
    executor = make_executor(kind, folder, resources, name=name)
    jobs = executor.map_array(GridTask(threads=threads, on_epoch_end=on_epoch_end), pending)
    if kind != "debug":  # a debug job runs in this process: no id to look up later
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        _record_jobs(runs_dir, {config.run_id: {"job_id": job.job_id, "executor": kind,
                                                "host": socket.gethostname(), "submitted": stamp}
                                for config, job in zip(pending, jobs)})
    for config, job in zip(pending, jobs):
        log(f"{config.run_id}: submitted as job {job.job_id}")
    return list(zip(pending, jobs))


def _failure_line(error: Exception) -> str:
    """The line of a submitit error that says what went wrong.

    A ``FailedJobError`` (the task raised) holds the task's traceback between two rules of dashes:
    its last line is the exception. Any other ``UncompletedJobError`` (the task ended without a
    result: killed, out of memory) starts with two lines naming the job and its state.
    """
    from submitit.core.utils import FailedJobError

    lines = [line.strip() for line in str(error).splitlines()]
    rules = [index for index, line in enumerate(lines) if len(line) >= 10 and set(line) == {"-"}]
    if isinstance(error, FailedJobError) and len(rules) >= 2:
        trace = [line for line in lines[rules[0] + 1:rules[1]] if line]
        if trace:
            return trace[-1]
    head = " ".join(line for line in lines[:2] if line)
    return head or type(error).__name__


def wait_for(submitted: Sequence[tuple[TrainConfig, Any]], log=print) -> int:
    """Wait for every submitted task to end (a debug task runs now); returns how many failed.

    A failed task is one line naming its run and its log file (submitit's error file), never the
    traceback of the task.
    """
    from submitit.core.utils import UncompletedJobError

    failed = 0
    for config, job in submitted:
        try:
            outcome = job.result()
        except UncompletedJobError as error:
            failed += 1
            log(f"{config.run_id}: job {job.job_id} failed ({_failure_line(error)}); its log: {job.paths.stderr}")
            continue
        log(f"{config.run_id}: job {job.job_id} ended, run {outcome['state']} after {outcome['epochs_done']} epochs")
    return failed
