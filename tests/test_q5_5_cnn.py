"""The Q5.5 CNN: its shape and size by hand, the learning-rate check's collapse detection and choice
by hand, and the script end to end (alone, beside Q5.2's run, and the check)."""
from __future__ import annotations

import json

import pytest
import torch

import cli
import common
import q5_5_cnn
import runs
from conftest import run_script, synthetic_digits
from q5_5_cnn import (LEARNING_RATE, check_snippet, check_summary, chosen_lr, cnn, comparison_snippet,
                      late_training_error, make_parser, mcnemar_p_value, settling_window)


def test_cnn_output_shape_and_parameter_count():
    assert cnn()(torch.zeros(5, 1, 28, 28)).shape == (5, 10)
    conv1 = 16 * 1 * 5 * 5 + 16
    conv2 = 32 * 16 * 5 * 5 + 32
    linear = 32 * 7 * 7 * 10 + 10
    assert common.parameter_count(cnn()) == conv1 + conv2 + linear == 28_938
    assert common.parameter_count(common.mlp()) == 784 * 500 + 500 + 500 * 10 + 10 == 397_510


def test_multiply_adds_match_a_hand_count():
    # conv1: 16 maps of 28x28, each value a 1x5x5 dot product; conv2: 32 maps of 14x14 over 16x5x5
    by_hand = 16 * 28 * 28 * 25 + 32 * 14 * 14 * 16 * 25 + 32 * 7 * 7 * 10
    assert q5_5_cnn.multiply_adds_per_image(cnn()) == by_hand == 2_838_080
    assert q5_5_cnn.multiply_adds_per_image(common.mlp()) == 784 * 500 + 500 * 10


def test_the_late_training_error_is_read_over_the_last_fifth_of_the_shorter_run():
    run = lambda errors: {"history": {"train_error": [[50.0]] + [[e] for e in errors]}}  # epoch 0 first
    longer = run([0.0] * 17 + [3.0, 0.0, 0.0])  # 20 epochs: non-zero 3 epochs before the end
    shorter = run([0.0] * 10)
    assert settling_window(longer, shorter) == 2 and settling_window(longer, run([0.0] * 15)) == 3
    assert late_training_error(longer, 2) == (0.0, 0.0) and late_training_error(longer, 3) == (0.0, 3.0)
    assert late_training_error(run([0.0] * 7 + [2.0, 0.5, 1.25]), 2) == (0.5, 1.25)
    assert settling_window(run([1.0] * 3), run([1.0] * 4)) == 1  # at least the last epoch


def test_mcnemar_p_value_by_hand():
    assert mcnemar_p_value(3, 0) == 2 * 1 / 2**3  # both tails of 3 fair coins all landing one way
    assert mcnemar_p_value(1, 10) == 2 * (1 + 11) / 2**11  # P(X <= 1) = (C(11,0) + C(11,1)) / 2^11, doubled
    assert mcnemar_p_value(2, 2) == 1.0  # an even split: the doubled tail exceeds 1


def test_quick_run_writes_results_figures_and_snippet(mnist_root, tmp_path):
    out = tmp_path / "out"
    quick = ("--epochs", "1", "--subset", "64", "--batch-size", "16", "--data-dir", str(mnist_root), "--offline",
             "--output-dir", str(out), "--no-progress")
    alone = run_script("q5_5_cnn.py", *quick, "--output-dir", str(tmp_path / "alone"))
    assert alone.returncode == 0 and "no Q5.2 results" in alone.stdout, alone.stderr
    assert (tmp_path / "alone" / "figures" / "q5_5_cnn_vs_mlp.png").exists()
    assert not (tmp_path / "alone" / "figures" / "q5_5_disagreements.png").exists()
    assert "disagreements" not in json.loads((tmp_path / "alone" / "q5_5_cnn.json").read_text())
    assert run_script("q5_2_mlp.py", *quick).returncode == 0
    done = run_script("q5_5_cnn.py", *quick)
    assert done.returncode == 0, done.stderr
    results = json.loads((out / "q5_5_cnn.json").read_text())
    assert results["model"]["parameters"] == 28_938
    assert len(results["final_val_predictions"]) == 20
    found = results["disagreements"]
    mlp = json.loads((out / "q5_2_mlp.json").read_text())["final_val_predictions"]
    cnn_predictions = results["final_val_predictions"]
    for example in found["cnn_right_mlp_wrong_examples"]:
        i = example["val_index"]
        assert cnn_predictions[i] == example["label"] != mlp[i]
    mlp_test = json.loads((out / "q5_2_mlp.json").read_text())["final_test_predictions"]
    cnn_test = results["final_test_predictions"]
    labels = [int(x) for x in synthetic_digits(30, seed=2)[1]]  # conftest's test split
    assert results["test_disagreements"]["cnn_right_mlp_wrong"] == sum(
        c == y != m for c, m, y in zip(cnn_test, mlp_test, labels))
    for name in ("q5_5_cnn_vs_mlp.png", "q5_5_disagreements.png"):
        assert (out / "figures" / name).stat().st_size > 10_000
    snippet = (out / "generated" / "q5_5.tex").read_text()
    assert "28,938" in snippet and "397,510" in snippet and "\\begin{tabular}" in snippet
    assert "\\newcommand{\\QFiveFiveParameterRatio}{13.7}" in snippet  # 397,510 / 28,938 = 13.74
    final_val_error = results["history"]["val_error"][-1][0]
    assert f"\\newcommand{{\\QFiveFiveCnnValError}}{{{final_val_error:.2f}}}" in snippet
    assert "\\newcommand{\\QFiveFiveEpochs}{1}" in snippet and "\\newcommand{\\QFiveFiveMcNemarSplit}{test}" in snippet
    mlp_results = json.loads((out / "q5_2_mlp.json").read_text())
    longer_mlp = {**mlp_results, "epochs_completed": 3}  # a comparison of unequal runs names both lengths
    longer_snippet = comparison_snippet(results, longer_mlp)
    assert "\\newcommand{\\QFiveFiveMlpEpochs}{3}" in longer_snippet and "\\newcommand{\\QFiveFiveEpochs}{1}" in longer_snippet

    mismatch = run_script("q5_5_cnn.py", *quick[:-1], "--split-seed", "1", "--no-progress")
    assert mismatch.returncode == 1 and "--split-seed" in mismatch.stderr and "Traceback" not in mismatch.stderr

    # Q5.2 rerun (another seed, other predictions): the saved comparison is refused until it is made anew
    assert run_script("q5_2_mlp.py", *quick, "--seed", "1").returncode == 0
    stale = run_script("q5_5_cnn.py", *quick, "--plot-only")
    assert stale.returncode == 1 and "--compare" in stale.stderr and "Traceback" not in stale.stderr
    anew = run_script("q5_5_cnn.py", *quick, "--compare")
    assert anew.returncode == 0, anew.stderr
    compared = json.loads((out / "q5_5_cnn.json").read_text())
    rerun = json.loads((out / "q5_2_mlp.json").read_text())
    assert compared["history"] == results["history"]  # no training
    assert compared["compared_with"] == q5_5_cnn.predictions_fingerprint(rerun) != results["compared_with"]
    assert compared["test_disagreements"]["mlp_right_cnn_wrong"] == sum(
        m == y != c for c, m, y in zip(cnn_test, rerun["final_test_predictions"], labels))
    assert run_script("q5_5_cnn.py", *quick, "--plot-only").returncode == 0


CONFIG = {"epochs": 4, "seed": 0, "split_seed": 0, "subset": None, "batch_size": 128, "momentum": 0.9, "tf32": False}


def check_run(lr: float, train_loss: list[float], train_error: list[float], val_error: list[float], **config) -> dict:
    """A results record with the fields the learning-rate check reads; loss and error over epochs 0..4."""
    history = {"epoch": list(range(len(train_loss))), "train_loss": [[v] for v in train_loss],
               "train_error": [[v] for v in train_error], "val_error": [[v] for v in val_error]}
    for key in ("val_loss", "test_loss", "test_error"):
        history[key] = [[1.0]] * len(train_loss)
    return {"config": {**CONFIG, "lr": lr, **config}, "history": history, "epochs_completed": len(train_loss) - 1,
            "diverged_at_epoch": [None], "copies": [{"init_seed": 0, "flood_level": 0.0}]}


COLLAPSING = check_run(0.1, [2.3, 0.4, 0.2, 9.0, 2.31], [90.0, 5.0, 2.0, 88.0, 88.8], [90.0, 5.5, 2.5, 88.0, 88.7])
STEADY = check_run(0.01, [2.3, 0.6, 0.3, 0.2, 0.1], [90.0, 8.0, 1.0, 0.0, 0.0], [90.0, 8.5, 2.0, 1.5, 1.25])


def test_collapse_is_the_first_epoch_worse_than_before_training():
    assert runs.collapse_epoch(COLLAPSING) == 3  # 9.0 > 2.3; epoch 0 itself never counts
    assert runs.collapse_epoch(STEADY) is None


def test_check_numbers_and_choice_by_hand():
    high, low = check_summary(COLLAPSING), check_summary(STEADY)
    assert (high["lowest_train_loss_epoch"], high["lowest_train_loss"], high["collapse_epoch"]) == (2, 0.2, 3)
    assert (high["final"]["best_val_error"], high["final"]["best_val_epoch"]) == (2.5, 2)
    assert low["collapse_epoch"] is None and low["final"]["zero_train_error_epoch"] == 3
    assert chosen_lr([high, low]) == 0.01
    snippet = check_snippet([high, low], 4)
    for macro in ("CheckHighCollapseEpoch}{3}", "CheckHighFinalTrainError}{88.80}", "CheckHighBestValError}{2.50}",
                  "CheckLowCollapseEpoch}{--}", "CheckLowZeroTrainErrorEpoch}{3}", "CheckLowFinalValError}{1.25}",
                  "StepSizeChosen}{0.01}"):
        assert f"\\newcommand{{\\QFiveFive{macro}" in snippet
    assert make_parser().parse_args([]).lr == LEARNING_RATE == 0.01  # the committed default is the rate the check chooses


def redraw_check(folder, *check_runs):
    for record in check_runs:
        (folder / f"q5_5_lr_check_lr{record['config']['lr']:g}.json").parent.mkdir(parents=True, exist_ok=True)
        (folder / f"q5_5_lr_check_lr{record['config']['lr']:g}.json").write_text(json.dumps(record))
    return run_script("q5_5_cnn.py", "--lrs", "0.1,0.01", "--plot-only", "--output-dir", str(folder))


def test_check_redraws_figure_and_snippet(tmp_path):
    done = redraw_check(tmp_path, STEADY, COLLAPSING)
    assert done.returncode == 0, done.stderr
    snippet = (tmp_path / "generated" / "q5_5_step_size.tex").read_text()
    assert "\\newcommand{\\QFiveFiveStepSizeChosen}{0.01}" in snippet
    assert "\\newcommand{\\QFiveFiveStepSizeRates}{0.1, 0.01}" in snippet  # largest rate first
    assert (tmp_path / "figures" / "q5_5_step_size.png").stat().st_size > 10_000


@pytest.mark.parametrize("check_runs, message", [
    ((STEADY,), "needs at least two runs"),
    ((STEADY, check_run(0.1, [2.3] * 5, [90.0] * 5, [90.0] * 5, momentum=0.5)),
     "differ in more than the learning rate: --momentum 0.9 vs 0.5"),
])
def test_unpaired_or_missing_check_runs_are_refused(tmp_path, check_runs, message):
    done = redraw_check(tmp_path, *check_runs)
    assert done.returncode == 1 and message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "generated" / "q5_5_step_size.tex").exists()


def test_the_committed_check_must_choose_the_rate_the_cnn_is_trained_at(tmp_path, monkeypatch):
    other = (check_run(0.01, [2.3, 1, 1, 1, 1], [90.0, 9, 9, 9, 9], [90.0, 9, 9, 9, 9]),
             check_run(0.1, [2.3, 1, 1, 1, 1], [90.0, 9, 9, 9, 1], [90.0, 9, 9, 9, 1]))
    noted = redraw_check(tmp_path, *other)  # a run of its own folder: a note
    assert noted.returncode == 0 and "note: the check chooses lr 0.1, but codes/q5_5_cnn.py trains the CNN at 0.01" in noted.stdout
    # the committed check (results/q5_5_lr_check_lr*.json) against a CNN trained at another rate: refused
    monkeypatch.setattr(q5_5_cnn, "LEARNING_RATE", 0.1)
    committed = cli.output_paths("q5_5_cnn", {}, {}, None)
    with pytest.raises(common.UserError, match="the check chooses lr 0.01, but codes/q5_5_cnn.py trains the CNN at 0.1"):
        q5_5_cnn.draw_check(committed)


def test_check_trains_one_run_per_rate(mnist_root, tmp_path):
    out = tmp_path / "out"
    # a rate 100 times smaller learns less in one epoch (ties go to the larger rate): 0.01 is chosen
    done = run_script("q5_5_cnn.py", "--lrs", "0.01,0.0001", "--epochs", "1", "--batch-size", "16", "--data-dir",
                      str(mnist_root), "--offline", "--output-dir", str(out), "--no-progress")
    assert done.returncode == 0, done.stderr
    assert (out / "figures" / "q5_5_step_size.png").exists()
    for lr in (0.01, 0.0001):
        record = json.loads((out / f"q5_5_lr_check_lr{lr:g}.json").read_text())
        assert record["config"]["lr"] == lr and record["epochs_completed"] == 1


def test_the_committed_comparison_is_made_only_with_the_assignments_q5_2_run(tmp_path):
    committed = cli.RESULTS_DIR / "q5_2_mlp.json"
    same_split = {"split_seed": 0, "subset": None}
    assert q5_5_cnn.load_mlp_results(committed, same_split, assignment_run=True)["epochs_completed"] == 500
    short = json.loads(committed.read_text())  # a one-epoch Q5.2 run on the same images
    short["config"]["epochs"], short["epochs_completed"], short["settings_changed"] = 1, 1, ["epochs 1"]
    short["history"] = {key: values[:2] for key, values in short["history"].items()}  # epochs 0 and 1
    (tmp_path / "q5_2_mlp.json").write_text(json.dumps(short))
    before = {p: p.read_bytes() for p in (*cli.RESULTS_DIR.glob("q5_5*.json"), *cli.GENERATED_DIR.glob("q5_5*"),
                                          *cli.FIGURES_DIR.glob("q5_5*"))}
    with pytest.raises(common.UserError, match=r"q5_2_mlp.json is not the assignment's Q5.2 run \(--epochs 1 vs 500\)"):
        q5_5_cnn.main(["--compare", "--mlp-results", str(tmp_path / "q5_2_mlp.json")])
    assert {p: p.read_bytes() for p in before} == before
    # in a folder of its own the same file is compared with
    assert q5_5_cnn.load_mlp_results(tmp_path / "q5_2_mlp.json", same_split, assignment_run=False) == short
