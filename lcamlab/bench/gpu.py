"""One command that checks a GPU: every CUDA test and the CUDA benchmarks, one table, one JSON report.

``lcamlab bench gpu [--out FILE.json] [--tests DIR] [--skip-tests]``

The CUDA code paths of lcamlab (no host synchronisation per LCAM step, the
bf16 WRN-28-10 engine, torch.compile on CUDA, the eager escape runner on CUDA,
a checkpoint moved from CPU to CUDA) are tested by tests that skip without a
GPU. On a machine with one, this command runs, within about 8 minutes on one
H100/H200:

1. ``pytest -k "cuda or ddp"`` on the repository's ``tests/`` (every test whose
   name says CUDA, and DistributedDataParallel on one machine), 300 s at most;
2. ``lcamlab bench optim`` on CUDA: the LCAM step against torch's SGD(foreach),
   eager and compiled, with host syncs per step (target: LCAM within 1.05x of
   SGD's step time, 0 syncs);
3. ``lcamlab bench wrn`` on CUDA: WRN-28-10 at batch 128, the lcamlab engine (bf16)
   against the authors' loop (target: >= 12 700 images/s on an H100/H200);

then prints one table and writes one JSON report (default
``gpu-check-YYYY-MM-DD.json``, never overwritten) with the device, the date,
torch's version and the commit. Without a CUDA device it says so and exits 0
at once: it imports torch only where an NVIDIA driver is present.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["configure_parser", "main", "cuda_device_name"]

#: The targets of the GPU check (issue "The optimizers work wherever torch.optim's do").
TARGET_IMAGES_PER_S = 12_700  # WRN-28-10, batch 128, bf16, H100/H200
TARGET_LCAM_RATIO = 1.05  # LCAM step time / SGD(foreach) step time
TESTS_TIMEOUT_S = 300
WRN_TIMEOUT_S = 180


def _nvidia_driver_present() -> bool:
    """A cheap look for an NVIDIA driver before paying torch's import (about 2 s)."""
    return os.path.exists("/proc/driver/nvidia/version") or shutil.which("nvidia-smi") is not None


def cuda_device_name() -> str | None:
    """The CUDA device torch would use (``"NVIDIA H200"``), or ``None`` when there is none."""
    if not _nvidia_driver_present():
        return None
    import torch

    if not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_name(0)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``lcamlab bench gpu``."""
    parser.add_argument("--out", type=Path, default=None,
                        help="the JSON report (default gpu-check-YYYY-MM-DD.json here; never overwritten)")
    parser.add_argument("--tests", type=Path, default=Path(__file__).resolve().parents[2] / "tests",
                        help="the repository's tests/ folder (default: beside the lcamlab package)")
    parser.add_argument("--skip-tests", action="store_true", help="only the benchmarks")


def _run_tests(tests: Path) -> dict[str, Any]:
    if not tests.is_dir():
        return {"check": "CUDA tests", "result": f"not run: no tests folder at {tests} (pass --tests DIR)",
                "target": "all pass", "ok": None}
    start = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "cuda or ddp",
                               str(tests)], capture_output=True, text=True, timeout=TESTS_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"check": "CUDA tests", "result": f"timed out after {TESTS_TIMEOUT_S} s", "target": "all pass",
                "ok": False}
    summary = next((line for line in reversed(done.stdout.splitlines()) if " in " in line and "=" in line),
                   done.stdout.strip().splitlines()[-1] if done.stdout.strip() else "no output")
    failed = [line for line in done.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
    return {"check": "CUDA tests", "result": summary.strip("= ") + f" ({time.perf_counter() - start:.0f} s)",
            "target": "all pass", "ok": done.returncode == 0, "failed": failed}


def _run_optim() -> list[dict[str, Any]]:
    from lcamlab.bench.optim_step import compiled_ratio, measure

    rows = measure("cuda", steps=20, rounds=5, compiled=True)
    eager = rows["lcam"]["ratio_to_sgd"]
    compiled = compiled_ratio(rows)
    syncs = rows["lcam"]["syncs_per_step"]
    return [
        {"check": "LCAM / SGD step time, WRN-28-10 shapes", "result": f"{eager:.3f}x",
         "target": f"<= {TARGET_LCAM_RATIO}x", "ok": eager <= TARGET_LCAM_RATIO, "detail": rows},
        {"check": "compiled LCAM / compiled SGD step time", "result": f"{compiled:.3f}x",
         "target": f"<= {TARGET_LCAM_RATIO}x", "ok": compiled <= TARGET_LCAM_RATIO},
        {"check": "host syncs per LCAM step", "result": f"{syncs:.2f}", "target": "0", "ok": syncs == 0},
    ]


def _run_wrn() -> list[dict[str, Any]]:
    from lcamlab.provenance import load_table

    with tempfile.TemporaryDirectory() as folder:
        table = Path(folder) / "wrn.csv"
        try:
            done = subprocess.run([sys.executable, "-m", "lcamlab", "bench", "wrn", "--device", "cuda",
                                   "--steps", "100", "--warmup", "20", "--out", str(table)],
                                  capture_output=True, text=True, timeout=WRN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return [{"check": "WRN-28-10 engine images/s", "result": f"timed out after {WRN_TIMEOUT_S} s",
                     "target": f">= {TARGET_IMAGES_PER_S:,}", "ok": False}]
        if done.returncode != 0 or not table.is_file():
            last = (done.stderr or done.stdout).strip().splitlines()
            return [{"check": "WRN-28-10 engine images/s", "result": f"failed: {last[-1] if last else 'no output'}",
                     "target": f">= {TARGET_IMAGES_PER_S:,}", "ok": False}]
        frame, _ = load_table(table)
    by_variant = {row["variant"]: row for row in frame.to_dict("records")}
    engine, authors = by_variant["engine"], by_variant["authors"]
    return [
        {"check": "WRN-28-10 engine images/s (batch 128, bf16)", "result": f"{engine['images_per_s']:,.0f}",
         "target": f">= {TARGET_IMAGES_PER_S:,}", "ok": engine["images_per_s"] >= TARGET_IMAGES_PER_S,
         "detail": {"engine": engine, "authors": authors}},
        {"check": "engine / authors' loop images/s",
         "result": f"{engine['images_per_s'] / authors['images_per_s']:.2f}x",
         "target": "> 1", "ok": engine["images_per_s"] > authors["images_per_s"]},
    ]


def main(args: argparse.Namespace) -> int:
    """Run the GPU check, print the table, write the report; exit 1 if a check failed."""
    name = cuda_device_name()
    if name is None:
        print("lcamlab bench gpu: no CUDA GPU on this machine (or torch is a CPU build), so there is nothing to "
              "check here; run it on a machine with one.")
        return 0
    from lcamlab.provenance import atomic_write_json, refuse_overwrite, run_metadata

    today = _dt.date.today().isoformat()
    out = refuse_overwrite(args.out or Path(f"gpu-check-{today}.json"), what="GPU check report")
    if out.suffix != ".json":
        raise ValueError(f"Invalid --out: {out} (expected a .json file name)")
    print(f"GPU check on {name}, {today}", flush=True)
    rows: list[dict[str, Any]] = []
    if not args.skip_tests:
        print("running the CUDA tests ...", flush=True)
        rows.append(_run_tests(args.tests))
    print("benchmarking the optimizer step ...", flush=True)
    rows.extend(_run_optim())
    print("benchmarking WRN-28-10 training ...", flush=True)
    rows.extend(_run_wrn())

    width = max(len(row["check"]) for row in rows)
    print()
    print(f"{'check':<{width}}  {'result':<40} {'target':<10} ok")
    for row in rows:
        ok = {True: "yes", False: "NO", None: "-"}[row["ok"]]
        print(f"{row['check']:<{width}}  {row['result']:<40} {row['target']:<10} {ok}")
        for line in row.get("failed", []):
            print(f"    {line}")
    config = {"tests": str(args.tests), "skip_tests": args.skip_tests}
    atomic_write_json(out, run_metadata(config, device="cuda", gpu=name, date=today, checks=rows))
    print(f"\nreport: {out}")
    return 0 if all(row["ok"] is not False for row in rows) else 1
