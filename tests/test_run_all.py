"""run_all: a signal stops the running step only after it saved, and the summary of the committed
results is rewritten only for steps that ran into them."""
from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time

import pytest
import torch

import cli
import common
import q5_2_mlp
import run_all
from conftest import POSIX_SIGNALS, REPO_ROOT, says, write_mnist

EARLIER = {"key": "q5_3", "name": "Q5.3 flooding", "returncode": 0, "seconds": 228.0}


def test_without_a_gpu_the_day_long_steps_are_named_not_started_and_the_record_left_as_it_was(mnist_root, tmp_path, capsys):
    summary = tmp_path / "run_summary.json"
    summary.write_text(json.dumps({"mode": "full", "steps": [EARLIER]}))
    before = summary.stat().st_mtime_ns, summary.read_bytes()
    with pytest.raises(common.UserError, match=f"no step left to run; {summary} is unchanged"):
        run_all.main(["--steps", "q5_3,q5_5", "--device", "cpu", "--data-dir", str(mnist_root), "--offline",
                      "--output-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert "No CUDA GPU: not starting Q5.3 flooding, Q5.5 CNN" in err and "ALLOW_CPU=1" in err
    assert (summary.stat().st_mtime_ns, summary.read_bytes()) == before
    assert not list(tmp_path.glob("q5_*.json"))


def test_looking_up_the_device_leaves_pytorchs_tf32_setting_alone(tmp_path):
    """Only a step's own run sets TF32 (in its process); run_all only asks which device there is."""
    matmul = torch.backends.cuda.matmul
    before, matmul.allow_tf32 = matmul.allow_tf32, True
    try:
        with pytest.raises(common.UserError, match="no step left to run"):
            run_all.main(["--steps", "q5_3", "--device", "cpu", "--output-dir", str(tmp_path)])
        assert matmul.allow_tf32 is True
    finally:
        matmul.allow_tf32 = before


@pytest.mark.parametrize("flags", [["--quick", "--output-dir", str(cli.RESULTS_DIR)],
                                   ["--quick", "--output-dir", str(cli.REPORT_DIR / "generated")],
                                   ["--output-dir", str(cli.REPORT_DIR)]])
def test_a_quick_run_or_another_folder_among_the_committed_outputs_is_refused(flags):
    record = (cli.RESULTS_DIR / "run_summary.json").read_bytes()
    with pytest.raises(common.UserError, match="lies inside the committed results, figures and snippets"):
        run_all.main([*flags, "--steps", "checks"])
    assert (cli.RESULTS_DIR / "run_summary.json").read_bytes() == record


def test_a_failed_step_is_recorded_without_the_numbers_of_an_earlier_run(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "q5_2_mlp.json").write_text(json.dumps({"an earlier run": True}))
    assert run_all.main(["--steps", "q5_2", "--device", "cpu", "--data-dir", str(tmp_path / "no_data"), "--offline",
                         "--output-dir", str(out)]) == 1
    [step] = json.loads((out / "run_summary.json").read_text())["steps"]
    assert step["key"] == "q5_2" and step["returncode"] == 1 and step["key_numbers"] == {}


@pytest.mark.skipif(os.name != "posix", reason="the hint is for a POSIX shell there")
def test_the_hint_after_a_signal_pastes_into_a_shell_keeps_the_runs_flags_and_offers_resume_only_to_a_saved_state(
        mnist_root, tmp_path, monkeypatch, capsys):
    out = tmp_path / "my runs"
    checkpoint = out / "q5_2_mlp.ckpt"
    flags = ["--quick", "--output-dir", str(out), "--data-dir", str(mnist_root), "--offline", "--device", "cpu"]
    # stopped before it saved anything; with the checkpoint an earlier, finished run left; after saving its state
    for leftover, saved in ((False, False), (True, False), (False, True)):
        if leftover:
            checkpoint.write_bytes(b"an earlier run's state")
            os.utime(checkpoint, (time.time() - 60,) * 2)
        stopped = lambda command: (saved and checkpoint.write_bytes(b"a saved state"), (130, "Ctrl-C"))[1]
        monkeypatch.setattr(run_all, "run_step", stopped)
        assert run_all.main([*flags, "--steps", "q5_2,q5_5"]) == 130
        err = capsys.readouterr().err
        step, rest = (shlex.split(command) for command in re.findall(r"`([^`]+)`", err))
        assert step[:2] == [sys.executable, str(REPO_ROOT / "codes" / "q5_2_mlp.py")] and ("--resume" in step) == saved
        assert ("training state is saved" in err) == saved
        assert rest[:4] == [sys.executable, str(REPO_ROOT / "codes" / "run_all.py"), "--steps", "q5_5"] and "--quick" in rest
        for command in (step, rest):
            assert command[command.index("--output-dir") + 1] == str(out), err
            assert command[command.index("--data-dir") + 1] == str(mnist_root) and "--offline" in command


@POSIX_SIGNALS
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_to_run_all_lets_the_running_step_save_then_stops(signum, tmp_path):
    data, out = write_mnist(tmp_path / "data", n_train=1000, n_test=100), tmp_path / "out"
    out.mkdir()
    (out / "run_summary.json").write_text(json.dumps({"mode": "full", "steps": [EARLIER]}))
    run_all = subprocess.Popen([sys.executable, str(REPO_ROOT / "codes" / "run_all.py"), "--steps", "q5_2", "--device",
                                "cpu", "--data-dir", str(data), "--offline", "--output-dir", str(out)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    checkpoint = out / "q5_2_mlp.ckpt"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and run_all.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    run_all.send_signal(signum)  # to run_all alone, as make or a scheduler sends it
    stdout, stderr = run_all.communicate(timeout=120)
    assert run_all.returncode == 130 and "Traceback" not in stderr, stderr[-3000:]
    # a Ctrl-C lets the epoch finish; SIGTERM reaches the step as SIGTERM and gives the epoch up at once
    stopped = re.search(r"interrupted (?:after epoch (\d+); the state|during epoch \d+; the state after epoch (\d+)) "
                        r"is saved in", stderr)
    assert stopped and bool(stopped[1]) == (signum == signal.SIGINT), stderr[-3000:]
    epoch = int(stopped[1] or stopped[2])
    assert 10 <= epoch < 500
    assert torch.load(checkpoint, weights_only=True)["record"]["history"]["epoch"][-1] == epoch
    assert says(stderr, "Ctrl-C" if signum == signal.SIGINT else "SIGTERM", "Q5.2",  # what stopped which step, how to go on
                shlex.join([sys.executable, str(REPO_ROOT / "codes" / "q5_2_mlp.py"), "--output-dir", str(out), "--data-dir",
                            str(data)]), "--resume")
    # no step ran to its end: the record stays the earlier one
    assert json.loads((out / "run_summary.json").read_text())["steps"] == [EARLIER]
    assert "run_summary.json is unchanged: no step ran to its end" in stderr
    # the saved state continues: one more epoch
    flags = ["--data-dir", str(data), "--offline", "--device", "cpu", "--no-progress", "--output-dir", str(out)]
    assert q5_2_mlp.main([*flags, "--resume", "--epochs", str(epoch + 1)]) == 0
