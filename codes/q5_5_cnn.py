"""Q5.5: a small CNN on the same MNIST split as Q5.2, compared with the Q5.2 MLP.

Conv2d(1->16, 5x5, padding 2) -> ReLU -> MaxPool 2x2 -> Conv2d(16->32, 5x5,
padding 2) -> ReLU -> MaxPool 2x2 -> Linear(32*7*7 -> 10): 28,938 parameters,
against the MLP's 397,510. Trained as Q5.2 (same split, 500 epochs, SGD with
momentum 0.9, batch 128, same initialisation seed and mini-batches, same
trainer) except for the learning rate: 0.01, because at Q5.2's 0.1 this CNN
trains erratically and then collapses. The learning-rate check (--lrs) trains
the same CNN at each rate for the same epochs, and keeps the rate with the
lowest final validation error (the test set plays no part); a run collapses
when its training loss rises above its value before training.

    python codes/q5_5_cnn.py                            # the assignment's run
    python codes/q5_5_cnn.py --lrs 0.1,0.01 --epochs 158  # the learning-rate check
    python codes/q5_5_cnn.py --epochs 1 --subset 1000     # a seconds-long check
    python codes/q5_5_cnn.py --plot-only                  # redraw from the saved results

Writes results/q5_5_cnn.json, report/figures/q5_5_cnn_vs_mlp.png,
report/figures/q5_5_disagreements.png and report/generated/q5_5.tex; the
check writes results/q5_5_lr_check_lr<lr>.json, report/figures/q5_5_step_size.png
and report/generated/q5_5_step_size.tex. The comparison with the MLP is drawn
from the digits each run recorded as wrong, with Q5.2's results file
(results/q5_2_mlp.json beside this run's, or --mlp-results), which the
assignment's run needs; in a folder without one the CNN is drawn alone, and
an earlier comparison there is removed, with a note. A run at other settings
writes under results/runs/<script>-<settings>-<hash>/.
"""
from __future__ import annotations

import argparse
import math
import sys
from dataclasses import replace
from pathlib import Path

from torch import nn

import cli
import common
import plotting
import q5_2_mlp
import q5_3_flooding
import runs
from latex import latex_macros, latex_scientific, or_dash, shown_path

RESULTS_FILE = "q5_5_cnn.json"
LEARNING_RATE = 0.01  # chosen by the learning-rate check; Q5.2's 0.1 makes this CNN collapse
LR_CHECK_RATES = [0.1, 0.01]
LR_CHECK_EPOCHS = 158  # the committed check's budget: the lr 0.1 run has collapsed well before it
DIGITS_PER_ROW = 8  # digits shown for each kind of disagreement
# what a run compared holds: the digits it got wrong are written by runs.misclassified
COMPARED = (*runs.SINGLE_RUN, "misclassified_val_digits", "misclassified_test_indices")
MLP_KEYS = ("split_seed", "subset")  # a Q5.2 run compared with must have the CNN's validation images


def cnn() -> nn.Sequential:
    """The assignment's suggested network."""
    return nn.Sequential(
        nn.Conv2d(1, 16, kernel_size=5, stride=1, padding=2), nn.ReLU(), nn.MaxPool2d(2, 2),
        nn.Conv2d(16, 32, kernel_size=5, stride=1, padding=2), nn.ReLU(), nn.MaxPool2d(2, 2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, common.NUM_CLASSES),
    )


def multiply_adds_per_image(module: nn.Sequential) -> int:
    """Multiply-adds of one MNIST image's forward pass through the Linear layers (each weight used once) and
    the Conv2d layers (stride 1, padding that keeps the size: once per input pixel); the rest costs little."""
    total, side = 0, common.IMAGE_SIDE
    for layer in module:
        if isinstance(layer, nn.MaxPool2d):
            side //= layer.stride
        elif isinstance(layer, (nn.Linear, nn.Conv2d)):
            total += layer.weight.numel() * (side * side if isinstance(layer, nn.Conv2d) else 1)
    return total


def make_parser() -> argparse.ArgumentParser:
    parser = cli.script_parser(__doc__)
    cli.add_training_arguments(parser)
    parser.set_defaults(lr=LEARNING_RATE)
    parser.add_argument(
        "--lrs", type=cli.comma_list("learning rates", cli.positive_float), default=None, metavar="LR,LR,...",
        help=f"run the learning-rate check instead: one run per rate, everything else equal (the committed "
        f"check: --{cli.flag_text('lrs', LR_CHECK_RATES)} --epochs {LR_CHECK_EPOCHS})")
    parser.add_argument(
        "--mlp-results", type=cli.given_path, default=None,
        help=f"the Q5.2 results file to compare with (default: {q5_2_mlp.RESULTS_FILE} beside this run's results)")
    return parser


def right_alone(results: dict, mlp_results: dict) -> dict[str, dict[str, list[int]]]:
    """Per split and network, the digits (indices, in order) that this network alone gets right at its
    last epoch, from the digits each run recorded as wrong."""
    cnn_wrong, mlp_wrong = ({"val": {digit["index"] for digit in run["misclassified_val_digits"]},
                             "test": set(run["misclassified_test_indices"])} for run in (results, mlp_results))
    return {split: {"CNN": sorted(mlp_wrong[split] - cnn_wrong[split]), "MLP": sorted(cnn_wrong[split] - mlp_wrong[split])}
            for split in ("val", "test")}


def plot(results: dict, mlp_results: dict | None, figures_dir: Path) -> list[Path]:
    """The CNN's curves beside the MLP's, and the digits the two classify differently (the CNN
    alone, and no digits, without Q5.2's results); drawn at the printed size, the text width."""
    curves = {"CNN": (results, "C3")} if mlp_results is None else {"MLP": (mlp_results, "C0"), "CNN": (results, "C3")}
    with plotting.plt.rc_context(plotting.PRINTED_TYPE):
        fig, (ax_error, ax_loss, ax_val) = plotting.plt.subplots(1, 3, figsize=(plotting.TEXT_WIDTH, 2.2))
        for name, (run, color) in curves.items():
            epochs, val_loss = run["history"]["epoch"], runs.series(run, "val_loss")
            ax_error.plot(epochs, runs.series(run, "train_error"), color=color, linestyle="--")
            ax_error.plot(epochs, runs.series(run, "val_error"), color=color, label=name)
            ax_loss.plot(epochs, runs.series(run, "train_loss"), color=color, linestyle="--")
            ax_loss.plot(epochs, val_loss, color=color)
            lowest = runs.argmin_finite(val_loss)  # from there on, on a linear axis, where the rise is visible
            ax_val.plot(epochs[lowest:], val_loss[lowest:], color=color)
            ax_val.plot(epochs[lowest], val_loss[lowest], "o", color=color, markersize=3)
        for ax in (ax_error, ax_loss, ax_val):
            ax.set_xlabel("epoch")
        plotting.error_axis(ax_error)
        ax_error.legend(loc="center right", bbox_to_anchor=(1, 0.3))  # between the validation and training curves
        ax_loss.set_yscale("log")
        ax_loss.set_ylabel("mean cross-entropy")
        ax_val.set_ylabel("validation cross-entropy")
        setting = "SGD momentum {momentum}, batch {batch_size}, the same split; ".format(**results["config"]) + (
            f"{cli.flag_text('lr', results['config']['lr'])}; no Q5.2 run to compare with" if mlp_results is None
            else f"lr: MLP {cli.number_text(mlp_results['config']['lr'])}, CNN {cli.number_text(results['config']['lr'])}")
        fig.suptitle(f"Q5.5 CNN vs MLP ({setting})\ndashed: training, solid: validation{plotting.run_label(results)}")
        ax_error.set_title("error")
        ax_loss.set_title("loss (log axis)")
        ax_val.set_title("validation loss (linear axis)\nfrom its lowest point (dot) on")
        paths = [plotting.save(fig, figures_dir / "q5_5_cnn_vs_mlp.png")]
        if mlp_results is None:
            return paths

        found = right_alone(results, mlp_results)["val"]  # each digit under its true label and the other network's answer
        digits = {name: {digit["index"]: digit for digit in run["misclassified_val_digits"]}
                  for name, run in (("CNN", results), ("MLP", mlp_results))}
        fig, axes = plotting.plt.subplots(2, DIGITS_PER_ROW, figsize=(plotting.TEXT_WIDTH, 1.55))
        for row, (right, wrong) in enumerate((("CNN", "MLP"), ("MLP", "CNN"))):
            for ax, index in zip(axes[row], found[right]):
                digit = digits[wrong][index]
                ax.imshow(digit["pixels"], cmap="gray_r", vmin=0, vmax=255)
                ax.set_title(f"true {digit['label']}, {wrong} {digit['prediction']}", fontsize=7)
            for ax in axes[row]:
                ax.axis("off")
            axes[row][0].text(-0.25, 0.5, f"{right} right,\n{wrong} wrong\n({len(found[right])} in all)",
                              transform=axes[row][0].transAxes, ha="right", va="center")
        fig.suptitle(f"Q5.5 validation digits the two networks classify differently, at the last epoch"
                     f"{plotting.run_label(results)}")
        fig.subplots_adjust(left=0.15)
        paths.append(plotting.save(fig, figures_dir / "q5_5_disagreements.png"))
    return paths


def settling_window(*runs_compared: dict) -> int:
    """The last fifth of the shorter run: the epochs over which the report says both stay at zero training error."""
    return max(1, min(len(run["history"]["train_error"]) - 1 for run in runs_compared) // 5)


def mcnemar_p_value(only_first_right: int, only_second_right: int) -> float:
    """Exact two-sided McNemar test: the probability, if both networks were equally accurate, of a split
    of their disagreements at least this uneven (each disagreement a fair coin)."""
    disagreements = only_first_right + only_second_right
    tail = sum(math.comb(disagreements, k) for k in range(min(only_first_right, only_second_right) + 1))
    return min(1.0, 2 * tail / 2**disagreements)


def matched_mlp(results_dir: Path, results: dict, for_report: bool = False) -> dict | None:
    """The MLP at the CNN's learning rate, if Q5.3 swept it on the same data and training settings: the
    unflooded (b = 0) copies of that sweep (their mean and std over seeds, as q5_3_flooding.analyse tables
    them). The report cites it: for_report, its absence is an error."""
    path = results_dir / runs.results_name(results["config"]["lr"], "q5_3_flooding")
    # the sweep's initialisations are seeds 0, 1, ...; tf32 is what each run's device did
    alike = [name for name in cli.COMPUTING if name not in ("lr", "seed", "tf32")]
    sweep = runs.read_results(path, (*runs.RUN_KEYS, "final_val_ece"), question="Q5.3") if path.exists() else None
    matched = None if sweep is None or runs.differing_settings(sweep["config"], results["config"], alike) \
        else q5_3_flooding.analyse(sweep)["table"].get(0.0)
    if matched is None and for_report:
        raise common.UserError(f"the report compares the CNN with the MLP at its learning rate, the b = 0 copies of "
                               f"{path}, which is missing or not at the CNN's settings: run codes/q5_3_flooding.py "
                               "first (or `git checkout -- results/`).")
    return matched


def comparison_snippet(results: dict, mlp_results: dict, matched: dict | None = None,
                       sources: str = "results/q5_5_cnn.json and results/q5_2_mlp.json") -> str:
    """The LaTeX the report inputs: \\QFiveFiveTable (MLP and CNN side by side) and the numbers its text
    cites, with the MLP at the CNN's learning rate (matched_mlp) when there is one; its header names the
    two results files (`sources`)."""
    mlp, net = runs.final_metrics(mlp_results), runs.final_metrics(results)
    multiply_adds = {"Mlp": multiply_adds_per_image(common.mlp()), "Cnn": multiply_adds_per_image(cnn())}
    rows = [
        ("Parameters", f"{mlp_results['model']['parameters']:,}", f"{results['model']['parameters']:,}"),
        ("Multiply-adds per image", f"{multiply_adds['Mlp']:,}", f"{multiply_adds['Cnn']:,}"),
        ("Learning rate", cli.number_text(mlp_results["config"]["lr"]), cli.number_text(results["config"]["lr"])),
        # validation errors to 3 decimals, so that final minus best is the digits the text counts
        ("Final validation error (\\%)", f"{mlp['val_error']:.3f}", f"{net['val_error']:.3f}"),
        ("Best validation error (\\%) [epoch]", f"{mlp['best_val_error']:.3f} [{mlp['best_val_epoch']}]",
         f"{net['best_val_error']:.3f} [{net['best_val_epoch']}]"),
        ("Final test error (\\%)", f"{mlp['test_error']:.2f}", f"{net['test_error']:.2f}"),
    ]
    body = "\n".join(f"{name} & {a} & {b} \\\\" for name, a, b in rows)
    # in digits: exact, where a difference of rounded percentages is not
    above_best = {name: round((final["val_error"] - final["best_val_error"]) / 100 * run["split_sizes"]["val"])
                  for name, run, final in (("Mlp", mlp_results, mlp), ("Cnn", results, net))}
    # the exact test on the test set: validation chose the CNN's rate
    tested = right_alone(results, mlp_results)["test"]
    cnn_only, mlp_only = len(tested["CNN"]), len(tested["MLP"])
    p = mcnemar_p_value(cnn_only, mlp_only)
    macros = {
        "QFiveFiveParameterRatio": f"{mlp_results['model']['parameters'] / results['model']['parameters']:.1f}",
        "QFiveFiveMultiplyAddRatio": f"{multiply_adds['Cnn'] / multiply_adds['Mlp']:.1f}",
        "QFiveFiveTrainTimeRatio": f"{results['seconds']['train_per_epoch'] / mlp_results['seconds']['train_per_epoch']:.1f}",
        "QFiveFiveEpochs": results["epochs_completed"],
        "QFiveFiveSettlingWindow": settling_window(mlp_results, results),
        "QFiveFiveMcNemarCnnOnly": cnn_only,
        "QFiveFiveMcNemarMlpOnly": mlp_only,
        "QFiveFiveOneRight": cnn_only + mlp_only,
        "QFiveFiveMcNemarP": latex_scientific(p) if p < 1e-3 else f"{p:.3f}",  # in math mode
        "QFiveFiveMlpZeroTrainErrorEpoch": or_dash(mlp["zero_train_error_epoch"]),
        "QFiveFiveMlpFinalMinusBestValDigits": above_best["Mlp"],
        "QFiveFiveCnnDevice": results["environment"]["device_name"],
        "QFiveFiveCnnZeroTrainErrorEpoch": or_dash(net["zero_train_error_epoch"]),
        "QFiveFiveCnnFinalMinusBestValDigits": above_best["Cnn"],
        "QFiveFiveCnnLowestValLoss": f"{net['lowest_val_loss']:.4f}",
        "QFiveFiveCnnLowestValLossEpoch": net["lowest_val_loss_epoch"],
        "QFiveFiveCnnFinalValLoss": f"{net['val_loss']:.4f}",
        "QFiveFiveTable": ("\\begin{tabular}{lrr}\n\\toprule\n & MLP (Q5.2) & CNN (Q5.5) \\\\\n\\midrule\n"
                           f"{body}\n\\bottomrule\n\\end{{tabular}}"),
    }
    if matched is not None:
        macros.update({"QFiveFiveMatchedLr": cli.number_text(results["config"]["lr"]),
                       **{f"QFiveFiveMatched{split.capitalize()}Error": "${:.2f} \\pm {:.2f}$".format(*matched[f"{split}_error"])
                          for split in ("val", "test")}})
    return latex_macros(f"codes/q5_5_cnn.py from {sources}", macros)


def chosen_lr(check_runs: list[dict]) -> float:
    """The rate with the lowest final validation error (ties to the larger rate, the faster one)."""
    errors = {run["config"]["lr"]: runs.final_metrics(run)["val_error"] for run in check_runs}
    return min(errors, key=lambda lr: math.inf if errors[lr] is None else errors[lr])


def check_snippet(check_runs: list[dict], source: str = "results/q5_5_lr_check_lr*.json") -> str:
    """The check's numbers the report cites; the largest rate's as \\QFiveFiveCheckHigh..., the smallest's as
    ...Low...; its header names the results files (`source`)."""
    high, low = check_runs[0], check_runs[-1]
    high_final, low_final = runs.final_metrics(high), runs.final_metrics(low)
    lowest = runs.argmin_finite(runs.series(high, "train_loss"))
    return latex_macros(f"codes/q5_5_cnn.py --lrs from {source}", {
        "QFiveFiveStepSizeEpochs": high["epochs_completed"],
        "QFiveFiveStepSizeChosen": cli.number_text(chosen_lr(check_runs)),
        "QFiveFiveCheckHighLr": cli.number_text(high["config"]["lr"]),
        "QFiveFiveCheckHighLowestLossEpoch": high["history"]["epoch"][lowest],
        "QFiveFiveCheckHighCollapseEpoch": or_dash(runs.collapse_epoch(high)),
        "QFiveFiveCheckHighFinalTrainError": "--" if high_final["train_error"] is None else f"{high_final['train_error']:.2f}",
        "QFiveFiveCheckLowLr": cli.number_text(low["config"]["lr"]),
        "QFiveFiveCheckLowFinalValError": "--" if low_final["val_error"] is None else f"{low_final['val_error']:.2f}",
        "QFiveFiveCheckLowZeroTrainErrorEpoch": or_dash(low_final["zero_train_error_epoch"]),
    })


def plot_check(check_runs: list[dict], figures_dir: Path) -> Path:
    """The check's training loss and errors per rate, drawn at the printed size (the text width)."""
    with plotting.plt.rc_context(plotting.PRINTED_TYPE):
        fig, (ax_loss, ax_error) = plotting.plt.subplots(1, 2, figsize=(plotting.TEXT_WIDTH, 2.15))
        for color, run in zip(("C3", "C0", "C2", "C1"), check_runs):
            epochs, lr = run["history"]["epoch"], run["config"]["lr"]
            lr = cli.flag_text("lr", lr)
            ax_loss.plot(epochs, runs.series(run, "train_loss"), color=color, label=f"{lr} training")
            ax_error.plot(epochs, runs.series(run, "train_error"), color=color, linestyle="--", label=f"{lr} train.")
            ax_error.plot(epochs, runs.series(run, "val_error"), color=color, label=f"{lr} val.")
            collapsed = runs.collapse_epoch(run)
            if collapsed is not None:
                ax_loss.axvline(collapsed, color=color, linestyle=":", linewidth=1)
                ax_loss.annotate(f"collapse (epoch {collapsed})", (collapsed, 1.0), xytext=(-6, 0),
                                 textcoords="offset points", ha="right", color=color)
        ax_loss.set_yscale("log")
        ax_loss.set_ylabel("training loss (mean cross-entropy)")
        ax_loss.set_title("training loss")
        plotting.error_axis(ax_error)
        ax_error.set_title("error (dashed: training, solid: validation)")
        for ax in (ax_loss, ax_error):
            ax.set_xlabel("epoch")
        ax_loss.legend()
        ax_error.legend(ncol=2, loc="lower center", bbox_to_anchor=(0.7, 0.04))  # below the curves near 1 %
        config = check_runs[0]["config"]
        fig.suptitle(f"Q5.5 learning-rate check: one initialisation, the same mini-batches (momentum "
                     f"{config['momentum']}, batch {config['batch_size']}, {check_runs[0]['epochs_completed']} epochs)")
        return plotting.save(fig, figures_dir / "q5_5_step_size.png")


def check_runs_in(results_dir: Path, lrs: list[float] | None = None) -> list[dict]:
    """The learning-rate check's runs at `lrs` (None: every one in results_dir), largest rate first; they must
    differ in the learning rate alone."""
    found = [results_dir / runs.results_name(lr, "q5_5_lr_check") for lr in lrs] if lrs else \
        sorted(results_dir.glob("q5_5_lr_check_lr*.json"))
    check_runs = [runs.read_results(path, (*runs.RUN_KEYS, "epochs_completed"), question="Q5.5") for path in found]
    if len(check_runs) < 2:
        raise common.UserError(f"the learning-rate check needs at least two runs "
                               f"({results_dir}/q5_5_lr_check_lr*.json), found {len(check_runs)}; the committed "
                               f"check is redrawn with --lrs {','.join(map(str, LR_CHECK_RATES))} --epochs {LR_CHECK_EPOCHS}")
    check_runs.sort(key=lambda run: -run["config"]["lr"])
    for run in check_runs[1:]:
        if differing := runs.differing_settings(run["config"], check_runs[0]["config"],
                                                [name for name in cli.COMPUTING if name != "lr"]):
            raise common.UserError(f"the runs of the learning-rate check in {results_dir} differ in more than the "
                                   f"learning rate: {', '.join(differing)}")
    return check_runs


def draw_check(paths: cli.OutputPaths, lrs: list[float] | None = None) -> None:
    """The check's figure and snippet, from its runs at `lrs` (None: every one saved); the committed check
    must choose the CNN's rate."""
    check_runs = check_runs_in(paths.results, lrs)
    chosen = chosen_lr(check_runs)
    if chosen != LEARNING_RATE:
        disagreement = (f"the check chooses {cli.flag_text('lr', chosen)}, but codes/q5_5_cnn.py trains the CNN at "
                        f"{cli.number_text(LEARNING_RATE)}")
        if paths.is_assignment_run:
            raise common.UserError(f"{disagreement}: set its LEARNING_RATE to {cli.number_text(chosen)} (the report "
                                   "says they agree)")
        print(f"note: {disagreement}")
    path = paths.generated / "q5_5_step_size.tex"
    runs.write_atomic(path, check_snippet(check_runs, shown_path(paths.results / "q5_5_lr_check_lr*.json")))
    print(f"snippet: {path}")
    print(f"figure: {plot_check(check_runs, paths.figures)}")


def train_cnn(settings: cli.Settings, results_path: Path, options: cli.Options, paths: cli.OutputPaths,
              compared: bool = True) -> None:
    """One CNN run at `settings`, continued from its saved state if options.resume, its results written
    (with the digits it gets wrong, which the comparison with Q5.2 is drawn from, if `compared`)."""
    results, model, splits = runs.train_and_record(
        "Q5.5", settings, cnn, [settings.seed], [0.0], results_path, options, paths,
        desc=f"Q5.5 CNN, {cli.flag_text('lr', settings.lr)}")
    if compared:  # not the check's runs: a collapsed one gets most digits wrong
        results.update(runs.misclassified(model, splits))
    runs.write_atomic(results_path, results)
    print(f"results: {results_path}")
    runs.print_single_run_outcome(
        results, "CNN", f"a smaller --lr trains it steadily (see --lrs). The history is in {results_path}.")


def lr_check_variant(args: argparse.Namespace) -> tuple[str, dict]:
    """With --lrs, the learning-rate check: a script of its own, at its own budget and rates."""
    if args.lrs:
        return "q5_5_cnn_lr_check", {"epochs": LR_CHECK_EPOCHS, "lr": None, "lrs": LR_CHECK_RATES}
    return "q5_5_cnn", {}


def main(argv: list[str] | None = None) -> int:
    args, settings, options, paths = cli.parse(make_parser(), argv, "q5_5_cnn", lr_check_variant)
    lrs = settings.sweep["lrs"]  # with --lrs, settings.lr is None: --lr plays no part
    if lrs and len(lrs) < 2:
        raise common.UserError("--lrs: the learning-rate check compares at least two rates.")
    if lrs and (refused := [flag for flag, given in (("--lr", args.lr != LEARNING_RATE),
                                                      ("--mlp-results", args.mlp_results is not None)) if given]):
        raise common.UserError(f"--lrs runs the learning-rate check, which takes no {' and no '.join(refused)}: "
                               "drop " + ("it." if len(refused) == 1 else "them."))
    paths.claim("q5_5")
    paths.announce()
    if lrs:
        if not args.plot_only:
            check_paths = [paths.results / runs.results_name(lr, "q5_5_lr_check") for lr in lrs]
            for lr, path, resume in zip(lrs, check_paths, runs.resumed_parts(check_paths, options.resume,
                                                                              options.restart)):
                train_cnn(replace(settings, lr=lr), path, replace(options, resume=resume), paths, compared=False)
        draw_check(paths, None if args.plot_only else lrs)  # after training, exactly the runs just written
        paths.announce()
        return 0
    results_path = paths.results / RESULTS_FILE
    mlp_path, named = args.mlp_results or paths.results / q5_2_mlp.RESULTS_FILE, args.mlp_results is not None
    if not args.plot_only:  # refused before any training
        q5_2_mlp.comparable_run(mlp_path, {"config": settings.computing()}, MLP_KEYS, paths.is_assignment_run, named,
                                quiet=True, required=COMPARED, strict=True)
        train_cnn(settings, results_path, options, paths)
    results = runs.read_results(results_path, COMPARED, question="Q5.5")
    paths.refuse_other_run(results, results_path)
    if results["diverged_at_epoch"][0] is not None:  # figures and snippet stay as they were, together
        print(f"the figures and the snippet are not redrawn from {results_path}: its run diverged", file=sys.stderr)
        return 1
    # compared with the saved run, whatever the command line says (--plot-only takes no settings)
    mlp_results = q5_2_mlp.comparable_run(mlp_path, results, MLP_KEYS, paths.is_assignment_run, named,
                                          required=COMPARED, strict=True)
    snippet_path, disagreements = paths.generated / "q5_5.tex", paths.figures / "q5_5_disagreements.png"
    if mlp_results is not None:
        sources = " and ".join(shown_path(path) for path in (results_path, mlp_path))
        matched = matched_mlp(paths.results, results, paths.is_assignment_run)
        runs.write_atomic(snippet_path, comparison_snippet(results, mlp_results, matched, sources))
        print(f"snippet: {snippet_path}")
    elif stale := [path for path in (snippet_path, disagreements) if path.exists()]:
        for path in stale:  # they compare an earlier CNN run with Q5.2: left, they would read as this run's
            path.unlink()
        print(f"note: removed {' and '.join(map(str, stale))}, drawn from an earlier CNN run and Q5.2")
    for figure in plot(results, mlp_results, paths.figures):
        print(f"figure: {figure}")
    if args.plot_only and list(paths.results.glob("q5_5_lr_check_lr*.json")):
        draw_check(paths)
    paths.announce()
    return 0


if __name__ == "__main__":
    cli.run_main(main)
