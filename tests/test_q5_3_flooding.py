"""Q5.3 flooding: the flooded objective against autograd, the b = 0 copy against
Q5.2's own run, calibration by hand, the sweep end to end, and bad input."""
from __future__ import annotations

import json
import math
import statistics

import pytest
import torch
from torch import nn

import cli
import common
import runs
import q5_2_mlp
import q5_3_flooding
from conftest import run_script, says


def test_flooded_loss_is_the_loss_above_b_and_ascends_below_b():
    weights = torch.randn(5, requires_grad=True)
    inputs = torch.randn(7, 5)

    def loss_and_grad(flood_level: float | None):
        loss = torch.nn.functional.softplus(inputs @ weights).mean()
        objective = loss if flood_level is None else common.flooded(loss, torch.tensor(flood_level))
        (grad,) = torch.autograd.grad(objective, weights)
        return loss.item(), objective.item(), grad

    plain_loss, _, plain_grad = loss_and_grad(None)
    _, above_value, above_grad = loss_and_grad(plain_loss - 0.1)  # b below the loss
    _, below_value, below_grad = loss_and_grad(plain_loss + 0.1)  # b above the loss
    assert above_value == pytest.approx(plain_loss)
    torch.testing.assert_close(above_grad, plain_grad)
    assert below_value == pytest.approx(2 * (plain_loss + 0.1) - plain_loss)
    torch.testing.assert_close(below_grad, -plain_grad)


def test_calibration_error_matches_hand_computation():
    """Logits chosen so that softmax confidences are known: 0.95 (bin 15) and 0.55 (bin 9)."""
    def logits_for(confidence: float, predicted: int) -> list[float]:
        # one class at log(confidence), the other nine sharing the rest equally
        rest = torch.log(torch.tensor((1 - confidence) / 9)).item()
        row = [rest] * 10
        row[predicted] = torch.log(torch.tensor(confidence)).item()
        return row

    rows = [logits_for(0.95, 1), logits_for(0.95, 2), logits_for(0.55, 3), logits_for(0.55, 4)]
    labels = torch.tensor([1, 0, 3, 3])  # bin 15: 1 of 2 right; bin 9: 1 of 2 right
    layer = nn.Linear(10, 10, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.eye(10))
    model = common.StackedCopies([nn.Sequential(nn.Flatten(), layer)])
    images = torch.tensor(rows).view(4, 1, 1, 10)
    ece = q5_3_flooding.expected_calibration_error(model, common.Split(images, labels), bins=15, batch_size=3)
    by_hand = 2 / 4 * abs(0.5 - 0.95) + 2 / 4 * abs(0.5 - 0.55)
    assert ece.item() == pytest.approx(by_hand, rel=1e-5)


def test_tiny_sweep_writes_everything_and_its_b0_copy_is_the_q5_2_run(mnist_root, tmp_path, drawn):
    out = tmp_path / "out"
    quick = ("--epochs", "3", "--subset", "64", "--batch-size", "16", "--data-dir", str(mnist_root), "--offline",
             "--output-dir", str(out), "--no-progress")
    assert run_script("q5_2_mlp.py", *quick).returncode == 0
    done = run_script("q5_3_flooding.py", *quick, "--seeds", "2", "--flood-levels", "0,0.3,1.5", "--lrs", "0.1,0.01")
    assert done.returncode == 0, done.stderr
    assert "not drawn" not in done.stdout  # Q5.2 ran with the same settings: its curves are overlaid
    sweep = json.loads((out / "q5_3_flooding_lr0.1.json").read_text())
    assert [(c["init_seed"], c["flood_level"]) for c in sweep["copies"]] == [
        (0, 0.0), (0, 0.3), (0, 1.5), (1, 0.0), (1, 0.3), (1, 1.5)]
    assert len(sweep["final_val_ece"]) == 6
    mlp = json.loads((out / "q5_2_mlp.json").read_text())
    for key in ("train_loss", "val_error", "test_loss"):
        assert runs.series(sweep, key, 0) == pytest.approx(runs.series(mlp, key), rel=1e-4, abs=1e-5)
    # b = 1.5 lies above the synthetic loss after a few steps: the flood was active there
    assert max(runs.series(sweep, "flood_active_fraction", 2)[1:]) > 0
    assert (out / "q5_3_flooding_lr0.01.json").exists()
    other = tmp_path / "other_q5_2.json"
    other.write_text(json.dumps({**mlp, "config": {**mlp["config"], "batch_size": 32}}))
    assert q5_2_mlp.comparable_run(other, sweep) is None
    assert q5_2_mlp.comparable_run(out / "q5_2_mlp.json", sweep) == mlp
    # the figures: every panel says it is not the assignment's run; the numbers drawn, by hand from the records
    figures = {name: drawn[f"q5_3_{name}.png"] for name in ("chosen_level", "error_vs_level", "training_loss",
                                                             "validation_loss", "learning_rates")}
    assert all("NOT THE ASSIGNMENT'S RUN" in figure["panels"][0]["title"] for figure in figures.values())
    levels, analysis = [0.0, 0.3, 1.5], q5_3_flooding.analyse(sweep)

    def seed_mean(values: list[float], level: float) -> float:
        """The mean over the two seeds of one level's copies."""
        return statistics.fmean(value for value, c in zip(values, sweep["copies"]) if c["flood_level"] == level)

    final = {key: [seed_mean(sweep["history"][key][-1], b) for b in levels] for key in ("val_error", "test_error")}
    vs_level = figures["error_vs_level"]["panels"][0]
    assert vs_level["xlabel"].startswith("flood level b")
    assert (levels, pytest.approx(final["val_error"])) in vs_level["curves"].values()
    assert (levels, pytest.approx(final["test_error"])) in vs_level["curves"].values()
    ece = figures["learning_rates"]["panels"][0]["curves"]["lr 0.1"]
    assert ece == (levels, pytest.approx([100 * seed_mean(sweep["final_val_ece"], b) for b in levels]))
    training = figures["training_loss"]["panels"][0]  # b = 0 and the flooded level shown, seed 0's copies
    shown = ["0.00", f"{analysis['shown']:.2f}"]
    assert [label for label in training["curves"] if not label.startswith("_")] == shown
    seed_0 = {f"{c['flood_level']:.2f}": k for k, c in enumerate(sweep["copies"]) if c["init_seed"] == 0}
    for label in shown:
        assert training["curves"][label] == (sweep["history"]["epoch"][1:],
                                             pytest.approx(runs.series(sweep, "batch_loss", seed_0[label])[1:]))
    assert [analysis["shown"]] * 2 in [y for _, y in training["curves"].values()]  # the flood level, drawn at b
    chosen = figures["chosen_level"]["panels"][0]["curves"]
    assert chosen["Q5.2 run, every 25 epochs"] == ([0], [runs.series(mlp, "val_error")[0]])  # Q5.2 overlaid
    snippet = (out / "generated" / "q5_3.tex").read_text()
    assert "\\newcommand{\\QFiveThreeChosenLevel}{" in snippet
    # the b = 1.5 copies' flood-active fraction in the last epoch, averaged over the two seeds by hand
    active = [sweep["history"]["flood_active_fraction"][-1][k] for k in (2, 5)]
    macros = q5_3_flooding.level_macros("X", analysis["table"][1.5])
    assert macros["QFiveThreeXFloodActive"] == f"{100 * (active[0] + active[1]) / 2:.0f}"
    assert "\\newcommand{\\QFiveThreeNoFloodTrainLoss}" in snippet and "\\newcommand{\\QFiveFourSmallLr}{0.01}" in snippet
    for macro, value in (("LevelCount", "3"), ("FloodedLevelCount", "2"), ("LevelRange", "0.00,\\dots,1.50")):
        assert f"\\newcommand{{\\QFiveThree{macro}}}{{{value}}}" in snippet
    (out / "q5_3_flooding_lr0.01.json").unlink()  # redrawing needs only the assignment's learning rate
    redrawn = run_script("q5_3_flooding.py", "--plot-only", "--output-dir", str(out))
    assert redrawn.returncode == 0 and "no sweep at lr 0.01 yet" in redrawn.stdout, redrawn.stderr
    (out / "q5_3_flooding_lr0.1.json").unlink()  # without it there is nothing to draw: that alone is said
    redrawn = run_script("q5_3_flooding.py", "--plot-only", "--output-dir", str(out))
    assert redrawn.returncode == 1 and says(redrawn.stderr, "No results file", str(out / "q5_3_flooding_lr0.1.json"))
    assert "no sweep at" not in redrawn.stdout


def test_rates_that_print_alike_get_a_results_file_each_and_the_committed_names_stay(mnist_root, tmp_path):
    done = run_script("q5_3_flooding.py", "--epochs", "1", "--subset", "64", "--batch-size", "16", "--data-dir",
                      str(mnist_root), "--offline", "--output-dir", str(tmp_path), "--no-progress", "--seeds", "1",
                      "--flood-levels", "0", "--lrs", "0.1,0.1000001")  # both "0.1" to six digits
    assert done.returncode == 0, done.stderr
    assert sorted(json.loads(p.read_text())["config"]["lr"] for p in tmp_path.glob("q5_3_flooding_lr*.json")) == [
        0.1, 0.1000001]
    assert {runs.results_name(lr, "q5_3_flooding") for lr in q5_3_flooding.LEARNING_RATES} == {
        p.name for p in cli.RESULTS_DIR.glob("q5_3_flooding_lr*.json")}


@pytest.mark.parametrize("args, message", [
    (("--flood-levels", "0,-0.01"), "every flood level must be >= 0"),
    (("--flood-levels", ""), "flood levels needs at least one value"),
    (("--flood-levels", "0,abc"), "flood levels must be comma-separated numbers"),
    (("--seeds", "0"), "must be a positive integer"),
    (("--lrs", "0.1,0"), "every learning rate must be > 0"),
])
def test_bad_sweep_settings_are_refused_before_loading_data(args, message, tmp_path):
    done = run_script("q5_3_flooding.py", *args, "--data-dir", str(tmp_path / "no-data"), "--offline",
                      "--output-dir", str(tmp_path / "out"))
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


def sweep_results(final_errors: dict[tuple[int, float], tuple[float, float, float]]) -> dict:
    """A one-epoch sweep record whose final (validation error, test error, ECE in %) per (seed, b) is given."""
    copies = [{"init_seed": seed, "flood_level": level} for seed, level in final_errors]
    finals = list(final_errors.values())
    history = {"epoch": [0, 1]}
    for key, column in (("val_error", 0), ("test_error", 1)):
        history[key] = [[90.0] * len(finals), [row[column] for row in finals]]
    for key in ("train_error", "train_loss", "val_loss", "flood_active_fraction"):
        history[key] = [[None] * len(finals), [0.0] * len(finals)]
    return {"copies": copies, "history": history, "final_val_ece": [row[2] / 100 for row in finals]}


# two-sided critical values from a printed t-table: (t, degrees of freedom, p)
T_TABLE = [(12.706, 1, 0.05), (4.303, 2, 0.05), (3.182, 3, 0.05), (2.776, 4, 0.05), (2.262, 9, 0.05),
           (9.925, 2, 0.01), (63.657, 1, 0.01)]


@pytest.mark.parametrize("t, df, p", [*T_TABLE, (0.0, 3, 1.0)])
def test_student_t_p_value_matches_the_table(t, df, p):
    assert q5_3_flooding.student_t_two_sided_p(t, df) == pytest.approx(p, abs=2e-4)
    assert q5_3_flooding.student_t_two_sided_p(-t, df) == pytest.approx(p, abs=2e-4)


def test_paired_t_test_by_hand():
    # changes -0.2, -0.1: mean -0.15, sd 0.0707, t = -0.15 / (0.0707 / sqrt 2) = -3, one degree of
    # freedom, where P(|T| >= 3) = 1 - 2 atan(3) / pi
    assert q5_3_flooding.paired_t_test_p([-0.2, -0.1]) == pytest.approx(1 - 2 * math.atan(3) / math.pi)
    assert q5_3_flooding.paired_t_test_p([0.1, 0.1, 0.1]) == 0.0
    assert math.isnan(q5_3_flooding.paired_t_test_p([0.1])) and math.isnan(q5_3_flooding.paired_t_test_p([0.1, None]))


def effect_of(results: dict) -> dict | None:
    return q5_3_flooding.effect_of_flooding(q5_3_flooding.analyse(results))


def test_effect_of_flooding_pairs_each_seed_with_its_own_unflooded_copy():
    results = sweep_results({
        (0, 0.0): (2.0, 1.9, 1.0), (0, 0.05): (1.8, 1.7, 0.6), (0, 0.1): (1.9, 1.0, 0.2),
        (1, 0.0): (2.2, 2.0, 1.2), (1, 0.05): (1.8, 1.9, 0.9), (1, 0.1): (1.95, 1.2, 0.4),
        (2, 0.0): (2.1, 2.1, 1.1), (2, 0.05): (1.9, 1.95, 0.8), (2, 0.1): (2.0, 1.1, 0.3),
    })
    effect = effect_of(results)
    # b = 0.05 has the lower mean validation error (1.833 against 1.95); b = 0.1's better test error is not looked at
    assert effect["level"] == 0.05
    changes = [1.7 - 1.9, 1.9 - 2.0, 1.95 - 2.1]
    assert effect["test_change"][0] == pytest.approx(sum(changes) / 3)
    assert effect["test_change"][1] == pytest.approx(statistics.stdev(changes))
    ece_changes = q5_3_flooding.paired_change(q5_3_flooding.analyse(results)["values"], 0.05, "ece")
    assert ece_changes == pytest.approx([0.6 - 1.0, 0.9 - 1.2, 0.8 - 1.1])
    # t = -0.15 / (0.05 / sqrt 3) = -5.2 with two degrees of freedom: p = 0.035, below 0.05
    assert effect["p_value"] == pytest.approx(0.035, abs=0.001)

    # one degree of freedom, where P(|T| >= t) = 1 - 2 atan(t) / pi: one seed moving against the other
    # (changes -0.2, +0.1: t = 1/3), and both lower but by little against their spread (-0.2, -0.1: t = 3)
    mixed = sweep_results({(0, 0.0): (2.0, 1.9, 1.0), (0, 0.05): (1.8, 1.7, 0.6),
                           (1, 0.0): (2.2, 2.0, 1.2), (1, 0.05): (1.8, 2.1, 0.9)})
    assert effect_of(mixed)["p_value"] == pytest.approx(1 - 2 * math.atan(1 / 3) / math.pi)
    small = sweep_results({(0, 0.0): (2.0, 1.9, 1.0), (0, 0.05): (1.8, 1.7, 0.6),
                           (1, 0.0): (2.2, 2.0, 1.2), (1, 0.05): (1.8, 1.9, 0.9)})
    assert effect_of(small)["p_value"] == pytest.approx(1 - 2 * math.atan(3) / math.pi)

    assert effect_of(sweep_results({(0, 0.05): (1.8, 1.7, 0.6)})) is None  # no b = 0 to compare with

    one_seed = effect_of(sweep_results({(0, 0.0): (2.0, 1.9, 1.0), (0, 0.05): (1.8, 1.7, 0.6)}))
    assert math.isnan(one_seed["p_value"])  # no spread to judge the change against


def test_the_analysis_shows_the_best_flooded_level_when_no_flooding_is_chosen():
    results = sweep_results({(0, 0.0): (1.6, 1.5, 1.0), (0, 0.05): (1.8, 1.7, 0.6), (0, 0.1): (1.7, 1.9, 0.2)})
    analysis = q5_3_flooding.analyse(results)
    assert analysis["chosen"] == 0.0 and analysis["flooded"] == analysis["shown"] == 0.1
    assert analysis["table"][0.1]["val_error"] == (1.7, 0.0)
    flooded_wins = q5_3_flooding.analyse(sweep_results({(0, 0.0): (1.9, 1.5, 1.0), (0, 0.05): (1.8, 1.7, 0.6)}))
    assert flooded_wins["chosen"] == flooded_wins["flooded"] == flooded_wins["shown"] == 0.05


def test_the_snippet_of_a_sweep_without_b0_or_with_b0_alone_marks_what_it_lacks():
    without_b0 = {**sweep_results({(0, 0.05): (1.8, 1.7, 0.6), (0, 0.1): (1.7, 1.9, 0.2)}), "config": {"seeds": 1}}
    only_b0 = {**sweep_results({(0, 0.0): (1.6, 1.5, 1.0)}), "config": {"seeds": 1}}
    snippet = q5_3_flooding.snippet({0.1: without_b0}, {0.1: q5_3_flooding.analyse(without_b0)}, cli.RESULTS_DIR)
    assert "\\newcommand{\\QFiveThreeNoFloodValError}{--}" in snippet and "QFiveFourMainLevel}" not in snippet
    snippet = q5_3_flooding.snippet({0.1: only_b0}, {0.1: q5_3_flooding.analyse(only_b0)}, cli.RESULTS_DIR)
    assert "\\newcommand{\\QFiveThreeLowestFloodedLevel}{--}" in snippet and "QFiveFourMainLevel}" not in snippet


def test_collapsed_copies_are_named_with_their_level_seed_and_epoch():
    results = sweep_results({(0, 0.0): (2.0, 1.9, 1.0), (0, 0.1): (88.0, 88.0, 0.0), (1, 0.0): (2.2, 2.0, 1.2),
                             (1, 0.1): (2.1, 2.0, 0.5)})
    results["history"]["epoch"] = [0, 1, 2, 3]
    # training loss per epoch (rows) and copy (columns): copy 1 rises above its 2.3 at epoch 2; copy 3
    # diverges (None) at epoch 2, which is not a collapse
    results["history"]["train_loss"] = [[2.3, 2.3, 2.4, 2.4], [0.5, 0.6, 0.5, 0.4], [0.2, 2.9, 0.2, None],
                                        [0.1, 2.2, 0.1, None]]
    steady = sweep_results({(0, 0.0): (2.0, 1.9, 1.0)})
    assert runs.collapsed_copies(results) == {1: 2} and runs.collapsed_copies(steady) == {}
    assert q5_3_flooding.named_copies(results, runs.collapsed_copies(results)) == "b=0.10 (seed 0) at epoch 2"
    results["history"]["train_loss"][3][0] = 2.5  # copy 0 (b = 0, seed 0) too, at epoch 3
    collapsed = runs.collapsed_copies(results)
    assert q5_3_flooding.named_copies(results, collapsed, named=1) == "b=0.00 (seed 0) at epoch 3 and 1 more"


def test_the_committed_figure_needs_the_q5_2_run_and_takes_no_other_file(tmp_path):
    sweep = runs.read_results(cli.RESULTS_DIR / "q5_3_flooding_lr0.1.json")
    with pytest.raises(common.UserError, match="No Q5.2 results file at .*q5_2_mlp.py"):
        q5_2_mlp.comparable_run(tmp_path / "q5_2_mlp.json", sweep, for_report=True)
    assert q5_2_mlp.comparable_run(tmp_path / "q5_2_mlp.json", sweep) is None  # a folder of one's own
    with pytest.raises(common.UserError, match="not a results file of Q5.2"):
        q5_2_mlp.comparable_run(cli.RESULTS_DIR / "q5_5_cnn.json", sweep)


FOUR_COPIES = {(0, 0.0): (1.6, 1.5, 1.0), (0, 0.1): (1.7, 1.9, 0.2), (1, 0.0): (1.8, 1.4, 1.2), (1, 0.1): (1.5, 1.6, 0.4)}


def test_a_diverged_copys_null_ece_reads_as_diverged():
    results = sweep_results(FOUR_COPIES)
    results["final_val_ece"][3] = None  # b = 0.1 of seed 1 diverged: its ECE is saved as null
    table = q5_3_flooding.analyse(results)["table"]
    assert math.isnan(table[0.1]["ece"][0])
    assert table[0.0]["ece"] == pytest.approx((1.1, statistics.stdev([1.0, 1.2])))


def test_a_sweep_with_a_diverged_copy_at_every_level_is_refused():
    results = sweep_results(FOUR_COPIES)
    for k in (1, 2):  # b = 0.1 of seed 0 and b = 0 of seed 1
        results["history"]["val_error"][1][k] = None
    with pytest.raises(common.UserError, match="every flood level has a diverged copy"):
        q5_3_flooding.analyse(results)


@pytest.mark.parametrize("damage", ["a Q5.2 file", "no final_val_ece"])
def test_a_sweep_file_of_another_kind_is_refused(tmp_path, damage):
    if damage == "a Q5.2 file":
        record = json.loads((cli.RESULTS_DIR / "q5_2_mlp.json").read_text())
    else:
        record = {**sweep_results(FOUR_COPIES), "question": "Q5.3", "config": {"seeds": 2}, "diverged_at_epoch": [None] * 4}
        del record["final_val_ece"]
    (tmp_path / "q5_3_flooding_lr0.1.json").write_text(json.dumps(record))
    with pytest.raises(common.UserError, match="not a results file of Q5.3|lacks final_val_ece\\)"):
        q5_3_flooding.main(["--plot-only", "--lrs", "0.1", "--output-dir", str(tmp_path)])
    assert not (tmp_path / "generated").exists() or not any((tmp_path / "generated").iterdir())


class Stopped(Exception):
    pass


def test_the_memory_check_runs_once_before_any_sweep(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(q5_3_flooding, "check_memory", lambda copies, device: calls.append(("check", copies)))

    def first_sweep(settings, lr, *rest):
        calls.append(("sweep", lr))
        raise Stopped

    monkeypatch.setattr(q5_3_flooding, "sweep", first_sweep)
    with pytest.raises(Stopped):
        q5_3_flooding.main(["--seeds", "2", "--flood-levels", "0,0.1,0.2", "--output-dir", str(tmp_path)])
    assert calls == [("check", 6), ("sweep", 0.1)]


@pytest.mark.parametrize("system", ["Windows", "macOS"])
def test_the_memory_check_is_skipped_where_the_system_cannot_say(monkeypatch, system):
    if system == "Windows":  # no os.sysconf at all
        monkeypatch.delattr(q5_3_flooding.os, "sysconf")
    else:  # os.sysconf without SC_AVPHYS_PAGES
        monkeypatch.setattr(q5_3_flooding.os, "sysconf", lambda name: (_ for _ in ()).throw(ValueError(name)))
    q5_3_flooding.check_memory(10**9, torch.device("cpu"))  # far more than any machine: refused where it can say


def test_the_committed_figure_takes_only_the_assignments_complete_q5_2_run(tmp_path):
    sweep = runs.read_results(cli.RESULTS_DIR / "q5_3_flooding_lr0.1.json")
    mlp = json.loads((cli.RESULTS_DIR / "q5_2_mlp.json").read_text())
    stopped = {**mlp, "epochs_completed": 1, "history": {key: rows[:2] for key, rows in mlp["history"].items()}}
    other = {**mlp, "config": {**mlp["config"], "batch_size": 32}}
    for record, why in ((stopped, "stopped before its last epoch"), (other, "--batch-size 32 vs 128")):
        (tmp_path / "q5_2_mlp.json").write_text(json.dumps(record))
        with pytest.raises(common.UserError, match=f"not the assignment's Q5.2 run \\({why}"):
            q5_2_mlp.comparable_run(tmp_path / "q5_2_mlp.json", sweep, for_report=True)
    assert q5_2_mlp.comparable_run(cli.RESULTS_DIR / "q5_2_mlp.json", sweep, for_report=True) == mlp


def test_the_snippet_writes_the_exact_learning_rate():
    results = {**sweep_results(FOUR_COPIES), "config": {"seeds": 2}}
    snippet = q5_3_flooding.snippet({0.1000001: results}, {0.1000001: q5_3_flooding.analyse(results)}, cli.RESULTS_DIR)
    assert "\\newcommand{\\QFiveFourMainLr}{0.1000001}" in snippet
