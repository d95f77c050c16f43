"""Every qualitative claim the report's prose makes, checked against the committed results files: a
rerun whose results contradict a sentence of report/report.tex fails here instead of leaving it wrong.
Each test names the sentence it guards."""
from __future__ import annotations

import json
import math
import statistics

import pytest

import cli
import q1_playground
import q5_3_flooding
import q5_5_cnn
import runs

RESULTS = cli.RESULTS_DIR
SIGNIFICANCE = 0.05  # the report calls a paired change of the test error measurable below this p


def load(name: str) -> dict:
    return json.loads((RESULTS / name).read_text())


@pytest.fixture(scope="module")
def sweeps() -> dict[float, dict]:
    return {lr: load(runs.results_name(lr, "q5_3_flooding")) for lr in q5_3_flooding.LEARNING_RATES}


@pytest.fixture(scope="module")
def analyses(sweeps) -> dict[float, dict]:
    return {lr: q5_3_flooding.analyse(run) for lr, run in sweeps.items()}


def test_q1_the_chosen_configuration_is_worse_on_fresh_seeds():
    """Q1.1: 'it reaches ... on fresh seeds: higher, the usual optimism of picking the best'."""
    results = load("q1_playground.json")
    assert statistics.median(results["best_fresh"]["test_losses"]) > statistics.median(results["best"]["test_losses"])


def test_q1_the_runner_up_differs_only_in_its_hidden_layers_and_lies_within_the_spread():
    """Q1.1: 'The runner-up, the same with hidden layers ..., lies within that spread'."""
    results = load("q1_playground.json")
    median = lambda row: statistics.median(row["test_losses"])
    best, runner_up = sorted((row for row in results["search"] if row["finalist"]), key=median)[:2]
    assert best["config"] == results["best"]["config"]
    differing = {key for key in best["config"] if best["config"][key] != runner_up["config"][key]}
    assert differing == {"hidden"}
    assert min(best["test_losses"]) <= median(runner_up) <= max(best["test_losses"])


@pytest.mark.parametrize("sentence", q1_playground.claims(load("q1_playground.json")))
def test_q1_2_and_q1_3_claims(sentence):
    """Q1.2 and Q1.3: each qualitative claim of the text, as q1_playground.claims states it."""
    assert q1_playground.claims(load("q1_playground.json"))[sentence]


def test_q5_2_zero_training_error_then_the_validation_loss_rises():
    """Q5.1/Q5.2: 'the validation loss is lowest at epoch E, then rises ... while the training loss keeps
    falling'; 'the training error reaches 0 at epoch N and stays there'; after it 'the remaining epochs change
    the validation error very little'."""
    run = load("q5_2_mlp.json")
    final = runs.final_metrics(run)
    epochs, train_error = run["history"]["epoch"], runs.series(run, "train_error")
    zero = final["zero_train_error_epoch"]
    assert zero is not None and all(e == 0 for e in train_error[epochs.index(zero):])
    lowest = epochs.index(final["lowest_val_loss_epoch"])
    assert lowest < len(epochs) - 1 and final["val_loss"] > final["lowest_val_loss"]
    assert final["train_loss"] < runs.series(run, "train_loss")[lowest]
    assert abs(final["val_error"] - runs.series(run, "val_error")[epochs.index(zero)]) < 0.5


def test_q5_1_after_the_lowest_validation_loss_the_weights_and_the_confidence_when_wrong_grow():
    """Q5.1: from the lowest validation loss on, 'the norm of all weights keeps growing', 'the misclassified
    validation digits are predicted with growing confidence', 'the correctly classified ones stay at' (near 1)."""
    run = load("q5_2_mlp.json")
    lowest = run["history"]["epoch"].index(runs.final_metrics(run)["lowest_val_loss_epoch"])
    norm, wrong = runs.series(run, "weight_norm")[lowest:], runs.series(run, "val_confidence_wrong")[lowest:]
    assert all(a < b for a, b in zip(norm, norm[1:]))
    assert wrong[-1] > wrong[0] and statistics.fmean(wrong[len(wrong) // 2:]) > statistics.fmean(wrong[:len(wrong) // 2])
    assert min(runs.series(run, "val_confidence_right")[lowest:]) > 0.99


def test_q5_3_no_copy_collapsed(sweeps):
    """Q5.3: 'No copy collapsed: at both learning rates every copy's training loss stayed below its value
    before training.'"""
    assert all(runs.collapsed_copies(run) == {} for run in sweeps.values())
    assert all(d is None for run in sweeps.values() for d in run["diverged_at_epoch"])


def test_q5_3_validation_chooses_no_flooding_at_the_assignments_rate(analyses):
    """Q5.3: 'The chosen level is b = 0, that is no flooding'; at lr 0.01 'the best flooded level ... is also
    the level validation chooses there'."""
    main, small = analyses[0.1], analyses[0.01]
    assert main["chosen"] == 0.0 and main["shown"] == main["flooded"] > 0
    assert small["chosen"] == small["flooded"] > 0


def test_q5_3_q5_2_lies_among_the_unflooded_seeds_but_ran_in_other_arithmetic(sweeps, analyses):
    """Q5.3: Q5.2's run 'ends within the range of the three b = 0 seeds' in validation and test error, 'so
    flooding does no better than Q5.2 either'; it does not coincide with the b = 0 copy of seed 0: 'Q5.2 ran alone
    in float32 on a CPU, the sweep ... with TF32 matrix products on a GPU, so their roundings differ from the first
    forward pass on'."""
    run, mlp = sweeps[0.1], load("q5_2_mlp.json")
    mlp_final = runs.final_metrics(mlp)
    unflooded = q5_3_flooding.copies_at(run, 0.0)
    for split in ("val", "test"):
        seeds = [run["history"][f"{split}_error"][-1][k] for k in unflooded]
        assert min(seeds) <= mlp_final[f"{split}_error"] <= max(seeds)
        best_flooded = analyses[0.1]["table"][analyses[0.1]["flooded"]][f"{split}_error"][0]
        assert best_flooded > mlp_final[f"{split}_error"]
    assert mlp["config"]["device"] == "cpu" and not mlp["config"]["tf32"]
    assert all(r["config"]["tf32"] and r["environment"]["device"] == "cuda" for r in sweeps.values())
    seed_0 = next(k for k in unflooded if run["copies"][k]["init_seed"] == mlp["config"]["seed"])
    assert runs.series(run, "val_loss", seed_0)[0] != runs.series(mlp, "val_loss")[0]  # before any step


def test_q5_4_every_flooded_level_is_worse_in_test_error_at_lr_0_1_in_every_seed(analyses):
    """Q5.4: at lr 0.1 'every one of the 20 levels b > 0 ended with a higher test error than b = 0, in every
    seed'; 'the smallest rise' is at the best flooded level; 'no level has p >' the largest printed p, which is
    below the significance level."""
    table = analyses[0.1]["table"]
    flooded = [b for b in table if b > 0]
    assert len(flooded) == 20
    for level in flooded:
        changes = q5_3_flooding.paired_change(analyses[0.1]["values"], level, "test_error")
        assert all(change > 0 for change in changes)
        assert q5_3_flooding.paired_t_test_p(changes) < SIGNIFICANCE
    assert min(flooded, key=lambda b: table[b]["test_error"][0]) == analyses[0.1]["flooded"]


def test_q5_4_flooding_raises_the_test_error_at_lr_0_1_and_lowers_the_calibration_error(analyses):
    """Q5.4: at lr 0.1 the best flooded level 'raises the test error ... and lowers the validation calibration
    error'; 'driving the training loss on towards zero ... generalised better'."""
    effect, values = q5_3_flooding.effect_of_flooding(analyses[0.1]), analyses[0.1]["values"]
    assert effect["test_change"][0] > 0 and effect["p_value"] < SIGNIFICANCE
    assert all(change > 0 for change in q5_3_flooding.paired_change(values, effect["level"], "test_error"))
    assert statistics.fmean(q5_3_flooding.paired_change(values, effect["level"], "ece")) < 0


def test_q5_4_at_lr_0_01_the_chosen_level_makes_no_measurable_change(analyses):
    """Q5.4: at lr 0.01 'validation chooses b = 0.02, whose test error differs from that of b = 0 by ... (p = ...):
    no measurable change'."""
    effect = q5_3_flooding.effect_of_flooding(analyses[0.01])
    assert effect["level"] == analyses[0.01]["chosen"] > 0
    assert effect["p_value"] >= SIGNIFICANCE
    assert abs(effect["test_change"][0]) < 0.1


def test_q5_5_the_check_collapses_at_the_larger_rate_and_chooses_the_smaller():
    """Q5.5 learning rate: at 0.1 the loss 'rises above its value before training'; at 0.01 'the training error
    reaches zero'; 'validation chooses' the rate the CNN is trained at."""
    check = q5_5_cnn.check_runs_in(RESULTS)
    high, low = (runs.final_metrics(run) for run in check)
    assert runs.collapse_epoch(check[0]) is not None and runs.collapse_epoch(check[1]) is None
    assert low["zero_train_error_epoch"] is not None
    assert high["best_val_error"] < high["val_error"]
    assert q5_5_cnn.chosen_lr(check) == check[1]["config"]["lr"] == q5_5_cnn.LEARNING_RATE
    # 'the check's run at that rate is, number for number, the CNN's first 158 epochs'
    cnn = load("q5_5_cnn.json")
    assert {run["environment"]["device_name"] for run in check} == {cnn["environment"]["device_name"]}
    assert cnn["environment"]["device"] == "cpu" and check[1]["config"]["lr"] == cnn["config"]["lr"]
    for key, values in check[1]["history"].items():
        assert cnn["history"][key][: len(values)] == values, key


def test_q5_5_the_cnn_is_better_and_the_gap_is_not_chance():
    """Q5.5: 'The CNN generalises better than the MLP with 13.7 times fewer parameters', 'its advantage on the
    test digits is far beyond chance': 'exactly one network is right on 131 of them: the CNN on 97, the MLP on 34'
    and McNemar p < 0.01 on the test digits and on the validation digits the figure counts."""
    cnn, mlp = load("q5_5_cnn.json"), load("q5_2_mlp.json")
    cnn_final, mlp_final = runs.final_metrics(cnn), runs.final_metrics(mlp)
    assert cnn_final["val_error"] < mlp_final["val_error"] and cnn_final["test_error"] < mlp_final["test_error"]
    # the digits each run recorded as wrong are its final errors
    for run in (cnn, mlp):
        final = runs.final_metrics(run)
        assert len(run["misclassified_val_digits"]) == round(final["val_error"] / 100 * run["split_sizes"]["val"])
        assert len(run["misclassified_test_indices"]) == round(final["test_error"] / 100 * run["split_sizes"]["test"])
    found = q5_5_cnn.right_alone(cnn, mlp)
    # 'the gap is tested on the 10,000 test digits ... so the gap is not an accident' (p < 0.01 on the test set)
    for split in ("val", "test"):
        cnn_only, mlp_only = len(found[split]["CNN"]), len(found[split]["MLP"])
        assert cnn_only > mlp_only and q5_5_cnn.mcnemar_p_value(cnn_only, mlp_only) < 0.01
    assert cnn["model"]["parameters"] < mlp["model"]["parameters"]
    # 'the MLP's spread over seeds in Q5.3 is far smaller than the gap'
    unflooded = q5_3_flooding.analyse(load("q5_3_flooding_lr0.1.json"))["table"][0.0]["val_error"]
    assert 3 * unflooded[1] < mlp_final["val_error"] - cnn_final["val_error"]


def test_q5_5_both_networks_settle_at_zero_training_error_and_overfit_in_loss():
    """Q5.5 overfitting: both reach zero training error and 'stay there over the last N epochs'; 'the CNN's
    validation loss is lowest at epoch 13, before its training error reaches zero, and then rises to ... at the end,
    as the MLP's does'; 'the final validation errors are only 5 (CNN) and 7 (MLP) digits above their best'; Table:
    'both trained on the same ... CPU', 'after 500 epochs'."""
    cnn, mlp = load("q5_5_cnn.json"), load("q5_2_mlp.json")
    window = q5_5_cnn.settling_window(mlp, cnn)
    assert cnn["epochs_completed"] == mlp["epochs_completed"]
    assert cnn["environment"]["device_name"] == mlp["environment"]["device_name"]
    assert cnn["environment"]["device"] == mlp["environment"]["device"] == "cpu"
    cnn_final = runs.final_metrics(cnn)
    assert cnn_final["lowest_val_loss_epoch"] < cnn_final["zero_train_error_epoch"]
    for run in (cnn, mlp):
        final = runs.final_metrics(run)
        assert final["zero_train_error_epoch"] is not None
        assert max(runs.series(run, "train_error")[-window:]) == 0
        after_lowest = runs.series(run, "val_loss")[run["history"]["epoch"].index(final["lowest_val_loss_epoch"]):]
        assert final["val_loss"] == max(after_lowest) > final["lowest_val_loss"]
        wrong = [round(e / 100 * run["split_sizes"]["val"]) for e in runs.series(run, "val_error")[1:]]
        assert 0 <= wrong[-1] - min(wrong) <= run["split_sizes"]["val"] // 1000  # 'only': at most 0.1 %


def test_q5_5_the_mlp_at_the_cnns_learning_rate_is_worse_than_at_0_1_and_than_the_cnn():
    """Q5.5: 'at the CNN's rate the MLP does worse, not better: the b = 0 copies of the Q5.3 sweep at lr 0.01
    ... end at ...', so the CNN's advantage is not an effect of its smaller learning rate."""
    cnn, mlp = load("q5_5_cnn.json"), load("q5_2_mlp.json")
    matched = q5_5_cnn.matched_mlp(RESULTS, cnn)
    assert matched is not None and cnn["config"]["lr"] == 0.01 < mlp["config"]["lr"]
    cnn_final, mlp_final = runs.final_metrics(cnn), runs.final_metrics(mlp)
    for split in ("val", "test"):
        mean, std = matched[f"{split}_error"]
        assert mean > mlp_final[f"{split}_error"] and mean - 2 * std > cnn_final[f"{split}_error"]


def test_q5_4_at_lr_0_01_the_calibration_error_grows_with_b_as_under_confidence_predicts(analyses):
    """Q5.4: 'at lr 0.01 the ECE grows with b'; at the largest b 'the ECE should be about' the accuracy minus
    exp(-b), and is close to it."""
    small = analyses[0.01]["table"]
    levels = [b for b in small if b >= 0.02]
    eces = [small[b]["ece"][0] for b in levels]
    assert all(a < b for a, b in zip(eces, eces[1:]))
    top = max(small)
    predicted = 100 * (1 - small[top]["val_error"][0] / 100 - math.exp(-top))
    assert abs(small[top]["ece"][0] - predicted) < 2


def test_q5_4_with_early_stopping_flooding_helps_at_lr_0_01_only(analyses):
    """Q5.4, early stopping: lr 0.1 'again chooses b = 0'; at lr 0.01 the chosen b > 0 changes the early-stopped
    test error by a negative amount (paired, p < 0.05), 'still above the ... of lr 0.1 without flooding'."""
    assert analyses[0.1]["early_stopped"] == 0.0 and analyses[0.01]["early_stopped"] > 0
    effect = q5_3_flooding.effect_of_flooding(analyses[0.01], early_stopped=True)
    assert effect["test_change"][0] < 0 and effect["p_value"] < SIGNIFICANCE
    small, main = analyses[0.01]["table"], analyses[0.1]["table"]
    assert small[analyses[0.01]["early_stopped"]]["test_at_best"][0] > main[0.0]["test_at_best"][0]


def test_q5_4_flooding_at_lr_0_1_lowers_the_validation_loss_and_the_calibration_error(analyses):
    """Q5.3: under b = 0.01 'the training error still ends at' almost zero, 'but the training loss
    floats at b'; 'its validation loss ends lower ..., its validation error higher'. Q5.4: b = 0.01 'brings the
    validation calibration error from ... to ...: less of the overconfidence of Q5.1, not fewer errors'."""
    table, shown = analyses[0.1]["table"], analyses[0.1]["shown"]
    assert table[shown]["val_loss"][0] < table[0.0]["val_loss"][0] and table[shown]["ece"][0] < table[0.0]["ece"][0]
    assert table[shown]["test_error"][0] > table[0.0]["test_error"][0]
    assert table[shown]["val_error"][0] > table[0.0]["val_error"][0]
    assert table[shown]["train_error"][0] < 0.01 and 0.5 * shown < table[shown]["train_loss"][0] < 2 * shown
