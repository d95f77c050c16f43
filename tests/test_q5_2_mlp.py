"""q5_2_mlp.py end to end on synthetic IDX files, and its answers to bad input."""
from __future__ import annotations

import json

import pytest
import torch

import cli
import common
import latex
import conftest
import q5_2_mlp


def run_script(*args: str):
    return conftest.run_script("q5_2_mlp.py", *args)


def curve(panel: dict, label_start: str) -> tuple[list, list]:
    """The (epochs, values) of the one curve whose label starts with `label_start`."""
    [data] = [data for label, data in panel["curves"].items() if label.startswith(label_start)]
    return data


def test_quick_run_writes_results_and_both_figures(mnist_root, tmp_path, drawn):
    out = tmp_path / "out"
    done = run_script("--epochs", "2", "--subset", "64", "--batch-size", "16", "--data-dir", str(mnist_root), "--offline",
                      "--output-dir", str(out), "--no-progress")
    assert done.returncode == 0, done.stderr
    results = json.loads((out / "q5_2_mlp.json").read_text())
    assert results["settings_changed"] == ["epochs 2", "batch-size 16", "subset 64"]
    assert results["question"] == "Q5.2"
    assert results["model"]["parameters"] == 784 * 500 + 500 + 500 * 10 + 10
    assert results["history"]["epoch"] == [0, 1, 2]
    assert results["split_sizes"] == {"train": 64, "val": 20, "test": 30}
    assert results["config"]["lr"] == 0.1 and results["config"]["momentum"] == 0.9
    assert results["config"]["tf32"] is False  # --tf32 is the default, but a CPU has none: what the run did
    assert {"torch", "device_name"} <= set(results["environment"])
    # the figures show the recorded history, each epoch, and say that this is not the assignment's run
    history = results["history"]
    column = lambda key: [row[0] for row in history[key]]
    error, loss = drawn["q5_2_error.png"], drawn["q5_2_loss.png"]
    for figure in (error, loss):
        assert "NOT THE ASSIGNMENT'S RUN" in figure["title"] and "subset 64" in figure["title"]
        assert all(panel["xlabel"] == "epoch" for panel in figure["panels"][:3])
    errors, losses = error["panels"][0], loss["panels"][0]
    assert "error" in errors["ylabel"] and "entropy" in losses["ylabel"] and losses["yscale"] == "log"
    assert curve(errors, "training") == (history["epoch"], column("train_error"))
    assert curve(errors, "validation") == (history["epoch"], column("val_error"))
    assert curve(losses, "training") == (history["epoch"], column("train_loss"))
    assert curve(losses, "validation") == (history["epoch"], column("val_loss"))
    snippet = (out / "generated" / "q5_2.tex").read_text()
    final_val = results["history"]["val_error"][-1][0]
    assert f"\\newcommand{{\\QFiveTwoValError}}{{{final_val:.3f}}}" in snippet

    # --plot-only redraws a lost figure from the results file, byte for byte
    figure = out / "figures" / "q5_2_error.png"
    before = figure.read_bytes()
    figure.unlink()
    redraw = run_script("--plot-only", "--output-dir", str(out))
    assert redraw.returncode == 0, redraw.stderr
    assert figure.read_bytes() == before


@pytest.mark.parametrize("flag, value", [("--epochs", "0"), ("--epochs", "-3"), ("--lr", "0"), ("--batch-size", "0")])
def test_invalid_flag_is_refused(flag, value, tmp_path):
    done = run_script(flag, value, "--output-dir", str(tmp_path))
    assert done.returncode == 2
    assert flag in done.stderr and "Traceback" not in done.stderr
    assert not list(tmp_path.iterdir())


def test_missing_data_is_one_clear_message(tmp_path):
    done = run_script("--epochs", "1", "--data-dir", str(tmp_path / "empty"), "--offline", "--output-dir", str(tmp_path / "out"))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    raw = tmp_path / "empty" / "MNIST" / "raw"
    assert str(raw) in done.stderr and "train-images-idx3-ubyte" in done.stderr and "--data-dir" in done.stderr
    assert not (tmp_path / "out" / "q5_2_mlp.json").exists()


def test_subset_larger_than_the_training_split_is_refused(mnist_root, tmp_path):
    done = run_script("--epochs", "1", "--subset", "81", "--data-dir", str(mnist_root), "--offline",
                      "--output-dir", str(tmp_path / "out"))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert all(part in done.stderr for part in ("--subset", "80", "81"))  # the flag, the 80 training images, the 81 asked
    assert not (tmp_path / "out" / "q5_2_mlp.json").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_refused(mnist_root, tmp_path):
    done = run_script("--epochs", "1", "--device", "cuda", "--data-dir", str(mnist_root), "--offline",
                      "--output-dir", str(tmp_path / "out"))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "CUDA" in done.stderr and "--device cpu" in done.stderr


def test_plot_only_without_results_says_so(tmp_path):
    done = run_script("--plot-only", "--output-dir", str(tmp_path))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert str(tmp_path / "q5_2_mlp.json") in done.stderr and "without --plot-only" in done.stderr


@pytest.fixture
def matmul():
    """PyTorch's matrix-product settings, TF32 restored after the test."""
    before = torch.backends.cuda.matmul.allow_tf32
    yield torch.backends.cuda.matmul
    torch.backends.cuda.matmul.allow_tf32 = before


@pytest.mark.parametrize("cuda", [False, True])
@pytest.mark.parametrize("choice", ["auto", "cpu", "cuda"])
@pytest.mark.parametrize("tf32", [False, True])
def test_tf32_is_used_only_on_a_cuda_device_and_only_when_asked(choice, cuda, tf32, monkeypatch, matmul):
    """The device --device names and whether its matrix products use TF32, with and without a GPU present:
    a CPU never has TF32, whatever --tf32 says. A lookup leaves PyTorch's TF32 setting as it was."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    matmul.allow_tf32 = not tf32
    if choice == "cuda" and not cuda:
        with pytest.raises(common.UserError, match="--device cpu"):
            cli.training_device(choice, tf32)
        return
    device, used = cli.training_device(choice, tf32)
    expected = "cpu" if choice == "cpu" or not cuda else "cuda"
    assert device == torch.device(expected)
    assert used == (tf32 and expected == "cuda")
    assert matmul.allow_tf32 == (not tf32)


def test_a_run_sets_tf32_as_it_starts(mnist_root, tmp_path, monkeypatch, matmul):
    """TF32 is set where the run starts, to what the run records (a GPU with --tf32 stood in for)."""
    monkeypatch.setattr(cli, "training_device", lambda choice, tf32: (torch.device("cpu"), True))
    matmul.allow_tf32 = False
    assert q5_2_mlp.main(["--epochs", "1", "--subset", "64", "--batch-size", "16", "--data-dir", str(mnist_root),
                          "--offline", "--no-progress", "--output-dir", str(tmp_path)]) == 0
    assert matmul.allow_tf32 is True
    assert json.loads((tmp_path / "q5_2_mlp.json").read_text())["config"]["tf32"] is True


def test_seconds_are_written_with_three_significant_digits():
    texts = [latex.seconds_text(s) for s in (0.00492, 0.0439, 0.135, 2.98, 12.65, 1180.4, 0.0)]
    assert texts == ["0.00492", "0.0439", "0.135", "2.98", "12.7", "1180", "0"]


def test_a_run_at_other_settings_is_continued_to_more_epochs_in_its_folder(mnist_root, tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "RUNS_DIR", tmp_path / "runs")
    flags = ["--subset", "64", "--batch-size", "16", "--data-dir", str(mnist_root), "--offline", "--no-progress"]
    assert q5_2_mlp.main(["--epochs", "1", *flags]) == 0
    [folder] = (tmp_path / "runs").iterdir()
    assert folder.name.startswith("q5_2_mlp-epochs1_batch-size16_subset64-")
    # the folder holds its epochs: a resume to more epochs names it (the message lists it)
    with pytest.raises(common.UserError) as refused:
        q5_2_mlp.main(["--epochs", "3", "--resume", *flags])
    assert conftest.says(str(refused.value), "--output-dir", "--resume", str(tmp_path / "runs"), folder.name)
    assert q5_2_mlp.main(["--epochs", "3", "--resume", "--output-dir", str(folder), *flags]) == 0
    results = json.loads((folder / "q5_2_mlp.json").read_text())
    assert results["epochs_completed"] == 3 and results["settings_changed"] == ["epochs 3", "batch-size 16", "subset 64"]


def test_the_assignments_run_on_other_files_leaves_the_committed_results_alone(mnist_root):
    committed = {p: p.read_bytes() for p in (cli.RESULTS_DIR / "q5_2_mlp.json", *cli.FIGURES_DIR.glob("q5_2*"),
                                             *cli.GENERATED_DIR.glob("q5_2*"))}
    with pytest.raises(common.DataError, match="not the original MNIST file"):
        q5_2_mlp.main(["--data-dir", str(mnist_root), "--offline", "--no-progress"])
    assert {p: p.read_bytes() for p in committed} == committed


@pytest.mark.parametrize("edit", [
    lambda run: run.pop("model"), lambda run: run.pop("seconds"), lambda run: run.pop("environment"),
    lambda run: run.pop("epochs_completed"), lambda run: run["model"].update(parameters="397510"),
    lambda run: run["seconds"].update(train_per_epoch=0), lambda run: run.update(question="Q5.5"),
], ids=["no model", "no seconds", "no environment", "no epochs_completed", "parameters as text", "no training time",
        "a CNN file"])
def test_a_hand_edited_results_file_is_one_message_and_nothing_is_drawn(tmp_path, edit):
    run = json.loads((cli.RESULTS_DIR / "q5_2_mlp.json").read_text())
    edit(run)
    (tmp_path / "q5_2_mlp.json").write_text(json.dumps(run))
    done = conftest.run_script("q5_2_mlp.py", "--plot-only", "--output-dir", str(tmp_path))
    assert done.returncode == 1 and str(tmp_path / "q5_2_mlp.json") in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "generated").exists() or not any((tmp_path / "generated").iterdir())
    assert not (tmp_path / "figures").exists() or not any((tmp_path / "figures").iterdir())
