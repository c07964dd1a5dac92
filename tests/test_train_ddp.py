"""DistributedDataParallel parity: 2 gloo processes under torchrun equal one process.

The same runner, the same global batch (split 16/15 or 14/14 between the
replicas: unequal shards included), the same LCAM choices. The model has no
BatchNorm: BatchNorm computes statistics per replica under DDP (over each
shard, not the global batch), so with it the two trainings are genuinely
different computations; on CUDA the runner converts it to SyncBatchNorm, which
the CPU does not support. The model is float64 so the comparison is tight.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.distributed as dist

from lcamlab.data import write_synthetic_cifar
from lcamlab.train import TrainConfig, train

MODEL_MODULE = textwrap.dedent("""
    import torch
    from torch import nn

    def small_convnet(config, num_classes):
        # no BatchNorm: per-replica statistics would make DDP differ from one process
        return nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(64, num_classes),
        ).to(torch.float64)
""")

# Run by torchrun: every replica executes it; the runner finds RANK/WORLD_SIZE in the environment.
SCRIPT = textwrap.dedent("""
    import json, sys
    from lcamlab.train import TrainConfig, train
    from small_model import small_convnet   # next to this script

    train(TrainConfig.from_overrides(json.loads(sys.argv[1])), progress="none", model_factory=small_convnet)
""")

pytestmark = pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                                reason="needs torch.distributed with gloo")


def read_rows(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_ddp_two_processes_equal_one_process(tmp_path):
    data_dir = tmp_path / "cifar"
    write_synthetic_cifar(data_dir, "cifar10", n_train=90, n_test=40, seed=3, form="folder")
    script = tmp_path / "train_small.py"
    script.write_text(SCRIPT)
    (tmp_path / "small_model.py").write_text(MODEL_MODULE)
    base = dict(data_dir=str(data_dir), runs_dir=str(tmp_path / "runs"), epochs=2, batch_size=31,
                eval_batch_size=25, lr=0.05, schedule="cosine", optimizer="lcam", momentum=(0.9, 0.95),
                device="cpu", seed=5)
    # one process: this one, with the same model factory
    spec = importlib.util.spec_from_file_location("small_model", tmp_path / "small_model.py")
    small_model = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(small_model)
    train(TrainConfig.from_overrides({**base, "run_id": "single"}), progress="none",
          model_factory=small_model.small_convnet)
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          str(script), json.dumps({**base, "run_id": "ddp"})],
                         capture_output=True, text=True, timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-3000:]

    single_dir, ddp_dir = tmp_path / "runs" / "single", tmp_path / "runs" / "ddp"
    assert (ddp_dir / "finished.json").exists()
    assert json.loads((ddp_dir / "config.json").read_text())["world_size"] == 2
    a, b = read_rows(single_dir), read_rows(ddp_dir)
    assert len(a) == len(b) == 2
    for row_a, row_b in zip(a, b):
        # identical LCAM decisions (the all-reduced loss enters the mean on both replicas)
        assert row_a["phase_below"] == row_b["phase_below"]
        assert row_a["lr"] == row_b["lr"] and row_a["train_accuracy"] == row_b["train_accuracy"]
        for key in ("train_loss", "test_loss", "test_error"):
            assert row_b[key] == pytest.approx(row_a[key], rel=1e-10, abs=1e-12), key
    model_a = torch.load(single_dir / "checkpoint.pt", weights_only=True)["model"]
    model_b = torch.load(ddp_dir / "checkpoint.pt", weights_only=True)["model"]
    for name in model_a:
        torch.testing.assert_close(model_b[name], model_a[name], rtol=1e-10, atol=1e-12)
    # the parameters actually moved (the comparison is not between two initialisations)
    fresh = torch.load(single_dir / "checkpoint.pt", weights_only=True)["optimizer"]["state"]
    assert fresh and all(s["momentum_buffer"].abs().sum() > 0 for s in fresh.values())
