"""The benchmark command: it runs every workload, writes only where it is told, and a rerun of
one workload keeps the others' numbers."""
from __future__ import annotations

import json

import pytest

import benchmark
import cli
import common
from conftest import run_script, says, write_mnist


def test_benchmark_times_every_workload_into_the_given_folder(tmp_path):
    data = write_mnist(tmp_path / "data", n_train=200, n_test=40)
    out = tmp_path / "out"
    common_flags = ["--data-dir", str(data), "--offline", "--device", "cpu", "--epochs", "1", "--output-dir", str(out)]
    done = run_script("benchmark.py", *common_flags, "--batch-size", "16")
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "benchmark_cpu.json").read_text())
    workloads = report["workloads"]
    assert {name: w["copies"] for name, w in workloads.items()} == {"mlp": 1, "flooding": 21, "cnn": 1}
    for w in workloads.values():
        ms = w["ms_per_epoch"]
        assert ms["train"] > 0 and ms["eval"] > 0 and ms["train_and_eval"] == ms["train"] + ms["eval"]
        assert w["seconds_for_assignment_epochs"] == pytest.approx(ms["train_and_eval"] / 2)  # 500 epochs, in s
    mlp = workloads["mlp"]
    assert mlp["speedup_train"] == mlp["tutorial_train_ms_per_epoch"] / mlp["ms_per_epoch"]["train"]

    # rerunning one workload keeps the others' numbers, but only from a run with the same settings
    again = [*common_flags, "--batch-size", "16", "--workloads", "cnn"]
    assert run_script("benchmark.py", *again).returncode == 0
    rerun = json.loads((out / "benchmark_cpu.json").read_text())["workloads"]
    assert list(rerun) == ["mlp", "flooding", "cnn"]
    assert rerun["mlp"] == workloads["mlp"] and rerun["flooding"] == workloads["flooding"]
    assert rerun["cnn"] != workloads["cnn"]
    assert run_script("benchmark.py", *common_flags, "--batch-size", "8", "--workloads", "cnn").returncode == 0
    assert list(json.loads((out / "benchmark_cpu.json").read_text())["workloads"]) == ["cnn"]


def test_unknown_workload_is_refused(tmp_path):
    done = run_script("benchmark.py", "--workloads", "mlp,resnet", "--output-dir", str(tmp_path))
    assert done.returncode == 2
    assert "resnet" in done.stderr and "mlp, flooding, cnn" in done.stderr
    assert not list(tmp_path.iterdir())


def test_the_committed_measurements_are_replaced_only_when_asked(tmp_path, monkeypatch, capsys):
    data = write_mnist(tmp_path / "data", n_train=200, n_test=40)
    flags = ["--data-dir", str(data), "--offline", "--device", "cpu", "--workloads", "cnn"]
    committed = cli.RESULTS_DIR / "benchmark_cpu.json"
    before = committed.read_bytes()
    monkeypatch.setattr(benchmark, "BESIDE_COMMITTED", tmp_path / "beside")
    assert benchmark.main(flags) == 0  # at the default settings: beside the committed file
    out = capsys.readouterr().out
    written = json.loads((tmp_path / "beside" / "benchmark_cpu.json").read_text())
    assert committed.read_bytes() == before and says(out, str(committed), "unchanged")
    assert out.splitlines()[0].startswith(f"machine: {written['environment']['device_name']}, ")  # the table's machine
    with pytest.raises(common.UserError) as refused:
        benchmark.main([*flags, "--epochs", "1", "--replace-committed"])
    assert says(str(refused.value), "--replace-committed", "epochs 1")
    assert committed.read_bytes() == before
