"""The Q5.5 CNN: its shape and size by hand, the learning-rate check's collapse detection and choice
by hand, and the script end to end (alone, beside Q5.2's run, and the check)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

import cli
import common
import q5_2_mlp
import q5_5_cnn
import runs
from conftest import run_script, says, synthetic_digits
from q5_5_cnn import LEARNING_RATE, check_snippet, chosen_lr, cnn, make_parser, mcnemar_p_value, settling_window


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


def test_the_settling_window_is_the_last_fifth_of_the_shorter_run():
    run = lambda epochs: {"history": {"train_error": [[50.0]] + [[0.0]] * epochs}}  # epoch 0 first
    assert settling_window(run(20), run(10)) == 2 and settling_window(run(20), run(15)) == 3
    assert settling_window(run(3), run(4)) == 1  # at least the last epoch


def test_mcnemar_p_value_by_hand():
    assert mcnemar_p_value(3, 0) == 2 * 1 / 2**3  # both tails of 3 fair coins all landing one way
    assert mcnemar_p_value(1, 10) == 2 * (1 + 11) / 2**11  # P(X <= 1) = (C(11,0) + C(11,1)) / 2^11, doubled
    assert mcnemar_p_value(2, 2) == 1.0  # an even split: the doubled tail exceeds 1


def test_quick_run_writes_results_figures_and_snippet(mnist_root, tmp_path, drawn):
    out = tmp_path / "out"
    quick = ("--epochs", "1", "--subset", "64", "--batch-size", "16", "--data-dir", str(mnist_root), "--offline",
             "--output-dir", str(out), "--no-progress")
    alone = run_script("q5_5_cnn.py", *quick, "--output-dir", str(tmp_path / "alone"))
    assert alone.returncode == 0 and "no Q5.2 results" in alone.stdout, alone.stderr
    alone_curves = drawn.pop("q5_5_cnn_vs_mlp.png")["panels"][0]["curves"]
    assert [label for label in alone_curves if not label.startswith("_")] == ["CNN"]  # no MLP to draw beside it
    assert not (tmp_path / "alone" / "figures" / "q5_5_disagreements.png").exists()
    assert not (tmp_path / "alone" / "generated" / "q5_5.tex").exists()
    assert run_script("q5_2_mlp.py", *quick).returncode == 0
    done = run_script("q5_5_cnn.py", *quick)
    assert done.returncode == 0, done.stderr
    results = json.loads((out / "q5_5_cnn.json").read_text())
    assert results["model"]["parameters"] == 28_938
    # the digits it recorded as wrong: the final errors of its history, each one with conftest's own label and pixels
    train_images, train_labels = synthetic_digits(100, seed=1)  # conftest's training file, split 8:2
    val_images, val_labels = (x[common.split_indices(100, 0)[1].numpy()] for x in (train_images, train_labels))
    for run in (results, json.loads((out / "q5_2_mlp.json").read_text())):
        wrong = run["misclassified_val_digits"]
        assert len(wrong) == round(run["history"]["val_error"][-1][0] / 100 * 20)
        assert len(run["misclassified_test_indices"]) == round(run["history"]["test_error"][-1][0] / 100 * 30)
        for digit in wrong:
            assert digit["label"] == val_labels[digit["index"]] != digit["prediction"]
            assert digit["pixels"] == val_images[digit["index"]].tolist()
    # the figures: each network's validation error as recorded; the first digits only the CNN gets right, with
    # the MLP's answer
    mlp = json.loads((out / "q5_2_mlp.json").read_text())
    errors = drawn["q5_5_cnn_vs_mlp.png"]["panels"][0]
    assert errors["xlabel"] == "epoch" and "error" in errors["ylabel"]
    for name, run in (("CNN", results), ("MLP", mlp)):
        assert errors["curves"][name] == (run["history"]["epoch"], runs.series(run, "val_error"))
    cnn_wrong = {digit["index"] for digit in results["misclassified_val_digits"]}
    cnn_alone = sorted((d for d in mlp["misclassified_val_digits"] if d["index"] not in cnn_wrong), key=lambda d: d["index"])
    for panel, digit in zip(drawn["q5_5_disagreements.png"]["panels"], cnn_alone):  # the first row
        assert panel["title"] == f"true {digit['label']}, MLP {digit['prediction']}"
        assert (panel["images"][0] == digit["pixels"]).all()
    snippet = (out / "generated" / "q5_5.tex").read_text()
    assert "28,938" in snippet and "397,510" in snippet and "\\begin{tabular}" in snippet
    assert "\\newcommand{\\QFiveFiveParameterRatio}{13.7}" in snippet  # 397,510 / 28,938 = 13.74
    final_val_loss = results["history"]["val_loss"][-1][0]
    assert f"\\newcommand{{\\QFiveFiveCnnFinalValLoss}}{{{final_val_loss:.4f}}}" in snippet
    assert "\\newcommand{\\QFiveFiveEpochs}{1}" in snippet
    # McNemar's counts on the test split, from the two runs' misclassified test digits
    cnn_test, mlp_test = (set(run["misclassified_test_indices"]) for run in (results, mlp))
    for network, count in (("Cnn", len(mlp_test - cnn_test)), ("Mlp", len(cnn_test - mlp_test))):
        assert f"\\newcommand{{\\QFiveFiveMcNemar{network}Only}}{{{count}}}" in snippet

    mismatch = run_script("q5_5_cnn.py", *quick[:-1], "--split-seed", "1", "--no-progress")
    assert mismatch.returncode == 1 and "--split-seed" in mismatch.stderr and "Traceback" not in mismatch.stderr

    # Q5.2 rerun (another seed, other mistakes): redrawing compares the CNN with the rerun, without training
    assert run_script("q5_2_mlp.py", *quick, "--seed", "1").returncode == 0
    assert q5_5_cnn.main([*quick, "--plot-only"]) == 0
    rerun = json.loads((out / "q5_2_mlp.json").read_text())
    assert json.loads((out / "q5_5_cnn.json").read_text()) == results
    cnn_wrong, mlp_wrong = set(results["misclassified_test_indices"]), set(rerun["misclassified_test_indices"])
    snippet = (out / "generated" / "q5_5.tex").read_text()
    assert f"\\newcommand{{\\QFiveFiveMcNemarCnnOnly}}{{{len(mlp_wrong - cnn_wrong)}}}" in snippet
    assert f"\\newcommand{{\\QFiveFiveMcNemarMlpOnly}}{{{len(cnn_wrong - mlp_wrong)}}}" in snippet

    # a Q5.2 run on other MNIST files (other split sizes) is refused, the CNN's results kept
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "q5_2_mlp.json").write_text(json.dumps({**rerun, "split_sizes": {"train": 9, "val": 3, "test": 3}}))
    with pytest.raises(common.UserError, match="other MNIST files"):
        q5_5_cnn.main([*quick, "--plot-only", "--mlp-results", str(tmp_path / "other" / "q5_2_mlp.json")])
    assert json.loads((out / "q5_5_cnn.json").read_text()) == results


CONFIG = {"epochs": 4, "seed": 0, "split_seed": 0, "subset": None, "batch_size": 128, "momentum": 0.9, "tf32": False}


def check_run(lr: float, train_loss: list[float], train_error: list[float], val_error: list[float], **config) -> dict:
    """A results record with the fields the learning-rate check reads; loss and error over epochs 0..4."""
    history = {"epoch": list(range(len(train_loss))), "train_loss": [[v] for v in train_loss],
               "train_error": [[v] for v in train_error], "val_error": [[v] for v in val_error]}
    for key in ("val_loss", "test_loss", "test_error"):
        history[key] = [[1.0]] * len(train_loss)
    return {"question": "Q5.5", "config": {**CONFIG, "lr": lr, **config}, "history": history, "epochs_completed": len(train_loss) - 1,
            "diverged_at_epoch": [None], "copies": [{"init_seed": 0, "flood_level": 0.0}]}


COLLAPSING = check_run(0.1, [2.3, 0.4, 0.2, 9.0, 2.31], [90.0, 5.0, 2.0, 88.0, 88.8], [90.0, 5.5, 2.5, 88.0, 88.7])
STEADY = check_run(0.01, [2.3, 0.6, 0.3, 0.2, 0.1], [90.0, 8.0, 1.0, 0.0, 0.0], [90.0, 8.5, 2.0, 1.5, 1.25])


def test_collapse_is_the_first_epoch_worse_than_before_training():
    assert runs.collapse_epoch(COLLAPSING) == 3  # 9.0 > 2.3; epoch 0 itself never counts
    assert runs.collapse_epoch(STEADY) is None


def test_check_numbers_and_choice_by_hand():
    assert chosen_lr([COLLAPSING, STEADY]) == 0.01
    tied = check_run(0.1, [2.3, 0.4, 0.2, 0.1, 0.1], [90.0, 5.0, 2.0, 1.0, 1.0], [90.0, 5.5, 2.5, 1.5, 1.25])
    assert chosen_lr([tied, STEADY]) == 0.1  # ties to the larger rate
    snippet = check_snippet([COLLAPSING, STEADY])
    for macro in ("StepSizeEpochs}{4}", "CheckHighLr}{0.1}", "CheckHighLowestLossEpoch}{2}", "CheckHighCollapseEpoch}{3}",
                  "CheckHighFinalTrainError}{88.80}", "CheckLowLr}{0.01}", "CheckLowZeroTrainErrorEpoch}{3}",
                  "CheckLowFinalValError}{1.25}", "StepSizeChosen}{0.01}"):
        assert f"\\newcommand{{\\QFiveFive{macro}" in snippet
    assert make_parser().parse_args([]).lr == LEARNING_RATE == 0.01  # the committed default is the rate the check chooses


def redraw_check(folder, *check_runs):
    for record in check_runs:
        (folder / f"q5_5_lr_check_lr{record['config']['lr']:g}.json").parent.mkdir(parents=True, exist_ok=True)
        (folder / f"q5_5_lr_check_lr{record['config']['lr']:g}.json").write_text(json.dumps(record))
    return run_script("q5_5_cnn.py", "--lrs", "0.1,0.01", "--plot-only", "--output-dir", str(folder))


def test_check_redraws_figure_and_snippet(tmp_path, drawn):
    done = redraw_check(tmp_path, STEADY, COLLAPSING)
    assert done.returncode == 0, done.stderr
    snippet = (tmp_path / "generated" / "q5_5_step_size.tex").read_text()
    assert "\\newcommand{\\QFiveFiveStepSizeChosen}{0.01}" in snippet
    assert "\\newcommand{\\QFiveFiveCheckHighLr}{0.1}" in snippet  # largest rate first
    loss, error = drawn["q5_5_step_size.png"]["panels"]
    for run in (COLLAPSING, STEADY):
        lr, epochs = run["config"]["lr"], run["history"]["epoch"]
        assert loss["curves"][f"lr {lr:g} training"] == (epochs, runs.series(run, "train_loss"))
        assert error["curves"][f"lr {lr:g} val."] == (epochs, runs.series(run, "val_error"))
    assert ([3, 3], [0, 1]) in loss["curves"].values()  # the collapse of lr 0.1 at epoch 3, marked
    assert loss["yscale"] == "log" and error["xlabel"] == "epoch"


@pytest.mark.parametrize("check_runs, message", [
    ((STEADY,), "needs at least two runs"),
    ((), "--lrs 0.1,0.01 --epochs 158"),  # none: how the committed check is redrawn
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
    assert noted.returncode == 0 and says(noted.stdout, "note", "lr 0.1", "q5_5_cnn.py", "0.01")
    # the committed check (results/q5_5_lr_check_lr*.json) against a CNN trained at another rate: refused
    monkeypatch.setattr(q5_5_cnn, "LEARNING_RATE", 0.1)
    committed = cli.output_paths("q5_5_cnn", {}, {}, None)
    with pytest.raises(common.UserError) as refused:
        q5_5_cnn.draw_check(committed)
    assert says(str(refused.value), "lr 0.01", "q5_5_cnn.py", "0.1")


@pytest.mark.parametrize("rates", [(0.01, 0.0001), (0.1, 0.1000001)])  # the second pair alike to six digits
def test_check_trains_one_run_per_rate(rates, mnist_root, tmp_path):
    out = tmp_path / "out"
    done = run_script("q5_5_cnn.py", "--lrs", ",".join(map(str, rates)), "--epochs", "1", "--batch-size", "16",
                      "--data-dir", str(mnist_root), "--offline", "--output-dir", str(out), "--no-progress")
    assert done.returncode == 0, done.stderr
    assert (out / "figures" / "q5_5_step_size.png").exists()
    records = [json.loads(path.read_text()) for path in out.glob("q5_5_lr_check_lr*.json")]
    assert sorted(record["config"]["lr"] for record in records) == sorted(rates)
    assert all(record["epochs_completed"] == 1 for record in records)
    assert (out / f"q5_5_lr_check_lr{rates[0]:g}.json").exists()  # 0.01 and 0.1: the committed check's names


def test_the_committed_comparison_is_made_only_with_the_assignments_q5_2_run(tmp_path):
    committed = cli.RESULTS_DIR / "q5_2_mlp.json"
    same_split = {"config": {"split_seed": 0, "subset": None}}
    assert q5_2_mlp.comparable_run(committed, same_split, q5_5_cnn.MLP_KEYS, for_report=True)["epochs_completed"] == 500
    short = json.loads(committed.read_text())  # a one-epoch Q5.2 run on the same images
    short["config"]["epochs"], short["epochs_completed"], short["settings_changed"] = 1, 1, ["epochs 1"]
    short["history"] = {key: values[:2] for key, values in short["history"].items()}  # epochs 0 and 1
    (tmp_path / "q5_2_mlp.json").write_text(json.dumps(short))
    before = {p: p.read_bytes() for p in (*cli.RESULTS_DIR.glob("q5_5*.json"), *cli.GENERATED_DIR.glob("q5_5*"),
                                          *cli.FIGURES_DIR.glob("q5_5*"))}
    with pytest.raises(common.UserError, match=r"q5_2_mlp.json is not the assignment's Q5.2 run \(--epochs 1 vs 500\)"):
        q5_5_cnn.main(["--plot-only", "--mlp-results", str(tmp_path / "q5_2_mlp.json")])
    assert {p: p.read_bytes() for p in before} == before
    # in a folder of its own the same file is compared with
    assert q5_2_mlp.comparable_run(tmp_path / "q5_2_mlp.json", same_split, q5_5_cnn.MLP_KEYS) == short


@pytest.fixture(scope="module")
def compared(tmp_path_factory) -> Path:
    """A folder of one's own holding the committed CNN and Q5.2 runs, and the comparison drawn from them."""
    folder = tmp_path_factory.mktemp("compared")
    for name in ("q5_5_cnn.json", "q5_2_mlp.json"):
        shutil.copy(cli.RESULTS_DIR / name, folder / name)
    assert q5_5_cnn.main(["--plot-only", "--output-dir", str(folder)]) == 0
    return folder


def contents(folder: Path) -> dict:
    """The folder's results, figures and snippets (not the lock a run holds), byte for byte."""
    return {path: path.read_bytes() for path in folder.rglob("*") if path.is_file() and not path.name.startswith(".")}


@pytest.fixture
def own(compared, tmp_path) -> Path:
    """A copy of `compared` for one test to change."""
    return Path(shutil.copytree(compared, tmp_path / "own"))


def test_the_snippet_names_the_results_files_it_was_drawn_from(own, tmp_path):
    other = tmp_path / "elsewhere" / "mlp.json"
    other.parent.mkdir()
    shutil.copy(own / "q5_2_mlp.json", other)
    assert q5_5_cnn.main(["--plot-only", "--output-dir", str(own), "--mlp-results", str(other)]) == 0
    header = (own / "generated" / "q5_5.tex").read_text().splitlines()[0]
    assert says(header, str(own / "q5_5_cnn.json"), str(other)) and "results/q5_2_mlp.json" not in header
    # the committed snippet's header names the committed files, as written in it
    assert (cli.GENERATED_DIR / "q5_5.tex").read_text().startswith(
        "% Generated by codes/q5_5_cnn.py from results/q5_5_cnn.json and results/q5_2_mlp.json;")


@pytest.mark.parametrize("named", ["q5_2_mlp.jsn", "q5_5_cnn.json"])  # a typo; the CNN's own file
def test_a_named_q5_2_file_that_is_missing_or_not_one_is_refused(own, named):
    before = contents(own)
    done = run_script("q5_5_cnn.py", "--plot-only", "--output-dir", str(own), "--mlp-results", str(own / named))
    assert done.returncode == 1 and str(own / named) in done.stderr and "Traceback" not in done.stderr
    assert contents(own) == before


def test_the_committed_comparison_needs_the_q5_2_run(tmp_path):
    with pytest.raises(common.UserError, match="No Q5.2 results file at .*q5_2_mlp.py"):
        q5_2_mlp.comparable_run(tmp_path / "q5_2_mlp.json", {"config": {}}, for_report=True)


def test_a_redraw_without_q5_2_removes_the_earlier_comparison(own, drawn):
    (own / "q5_2_mlp.json").unlink()
    done = run_script("q5_5_cnn.py", "--plot-only", "--output-dir", str(own))
    assert done.returncode == 0 and says(done.stdout, "removed", "q5_5.tex", "q5_5_disagreements.png"), done.stderr
    assert not (own / "generated" / "q5_5.tex").exists() and not (own / "figures" / "q5_5_disagreements.png").exists()
    assert [name for name in drawn["q5_5_cnn_vs_mlp.png"]["panels"][0]["curves"] if not name.startswith("_")] == ["CNN"]


def test_a_redraw_compares_the_two_saved_runs_not_the_command_line(own):
    for name in ("q5_5_cnn.json", "q5_2_mlp.json"):  # both runs on a subset of 500 digits
        run = json.loads((own / name).read_text())
        run["config"]["subset"], run["settings_changed"] = 500, ["subset 500"]
        (own / name).write_text(json.dumps(run))
    done = run_script("q5_5_cnn.py", "--plot-only", "--output-dir", str(own))
    assert done.returncode == 0, done.stderr
    (own / "q5_5_cnn.json").unlink()  # only the MLP's run: it is the CNN's that is missing
    done = run_script("q5_5_cnn.py", "--plot-only", "--output-dir", str(own))
    assert done.returncode == 1 and says(done.stderr, "No results file", str(own / "q5_5_cnn.json"))


@pytest.mark.parametrize("flag", [("--lr", "0.05"), ("--mlp-results", "results/q5_2_mlp.json")])
def test_the_check_refuses_the_flags_it_does_not_read(tmp_path, flag):
    done = redraw_check(tmp_path, STEADY, COLLAPSING)
    assert done.returncode == 0, done.stderr
    done = run_script("q5_5_cnn.py", "--lrs", "0.1,0.01", "--plot-only", "--output-dir", str(tmp_path), *flag)
    assert done.returncode == 1 and says(done.stderr, flag[0], "--lrs") and "Traceback" not in done.stderr


def digits(run: dict) -> list:
    return run["misclassified_val_digits"]


EDITS = {  # what a hand edit can leave in a results file that still holds its keys
    "no split_sizes": lambda run: run.pop("split_sizes"),
    "no model": lambda run: run.pop("model"),
    "no seconds": lambda run: run.pop("seconds"),
    "no environment": lambda run: run.pop("environment"),
    "no question": lambda run: run.pop("question"),
    "no training time": lambda run: run["seconds"].update(train_per_epoch=0),
    "parameters as text": lambda run: run["model"].update(parameters="397510"),
    "digits as text": lambda run: run.update(misclassified_val_digits="oops"),
    "a digit without its index": lambda run: digits(run)[0].pop("index"),
    "a digit without pixels": lambda run: digits(run)[0].pop("pixels"),
    "ragged pixels": lambda run: digits(run)[-1]["pixels"][5].pop(),
    "a repeated digit": lambda run: digits(run).append(digits(run)[0]),
    "no test indices": lambda run: run.update(misclassified_test_indices=None),
    "test indices as text": lambda run: run.update(misclassified_test_indices=["1", "2"]),
    "a test index out of range": lambda run: run["misclassified_test_indices"].append(10_000),
}


@pytest.mark.parametrize("edit", EDITS)
@pytest.mark.parametrize("name", ["q5_5_cnn.json", "q5_2_mlp.json"])
def test_a_hand_edited_results_file_is_refused_and_nothing_is_written(own, name, edit):
    run = json.loads((own / name).read_text())
    EDITS[edit](run)
    (own / name).write_text(json.dumps(run))
    before = contents(own)
    done = run_script("q5_5_cnn.py", "--plot-only", "--output-dir", str(own))
    assert done.returncode == 1 and says(done.stderr, str(own / name), "rerun") and "Traceback" not in done.stderr
    assert contents(own) == before


def test_the_matched_mlp_needs_a_sweep_trained_alike_and_the_report_needs_it(tmp_path):
    cnn = runs.read_results(cli.RESULTS_DIR / "q5_5_cnn.json")
    assert q5_5_cnn.matched_mlp(cli.RESULTS_DIR, cnn, for_report=True) is not None
    sweep = json.loads((cli.RESULTS_DIR / "q5_3_flooding_lr0.01.json").read_text())
    (tmp_path / "q5_3_flooding_lr0.01.json").write_text(json.dumps({**sweep, "config": {**sweep["config"], "momentum": 0.5}}))
    assert q5_5_cnn.matched_mlp(tmp_path, cnn) is None  # another momentum: not the same MLP
    with pytest.raises(common.UserError, match="the report compares the CNN with the MLP at its learning rate"):
        q5_5_cnn.matched_mlp(tmp_path, cnn, for_report=True)
    del sweep["final_val_ece"]
    (tmp_path / "q5_3_flooding_lr0.01.json").write_text(json.dumps(sweep))
    with pytest.raises(common.UserError, match="lacks final_val_ece"):
        q5_5_cnn.matched_mlp(tmp_path, cnn)


def fake_training(monkeypatch):
    """train_cnn copying the committed run of the same file name into place, whatever the settings."""
    def train_cnn(*args, **keywords):
        path = next(arg for arg in args if isinstance(arg, Path))
        shutil.copy(cli.RESULTS_DIR / path.name, path)
    monkeypatch.setattr(q5_5_cnn, "train_cnn", train_cnn)


def test_a_run_without_q5_2_says_so_once(tmp_path, monkeypatch, capsys):
    fake_training(monkeypatch)
    assert q5_5_cnn.main(["--output-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.count("no Q5.2 results at") == 1


def test_the_check_draws_the_runs_it_trained_not_a_stale_one(tmp_path, monkeypatch):
    stale = json.loads((cli.RESULTS_DIR / "q5_5_lr_check_lr0.1.json").read_text())
    (tmp_path / "q5_5_lr_check_lr0.5.json").write_text(json.dumps({**stale, "config": {**stale["config"], "lr": 0.5}}))
    fake_training(monkeypatch)
    assert q5_5_cnn.main(["--lrs", "0.1,0.01", "--epochs", "158", "--output-dir", str(tmp_path)]) == 0
    snippet = (tmp_path / "generated" / "q5_5_step_size.tex").read_text()
    assert "\\newcommand{\\QFiveFiveCheckHighLr}{0.1}" in snippet


def test_the_check_refuses_both_flags_it_does_not_take_by_name(tmp_path):
    with pytest.raises(common.UserError) as refused:
        q5_5_cnn.main(["--lrs", "0.1,0.01", "--lr", "0.05", "--mlp-results", str(tmp_path / "q5_2_mlp.json")])
    assert "takes no --lr and no --mlp-results" in str(refused.value)


def test_the_check_snippet_writes_exact_rates_and_an_epoch_0():
    high = check_run(0.1000001, [2.3, 0.4, 0.2, 9.0, 2.31], [90.0, 5.0, 2.0, 88.0, 88.8], [90.0, 5.5, 2.5, 88.0, 88.7])
    low = check_run(0.01, [2.3, 0.6, 0.3, 0.2, 0.1], [0.0, 8.0, 1.0, 0.0, 0.0], [90.0, 8.5, 2.0, 1.5, 1.25])
    snippet = check_snippet([high, low])
    assert "CheckHighLr}{0.1000001}" in snippet and "CheckLowZeroTrainErrorEpoch}{0}" in snippet


def test_a_q5_2_run_on_splits_of_other_sizes_is_refused(tmp_path):
    mlp = json.loads((cli.RESULTS_DIR / "q5_2_mlp.json").read_text())
    cnn = runs.read_results(cli.RESULTS_DIR / "q5_5_cnn.json")
    (tmp_path / "q5_2_mlp.json").write_text(json.dumps({**mlp, "split_sizes": {**mlp["split_sizes"], "train": 47999}}))
    with pytest.raises(common.UserError, match="splits of other sizes"):
        q5_2_mlp.comparable_run(tmp_path / "q5_2_mlp.json", cnn, q5_5_cnn.MLP_KEYS)
