"""Runs survive kills and Ctrl-C, and bad input gets one clear message."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO_ROOT, run_script

QUICK = ("--subset", "64", "--batch-size", "16", "--offline", "--no-progress", "--checkpoint-every", "1")


def comparable(results: dict) -> dict:
    """What must be equal between two runs of the same settings: everything but timings."""
    return {"history": results["history"], "diverged_at_epoch": results["diverged_at_epoch"],
            "final_val_predictions": results["final_val_predictions"]}


def start_mlp(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(REPO_ROOT / "codes" / "q5_2_mlp.py"), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_killed_run_resumes_to_the_uninterrupted_history(mnist_root, tmp_path):
    epochs = "150"
    common_args = ("--epochs", epochs, "--data-dir", str(mnist_root), *QUICK)
    straight = run_script("q5_2_mlp.py", *common_args, "--output-dir", str(tmp_path / "straight"))
    assert straight.returncode == 0, straight.stderr

    out = tmp_path / "killed"
    run = start_mlp(*common_args, "--output-dir", str(out))
    wait_for(out / "q5_2_mlp.ckpt")
    run.send_signal(signal.SIGKILL)
    run.wait()
    assert not (out / "q5_2_mlp.json").exists(), "the run finished before it could be killed"
    resumed = run_script("q5_2_mlp.py", *common_args, "--output-dir", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    expected = json.loads((tmp_path / "straight" / "q5_2_mlp.json").read_text())
    got = json.loads((out / "q5_2_mlp.json").read_text())
    assert got["history"]["epoch"] == list(range(int(epochs) + 1))
    assert comparable(got) == comparable(expected)


def test_ctrl_c_saves_after_the_epoch_and_resume_continues(mnist_root, tmp_path):
    common_args = ("--epochs", "200", "--data-dir", str(mnist_root), *QUICK, "--output-dir", str(tmp_path))
    run = start_mlp(*common_args)
    wait_for(tmp_path / "q5_2_mlp.ckpt")
    run.send_signal(signal.SIGINT)
    _, stderr = run.communicate(timeout=120)
    assert run.returncode == 130, stderr
    assert "--resume" in stderr and "Traceback" not in stderr
    assert not (tmp_path / "q5_2_mlp.json").exists()
    changed = run_script("q5_2_mlp.py", *common_args, "--resume", "--lr", "0.05")
    assert changed.returncode == 1 and "other settings (lr: saved 0.1, now 0.05)" in changed.stderr


def test_resume_without_a_checkpoint_is_refused(mnist_root, tmp_path):
    done = run_script("q5_2_mlp.py", "--epochs", "2", "--data-dir", str(mnist_root), *QUICK,
                      "--output-dir", str(tmp_path), "--resume")
    assert done.returncode == 1 and "no checkpoint" in done.stderr and "Traceback" not in done.stderr


def test_diverging_single_model_stops_with_the_epoch_named(mnist_root, tmp_path):
    done = run_script("q5_2_mlp.py", "--epochs", "30", "--lr", "1e30", "--data-dir", str(mnist_root), *QUICK,
                      "--output-dir", str(tmp_path))
    assert done.returncode == 1
    assert "diverged at epoch" in done.stderr and "Traceback" not in done.stderr
    results = json.loads((tmp_path / "q5_2_mlp.json").read_text())
    assert results["status"].startswith("copies [0] diverged")
    assert results["epochs_completed"] == results["diverged_at_epoch"][0] < 30


@pytest.mark.parametrize("damage, message", [
    ("magic", "is not an MNIST IDX file"),
    ("truncate", "is truncated"),
    ("counts", "holds 100 images but"),
])
def test_damaged_data_is_one_message_and_no_results_file(damage, message, mnist_root, tmp_path):
    raw = mnist_root / "MNIST" / "raw"
    if damage == "magic":
        (raw / "t10k-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x01" + (raw / "t10k-images-idx3-ubyte").read_bytes()[4:])
    elif damage == "truncate":
        (raw / "train-images-idx3-ubyte").write_bytes((raw / "train-images-idx3-ubyte").read_bytes()[:5000])
    else:
        labels = raw / "train-labels-idx1-ubyte"
        labels.write_bytes(labels.read_bytes()[:4] + (99).to_bytes(4, "big") + labels.read_bytes()[8:-1])
    done = run_script("q5_2_mlp.py", "--epochs", "1", "--data-dir", str(mnist_root), *QUICK, "--output-dir", str(tmp_path / "out"))
    assert done.returncode == 1
    assert message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out" / "q5_2_mlp.json").exists()


def test_unwritable_output_folder_is_refused_before_training(mnist_root, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    done = run_script("q5_2_mlp.py", "--epochs", "1", "--data-dir", str(mnist_root), *QUICK,
                      "--output-dir", str(blocker / "out"))
    assert done.returncode == 1
    assert f"Cannot write to {blocker / 'out'}" in done.stderr and "Traceback" not in done.stderr
