"""Q5.5: a small CNN on the same MNIST split as Q5.2, compared with the Q5.2 MLP.

Conv2d(1->16, 5x5, padding 2) -> ReLU -> MaxPool 2x2 -> Conv2d(16->32, 5x5,
padding 2) -> ReLU -> MaxPool 2x2 -> Linear(32*7*7 -> 10): 28,938 parameters,
against the MLP's 397,510. Trained as Q5.2 (same split, 500 epochs, SGD with
momentum 0.9, batch 128, same initialisation seed and mini-batches, same
trainer) except for the learning rate: 0.01, because at Q5.2's 0.1 this CNN
trains erratically and then collapses (the check: codes/q5_5_step_size.py).

    python codes/q5_2_mlp.py && python codes/q5_5_cnn.py   # the assignment's runs
    python codes/q5_5_cnn.py --epochs 1 --subset 1000       # a seconds-long check (needs a
                                                            # Q5.2 run of the same length)
    python codes/q5_5_cnn.py --plot-only                    # redraw from the saved results

Writes results/q5_5_cnn.json, report/figures/q5_5_cnn_vs_mlp.png,
report/figures/q5_5_disagreements.png and report/generated/q5_5.tex;
a shortened run writes under results/quick/.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
from torch import nn

import common
import plotting
from q5_2_mlp import RESULTS_FILE as MLP_RESULTS_FILE

RESULTS_FILE = "q5_5_cnn.json"
LEARNING_RATE = 0.01  # chosen by the check in q5_5_step_size.py; Q5.2's 0.1 makes this CNN collapse
DIGITS_PER_ROW = 8  # digits shown for each kind of disagreement


def cnn() -> nn.Sequential:
    """The assignment's suggested network."""
    return nn.Sequential(
        nn.Conv2d(1, 16, kernel_size=5, stride=1, padding=2), nn.ReLU(), nn.MaxPool2d(2, 2),
        nn.Conv2d(16, 32, kernel_size=5, stride=1, padding=2), nn.ReLU(), nn.MaxPool2d(2, 2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, common.NUM_CLASSES),
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_training_arguments(parser)
    parser.set_defaults(lr=LEARNING_RATE)
    parser.add_argument(
        "--mlp-results", type=Path, default=None,
        help=f"the Q5.2 results file to compare with (default: {MLP_RESULTS_FILE} beside this run's results)",
    )
    return parser.parse_args(argv)


def load_mlp_results(path: Path, args: argparse.Namespace) -> dict:
    """The Q5.2 run to compare with; it must have used the same split and data."""
    if not path.exists():
        raise common.UserError(
            f"Q5.5 compares the CNN with the Q5.2 MLP, but {path} does not exist: run codes/q5_2_mlp.py "
            "with the same --epochs/--subset first, or pass --mlp-results."
        )
    mlp_results = common.read_results(path)
    differing = common.differing_settings(mlp_results["config"], vars(args), ("split_seed", "subset"))
    if differing:
        raise common.UserError(
            f"{path} was run with other settings than this run ({', '.join(differing)}): "
            "the comparison needs the same validation images."
        )
    return mlp_results


def disagreements(labels, cnn_predictions, mlp_predictions, val_images) -> dict:
    """Counts of every agreement pattern on validation, and the first few digits of each disagreement."""
    cnn_right = cnn_predictions == labels
    mlp_right = mlp_predictions == labels
    kinds = {"cnn_right_mlp_wrong": cnn_right & ~mlp_right, "mlp_right_cnn_wrong": mlp_right & ~cnn_right}
    pixels = ((val_images[:, 0] * common.MNIST_STD + common.MNIST_MEAN) * 255).round().clamp(0, 255).byte()
    record = {"both_wrong": int((~cnn_right & ~mlp_right).sum())}
    for kind, mask in kinds.items():
        chosen = mask.nonzero().flatten()[:DIGITS_PER_ROW].tolist()
        record[kind] = int(mask.sum())
        record[f"{kind}_examples"] = [
            {"val_index": i, "label": int(labels[i]), "cnn": int(cnn_predictions[i]), "mlp": int(mlp_predictions[i]),
             "pixels": pixels[i].tolist()}
            for i in chosen
        ]
    return record


def plot(results: dict, mlp_results: dict, figures_dir: Path) -> list[Path]:
    runs = {"MLP (Q5.2)": (mlp_results, "C0"), "CNN": (results, "C3")}
    fig, (ax_error, ax_loss) = plotting.plt.subplots(1, 2, figsize=(10, 4.0))
    for name, (run, color) in runs.items():
        epochs = run["history"]["epoch"]
        final = common.final_metrics(run)
        ax_error.plot(epochs, common.series(run, "train_error"), color=color, linestyle="--", label=f"{name} training")
        ax_error.plot(epochs, common.series(run, "val_error"), color=color,
                      label=f"{name} validation (final {final['val_error']:.2f}%)")
        ax_loss.plot(epochs, common.series(run, "train_loss"), color=color, linestyle="--", label=f"{name} training")
        ax_loss.plot(epochs, common.series(run, "val_loss"), color=color, label=f"{name} validation")
    for ax in (ax_error, ax_loss):
        ax.set_xlabel("epoch")
        ax.legend(fontsize=8)
    plotting.error_axis(ax_error)
    ax_loss.set_yscale("log")
    ax_loss.set_ylabel("mean cross-entropy")
    setting = "SGD momentum {momentum}, batch {batch_size}, the same split; ".format(**results["config"])
    setting += f"lr: MLP {mlp_results['config']['lr']:g}, CNN {results['config']['lr']:g}"
    fig.suptitle(f"Q5.5 CNN vs MLP ({setting}){plotting.shortened_label(results)}", fontsize=10)
    ax_error.set_title("error (dashed: training, solid: validation)")
    ax_loss.set_title("loss (dashed: training, solid: validation)")
    paths = [plotting.save(fig, figures_dir / "q5_5_cnn_vs_mlp.png")]

    found = results["disagreements"]
    rows = [("cnn_right_mlp_wrong", "CNN right, MLP wrong"), ("mlp_right_cnn_wrong", "MLP right, CNN wrong")]
    fig, axes = plotting.plt.subplots(2, DIGITS_PER_ROW, figsize=(1.2 * DIGITS_PER_ROW, 3.6), squeeze=False)
    for row, (kind, title) in enumerate(rows):
        examples = found[f"{kind}_examples"]
        for col, ax in enumerate(axes[row]):
            ax.axis("off")
            if col < len(examples):
                example = examples[col]
                ax.imshow(example["pixels"], cmap="gray_r", vmin=0, vmax=255)
                ax.set_title(f"true {example['label']}\nMLP {example['mlp']}, CNN {example['cnn']}", fontsize=7)
        axes[row][0].text(-0.15, 0.5, f"{title}\n({found[kind]} in all)", transform=axes[row][0].transAxes,
                          ha="right", va="center", fontsize=8)
    title = "Q5.5 validation digits the two networks classify differently (at the last epoch)"
    fig.suptitle(title + plotting.shortened_label(results), fontsize=9)
    fig.subplots_adjust(left=0.2)
    paths.append(plotting.save(fig, figures_dir / "q5_5_disagreements.png"))
    return paths


def late_training_error(run: dict, window: int) -> tuple[float, float]:
    """Lowest and highest training error (%) over a run's last `window` epochs."""
    errors = common.series(run, "train_error")[1:]  # epoch 0 is before training
    return min(errors[-window:]), max(errors[-window:])


def settling_sentence(mlp_results: dict, results: dict) -> str:
    """Whether each network's training error has settled at zero by the end of its run, from the data:
    both are read over the same window, the last fifth of the shorter run."""
    runs = {"MLP": mlp_results, "CNN": results}
    window = max(1, min(len(run["history"]["train_error"]) - 1 for run in runs.values()) // 5)
    late = {name: late_training_error(run, window) for name, run in runs.items()}
    over = "In the last epoch" if window == 1 else f"Over the last {window} epochs"
    settled = [name for name, (_, high) in late.items() if high == 0]
    moving = {name: f"from {low:.3f} to {high:.3f}\\,\\%" for name, (low, high) in late.items() if high > 0}
    if len(settled) == 2:
        return f"{over} both networks stay at zero training error."
    if len(settled) == 1:
        (other, span), = moving.items()
        return (f"{over} the {settled[0]}'s training error stays at zero, while the "
                f"{other}'s ranges {span}: at this learning rate the {other}'s SGD does not settle at zero "
                "training error.")
    return (f"{over} neither network settles at zero: the training error ranges "
            f"{moving['MLP']} (MLP) and {moving['CNN']} (CNN).")


def mcnemar_p_value(only_first_right: int, only_second_right: int) -> float:
    """Exact two-sided McNemar test: the probability, if both networks were equally accurate, of a split
    of their disagreements at least this uneven (each disagreement a fair coin)."""
    disagreements = only_first_right + only_second_right
    tail = sum(math.comb(disagreements, k) for k in range(min(only_first_right, only_second_right) + 1))
    return min(1.0, 2 * tail / 2**disagreements)


def mcnemar_sentence(found: dict) -> str:
    """What the split of the disagreements says about the gap between the networks, from the data."""
    cnn_only, mlp_only = found["cnn_right_mlp_wrong"], found["mlp_right_cnn_wrong"]
    p = mcnemar_p_value(cnn_only, mlp_only)
    shown = f"$p={common.latex_scientific(p)}$" if p < 1e-3 else f"$p={p:.3f}$"
    verdict = ("so the gap is not an accident of which digits are in the validation set"
               if p < 0.01 else "so these validation digits do not show either network to be the more accurate")
    return (f"If both networks were equally accurate, each of the {cnn_only + mlp_only} disagreements would be "
            f"a fair coin; a split at least as uneven as {cnn_only} to {mlp_only} then has probability {shown} "
            f"(exact McNemar test), {verdict}.")


def comparison_snippet(results: dict, mlp_results: dict) -> str:
    """The LaTeX the report inputs: \\QFiveFiveTable (MLP and CNN side by side) and the numbers its text cites."""
    mlp, net = common.final_metrics(mlp_results), common.final_metrics(results)
    def per_epoch(run: dict) -> str:
        s = run["seconds"]
        return f"{common.seconds_text(s['train_per_epoch'])} + {common.seconds_text(s['eval_per_epoch'])}"
    rows = [
        ("Parameters", f"{mlp_results['model']['parameters']:,}", f"{results['model']['parameters']:,}"),
        ("Learning rate", f"{mlp_results['config']['lr']:g}", f"{results['config']['lr']:g}"),
        ("Final training error (\\%)", f"{mlp['train_error']:.3f}", f"{net['train_error']:.3f}"),
        ("Final validation error (\\%)", f"{mlp['val_error']:.2f}", f"{net['val_error']:.2f}"),
        ("Best validation error (\\%) [epoch]", f"{mlp['best_val_error']:.2f} [{mlp['best_val_epoch']}]",
         f"{net['best_val_error']:.2f} [{net['best_val_epoch']}]"),
        ("Final test error (\\%)", f"{mlp['test_error']:.2f}", f"{net['test_error']:.2f}"),
        ("Final validation loss", f"{mlp['val_loss']:.3f}", f"{net['val_loss']:.3f}"),
        ("Seconds per epoch (train + eval)", per_epoch(mlp_results), per_epoch(results)),
    ]
    body = "\n".join(f"{name} & {a} & {b} \\\\" for name, a, b in rows)
    found = results["disagreements"]
    devices = {mlp_results["environment"]["device_name"], results["environment"]["device_name"]}
    epochs = {"Mlp": mlp_results["epochs_completed"], "Cnn": results["epochs_completed"]}
    multiply_adds = {"Mlp": common.multiply_adds_per_image(common.mlp()), "Cnn": common.multiply_adds_per_image(cnn())}
    macros = {
        "QFiveFiveParameterRatio": f"{mlp_results['model']['parameters'] / results['model']['parameters']:.1f}",
        "QFiveFiveMultiplyAddRatio": f"{multiply_adds['Cnn'] / multiply_adds['Mlp']:.1f}",
        "QFiveFiveCnnRightMlpWrong": found["cnn_right_mlp_wrong"],
        "QFiveFiveMlpRightCnnWrong": found["mlp_right_cnn_wrong"],
        "QFiveFiveBothWrong": found["both_wrong"],
        "QFiveFiveDevice": " / ".join(sorted(devices)),
        "QFiveFiveEpochs": (f"{epochs['Cnn']}" if epochs["Mlp"] == epochs["Cnn"]
                            else f"{epochs['Mlp']} (MLP) and {epochs['Cnn']} (CNN)"),
        "QFiveFiveSettling": settling_sentence(mlp_results, results),
        "QFiveFiveMcNemar": mcnemar_sentence(found),
    }
    for name, run, final in (("Mlp", mlp_results, mlp), ("Cnn", results, net)):
        seconds = run["seconds"]
        macros.update({
            f"QFiveFive{name}ValError": f"{final['val_error']:.2f}",
            f"QFiveFive{name}TestError": f"{final['test_error']:.2f}",
            f"QFiveFive{name}BestValError": f"{final['best_val_error']:.2f}",
            f"QFiveFive{name}BestValEpoch": final["best_val_epoch"],
            f"QFiveFive{name}MultiplyAdds": f"{multiply_adds[name]:,}",
            f"QFiveFive{name}ZeroTrainError": (
                f"at epoch {final['zero_train_error_epoch']}" if final["zero_train_error_epoch"] is not None
                else f"not within {run['epochs_completed']} epoch{'s' * (run['epochs_completed'] != 1)} (final: {final['train_error']:.3f}\\,\\%)"),
            f"QFiveFive{name}FinalMinusBestValError": f"{final['val_error'] - final['best_val_error']:.2f}",
            f"QFiveFive{name}LowestValLoss": f"{final['lowest_val_loss']:.4f}",
            f"QFiveFive{name}LowestValLossEpoch": final["lowest_val_loss_epoch"],
            f"QFiveFive{name}FinalValLoss": f"{final['val_loss']:.4f}",
            f"QFiveFive{name}SecondsPerEpoch": common.seconds_text(seconds['train_per_epoch'] + seconds['eval_per_epoch']),
        })
    table = ("\\begin{tabular}{lrr}\n\\toprule\n & MLP (Q5.2) & CNN (Q5.5) \\\\\n\\midrule\n"
             f"{body}\n\\bottomrule\n\\end{{tabular}}")
    macros["QFiveFiveTable"] = table
    return common.latex_macros("codes/q5_5_cnn.py from results/q5_5_cnn.json and results/q5_2_mlp.json", macros)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    paths = common.output_paths(args)
    results_path = paths.results / RESULTS_FILE
    mlp_path = args.mlp_results or paths.results / MLP_RESULTS_FILE
    mlp_results = load_mlp_results(mlp_path, args)
    if not args.plot_only:
        paths.ensure_writable()
        results, model, splits = common.run_experiment(
            args, cnn, init_seeds=[args.seed], desc="Q5.5 CNN", checkpoint_path=results_path.with_suffix(".ckpt")
        )
        results["question"] = "Q5.5"
        val = splits["val"]
        cnn_predictions = common.predict(model, val)[0].cpu()
        results["final_val_predictions"] = cnn_predictions.tolist()
        mlp_predictions = mlp_results["final_val_predictions"]
        if len(mlp_predictions) == len(val):
            results["disagreements"] = disagreements(
                val.labels.cpu(), cnn_predictions, torch.tensor(mlp_predictions), val.images.cpu()
            )
        common.write_json_atomic(results_path, results)  # the run is kept even if the comparison is impossible
        if "disagreements" not in results:
            raise common.UserError(
                f"{mlp_path} holds {len(mlp_predictions)} validation predictions, this split has {len(val)}: "
                f"was Q5.2 run on other MNIST files? The CNN's own results are saved in {results_path}."
            )
        if common.print_single_run_outcome(
            results, "CNN", "a smaller --lr trains it steadily (see codes/q5_5_step_size.py). "
            f"The history is in {results_path}."):
            return 1
        print(f"results: {results_path}")
    results = common.read_results(results_path)
    snippet = paths.generated / "q5_5.tex"
    common.write_text_atomic(snippet, comparison_snippet(results, mlp_results))
    print(f"snippet: {snippet}")
    for figure in plot(results, mlp_results, paths.figures):
        print(f"figure: {figure}")
    return 0


if __name__ == "__main__":
    common.run_main(main)
