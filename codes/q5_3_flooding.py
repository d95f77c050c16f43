"""Q5.3 and Q5.4: flooding the Q5.2 MLP at every b in {0.00, 0.01, ..., 0.20}.

The training objective is |R - b| + b, R the mini-batch mean cross-entropy
(as the flooding paper applies it). All 21 levels x --seeds initialisations
are trained as ONE stacked model (K = 21 x seeds copies) through the common
trainer: within a seed every level starts from the same weights, and every
copy sees the same mini-batches, so the levels are compared pairwise. The b = 0
copy of seed 0 is trained as the Q5.2 run: on a CPU it is the same run; on a
GPU the stacked products round otherwise, and training amplifies that. The
sweep sweeps at the assignment's lr 0.1 and again at lr 0.01 (everything else
equal), since how much flooding matters depends on the step size (Q5.4).

The optimal b is chosen on validation only: the smallest mean over seeds of
the final validation error (ties to the smaller b). Test error is reported,
never used to choose.

    python codes/q5_3_flooding.py                                  # the assignment's sweeps
    python codes/q5_3_flooding.py --epochs 1 --subset 1000 --seeds 1 --flood-levels 0,0.1
    python codes/q5_3_flooding.py --plot-only                      # redraw from the saved results

Writes results/q5_3_flooding_lr<lr>.json per learning rate, five figures
report/figures/q5_3_*.png and report/generated/q5_3.tex; a run at other
settings writes under results/runs/q5_3_flooding-<settings>-<hash>/. Q5.2's
results file (results/q5_2_mlp.json) is drawn beside the chosen level: the
assignment's run needs it; a run of one's own folder draws it if it is there.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

import cli
import common
import plotting
import runs
import q5_2_mlp
from latex import latex_macros, latex_scientific, shown_path

FLOOD_LEVELS = [round(0.01 * i, 2) for i in range(21)]  # the assignment's {0.00, 0.01, ..., 0.20}
SEEDS = 3  # initialisations per level; the committed sweep uses this many
LEARNING_RATES = [common.ASSIGNMENT["lr"], 0.01]  # the assignment's, and a tenfold smaller one for Q5.4
CALIBRATION_BINS = 15
LEVELS_DRAWN = (0.0, 0.05, 0.1, 0.2)  # training-loss curves, drawn with the chosen level and the one set against b = 0
LR_COLORS = ("C9", "C6", "C5", "C8")  # one per learning rate swept


def make_parser() -> argparse.ArgumentParser:
    parser = cli.script_parser(__doc__)
    cli.add_training_arguments(parser, single_run=False)
    parser.add_argument(
        "--flood-levels", type=cli.comma_list("flood levels", cli.checked(float, lambda b: 0 <= b < math.inf,
                                                                          "must be >= 0 and finite")),
        default=FLOOD_LEVELS, metavar="B,B,...", help="flood levels b >= 0 (default: 0.00,0.01,...,0.20)",
    )
    parser.add_argument(
        "--seeds", type=cli.positive_int, default=SEEDS, metavar="N",
        help="initialisations per level, seeds 0..N-1; seed 0 is Q5.2's (default: %(default)s)",
    )
    parser.add_argument(
        "--lrs", type=cli.comma_list("learning rates", cli.positive_float), default=LEARNING_RATES,
        metavar="LR,LR,...", help="one stacked sweep per learning rate; the first is the assignment's (default: 0.1,0.01)",
    )
    # 21 x 3 stacked MLPs are 200 MB of state: save it less often than a single run does.
    parser.set_defaults(checkpoint_every=50)
    return parser


def sweep(settings: cli.Settings, lr: float, results_path: Path, options: cli.Options, paths: cli.OutputPaths) -> dict:
    """One stacked run: every (seed, level) pair as its own copy, all at learning rate lr, on the
    mini-batch order of seed 0 (Q5.2's); continued from its saved state if options.resume."""
    seeds, flood_levels = settings.sweep["seeds"], settings.sweep["flood_levels"]
    init_seeds = [seed for seed in range(seeds) for _ in flood_levels]
    levels = [level for _ in range(seeds) for level in flood_levels]
    results, model, splits = runs.train_and_record(
        "Q5.3", replace(settings, lr=lr, seed=0), common.mlp, init_seeds, levels, results_path, options, paths,
        desc=f"Q5.3 flooding, {cli.flag_text('lr', lr)}, K={len(levels)}")
    results["final_val_ece"] = expected_calibration_error(model, splits["val"]).cpu().tolist()
    return results


def check_memory(copies: int, device: torch.device) -> None:
    """Refuse, before any work, a stack of MLPs that cannot fit: each copy's parameters, gradients and
    momentum, their copy made at every epoch's end, and parameters and momentum in a checkpoint."""
    needed = copies * common.parameter_count(common.mlp()) * 4 * 7  # float32: 5 on the device, 2 in the checkpoint
    try:  # Windows has no sysconf, macOS no SC_AVPHYS_PAGES: there the check is skipped
        free = torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else \
            os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return
    if needed > 0.8 * free:
        raise common.UserError(f"{copies} stacked copies need about {needed / 2**30:.1f} GiB (parameters, gradients, "
                               f"momentum and the checkpoint), more than the {free / 2**30:.1f} GiB free on {device.type}: "
                               "ask for fewer copies (--seeds, --flood-levels).")


@torch.no_grad()
def expected_calibration_error(model: common.StackedCopies, split: common.Split, bins: int = CALIBRATION_BINS,
                               batch_size: int = 1000) -> torch.Tensor:
    """ECE of every copy: sum over equal-width confidence bins of |bin| / N * |accuracy - mean confidence|,
    the confidence being the largest softmax probability. (K,) tensor, a fraction in [0, 1]."""
    # per bin: sum of correct predictions and of confidences (|bin| * accuracy and |bin| * mean confidence)
    correct = torch.zeros(model.copies, bins, device=split.labels.device)
    confidence_sum = torch.zeros_like(correct)
    for logits, labels in common.logits_in_chunks(model, split, batch_size):
        confidence, predicted = logits.softmax(-1).max(-1)  # (K, b)
        # bin i holds confidences in (i/bins, (i+1)/bins]; a confidence is never below 1/10
        index = (confidence * bins).ceil().long().clamp(1, bins) - 1
        correct.scatter_add_(1, index, (predicted == labels).float())
        confidence_sum.scatter_add_(1, index, confidence)
    return (correct - confidence_sum).abs().sum(1) / len(split)


# ----------------------------------------------------------------------------- analysis


def seed_values(results: dict) -> dict[float, dict[str, list]]:
    """Per flood level and quantity, its copies' values seed by seed (two levels' lists pair up by seed): the
    final errors, losses, flooded fraction of the last epoch's mini-batches and validation ECE (%), and each
    copy's lowest validation error with its test error at that epoch (early stopping)."""
    history = results["history"]
    values: dict[float, dict[str, list]] = {}
    for k, copy_info in enumerate(results["copies"]):
        best = runs.argmin_finite(runs.series(results, "val_error", k))
        copy_values = {key: history[key][-1][k] for key in
                       ("train_error", "val_error", "test_error", "train_loss", "val_loss", "flood_active_fraction")}
        ece = results["final_val_ece"][k]  # None for a diverged copy
        copy_values.update(ece=None if ece is None else 100 * ece, best_val_error=history["val_error"][best][k],
                           test_at_best=history["test_error"][best][k])
        row = values.setdefault(copy_info["flood_level"], {})
        for key, value in copy_values.items():
            row.setdefault(key, []).append(value)
    return dict(sorted(values.items()))


def analyse(results: dict) -> dict:
    """One sweep's values per seed, their table (mean and std over seeds per level and quantity) and the
    levels read from it: the chosen b (Q5.3's answer: the smallest mean final validation error), the best
    flooded b > 0, the one set against b = 0 (the chosen one, or the best flooded one when b = 0 is chosen),
    and the b of the smallest mean best validation error (early stopping)."""
    values = seed_values(results)
    table = {level: {key: common.mean_std(seeds) for key, seeds in row.items()} for level, row in values.items()}

    def lowest(key: str, levels: list[float]) -> float | None:  # ties to the smaller b; None if all diverged
        return min((b for b in levels if not math.isnan(table[b][key][0])), key=lambda b: (table[b][key][0], b),
                   default=None)

    chosen, flooded = lowest("val_error", list(table)), lowest("val_error", [b for b in table if b > 0])
    if chosen is None:
        raise common.UserError("every flood level has a diverged copy, so none can be chosen: rerun the sweep "
                               "at a smaller --lrs or with fewer --flood-levels that diverge.")
    return {"values": values, "table": table, "chosen": chosen, "flooded": flooded,
            "shown": chosen if chosen > 0 else flooded or chosen,
            "early_stopped": lowest("best_val_error", list(table))}


def copies_at(results: dict, level: float) -> list[int]:
    return [k for k, c in enumerate(results["copies"]) if c["flood_level"] == level]


def paired_change(values: dict[float, dict[str, list]], level: float, key: str) -> list[float | None]:
    """Per seed, the value (of seed_values) at `level` minus the value at b = 0 of the same seed: the two
    copies share their initialisation and every mini-batch, so the difference is flooding's alone."""
    return [None if flooded is None or base is None else flooded - base
            for flooded, base in zip(values[level][key], values[0.0][key])]


def student_t_two_sided_p(t: float, df: int) -> float:
    """P(|T| >= |t|) for Student's t with df degrees of freedom, from the finite series of
    Abramowitz and Stegun 26.7.3 (odd df) and 26.7.4 (even df)."""
    theta, odd = math.atan(abs(t) / math.sqrt(df)), df % 2
    c2 = math.cos(theta) ** 2
    # even df: A = sin(theta) (1 + 1/2 c^2 + 1*3/(2*4) c^4 + ... up to c^(df-2));
    # odd df: A = 2/pi (theta + sin(theta) cos(theta) (1 + 2/3 c^2 + 2*4/(3*5) c^4 + ... up to c^(df-3)))
    term, total = 1.0, 0.0
    for j in range((df - 1) // 2 if odd else df // 2):
        total += term
        term *= (2 * j + 1 + odd) / (2 * j + 2 + odd) * c2
    inside = 2 / math.pi * (theta + math.sin(theta) * math.cos(theta) * total) if odd else math.sin(theta) * total
    return max(0.0, 1.0 - inside)


def paired_t_test_p(changes: list[float]) -> float:
    """Two-sided p-value of a paired t-test that the mean change is zero (NaN with fewer than two
    changes or a missing one; 0 when every change is the same non-zero value)."""
    mean, std = common.mean_std(changes)
    if len(changes) < 2 or math.isnan(mean):
        return math.nan
    if std == 0:
        return 1.0 if mean == 0 else 0.0
    return student_t_two_sided_p(mean / (std / math.sqrt(len(changes))), len(changes) - 1)


def effect_of_flooding(analysis: dict, early_stopped: bool = False) -> dict | None:
    """How the best flooded level changes the test error against b = 0, paired by seed: the changes' mean and
    std and the paired t-test's p (None without b = 0 or a finite b > 0). The test error, never used for the
    choice, is the honest measure: validation picked the level among many. With early_stopped, the level of
    lowest mean best validation error, each copy's test error read at its best epoch (None if it is b = 0)."""
    level = analysis["early_stopped"] if early_stopped else analysis["flooded"]
    if 0.0 not in analysis["table"] or not level:
        return None
    changes = paired_change(analysis["values"], level, "test_at_best" if early_stopped else "test_error")
    return {"level": level, "test_change": common.mean_std(changes), "p_value": paired_t_test_p(changes)}


def named_copies(run: dict, copies: dict[int, int], named: int = 5) -> str:
    """The first `named` copies of {copy: epoch} (runs.collapsed_copies) as "b=.. (seed s) at epoch e"."""
    names = [f"b={run['copies'][k]['flood_level']:.2f} (seed {run['copies'][k]['init_seed']}) at epoch {epoch}"
             for k, epoch in list(copies.items())[:named]]
    more = len(copies) - len(names)
    return ", ".join(names) + (f" and {more} more" if more else "")


# ----------------------------------------------------------------------------- figures


def band(ax, results: dict, key: str, level: float, first_epoch: int = 0, **line) -> None:
    """From first_epoch on, the mean over seeds of one history key at one level and its min-to-max band."""
    # a diverged copy's epochs are None: NaN here, left out of the mean and the band
    rows = np.array([runs.series(results, key, k)[first_epoch:] for k in copies_at(results, level)], dtype=float)
    epochs, color = results["history"]["epoch"][first_epoch:], "C0" if level == 0 else "C3"  # in every panel
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an epoch where every seed diverged stays NaN
        mean, low, high = np.nanmean(rows, 0), np.nanmin(rows, 0), np.nanmax(rows, 0)
    ax.plot(epochs, mean, color=color, **line)
    ax.fill_between(epochs, low, high, color=color, alpha=0.3, linewidth=0)


# The report prints the panels at 0.49 of its 6.93 in text width, 3.4 in, and the calibration figure at the full
# width: drawn at that size, so that 8 pt prints at 8 pt.
@plotting.plt.rc_context({"font.size": 8, "axes.titlesize": 8.5, "figure.titlesize": 8.5, "legend.fontsize": 8,
                          "legend.title_fontsize": 8})
def plot(sweeps: dict[float, dict], analyses: dict[float, dict], mlp_results: dict | None,
         figures_dir: Path) -> list[Path]:
    main_lr = next(iter(sweeps))
    main, analysis = sweeps[main_lr], analyses[main_lr]
    table, chosen, shown = analysis["table"], analysis["chosen"], analysis["shown"]
    seeds, epochs = main["config"]["seeds"], main["history"]["epoch"]
    label = plotting.run_label(main)  # long for a run at other settings: the titles wrap it (wrap=True)
    shown_role = "chosen" if shown == chosen else "best flooded"
    panel = (3.4, 2.6)  # inches
    paths = []

    # 1. the assignment's figure: errors under the chosen b, with Q5.2 beside it (and, when b = 0 is
    # chosen, the best flooded level, so that flooding is still in the picture)
    drawn_levels = {chosen: "chosen", shown: shown_role}  # one entry when shown is the chosen level
    fig, ax = plotting.plt.subplots(figsize=panel)
    split_styles = {"val_error": "-", "train_error": "--"}
    for level, role in drawn_levels.items():
        for key, style in split_styles.items():
            band(ax, main, key, level, linestyle=style,
                 label=f"b = {level:.2f} ({role})" if key == "val_error" else None)
    if mlp_results is not None:
        every = slice(None, None, 25)  # markers, not a line: a line would hide the b = 0 curves, nearly the same
        for key in split_styles:
            ax.plot(mlp_results["history"]["epoch"][every], runs.series(mlp_results, key)[every], "x", color="k",
                    markersize=4, zorder=3,
                    label=f"Q5.2 run, every {every.step} epochs" if key == "val_error" else None)
    ax.set_xlabel("epoch")
    plotting.error_axis(ax)
    ax.legend()
    ax.set_title(f"(a) error at the chosen b = {chosen:.2f}, {cli.flag_text('lr', main_lr)}\n"
                 f"solid: validation, dashed: training{label}", wrap=True)
    paths.append(plotting.save(fig, figures_dir / "q5_3_chosen_level.png"))

    # 2. final errors against b at every learning rate, the level validation chooses at each circled
    fig, ax = plotting.plt.subplots(figsize=panel)
    for lr, color in zip(sweeps, LR_COLORS):
        run_table = analyses[lr]["table"]
        for key, style in (("val_error", "-"), ("test_error", "--")):
            means, stds = zip(*(row[key] for row in run_table.values()))
            ax.errorbar(list(run_table), means, yerr=stds, color=color, linestyle=style, marker="o", markersize=2.5,
                        capsize=2)
        circled = analyses[lr]["chosen"]
        ax.plot(circled, run_table[circled]["val_error"][0], "o", markersize=9, markerfacecolor="none",
                markeredgecolor=color, zorder=3)
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(plotting.matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    ax.yaxis.set_minor_formatter(plotting.matplotlib.ticker.NullFormatter())
    ax.set_yticks([1, 2, 5, 10])
    ax.xaxis.set_major_locator(plotting.matplotlib.ticker.MaxNLocator(5))  # tick labels apart at 8 pt
    ax.set(xlabel="flood level b (nats)", ylabel="final error (%, log axis)")
    # colour for the learning rate, line style for the split: four short entries in two rows, below the curves
    key = plotting.matplotlib.lines.Line2D
    keys = [key([], [], color=color, label=cli.flag_text("lr", lr)) for lr, color in zip(sweeps, LR_COLORS)]
    keys += [key([], [], color="0.3", linestyle=style, label=name) for style, name in (("-", "validation"), ("--", "test"))]
    ax.set_ylim(0.7, None)
    ax.legend(handles=keys, loc="lower right", ncol=2)
    ax.set_title(f"(b) final error against b, mean \u00b1 std\nof {seeds} seeds; circled: chosen on validation{label}",
                 wrap=True)
    paths.append(plotting.save(fig, figures_dir / "q5_3_error_vs_level.png"))

    # 3. the training loss floats at b: the levels of LEVELS_DRAWN, the chosen one and the one set against b = 0
    fig, ax = plotting.plt.subplots(figsize=panel)
    drawn = sorted({b for b in (*LEVELS_DRAWN, chosen, shown) if b in table})
    other_colors = iter(("C1", "C2", "C4"))  # one per flooded level of LEVELS_DRAWN
    for level in drawn:
        color = {shown: "C3", 0.0: "C0"}.get(level) or next(other_colors)  # band's colours
        batch_loss = np.array(runs.series(main, "batch_loss", copies_at(main, level)[0])[1:], dtype=float)
        ax.plot(epochs[1:], batch_loss, color=color, label=f"{level:.2f}")  # None -> NaN: a gap
        if level > 0:
            ax.axhline(level, color=color, linestyle=":", linewidth=1)
    ax.set(yscale="log", xlabel="epoch", ylabel="training cross-entropy (nats)")
    # in the gap at the right between the flooded curves (at b >= 0.01) and the unflooded one (below 1e-4)
    ax.legend(loc="center right", bbox_to_anchor=(1, 0.45), ncol=3, title="flood level b")
    ax.set_title(f"(c) training loss, seed 0, {cli.flag_text('lr', main_lr)}\n"
                 f"epoch mean of mini-batch losses; dotted: b{label}", wrap=True)
    paths.append(plotting.save(fig, figures_dir / "q5_3_training_loss.png"))

    # 4. validation loss: no flooding against the chosen b (the best flooded level if b = 0 is chosen),
    # from epoch 1: the untrained network's 2.3 would squeeze the range that matters on a linear axis
    fig, ax = plotting.plt.subplots(figsize=panel)
    for level in dict.fromkeys((0.0, shown)):  # one curve when b = 0 is all there is
        if level in table:
            band(ax, main, "val_loss", level, first_epoch=1,
                 label=f"b = {level:.2f} ({'no flooding' if level == 0 else shown_role})")
    ax.set(xlabel="epoch", ylabel="validation cross-entropy (nats)")
    ax.legend()
    ax.set_title(f"(d) validation loss, {cli.flag_text('lr', main_lr)}\nmean of {seeds} seeds, band: min to max{label}",
                 wrap=True)
    paths.append(plotting.save(fig, figures_dir / "q5_3_validation_loss.png"))

    # 5. calibration against b at every learning rate, at the full text width
    fig, ax = plotting.plt.subplots(figsize=(6.9, 2.0))
    for lr, color in zip(sweeps, LR_COLORS):
        means, stds = zip(*(row["ece"] for row in analyses[lr]["table"].values()))
        ax.errorbar(list(analyses[lr]["table"]), means, yerr=stds, color=color, marker="o", markersize=2.5, capsize=2,
                    label=cli.flag_text("lr", lr))
    ax.set(xlabel="flood level b (nats)", ylabel=f"final validation ECE (%, {CALIBRATION_BINS} bins)")
    ax.xaxis.set_major_locator(plotting.matplotlib.ticker.MaxNLocator(5))
    ax.legend()
    ax.set_title(f"Calibration error against b, mean \u00b1 std of {seeds} seeds{label}", wrap=True)
    paths.append(plotting.save(fig, figures_dir / "q5_3_learning_rates.png"))
    return paths


# ----------------------------------------------------------------------------- LaTeX snippet


def pm(value: tuple[float, float], digits: int = 2, signed: bool = False) -> str:
    """mean +- std in LaTeX math (with its sign if signed)."""
    mean, std = value
    if math.isnan(mean):
        return "diverged"
    return f"${mean:{'+' if signed else ''}.{digits}f} \\pm {std:.{digits}f}$"


def level_macros(name: str, row: dict[str, tuple[float, float]] | None, quantities: tuple[str, ...] = (
        "ValError", "TestError", "TrainError", "ECE", "ValLoss", "TrainLoss", "FloodActive")) -> dict[str, str]:
    """The final numbers of one level (mean +- std over seeds) as QFiveThree<name><quantity> macros;
    "--" for a level the sweep does not have."""
    if row is None:
        return {f"QFiveThree{name}{quantity}": "--" for quantity in quantities}
    train_loss = row["train_loss"][0]
    values = {
        "ValError": pm(row["val_error"]),
        "TestError": pm(row["test_error"]),
        "TrainError": pm(row["train_error"], digits=4),  # a single misclassified training digit is 0.002 %
        "ECE": pm(row["ece"]),
        "ValLoss": pm(row["val_loss"], digits=3),
        "TrainLoss": "diverged" if math.isnan(train_loss) else f"${latex_scientific(train_loss)}$",
        "FloodActive": "diverged" if math.isnan(train_loss) else f"{100 * row['flood_active_fraction'][0]:.0f}",
    }
    return {f"QFiveThree{name}{quantity}": values[quantity] for quantity in quantities}


def snippet(sweeps: dict[float, dict], analyses: dict[float, dict], source: Path) -> str:
    """The numbers the text cites (Q5.2's own numbers come from report/generated/q5_2.tex); every level's
    are in the figures. `source`: the first sweep's results file."""
    main_lr = next(iter(sweeps))
    table, shown = analyses[main_lr]["table"], analyses[main_lr]["shown"]
    flooded_levels = [b for b in table if b > 0]
    macros = {
        "QFiveThreeSeeds": sweeps[main_lr]["config"]["seeds"],
        "QFiveThreeLevelCount": len(table),
        "QFiveThreeFloodedLevelCount": len(flooded_levels),
        "QFiveThreeLevelRange": f"{min(table):.2f},\\dots,{max(table):.2f}",
        "QFiveThreeLowestFloodedLevel": f"{min(flooded_levels):.2f}" if flooded_levels else "--",
        "QFiveThreeChosenLevel": f"{analyses[main_lr]['chosen']:.2f}",
        "QFiveThreeFloodedLevel": f"{shown:.2f}",
        **level_macros("Flooded", table[shown]),
        # b = 0 trains to zero error and never floods: the text says so without citing the numbers
        **level_macros("NoFlood", table.get(0.0), ("ValError", "TestError", "ECE", "ValLoss", "TrainLoss")),
    }
    # Q5.4: at the assignment's learning rate ("Main") and the smaller one ("Small"), flooding against b = 0
    for name, lr in zip(("Main", "Small"), sweeps):
        analysis, table = analyses[lr], analyses[lr]["table"]
        values = {"Lr": cli.number_text(lr)}
        effect = effect_of_flooding(analysis)
        if effect is not None:
            values.update(Level=f"{effect['level']:.2f}", TestChange=pm(effect["test_change"], signed=True),
                          P=f"{effect['p_value']:.2g}")
        # three decimals: the change must equal the difference of the errors (a mean of three seeds' errors is a
        # multiple of 1/3 of a test digit, 0.0033 %)
        early = analysis["early_stopped"]
        values.update(EarlyLevel=f"{early:.2f}", EarlyTestError=pm(table[early]["test_at_best"], digits=3))
        early_effect = effect_of_flooding(analysis, early_stopped=True)
        if early_effect is not None:
            values.update(EarlyTestChange=pm(early_effect["test_change"], digits=3, signed=True),
                          EarlyP=f"{early_effect['p_value']:.2g}")
        top = max(table)
        values["TopLevel"] = f"{top:.2f}"
        if name == "Main" and 0.0 in table and len(table) > 1:
            # how far from chance the weakest of the flooded levels' changes of the test error is
            values["LevelsLargestP"] = "{:.2g}".format(max(
                paired_t_test_p(paired_change(analysis["values"], b, "test_error")) for b in table if b > 0))
        elif name == "Small":
            # a copy whose training loss floats at b holds -log p near b, i.e. its confidence near exp(-b): if it
            # is then under-confident, its ECE is about its accuracy minus exp(-b); compared at the largest level
            values.update(TopEce=f"{table[top]['ece'][0]:.1f}",
                          TopPredictedEce=f"{100 * (1 - table[top]['val_error'][0] / 100 - math.exp(-top)):.1f}")
        macros.update({f"QFiveFour{name}{key}": value for key, value in values.items()})
    return latex_macros(f"codes/q5_3_flooding.py from {shown_path(source)} and the other sweeps", macros)


def agreeing_sweeps(paths: dict[float, Path], output_paths: cli.OutputPaths) -> dict[float, dict]:
    """The sweeps' results, which must differ in the learning rate alone to share figures."""
    sweeps = {lr: runs.read_results(path, (*runs.RUN_KEYS, "final_val_ece"), question="Q5.3")
              for lr, path in paths.items()}
    first_lr, first = next(iter(sweeps.items()))
    paired = [name for name in (*cli.COMPUTING, *cli.SWEEP) if name not in ("lr", "lrs")]
    for lr, run in sweeps.items():
        output_paths.refuse_other_run(run, paths[lr])
        if differing := runs.differing_settings(run["config"], first["config"], paired):
            raise common.UserError(
                f"{paths[lr]} and {paths[first_lr]} differ in more than the learning rate ({', '.join(differing)}), "
                "so they cannot share one figure: rerun one of them, or give each its own --output-dir.")
    return sweeps


def main(argv: list[str] | None = None) -> int:
    args, settings, options, paths = cli.parse(make_parser(), argv, "q5_3_flooding")
    paths.claim("q5_3")
    paths.announce()
    results_paths = {lr: paths.results / runs.results_name(lr, "q5_3_flooding") for lr in settings.sweep["lrs"]}
    main_lr, main_path = next(iter(results_paths.items()))  # the assignment's learning rate: drawn in any case
    if not args.plot_only:
        check_memory(settings.sweep["seeds"] * len(settings.sweep["flood_levels"]),
                     cli.training_device(settings.device)[0])
        resumed = runs.resumed_parts(list(results_paths.values()), options.resume, options.restart)
        for (lr, results_path), resume in zip(results_paths.items(), resumed):
            results = sweep(settings, lr, results_path, replace(options, resume=resume), paths)
            runs.write_atomic(results_path, results)
            if results["status"] != "completed":
                print(f"warning: {cli.flag_text('lr', lr)}: {results['status']}; those copies are reported as diverged")
            if collapsed := runs.collapsed_copies(results):
                print(f"warning: {cli.flag_text('lr', lr)}: some copies collapsed, their training loss rising above "
                      f"its value before training: {named_copies(results, collapsed)}")
            print(f"results: {results_path} ({results['seconds']['total']:.1f} s, "
                  f"{results['seconds']['train_per_epoch']:.3f} s training per epoch for "
                  f"{len(results['copies'])} stacked copies on {results['environment']['device_name']})")
    else:  # draw the sweeps that exist; the assignment's learning rate must be (reading it says what to run)
        if main_path.exists() and (missing := [lr for lr, path in results_paths.items() if not path.exists()]):
            print(f"note: no sweep at {cli.flag_text('lr', missing)} yet; drawing the others")
            results_paths = {lr: path for lr, path in results_paths.items() if lr not in missing}
    sweeps = agreeing_sweeps(results_paths, paths)
    if diverged := [lr for lr, run in sweeps.items() if all(d is not None for d in run["diverged_at_epoch"])]:
        # figures and snippet stay as they were, together
        print(f"the figures and the snippet are not redrawn: every copy of the sweep at {cli.flag_text('lr', diverged)} "
              "diverged", file=sys.stderr)
        return 1
    mlp_results = q5_2_mlp.comparable_run(paths.results / q5_2_mlp.RESULTS_FILE, sweeps[main_lr],
                                          for_report=paths.is_assignment_run)
    analyses = {lr: analyse(run) for lr, run in sweeps.items()}
    for lr, analysis in analyses.items():
        b = analysis["chosen"]
        (val, val_std), (test, test_std) = (analysis["table"][b][key] for key in ("val_error", "test_error"))
        print(f"{cli.flag_text('lr', lr)}: chosen b = {b:.2f}, final validation error {val:.2f} +- {val_std:.2f} %, "
              f"test error {test:.2f} +- {test_std:.2f} %")
    snippet_path = paths.generated / "q5_3.tex"
    runs.write_atomic(snippet_path, snippet(sweeps, analyses, main_path))
    print(f"snippet: {snippet_path}")
    for figure in plot(sweeps, analyses, mlp_results, paths.figures):
        print(f"figure: {figure}")
    paths.announce()
    return 0


if __name__ == "__main__":
    cli.run_main(main)
