"""The Q5.5 learning-rate check: collapse detection and the choice by hand, and the script end to end."""
from __future__ import annotations

import json

import pytest

import common
from conftest import run_script
from q5_5_cnn import LEARNING_RATE, parse_args
from q5_5_step_size import chosen_lr, finding, summary

CONFIG = {"epochs": 4, "seed": 0, "split_seed": 0, "subset": None, "batch_size": 128, "momentum": 0.9, "tf32": False}


def run(lr: float, train_loss: list[float], train_error: list[float], val_error: list[float], **config) -> dict:
    """A results record with the fields the check reads; loss and error over epochs 0..4."""
    history = {"epoch": list(range(len(train_loss))), "train_loss": [[v] for v in train_loss],
               "train_error": [[v] for v in train_error], "val_error": [[v] for v in val_error]}
    for key in ("val_loss", "test_loss", "test_error"):
        history[key] = [[1.0]] * len(train_loss)
    return {"config": {**CONFIG, "lr": lr, **config}, "history": history, "epochs_completed": len(train_loss) - 1}


COLLAPSING = run(0.1, [2.3, 0.4, 0.2, 9.0, 2.31], [90.0, 5.0, 2.0, 88.0, 88.8], [90.0, 5.5, 2.5, 88.0, 88.7])
STEADY = run(0.01, [2.3, 0.6, 0.3, 0.2, 0.1], [90.0, 8.0, 1.0, 0.0, 0.0], [90.0, 8.5, 2.0, 1.5, 1.25])


def test_collapse_is_the_first_epoch_worse_than_before_training():
    assert common.collapse_epoch(COLLAPSING) == 3  # 9.0 > 2.3; epoch 0 itself never counts
    assert common.collapse_epoch(STEADY) is None


def test_findings_and_choice_by_hand():
    assert finding(summary(COLLAPSING)) == (
        "At lr 0.1 the training loss is lowest at epoch 2 (0.2000); at epoch 3 it rises above its value before "
        "training, and the network ends at 88.80\\,\\% training and 88.70\\,\\% validation error, although its "
        "validation error was 2.50\\,\\% at epoch 2.")
    assert finding(summary(STEADY)).endswith("its training error reaches zero at epoch 3, and its final validation "
                                             "error is 1.25\\,\\%.")
    assert chosen_lr([summary(COLLAPSING), summary(STEADY)]) == 0.01
    # the committed default is the rate this check chooses
    assert parse_args([]).lr == LEARNING_RATE == 0.01


def write_runs(folder, *runs) -> None:
    for i, record in enumerate(runs):
        (folder / f"run{i}").mkdir(parents=True)
        (folder / f"run{i}" / "q5_5_cnn.json").write_text(json.dumps(record))


def test_script_writes_figure_and_snippet(tmp_path):
    write_runs(tmp_path / "runs", STEADY, COLLAPSING)
    done = run_script("q5_5_step_size.py", "--runs-dir", str(tmp_path / "runs"),
                      "--figures-dir", str(tmp_path / "figures"), "--generated-dir", str(tmp_path / "generated"))
    assert done.returncode == 0, done.stderr
    snippet = (tmp_path / "generated" / "q5_5_step_size.tex").read_text()
    assert "\\newcommand{\\QFiveFiveStepSizeChosen}{0.01}" in snippet
    assert "\\newcommand{\\QFiveFiveStepSizeRates}{0.1, 0.01}" in snippet  # largest rate first
    assert (tmp_path / "figures" / "q5_5_step_size.png").stat().st_size > 10_000


@pytest.mark.parametrize("runs, message", [
    ((STEADY,), "needs at least two runs"),
    ((run(0.01, [2.3, 1, 1, 1, 1], [90.0, 9, 9, 9, 9], [90.0, 9, 9, 9, 9]), run(0.1, [2.3, 1, 1, 1, 1], [90.0, 9, 9, 9, 1], [90.0, 9, 9, 9, 1])),
     "the check chooses lr 0.1, but codes/q5_5_cnn.py trains the CNN at 0.01"),
    ((STEADY, run(0.1, [2.3] * 5, [90.0] * 5, [90.0] * 5, momentum=0.5)), "differ in more than the learning rate: --momentum 0.9 vs 0.5"),
])
def test_unpaired_or_missing_runs_are_refused(tmp_path, runs, message):
    write_runs(tmp_path / "runs", *runs)
    done = run_script("q5_5_step_size.py", "--runs-dir", str(tmp_path / "runs"),
                      "--figures-dir", str(tmp_path / "figures"), "--generated-dir", str(tmp_path / "generated"))
    assert done.returncode == 1 and message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "generated").exists()
