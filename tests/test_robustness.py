"""Runs survive kills and Ctrl-C, and bad input gets one clear message."""
from __future__ import annotations

import errno
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import cli
import common
import plotting
import q5_2_mlp
import q5_3_flooding
from conftest import POSIX_SIGNALS, REPO_ROOT, run_script, says

QUICK = ("--subset", "64", "--batch-size", "16", "--offline", "--no-progress", "--checkpoint-every", "1")


def comparable(results: dict) -> dict:
    """What must be equal between two runs of the same settings: everything but timings."""
    return {"history": results["history"], "diverged_at_epoch": results["diverged_at_epoch"],
            "misclassified_val_digits": results["misclassified_val_digits"]}


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
    run.kill()
    run.wait()
    assert not (out / "q5_2_mlp.json").exists(), "the run finished before it could be killed"
    resumed = run_script("q5_2_mlp.py", *common_args, "--output-dir", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    expected = json.loads((tmp_path / "straight" / "q5_2_mlp.json").read_text())
    got = json.loads((out / "q5_2_mlp.json").read_text())
    assert got["history"]["epoch"] == list(range(int(epochs) + 1))
    assert comparable(got) == comparable(expected)


@POSIX_SIGNALS
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
    assert changed.returncode == 1 and "other settings (saved vs now: --lr 0.1 vs 0.05)" in changed.stderr


STOP_SIGNALS = [sig for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)) if sig is not None]


@POSIX_SIGNALS
@pytest.mark.parametrize("stop", STOP_SIGNALS, ids=lambda sig: sig.name)
def test_a_two_rate_sweep_stopped_by_a_signal_resumes_and_goes_on(stop, mnist_root, tmp_path):
    """SIGTERM (a scheduler, `timeout`) and SIGHUP (a closed terminal) stop a run at once, saving its
    last finished epoch; --resume continues the first rate and then trains the second, ending where an
    uninterrupted run ends, bit for bit."""
    flags = ["--lrs", "0.1,0.01", "--flood-levels", "0,0.05", "--seeds", "1", "--epochs", "30",
             "--data-dir", str(mnist_root), *QUICK]
    out = tmp_path / "stopped"
    run = subprocess.Popen([sys.executable, str(REPO_ROOT / "codes" / "q5_3_flooding.py"), *flags, "--output-dir", str(out)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(out / "q5_3_flooding_lr0.1.ckpt")
    run.send_signal(stop)
    _, stderr = run.communicate(timeout=60)
    assert run.returncode == 130, stderr
    assert says(stderr, stop.name, "--resume")
    assert "Traceback" not in stderr
    assert not (out / "q5_3_flooding_lr0.1.json").exists() and not (out / "q5_3_flooding_lr0.01.ckpt").exists()
    saved_epoch = torch.load(out / "q5_3_flooding_lr0.1.ckpt", weights_only=True)["record"]["history"]["epoch"][-1]
    assert f"after epoch {saved_epoch}" in stderr  # the epoch in progress, and no more, is lost

    assert q5_3_flooding.main([*flags, "--output-dir", str(out), "--resume"]) == 0
    assert q5_3_flooding.main([*flags, "--output-dir", str(tmp_path / "straight")]) == 0
    for name in ("q5_3_flooding_lr0.1.json", "q5_3_flooding_lr0.01.json"):
        resumed = json.loads((out / name).read_text())
        straight = json.loads((tmp_path / "straight" / name).read_text())
        assert resumed["history"]["epoch"] == list(range(31))
        assert resumed["history"] == straight["history"], name


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


class FillingFile:
    """A file on a disk with `room` bytes left: writes beyond them fail as on a full disk."""

    def __init__(self, file, room: int):
        self.file, self.room = file, room

    def write(self, data) -> int:
        self.room -= len(data)
        if self.room < 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self.file.write(data)

    def __getattr__(self, name):
        return getattr(self.file, name)

    def __enter__(self):
        return self

    def __exit__(self, *error):
        self.file.close()


def full_disk(monkeypatch, room: int = 2000) -> None:
    """Every file the atomic writer opens fills up after `room` bytes."""
    open_file = os.fdopen
    monkeypatch.setattr(os, "fdopen", lambda fd, mode: FillingFile(open_file(fd, mode), room))


def test_a_full_disk_while_saving_a_checkpoint_says_so(mnist_root, tmp_path, monkeypatch):
    full_disk(monkeypatch)
    with pytest.raises(common.UserError, match=r"cannot write .*q5_2_mlp.ckpt \(No space left on device\)"):
        q5_2_mlp.main(["--epochs", "1", "--data-dir", str(mnist_root), *QUICK, "--output-dir", str(tmp_path)])
    assert list(tmp_path.glob(".*.tmp")) == []


def crafted(state: dict, damage: str) -> dict:
    """A checkpoint with the right keys and wrong contents."""
    record, trainer = state["record"], state["trainer"]
    if damage == "no epochs":
        record["history"]["epoch"] = []
    elif damage == "epochs as text":
        state["epochs"] = "3"
    elif damage == "a history key missing":
        del record["history"]["weight_norm"]
    elif damage == "a short history":
        record["history"]["val_loss"].pop()
    elif damage == "no parameters":
        trainer["parameters"], trainer["momentum"] = [], []
    elif damage == "a parameter of another shape":
        trainer["parameters"][0] = trainer["parameters"][0][:, :1]
    elif damage == "divergence as text":
        record["diverged_at_epoch"] = "none"
    elif damage == "two copies":
        record["diverged_at_epoch"] = [None, None]
    return state


@pytest.mark.parametrize("damage", ["no epochs", "epochs as text", "a history key missing", "a short history",
                                    "no parameters", "a parameter of another shape", "divergence as text", "two copies"])
def test_a_crafted_checkpoint_is_one_message(damage, mnist_root, tmp_path):
    flags = ["--data-dir", str(mnist_root), *QUICK, "--output-dir", str(tmp_path)]
    assert q5_2_mlp.main(["--epochs", "1", *flags]) == 0
    checkpoint = tmp_path / "q5_2_mlp.ckpt"
    torch.save(crafted(torch.load(checkpoint, weights_only=True), damage), checkpoint)
    with pytest.raises(common.UserError, match="(is not a readable checkpoint|does not hold the state) of this"):
        q5_2_mlp.main(["--epochs", "2", "--resume", *flags])


@pytest.fixture
def finished_mlp_run(mnist_root, tmp_path) -> Path:
    """The output folder of a one-epoch Q5.2 run."""
    out = tmp_path / "out"
    assert q5_2_mlp.main(["--epochs", "1", "--data-dir", str(mnist_root), *QUICK, "--output-dir", str(out)]) == 0
    return out


def test_a_read_only_figure_is_left_alone_with_one_message(finished_mlp_run):
    figure = finished_mlp_run / "figures" / "q5_2_loss.png"
    before = figure.read_bytes()
    figure.chmod(0o444)
    with pytest.raises(common.UserError, match="q5_2_loss.png is read-only"):
        q5_2_mlp.main(["--plot-only", "--output-dir", str(finished_mlp_run)])
    assert figure.read_bytes() == before


def test_a_full_disk_while_saving_a_figure_leaves_the_old_one(finished_mlp_run, monkeypatch):
    figure = finished_mlp_run / "figures" / "q5_2_error.png"
    before = figure.read_bytes()
    full_disk(monkeypatch)
    fig, _ = plotting.plt.subplots()
    with pytest.raises(common.UserError, match=r"cannot write .*q5_2_error.png \(No space left on device\)"):
        plotting.save(fig, figure)
    assert figure.read_bytes() == before and list(figure.parent.glob(".*.tmp")) == []


def test_an_unknown_matplotlib_backend_plays_no_part(finished_mlp_run):
    """The figures are files only, drawn with Agg whatever MPLBACKEND names (matplotlib's import fails on a
    name it does not know)."""
    out = shutil.copytree(finished_mlp_run, finished_mlp_run.with_name("copy"))  # one this process does not hold
    figure = out / "figures" / "q5_2_error.png"
    drawn_here = figure.read_bytes()
    figure.unlink()
    done = subprocess.run([sys.executable, str(REPO_ROOT / "codes" / "q5_2_mlp.py"), "--plot-only", "--output-dir", str(out)],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "MPLBACKEND": "nonsense"})
    assert done.returncode == 0, done.stderr
    assert figure.read_bytes() == drawn_here  # the same figure as this process drew


def edited(results: dict, edit: str) -> str:
    """A results file's text with one value replaced as a hand edit or another program might."""
    history = results["history"]
    if edit == "a string in the last epoch":
        history["val_error"][-1][0] = "0.5%"
    elif edit == "a string in an earlier epoch":
        history["train_loss"][0][0] = "2.3"
    elif edit == "null in the last epoch":
        history["test_error"][-1][0] = None
    elif edit == "a learning rate as text":
        results["config"]["lr"] = "0.1"
    elif edit == "a short history":
        history["val_loss"].pop()
    elif edit == "NaN in the last epoch":  # Python's json writes a float NaN as NaN, and reads it back
        history["val_loss"][-1][0] = float("nan")
    return json.dumps(results)


@pytest.mark.parametrize("edit, where", [
    ("a string in the last epoch", "'0.5%' in history/val_error at epoch 1"),
    ("a string in an earlier epoch", "'2.3' in history/train_loss at epoch 0"),
    ("null in the last epoch", "None in history/test_error at epoch 1"),
    ("NaN in the last epoch", "nan in history/val_loss at epoch 1"),
    ("a learning rate as text", "'0.1' in config/lr"),
    ("a short history", "history/val_loss that is not one list of 1 numbers per epoch"),
])
def test_a_results_file_without_a_number_where_the_report_reads_one_is_refused(edit, where, finished_mlp_run):
    path = finished_mlp_run / "q5_2_mlp.json"
    path.write_text(edited(json.loads(path.read_text()), edit))
    snippet = (finished_mlp_run / "generated" / "q5_2.tex").read_bytes()
    with pytest.raises(common.UserError, match=re.escape(f"{path} holds {where}")):
        q5_2_mlp.main(["--plot-only", "--output-dir", str(finished_mlp_run)])
    assert (finished_mlp_run / "generated" / "q5_2.tex").read_bytes() == snippet


def test_a_folder_where_the_results_file_belongs_is_one_message(mnist_root, tmp_path):
    (tmp_path / "q5_2_mlp.json").mkdir()
    with pytest.raises(common.UserError, match="q5_2_mlp.json is a folder"):
        q5_2_mlp.main(["--epochs", "1", "--data-dir", str(mnist_root), *QUICK, "--output-dir", str(tmp_path)])
    assert not (tmp_path / "q5_2_mlp.ckpt").exists()  # refused before training
    with pytest.raises(common.UserError, match="q5_2_mlp.json cannot be read"):
        q5_2_mlp.main(["--plot-only", "--output-dir", str(tmp_path)])


def test_a_path_the_output_encoding_cannot_show_is_escaped_not_a_traceback(tmp_path, monkeypatch):
    """Printed to a file or pipe in a Windows code page (cp1252), a non-ASCII folder must not end the run."""
    folder = tmp_path / "作业 ü"
    folder.mkdir()
    shutil.copy(cli.RESULTS_DIR / "q5_2_mlp.json", folder)
    printed = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(printed, encoding="cp1252"))
    with pytest.raises(SystemExit) as ended:
        cli.run_main(lambda: q5_2_mlp.main(["--plot-only", "--output-dir", str(folder)]))
    sys.stdout.flush()
    assert ended.value.code == 0 and (folder / "figures" / "q5_2_error.png").exists()
    assert f"figure: {folder}".encode("cp1252", errors="backslashreplace") in printed.getvalue()
