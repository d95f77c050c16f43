"""Q5.5: the check behind the CNN's learning rate, drawn and summarised from its runs.

The CNN is trained like the Q5.2 MLP except for the learning rate, chosen here:
the same CNN (same initialisation, same mini-batches) trained at each candidate
rate for the same number of epochs, and the rate with the lowest final
validation error is the one Q5.5 uses (the test set plays no part). A run
collapses when its training loss rises above its value before training: from
then on the network is worse than an untrained one.

    python codes/q5_5_cnn.py --lr 0.1 --epochs 158 --output-dir results/q5_5_step_size/lr0.1 \\
        --mlp-results results/q5_2_mlp.json          # one run per rate (on a CPU: 50 minutes each)
    python codes/q5_5_cnn.py --lr 0.01 --epochs 158 --output-dir results/q5_5_step_size/lr0.01 \\
        --mlp-results results/q5_2_mlp.json
    python codes/q5_5_step_size.py                   # figure and snippet from the runs

Reads results/q5_5_step_size/*/q5_5_cnn.json; writes
report/figures/q5_5_step_size.png and report/generated/q5_5_step_size.tex.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import common
import plotting
from q5_5_cnn import LEARNING_RATE, RESULTS_FILE

RUNS_DIR = common.RESULTS_DIR / "q5_5_step_size"
# what must be equal for the runs to differ in the learning rate alone
PAIRED_SETTINGS = ("epochs", "seed", "split_seed", "subset", "batch_size", "momentum", "tf32")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs-dir", type=Path, default=RUNS_DIR,
                        help=f"folder whose subfolders hold one {RESULTS_FILE} each (default: %(default)s)")
    parser.add_argument("--figures-dir", type=Path, default=common.FIGURES_DIR, help="(default: %(default)s)")
    parser.add_argument("--generated-dir", type=Path, default=common.GENERATED_DIR, help="(default: %(default)s)")
    return parser.parse_args(argv)


def load_runs(runs_dir: Path) -> list[dict]:
    """The check's runs, largest learning rate first; they must differ in the learning rate alone."""
    runs = [common.read_results(path) for path in sorted(runs_dir.glob(f"*/{RESULTS_FILE}"))]
    if len(runs) < 2:
        raise common.UserError(f"the learning-rate check needs at least two runs in {runs_dir}/*/{RESULTS_FILE}, "
                               f"found {len(runs)} (see --help for the commands)")
    runs.sort(key=lambda run: -run["config"]["lr"])
    for run in runs[1:]:
        differing = common.differing_settings(run["config"], runs[0]["config"], PAIRED_SETTINGS)
        if differing:
            raise common.UserError(f"the runs in {runs_dir} differ in more than the learning rate: {', '.join(differing)}")
    return runs


def summary(run: dict) -> dict:
    final = common.final_metrics(run)
    losses = common.series(run, "train_loss")
    lowest = common.argmin_finite(losses)
    return {"lr": run["config"]["lr"], "collapse_epoch": common.collapse_epoch(run), "final": final,
            "lowest_train_loss": losses[lowest], "lowest_train_loss_epoch": run["history"]["epoch"][lowest]}


def finding(s: dict) -> str:
    """One sentence on one run, from its history."""
    final = s["final"]
    loss = s["lowest_train_loss"]
    loss = f"{loss:.4f}" if loss >= 1e-3 else f"${common.latex_scientific(loss)}$"
    text = f"At lr {s['lr']:g} the training loss is lowest at epoch {s['lowest_train_loss_epoch']} ({loss})"
    if s["collapse_epoch"] is not None:
        return (text + f"; at epoch {s['collapse_epoch']} it rises above its value before training, and the "
                f"network ends at {final['train_error']:.2f}\\,\\% training and {final['val_error']:.2f}\\,\\% "
                f"validation error, although its validation error was {final['best_val_error']:.2f}\\,\\% at "
                f"epoch {final['best_val_epoch']}.")
    zero = final["zero_train_error_epoch"]
    reached = f"reaches zero at epoch {zero}" if zero is not None else f"ends at {final['train_error']:.3f}\\,\\%"
    return text + f"; its training error {reached}, and its final validation error is {final['val_error']:.2f}\\,\\%."


def chosen_lr(summaries: list[dict]) -> float:
    """The rate with the lowest final validation error (ties to the larger rate, the faster one)."""
    return min(summaries, key=lambda s: s["final"]["val_error"])["lr"]


def snippet(summaries: list[dict], epochs: int) -> str:
    macros = {
        "QFiveFiveStepSizeEpochs": epochs,
        "QFiveFiveStepSizeRates": ", ".join(f"{s['lr']:g}" for s in summaries),
        "QFiveFiveStepSizeFindings": " ".join(finding(s) for s in summaries),
        "QFiveFiveStepSizeChosen": f"{chosen_lr(summaries):g}",
    }
    return common.latex_macros("codes/q5_5_step_size.py from results/q5_5_step_size/*/q5_5_cnn.json", macros)


def plot(runs: list[dict], figures_dir: Path) -> Path:
    fig, (ax_loss, ax_error) = plotting.plt.subplots(1, 2, figsize=(10, 3.8))
    for color, run in zip(("C3", "C0", "C2", "C1"), runs):
        epochs, lr = run["history"]["epoch"], run["config"]["lr"]
        ax_loss.plot(epochs, common.series(run, "train_loss"), color=color, label=f"lr {lr:g} training")
        ax_error.plot(epochs, common.series(run, "train_error"), color=color, linestyle="--", label=f"lr {lr:g} training")
        ax_error.plot(epochs, common.series(run, "val_error"), color=color, label=f"lr {lr:g} validation")
        collapsed = common.collapse_epoch(run)
        if collapsed is not None:
            ax_loss.axvline(collapsed, color=color, linestyle=":", linewidth=1)
            ax_loss.annotate(f"collapse (epoch {collapsed})", (collapsed, 1.0), xytext=(-6, 0), textcoords="offset points",
                             ha="right", fontsize=8, color=color)
    ax_loss.set_yscale("log")
    ax_loss.set_ylabel("training loss (mean cross-entropy)")
    ax_loss.set_title("training loss")
    plotting.error_axis(ax_error)
    ax_error.set_title("error (dashed: training, solid: validation)")
    for ax in (ax_loss, ax_error):
        ax.set_xlabel("epoch")
        ax.legend(fontsize=8)
    config = runs[0]["config"]
    fig.suptitle(f"Q5.5 learning-rate check: the CNN from the same initialisation on the same mini-batches "
                 f"(SGD momentum {config['momentum']}, batch {config['batch_size']}, {runs[0]['epochs_completed']} epochs)",
                 fontsize=10)
    return plotting.save(fig, figures_dir / "q5_5_step_size.png")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    runs = load_runs(args.runs_dir)
    summaries = [summary(run) for run in runs]
    chosen = chosen_lr(summaries)
    if chosen != LEARNING_RATE:
        raise common.UserError(f"the check chooses lr {chosen:g}, but codes/q5_5_cnn.py trains the CNN at "
                               f"{LEARNING_RATE:g}: set its LEARNING_RATE to {chosen:g} (the report says they agree)")
    for folder in (args.figures_dir, args.generated_dir):
        common.ensure_writable(folder)
    path = args.generated_dir / "q5_5_step_size.tex"
    common.write_text_atomic(path, snippet(summaries, runs[0]["epochs_completed"]))
    print(f"snippet: {path}")
    print(f"figure: {plot(runs, args.figures_dir)}")
    return 0


if __name__ == "__main__":
    common.run_main(main)
