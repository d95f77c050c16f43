"""Q5.2: a one-hidden-layer MLP (784-500-10, ReLU) trained on MNIST for 500 epochs.

SGD with learning rate 0.1 and momentum 0.9, mean cross-entropy, no data
augmentation, no learning-rate decay, no weight decay; 48,000 training and
12,000 validation images (the 8:2 split), the 10,000 test images evaluated
alongside. Batch size 128 (the assignment leaves it open).

    python codes/q5_2_mlp.py                           # the assignment's run
    python codes/q5_2_mlp.py --epochs 1 --subset 1000  # a seconds-long check
    python codes/q5_2_mlp.py --plot-only               # redraw figures from the saved results

Writes results/q5_2_mlp.json, report/figures/q5_2_error.png,
report/figures/q5_2_loss.png and report/generated/q5_2.tex; a run at other
settings writes under results/runs/q5_2_mlp-<settings>-<hash>/.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Sequence

import cli
import common
import plotting
import runs
from latex import latex_macros, latex_scientific, or_dash, seconds_text, shown_path

RESULTS_FILE = "q5_2_mlp.json"


def make_parser() -> argparse.ArgumentParser:
    parser = cli.script_parser(__doc__)
    cli.add_training_arguments(parser)
    return parser


def comparable_run(path: Path, beside: dict, keys: Sequence[str] = tuple(k for k in cli.COMPUTING if k != "tf32"),
                   for_report: bool = False, named: bool = False, quiet: bool = False,
                   required: Sequence[str] = runs.RUN_KEYS, strict: bool = False) -> dict | None:
    """The Q5.2 run at `path`, to draw beside another run (`beside`: its config, and its split_sizes once trained),
    trained alike in `keys` (tf32 aside: a run records what its device did). None, with a note unless quiet, if it
    is missing or differs; an error instead if it is missing where it was named (--mlp-results) or the report needs
    it (for_report, which takes only the assignment's Q5.2 run, complete), or if it differs where `strict`."""
    path = Path(path)
    if not path.exists():
        if named or for_report:
            raise common.UserError(f"No Q5.2 results file at {path}: " + (
                "check the --mlp-results path." if named else "the report needs the assignment's Q5.2 run: run "
                "codes/q5_2_mlp.py first (or `git checkout -- results/q5_2_mlp.json`)."))
        if not quiet:
            print(f"note: no Q5.2 results at {path}: drawn without Q5.2's run (a Q5.2 run on the same split and "
                  "subset in the same --output-dir is drawn beside)")
        return None
    mlp_results = runs.read_results(path, required, question="Q5.2")
    if for_report:
        expected = cli.defaults(make_parser(), [name for name in cli.COMPUTING if name != "tf32"])
        changed = runs.differing_settings(mlp_results["config"], expected, list(expected)) or mlp_results.get(
            "settings_changed") or ([] if mlp_results.get("epochs_completed") == expected["epochs"]
                                    else ["stopped before its last epoch"])
        if changed:
            raise common.UserError(f"{path} is not the assignment's Q5.2 run ({', '.join(changed)}), which the report "
                                   "draws: rerun Q5.2 at its defaults, or draw it in a folder of your own (--output-dir).")
    if differing := runs.differing_settings(mlp_results["config"], beside["config"], keys):
        if strict:
            raise common.UserError(f"{path} was run with other settings than this run ({', '.join(differing)}): "
                                   "they cannot be drawn together.")
        if not quiet:
            print(f"note: Q5.2's run is not drawn: {path} was trained otherwise ({', '.join(differing)})")
        return None
    if "split_sizes" in beside and mlp_results.get("split_sizes", beside["split_sizes"]) != beside["split_sizes"]:
        raise common.UserError(f"{path} holds a run on splits of other sizes ({mlp_results['split_sizes']} vs "
                               f"{beside['split_sizes']}): was one of them run on other MNIST files? Drawn together "
                               "they need the same digits.")
    return mlp_results


def plot(results: dict, figures_dir: Path) -> list[Path]:
    epochs = results["history"]["epoch"]
    series = {key: runs.series(results, key) for key in ("train_error", "val_error", "train_loss", "val_loss")}
    final = runs.final_metrics(results)
    setting = "MLP 784-500-10, SGD lr {lr}, momentum {momentum}, batch {batch_size}".format(**results["config"])

    # at the printed size (the text width): the errors on the error axis, and the validation error alone on a
    # linear one, where its lowest point and its end can be told apart
    best = runs.argmin_finite(series["val_error"])
    with plotting.plt.rc_context(plotting.PRINTED_TYPE):
        fig, (ax, ax_val) = plotting.plt.subplots(1, 2, figsize=(plotting.TEXT_WIDTH, 2.1))
        ax.plot(epochs, series["train_error"], label=f"training (final {final['train_error']:.3f}%)", color="C0")
        # validation errors to 3 decimals: one of 12,000 digits is 0.0083 %, and differences must survive rounding
        ax.plot(epochs, series["val_error"], label=f"validation (final {final['val_error']:.3f}%)", color="C1")
        plotting.error_axis(ax)
        ax.legend(title=f"test error at the end: {final['test_error']:.2f}%")
        ax.set_title("training and validation error")
        start = min(10, len(epochs) - 1)  # the first epochs' errors would squeeze the linear axis
        ax_val.plot(epochs[start:], series["val_error"][start:], color="C1")
        ax_val.plot(epochs[best], series["val_error"][best], "o", color="k", markersize=3, zorder=3,
                    label=f"lowest: {series['val_error'][best]:.3f}% (epoch {epochs[best]})")
        if epochs[-1] > epochs[start]:  # a one-epoch run has one point here, nothing to span
            ax_val.set_xlim(epochs[start], epochs[-1])
        ax_val.margins(y=0.1)
        ax_val.set_ylabel("validation error (%, linear axis)")
        ax_val.legend()
        ax_val.set_title(f"validation error from epoch {epochs[start]} on")
        for panel in (ax, ax_val):
            panel.set_xlabel("epoch")
        fig.suptitle(f"Q5.2: {setting}{plotting.run_label(results)}")
    paths = [plotting.save(fig, figures_dir / "q5_2_error.png")]

    # the loss on a log axis; the validation loss alone on a linear one, where its rise is visible; and
    # from the same epoch on, what the Q5.1 explanation says keeps growing. Drawn at the printed size.
    val_loss, norm = series["val_loss"], runs.series(results, "weight_norm")
    wrong = [math.nan if v is None else v for v in runs.series(results, "val_confidence_wrong")]  # None: none wrong
    best = runs.argmin_finite(val_loss)
    with plotting.plt.rc_context(plotting.PRINTED_TYPE):
        fig, (ax, ax_val, ax_conf) = plotting.plt.subplots(1, 3, figsize=(plotting.TEXT_WIDTH, 2.3))
        ax.plot(epochs, series["train_loss"], label="training", color="C0")
        ax.plot(epochs, val_loss, label="validation", color="C1")
        for panel in (ax, ax_val, ax_conf):
            panel.axvline(epochs[best], color="C1", linestyle=":")  # the lowest validation loss
            panel.set_xlabel("epoch")
        ax.set_yscale("log")
        ax.set_ylabel("mean cross-entropy")
        ax.legend(loc="center right")
        ax.set_title("loss (log axis)")
        ax_val.plot(epochs[best:], val_loss[best:], color="C1")
        ax_val.set_ylabel("validation cross-entropy")
        ax_val.set_title("validation loss (linear)")
        ax_conf.plot(epochs[best:], wrong[best:], color="C3")
        ax_conf.set_ylabel("confidence when wrong (red)")
        ax_norm = ax_conf.twinx()
        ax_norm.plot(epochs[best:], norm[best:], color="k", linestyle="--")
        ax_norm.set_ylabel("weight norm (dashed)")
        ax_norm.grid(False)
        ax_conf.set_title("confidence and weight norm")
        fig.suptitle(f"Q5.2 loss: {setting}{plotting.run_label(results)}")
    paths.append(plotting.save(fig, figures_dir / "q5_2_loss.png"))
    return paths


def snippet(results: dict, source: Path) -> str:
    """The numbers the report cites about the Q5.2 run (Q5.1 and Q5.2 rest on them), read from `source`."""
    final = runs.final_metrics(results)
    macros = {
        "QFiveTwoEpochs": results["epochs_completed"],
        "QFiveTwoParameters": f"{results['model']['parameters']:,}",
        "QFiveTwoValError": f"{final['val_error']:.3f}",
        "QFiveTwoTestError": f"{final['test_error']:.2f}",
        "QFiveTwoZeroTrainErrorEpoch": or_dash(final["zero_train_error_epoch"]),
        "QFiveTwoLowestValLoss": f"{final['lowest_val_loss']:.4f}",
        "QFiveTwoLowestValLossEpoch": final["lowest_val_loss_epoch"],
        "QFiveTwoFinalValLoss": f"{final['val_loss']:.4f}",
        "QFiveTwoFinalTrainLoss": f"${latex_scientific(final['train_loss'])}$",
        "QFiveTwoSecondsPerEpoch": seconds_text(results['seconds']['train_per_epoch'] + results['seconds']['eval_per_epoch']),
        "QFiveTwoDevice": results["environment"]["device_name"],
    }
    lowest = results["history"]["epoch"].index(final["lowest_val_loss_epoch"])  # the Q5.1 evidence from here on
    for name, key, i, digits in (("WrongConfidenceAtLowest", "val_confidence_wrong", lowest, 3),
                                 ("WrongConfidenceFinal", "val_confidence_wrong", -1, 3),
                                 ("RightConfidenceFinal", "val_confidence_right", -1, 3),
                                 ("WeightNormAtLowest", "weight_norm", lowest, 1), ("WeightNormFinal", "weight_norm", -1, 1)):
        value = runs.series(results, key)[i]  # None where no digit was misclassified
        macros[f"QFiveTwo{name}"] = "--" if value is None else f"{value:.{digits}f}"
    return latex_macros(f"codes/q5_2_mlp.py from {shown_path(source)}", macros)


def main(argv: list[str] | None = None) -> int:
    args, settings, options, paths = cli.parse(make_parser(), argv, "q5_2_mlp")
    paths.claim("q5_2")
    paths.announce()
    results_path = paths.results / RESULTS_FILE
    if not args.plot_only:
        results, model, splits = runs.train_and_record(
            "Q5.2", settings, common.mlp, [settings.seed], [0.0], results_path, options, paths, desc="Q5.2 MLP")
        results.update(runs.misclassified(model, splits))  # for Q5.5's comparison
        runs.write_atomic(results_path, results)
        runs.print_single_run_outcome(results, "MLP", f"try a smaller --lr. The history is in {results_path}.")
        print(f"results: {results_path}")
    results = runs.read_results(results_path, runs.SINGLE_RUN, question="Q5.2")
    paths.refuse_other_run(results, results_path)
    if results["diverged_at_epoch"][0] is not None:  # figures and snippet stay as they were, together
        print(f"the figures and the snippet are not redrawn from {results_path}: its run diverged", file=sys.stderr)
        return 1
    snippet_path = paths.generated / "q5_2.tex"
    runs.write_atomic(snippet_path, snippet(results, results_path))
    print(f"snippet: {snippet_path}")
    for figure in plot(results, paths.figures):
        print(f"figure: {figure}")
    paths.announce()
    return 0


if __name__ == "__main__":
    cli.run_main(main)
