"""The Q5.5 CNN: its shape and size by hand, and the script end to end."""
from __future__ import annotations

import json

import torch

import common
from conftest import run_script
from q5_5_cnn import cnn, comparison_snippet, mcnemar_p_value, mcnemar_sentence, settling_sentence


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
    assert common.multiply_adds_per_image(cnn()) == by_hand == 2_838_080
    assert common.multiply_adds_per_image(common.mlp()) == 784 * 500 + 500 * 10


def test_settling_sentence_reads_the_last_fifth_of_each_run():
    run = lambda errors: {"history": {"train_error": [[50.0]] + [[e] for e in errors]}}  # epoch 0 first
    mlp = run([1.0] * 7 + [0.0] * 3)  # zero over the last 2 of 10 epochs
    cnn_run = run([0.0] * 7 + [2.0, 0.5, 1.25])
    assert settling_sentence(mlp, cnn_run) == (
        "Over the last 2 epochs the MLP's training error stays at zero, while the CNN's ranges from 0.500 to "
        "1.250\\,\\%: at this learning rate the CNN's SGD does not settle at zero training error.")
    assert settling_sentence(mlp, run([0.0] * 10)) == "Over the last 2 epochs both networks stay at zero training error."
    neither = settling_sentence(run([0.0] * 9 + [0.1]), cnn_run)
    assert "neither" in neither and "from 0.000 to 0.100" in neither and "from 0.500 to 1.250" in neither


def test_settling_sentence_reads_both_runs_over_the_same_window():
    run = lambda errors: {"history": {"train_error": [[50.0]] + [[e] for e in errors]}}
    longer = run([0.0] * 17 + [3.0, 0.0, 0.0])  # 20 epochs: non-zero 3 epochs before the end
    shorter = run([0.0] * 10)  # 10 epochs: the window is 2 epochs for both
    assert settling_sentence(longer, shorter) == "Over the last 2 epochs both networks stay at zero training error."
    assert "MLP's ranges from 0.000 to 3.000" in settling_sentence(longer, run([0.0] * 15))  # window 3


def test_mcnemar_p_value_by_hand():
    assert mcnemar_p_value(3, 0) == 2 * 1 / 2**3  # both tails of 3 fair coins all landing one way
    assert mcnemar_p_value(1, 10) == 2 * (1 + 11) / 2**11  # P(X <= 1) = (C(11,0) + C(11,1)) / 2^11, doubled
    assert mcnemar_p_value(2, 2) == 1.0  # an even split: the doubled tail exceeds 1
    assert "not an accident" in mcnemar_sentence({"cnn_right_mlp_wrong": 10, "mlp_right_cnn_wrong": 0})
    even = mcnemar_sentence({"cnn_right_mlp_wrong": 2, "mlp_right_cnn_wrong": 2})
    assert "$p=1.000$" in even and "do not show either network" in even


def test_quick_run_writes_results_figures_and_snippet(mnist_root, tmp_path):
    out = tmp_path / "out"
    quick = ("--epochs", "1", "--subset", "64", "--batch-size", "16", "--data-dir", str(mnist_root), "--offline",
             "--output-dir", str(out), "--no-progress")
    refused = run_script("q5_5_cnn.py", *quick)
    assert refused.returncode == 1 and "run codes/q5_2_mlp.py" in refused.stderr
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
    for name in ("q5_5_cnn_vs_mlp.png", "q5_5_disagreements.png"):
        assert (out / "figures" / name).stat().st_size > 10_000
    snippet = (out / "generated" / "q5_5.tex").read_text()
    assert "28,938" in snippet and "397,510" in snippet and "\\begin{tabular}" in snippet
    assert "\\newcommand{\\QFiveFiveParameterRatio}{13.7}" in snippet  # 397,510 / 28,938 = 13.74
    final_val_error = results["history"]["val_error"][-1][0]
    assert f"\\newcommand{{\\QFiveFiveCnnValError}}{{{final_val_error:.2f}}}" in snippet
    assert "\\newcommand{\\QFiveFiveEpochs}{1}" in snippet
    mlp_results = json.loads((out / "q5_2_mlp.json").read_text())
    longer_mlp = {**mlp_results, "epochs_completed": 3}  # a comparison of unequal runs names both lengths
    assert "\\newcommand{\\QFiveFiveEpochs}{3 (MLP) and 1 (CNN)}" in comparison_snippet(results, longer_mlp)

    mismatch = run_script("q5_5_cnn.py", *quick[:-1], "--split-seed", "1", "--no-progress")
    assert mismatch.returncode == 1 and "--split-seed" in mismatch.stderr and "Traceback" not in mismatch.stderr
