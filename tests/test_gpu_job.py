"""The GPU machine's entry point in its quick form on the CPU, which is also the quick pass of the
whole pipeline: both parts run every command, the run summary records every step (a part keeps the
other's record), the committed results are never touched, and the outputs are packed. The scripts'
commands run in this process; the CUDA tests, a pytest of their own, in a process."""
from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import cli
import gpu_job
import run_all
from conftest import REPO_ROOT, run_script, write_mnist
from test_pipeline import snapshot


def test_both_parts_run_in_their_quick_form_and_pack_their_outputs(tmp_path, monkeypatch):
    run_process = subprocess.run

    def run_command(command: list[str], stdout=None, **options) -> subprocess.CompletedProcess:
        """`python codes/<script> ARGS` run by conftest.run_script, its output into `stdout` (where a process's
        would go, the caller's own by default)."""
        if command[0] != sys.executable or command[1:3] == ["-m", "pytest"]:  # the CUDA tests, or not Python
            return run_process(command, stdout=stdout, **options)
        _, script, *args = command
        assert Path(script).parent == REPO_ROOT / "codes", command
        done = run_script(Path(script).name, *args)
        (stdout or sys.stdout).write(done.stdout)
        (stdout or sys.stderr).write(done.stderr)
        return done

    monkeypatch.setattr(gpu_job.subprocess, "run", run_command)
    monkeypatch.setattr(run_all, "run_step", lambda command: (run_command(command).returncode, None))
    data = write_mnist(tmp_path / "data", n_train=2500, n_test=300)
    out = tmp_path / "out"
    committed = (cli.RESULTS_DIR, cli.FIGURES_DIR, cli.GENERATED_DIR)
    before = snapshot(*committed)
    for part in (1, 2):
        done = run_script("gpu_job.py", "--part", str(part), "--out", str(out), "--quick", "--data-dir", str(data))
        assert done.returncode == 0, (out / f"gpu_job_part{part}.log").read_text()[-3000:]
    assert snapshot(*committed) == before
    log = (out / "gpu_job_part1.log").read_text()
    for step in ("CUDA tests", "benchmark, TF32", "benchmark, float32", "main job: checks,q1,q5_2,q5_5,q5_5_lrs"):
        assert f"== {step}: exit status 0" in log
    summary = json.loads((out / "results" / "run_summary.json").read_text())
    assert [step["key"] for step in summary["steps"]] == ["checks", "q1", "q5_2", "q5_3", "q5_5", "q5_5_lrs"]
    assert summary["completed"] and summary["steps_run_last"] == ["q5_3"]
    assert all(step["returncode"] == 0 and step["seconds"] > 0 for step in summary["steps"])
    assert summary["total_seconds"] == sum(step["seconds"] for step in summary["steps"])
    mlp = next(step for step in summary["steps"] if step["key"] == "q5_2")["key_numbers"]["q5_2_mlp"]
    assert 0 <= mlp["val_error"] <= 100
    with tarfile.open(out / "gpu_job_part2.tar.gz") as archive:
        names = set(archive.getnames())
    figures = ("q1_2_sweeps", "q4_1_blur", "q5_2_error", "q5_3_chosen_level", "q5_5_cnn_vs_mlp", "q5_5_step_size")
    assert {f"results/figures/{name}.png" for name in figures} <= names
    assert {"results/q5_3_flooding_lr0.1.json", "results/q5_2_mlp.json", "results/benchmark_cpu.json",
            "results/generated/q5_3.tex"} <= names
    assert not [name for name in names if name.endswith((".ckpt", ".lock"))]


def test_the_job_stops_at_the_first_command_that_fails_and_still_packs(tmp_path, monkeypatch):
    failing = ("failing step", [sys.executable, "-c", "raise SystemExit(3)"])
    monkeypatch.setattr(gpu_job, "commands", lambda *_: [failing, ("never run", [sys.executable, "-c", "pass"])])
    assert gpu_job.main(["--part", "2", "--out", str(tmp_path), "--quick"]) == 3
    log = (tmp_path / "gpu_job_part2.log").read_text()
    assert "== failing step: exit status 3" in log and "never run" not in log
    with tarfile.open(tmp_path / "gpu_job_part2.tar.gz") as archive:
        assert archive.getnames() == []  # nothing was written to pack
