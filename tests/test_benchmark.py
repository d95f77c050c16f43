"""The benchmark command: it runs every workload and writes only where it is told."""
from __future__ import annotations

import json

from conftest import run_script, write_mnist


def test_benchmark_times_every_workload_into_the_given_folder(tmp_path):
    data = write_mnist(tmp_path / "data", n_train=200, n_test=40)
    out = tmp_path / "out"
    done = run_script("benchmark.py", "--data-dir", str(data), "--offline", "--device", "cpu",
                      "--epochs", "1", "--batch-size", "16", "--output-dir", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "benchmark_cpu.json").read_text())
    workloads = report["workloads"]
    assert {name: w["copies"] for name, w in workloads.items()} == {"mlp": 1, "flooding": 21, "cnn": 1}
    for w in workloads.values():
        ms = w["ms_per_epoch"]
        assert ms["train"] > 0 and ms["eval"] > 0 and ms["train_and_eval"] == ms["train"] + ms["eval"]
        assert w["seconds_for_assignment_epochs"] == ms["train_and_eval"] / 2  # 500 epochs, in seconds
    mlp = workloads["mlp"]
    assert mlp["speedup_train"] == mlp["tutorial_train_ms_per_epoch"] / mlp["ms_per_epoch"]["train"]


def test_unknown_workload_is_refused(tmp_path):
    done = run_script("benchmark.py", "--workloads", "mlp,resnet", "--output-dir", str(tmp_path))
    assert done.returncode == 2
    assert "resnet" in done.stderr and "mlp, flooding, cnn" in done.stderr
    assert not list(tmp_path.iterdir())
