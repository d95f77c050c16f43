"""Q1: the Neural Network Playground experiments, reproduced offline (codes/playground.py).

Q1.1  a search over configurations for the spiral in two rounds, judged by the median test loss over seeds;
      the seed with the median test loss of the best one, and the page's address with it
      (codes/q1_screenshot.py opens it on the page);
Q1.2  controlled sweeps from that configuration, each over several seeds: learning rate, activation, number of
      hidden layers, regularization type and rate, on the spiral and the circle (regularization also on a noisy
      circle with few training points): final test loss and the epochs until the training loss first falls
      below a threshold, median and range;
Q1.3  the distribution of |weights| after training, pruning of the smallest weights with and without
      retraining, and smaller networks trained directly: test loss against the number of parameters kept.

    python codes/q1_playground.py                      # the full Q1 run (minutes on a CPU)
    python codes/q1_playground.py --epochs 20 --seeds 2  # a quick check
    python codes/q1_playground.py --plot-only          # redraw from the saved results

Another CPU computes the runs with other kernels, and the last bits of long runs differ; the conclusions must
not. To rerun the study the way a CPU without AVX-512 computes it, then check it against the report (the same
chosen configuration and every claim of Q1.2 and Q1.3; exit status 1 if not):

    OPENBLAS_CORETYPE=Haswell NPY_DISABLE_CPU_FEATURES="X86_V4 AVX512_ICL AVX512_SPR" \\
        python codes/q1_playground.py --output-dir /tmp/q1-alt
    python codes/q1_playground.py --check-claims /tmp/q1-alt/q1_playground.json

Writes results/q1_playground.json, report/figures/q1_2_sweeps.png, q1_3_pruning.png and
report/generated/q1.tex; a run at other settings writes under results/runs/q1_playground-<settings>-<hash>/.
"""
from __future__ import annotations

import itertools
import math
import statistics
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

import cli
import common
import latex
import playground as pg
import plotting
import runs

EPOCHS = 500  # per training run, for the search and the sweeps
SEEDS = 20  # per point of every Q1.2 and Q1.3 curve
SEARCH_SEEDS = 4  # per configuration in the first round of the Q1.1 search
FINALISTS = 8  # the first round's best, trained from more seeds in the second round
FINAL_SEEDS = 24  # more seeds per finalist
CONVERGED_BELOW = 0.05  # training loss that counts as converged (0.5 (out - y)^2, labels +-1)
RETRAIN_EPOCHS = 100  # the short retraining after pruning
PRUNE_FRACTIONS = [0.0, 0.2, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95]
SWEEP_DATASETS = {"spiral": {"dataset": "spiral"}, "circle": {"dataset": "circle"}}
# label noise and few training points, where a penalty can pay on the test set: the regularization sweep only
NOISY = {"dataset": "circle", "noise": 50, "train_percent": 20}
NOISY_NAME = "noisy circle"  # in the results; the figure's legend says what it is
NOISY_HELPED = ("L1 0.003", "L2 0.01", "L2 0.03")  # penalties the text says help there
NOISY_LEGEND = f"noisy circle (noise {NOISY['noise']}, {NOISY['train_percent']}% training data)"
RESULTS_FILE = "q1_playground.json"
RESULTS_KEYS = ("search", "best", "best_fresh", "shown_run", "sweeps", "pruning")

SEARCH_SPACE = {  # the Q1.1 grid on the spiral (noise 0, 50 % training data, batch 10)
    "features": [("x1", "x2"), ("x1", "x2", "sin(x1)", "sin(x2)"), pg.FEATURES],
    "hidden": [(6, 6), (8, 8), (8, 6, 4), (8, 8, 8)],
    "activation": ["tanh", "relu"],
    "lr": [0.01, 0.03, 0.1],
    "regularization": [("none", 0.0), ("L2", 0.001)],
}
SWEEPS = {  # Q1.2: each sweep's values as the figure labels them, with their Config changes
    "learning rate": [(lr, {"lr": lr}) for lr in (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)],
    "activation": [(a, {"activation": a}) for a in pg.ACTIVATIONS],
    "hidden layers": [(depth, {"hidden": (8,) * depth}) for depth in range(0, pg.MAX_LAYERS + 1)],
    "regularization": [("none", {"regularization": "none", "reg_rate": 0.0})]
    + [(f"{r} {rate:g}", {"regularization": r, "reg_rate": rate})
       for r in ("L1", "L2") for rate in (0.001, 0.003, 0.01, 0.03, 0.1)],
}
SMALL_NETWORKS = [(), (1,), (2,), (4,), (2, 2), (4, 2), (4, 4), (6, 4), (6, 6), (8, 8)]
# the first seed of Q1.2 and Q1.3: none of theirs was used by the Q1.1 search, so the best configuration's
# scores there are not the ones it was picked on
FIRST_FRESH_SEED = SEARCH_SEEDS + FINAL_SEEDS
LOSS_KEYS = ("train_loss", "test_loss", "train_losses", "test_losses")  # per epoch, per run, or mean and std


def misplaced_value(value, where: str = "") -> str | None:
    """Where a Q1 results file holds something else than a finite loss under a loss key, or an epoch count
    (or null: never converged) under converge_epochs, in words; None if nowhere."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        if key in LOSS_KEYS and not (isinstance(item, list) and all(map(runs.finite, item))):
            return f"{item!r} at {where}{key}, where finite losses belong"
        if key == "converge_epochs" and not (isinstance(item, list) and all(v is None or type(v) is int for v in item)):
            return f"{item!r} at {where}{key}, where epoch counts belong"
        if problem := misplaced_value(item, f"{where}{key}/"):
            return problem
    return None


def read_q1_results(path: Path) -> dict:
    return runs.read_results(path, RESULTS_KEYS, misplaced_value, question="Q1")


def chunks(trained: list, size: int) -> list[list]:
    """Consecutive groups of `size`: the seeds of one point, as the runs were listed."""
    return [trained[i:i + size] for i in range(0, len(trained), size)]


def summary(group: list[pg.Run]) -> dict:
    """Final test and training losses (each run's; mean, std) and each run's epochs until its training loss first
    fell below CONVERGED_BELOW (None: never), with their median (None if the median run never did)."""
    test, train = [r.test_loss[-1] for r in group], [r.train_loss[-1] for r in group]
    converge = [next((e for e, loss in enumerate(r.train_loss) if loss < CONVERGED_BELOW), None) for r in group]
    median_epochs = statistics.median(infinite_if_never(converge))
    return {"test_losses": test, "train_losses": train,
            "test_loss": common.mean_std(test), "train_loss": common.mean_std(train),
            "converge_epochs": converge, "epochs_to_converge": median_epochs if median_epochs < math.inf else None,
            "converged_runs": sum(e is not None for e in converge), "runs": len(group)}


def infinite_if_never(epochs: list[int | None]) -> list[float]:
    """Epochs to converge with inf for the runs that never did, so that they sort last in medians and ranges."""
    return [math.inf if e is None else e for e in epochs]


def median_loss(entry: dict) -> float:
    """The median over seeds of a summary's final test losses: how Q1 ranks a configuration."""
    return statistics.median(entry["test_losses"])


def median_run(group: list[pg.Run]) -> pg.Run:
    """The run with the median final test loss (the lower middle one for an even count): a representative."""
    middle = statistics.median_low(r.test_loss[-1] for r in group)
    return next(r for r in group if r.test_loss[-1] == middle)


def search(epochs: int) -> tuple[pg.Config, list[dict]]:
    """Q1.1: the grid from SEARCH_SEEDS seeds, its FINALISTS best from FINAL_SEEDS more, ranked by the median
    test loss over all their seeds (robust to a late divergence; enough seeds that another CPU's rounding,
    so many fresh draws, picks the same). Returns the choice and one table row per configuration."""
    grid = [pg.Config(features=f, hidden=h, activation=a, lr=lr, regularization=r, reg_rate=rate)
            for f, h, a, lr, (r, rate) in itertools.product(*SEARCH_SPACE.values())]
    first = chunks(pg.train([replace(c, seed=s) for c in grid for s in range(SEARCH_SEEDS)], epochs), SEARCH_SEEDS)
    finalists = sorted(range(len(grid)), key=lambda i: median_loss(summary(first[i])))[:FINALISTS]
    more_seeds = range(SEARCH_SEEDS, FIRST_FRESH_SEED)
    second = chunks(pg.train([replace(grid[i], seed=s) for i in finalists for s in more_seeds], epochs), FINAL_SEEDS)
    trained = {i: first[i] + (second[finalists.index(i)] if i in finalists else []) for i in range(len(grid))}
    table = [{"config": asdict(c), "finalist": i in finalists, **summary(trained[i])} for i, c in enumerate(grid)]
    best = min(finalists, key=lambda i: median_loss(table[i]))
    return grid[best], table


def sweeps(best: pg.Config, epochs: int, seeds: range) -> dict:
    """Q1.2: from the best configuration, vary one control at a time, per dataset, over the `seeds`."""
    points = [(name, value, dataset, {**data, **change})
              for name, values in SWEEPS.items() for value, change in values
              for dataset, data in ({**SWEEP_DATASETS, NOISY_NAME: NOISY} if name == "regularization"
                                    else SWEEP_DATASETS).items()]
    trained = pg.train([replace(best, seed=seed, **changes) for *_, changes in points for seed in seeds], epochs)
    result: dict = {}
    for (name, value, dataset, _), group in zip(points, chunks(trained, len(seeds))):
        entry = summary(group)
        if group[0].config.regularization == "L1":
            entry["dead_link_fraction"] = statistics.fmean(
                float(np.mean(np.concatenate([d.ravel() for d in r.dead]))) for r in group)
        result.setdefault(name, {}).setdefault(dataset, []).append({"value": value, **entry})
    return result


def prune(run: pg.Run, fraction: float) -> pg.Run:
    """Zero the smallest `fraction` of the weights by |w| (biases kept) and mark them dead."""
    magnitudes = np.concatenate([np.abs(w).ravel() for w in run.weights])
    removed = np.zeros(magnitudes.size, dtype=bool)
    removed[np.argsort(magnitudes, kind="stable")[:int(round(fraction * magnitudes.size))]] = True
    layer_ends = np.cumsum([w.size for w in run.weights])[:-1]
    dead = [cut.reshape(w.shape) for cut, w in zip(np.split(removed, layer_ends), run.weights)]
    weights = [np.where(cut, 0.0, w).astype(w.dtype) for cut, w in zip(dead, run.weights)]
    return pg.Run(run.config, run.train_loss, run.test_loss, weights, [b.copy() for b in run.biases], dead)


def pruning(trained: list[pg.Run], epochs: int) -> dict:
    """Q1.3: |w| after training; pruned without and with retraining; smaller networks trained directly.
    `trained`: the best configuration trained from each of the fresh seeds."""
    seeds = len(trained)
    magnitudes = np.concatenate([np.abs(w).ravel() for r in trained for w in r.weights])
    pruned = [prune(r, f) for f in PRUNE_FRACTIONS for r in trained]
    kept = lambda run: int(sum((~d).sum() for d in run.dead) + sum(b.size for b in run.biases))  # live links + biases
    curves = {}
    for name, retrain_epochs in (("pruned", 0), ("pruned and retrained", min(RETRAIN_EPOCHS, epochs))):
        retrained = pg.train([r.config for r in pruned], retrain_epochs, start=pruned)
        curves[name] = [{"fraction": f, "parameters": statistics.fmean(map(kept, group)), **summary(group)}
                        for f, group in zip(PRUNE_FRACTIONS, chunks(retrained, seeds))]
    small = pg.train([replace(r.config, hidden=h) for h in SMALL_NETWORKS for r in trained], epochs)
    curves["trained small"] = [{"hidden": list(h), "parameters": group[0].config.parameter_count(), **summary(group)}
                               for h, group in zip(SMALL_NETWORKS, chunks(small, seeds))]
    counts, edges = np.histogram(magnitudes, bins=np.linspace(0, float(magnitudes.max()), 31))
    return {"weight_histogram": {"edges": edges.tolist(), "counts": counts.tolist()},
            "share_below": {f"{t:g}": float((magnitudes < t).mean()) for t in (0.01, 0.05, 0.1)},
            "curves": curves, "full_parameters": trained[0].config.parameter_count()}


# ----------------------------------------------------------------------------- figures
def spread(values: list[list[float]], ceiling: float = math.inf) -> tuple[np.ndarray, np.ndarray]:
    """Median of each list and error bars (2, len) down to its minimum and up to its maximum, all capped at
    `ceiling` (seeds spread over orders of magnitude: mean +- std would cross zero on a log axis)."""
    low, median, high = np.minimum([[min(v), statistics.median(v), max(v)] for v in values], ceiling).T
    return median, np.array([median - low, high - median])


def plot(results: dict, figures_dir: Path) -> list[Path]:
    label = plotting.run_label(results).strip()
    seeds, budget = results["seeds"], results["epochs"]

    # drawn at the printed size, the text width: one column per control, each as wide as its number of values;
    # the final test loss above the epochs to converge, median and range of the seeds; the legend on a row of its own
    sweeps = results["sweeps"]
    with plotting.plt.rc_context(plotting.PRINTED_TYPE):
        fig = plotting.plt.figure(figsize=(plotting.TEXT_WIDTH, 3.7))
        grid = fig.add_gridspec(3, len(sweeps), height_ratios=(0.2, 1, 1),
                                width_ratios=[len(next(iter(d.values()))) for d in sweeps.values()])
        axes = np.empty((2, len(sweeps)), dtype=object)
        for column in range(len(sweeps)):
            axes[0, column] = fig.add_subplot(grid[1, column], sharey=axes[0, 0])
            axes[1, column] = fig.add_subplot(grid[2, column], sharex=axes[0, column], sharey=axes[1, 0])
        for (ax_loss, ax_epochs), (name, by_dataset) in zip(axes.T, sweeps.items()):
            for i, (dataset, entries) in enumerate(by_dataset.items()):
                x = np.arange(len(entries)) + (i - (len(by_dataset) - 1) / 2) * 0.25
                bars = dict(capsize=1.5, linewidth=0.9, linestyle="", color=f"C{i}")
                ax_loss.errorbar(x, *spread([e["test_losses"] for e in entries]), marker="o", markersize=2.5, **bars)
                # runs that never converged count as slower than all others and are drawn at the budget
                median, error = spread([infinite_if_never(e["converge_epochs"]) for e in entries], budget)
                never = np.array([e["epochs_to_converge"] is None for e in entries])
                ax_epochs.errorbar(x, median, error, marker="", **bars)
                ax_epochs.plot(x[~never], median[~never], "o", markersize=2.5, color=f"C{i}")
                ax_epochs.plot(x[never], median[never], "v", markersize=4, markerfacecolor="white", color=f"C{i}")
            names = [str(e["value"]) for e in entries]
            ax_epochs.set_xticks(np.arange(len(entries)), names, rotation=0 if max(map(len, names)) < 3 else 90)
            ax_epochs.axhline(budget, color="grey", linestyle="--", linewidth=0.8)
            ax_epochs.set_xlabel(name)
            ax_loss.tick_params(labelbottom=False)
            if ax_loss is not axes[0, 0]:
                ax_loss.tick_params(labelleft=False)
                ax_epochs.tick_params(labelleft=False)
        axes[0, 0].set(yscale="log", ylabel="final test loss")
        axes[1, 0].set(yscale="log", ylabel=f"epochs to training\nloss < {CONVERGED_BELOW}", ylim=(1, budget * 1.6))
        key = lambda color, **style: plotting.plt.Line2D([], [], color=color, **style)  # a legend entry
        handles = [key(f"C{i}", linestyle="", marker="o", markersize=3, label=NOISY_LEGEND if d == NOISY_NAME else d)
                   for i, d in enumerate(sweeps["regularization"])]
        handles += [key("black", linestyle="", marker="v", markersize=4, markerfacecolor="white",
                        label="median run never converged"),
                    key("grey", linestyle="--", linewidth=0.8, label=f"budget: {budget} epochs")]
        legend_row = fig.add_subplot(grid[0, :])
        legend_row.axis("off")
        legend_row.legend(handles=handles, loc="center", ncol=3, frameon=False, handletextpad=0.2, columnspacing=1.5)
        if label:
            fig.suptitle(label)
    sweeps_figure = plotting.save(fig, figures_dir / "q1_2_sweeps.png")

    # at the printed size: the weights' magnitudes, and the test loss against the parameters kept
    with plotting.plt.rc_context(plotting.PRINTED_TYPE):
        fig, (ax_hist, ax_curve) = plotting.plt.subplots(1, 2, figsize=(plotting.TEXT_WIDTH, 2.3))
        histogram = results["pruning"]["weight_histogram"]
        ax_hist.bar(histogram["edges"][:-1], histogram["counts"], width=np.diff(histogram["edges"]), align="edge",
                    color="C0")
        ax_hist.set(xlabel="|weight| after training", ylabel=f"links ({seeds} networks)")
        for i, (name, entries) in enumerate(results["pruning"]["curves"].items()):
            entries = sorted(entries, key=lambda e: e["parameters"])
            ax_curve.errorbar([e["parameters"] for e in entries], *spread([e["test_losses"] for e in entries]),
                              marker="o", markersize=2.5, capsize=1.5, linewidth=0.9, color=f"C{i + 1}", label=name)
        ax_curve.set(xscale="log", yscale="log", xlabel="parameters kept (weights + biases)",
                     ylabel=f"final test loss\n(median, min to max of {seeds} seeds)")
        ax_curve.margins(y=0.2)  # room below the curves for the legend
        ax_curve.legend(loc="lower left")
        if label:
            fig.suptitle(label)
    return [sweeps_figure, plotting.save(fig, figures_dir / "q1_3_pruning.png")]


# ----------------------------------------------------------------------------- LaTeX snippet
def median_range(values: list[float], number) -> str:
    """'median [min, max]' with each value written by `number`."""
    return f"{number(statistics.median(values))} [{number(min(values))}, {number(max(values))}]"


def pruning_points(results: dict) -> tuple[dict, float, dict]:
    """Q1.3's curves of pruned networks by the fraction removed, the full network's median test loss, and the
    smallest network trained directly whose median test loss is within twice the full network's."""
    curves = results["pruning"]["curves"]
    by_fraction = {name: {e["fraction"]: e for e in curves[name]} for name in ("pruned", "pruned and retrained")}
    full = median_loss(by_fraction["pruned"][0.0])
    enough = min((e for e in curves["trained small"] if median_loss(e) <= 2 * full), key=lambda e: e["parameters"])
    return by_fraction, full, enough


def snippet(results: dict) -> str:
    best = results["best"]
    finalists = sorted((row for row in results["search"] if row["finalist"]), key=median_loss)
    # the noisy circle: no penalty against the penalties that help, on the same seeds
    noisy = {e["value"]: e for e in results["sweeps"]["regularization"][NOISY_NAME]}
    helped = [noisy[v] for v in NOISY_HELPED]
    by_fraction, full, enough = pruning_points(results)
    loss = lambda value: f"{value:.3f}"
    fine_loss = lambda value: f"{value:.4f}"
    return latex.latex_macros(f"codes/q1_playground.py from {latex.shown_path(cli.RESULTS_DIR / RESULTS_FILE)}", {
        "QOneBestConfig": pg.Config(**best["config"]).describe().replace("^", "\\textasciicircum{}"),  # x1^2
        "QOneBestTestLoss": median_range(best["test_losses"], fine_loss),
        "QOneSearchSize": len(results["search"]),
        "QOneSearchSeeds": min(row["runs"] for row in results["search"]),
        "QOneFinalists": len(finalists),
        "QOneFinalSeeds": best["runs"],
        "QOneRunnerUpHidden": "-".join(map(str, finalists[1]["config"]["hidden"])),
        "QOneRunnerUpTestLoss": median_range(finalists[1]["test_losses"], fine_loss),
        "QOneBestFreshTestLoss": median_range(results["best_fresh"]["test_losses"], fine_loss),
        "QOneEpochs": results["epochs"],
        "QOneSeeds": results["seeds"],
        "QOneConvergedBelow": CONVERGED_BELOW,
        "QOneShownSeed": results["shown_seed"],
        "QOneFastestRateNeverConverged": next(e["runs"] - e["converged_runs"] for e in
                                             results["sweeps"]["learning rate"]["spiral"] if e["value"] == 1.0),
        "QOneNoisyNoise": NOISY["noise"], "QOneNoisyTrainPercent": NOISY["train_percent"],
        "QOneNoisyTrainPoints": pg.POINTS * NOISY["train_percent"] // 100,
        "QOneNoisyNoneLoss": median_range(noisy["none"]["test_losses"], loss),
        "QOneNoisyNoneTrainLoss": loss(statistics.median(noisy["none"]["train_losses"])),
        "QOneNoisyHelped": ", ".join(NOISY_HELPED[:-1]) + " and " + NOISY_HELPED[-1],
        "QOneNoisyHelpedLosses": " to ".join(loss(f(map(median_loss, helped))) for f in (min, max)),
        "QOneNoisyHelpedWins": min(sum(a < b for a, b in zip(e["test_losses"], noisy["none"]["test_losses"]))
                                   for e in helped),
        "QOneShareBelowPointOne": f"{100 * results['pruning']['share_below']['0.1']:.0f}",
        # the pruning study's medians over seeds that the text cites
        "QOnePrunedTwenty": loss(median_loss(by_fraction["pruned"][0.2])),
        "QOnePrunedForty": loss(median_loss(by_fraction["pruned"][0.4])),
        "QOneRetrainedSixty": loss(median_loss(by_fraction["pruned and retrained"][0.6])),
        "QOneRetrainedEighty": loss(median_loss(by_fraction["pruned and retrained"][0.8])),
        "QOneRetrainEpochs": min(RETRAIN_EPOCHS, results["epochs"]),
        "QOneRetrainedParameters": f"{by_fraction['pruned and retrained'][0.6]['parameters']:.0f}",
        "QOneFullLoss": loss(full), "QOneFullParameters": results["pruning"]["full_parameters"],
        "QOneSmallEnoughHidden": "-".join(map(str, enough["hidden"])),
        "QOneSmallEnoughParameters": enough["parameters"], "QOneSmallEnoughLoss": loss(median_loss(enough)),
    })


# ----------------------------------------------------------------------------- the report's claims
def claims(results: dict) -> dict[str, bool]:
    """Each qualitative statement of the report's Q1.2 and Q1.3, true or false for these results:
    tests/test_claims.py requires them of the committed results, --check-claims of another run's."""
    sweep = lambda name, dataset: {entry["value"]: entry for entry in results["sweeps"][name][dataset]}
    median = median_loss
    epochs = lambda entry: statistics.median(infinite_if_never(entry["converge_epochs"]))
    converged = lambda entry: entry["converged_runs"] / entry["runs"]
    (rate, circle_rate), (activation, circle_activation), (depth, circle_depth), (penalty, circle_penalty) = (
        (sweep(name, "spiral"), sweep(name, "circle")) for name in SWEEPS)  # learning rate, ..., regularization
    noisy = sweep("regularization", NOISY_NAME)
    pruning = results["pruning"]
    by_fraction, full, enough = pruning_points(results)
    curve = {name: {fraction: median(e) for fraction, e in entries.items()} for name, entries in by_fraction.items()}
    rates = lambda p, kind: sorted((v for v in p if v.startswith(kind)), key=lambda v: float(v.split()[1]))
    within = lambda value, values: min(values) <= value <= max(values)
    return {
        "spiral: from lr 0.01 to 0.3 the median epochs to converge fall as the rate grows":
            all(epochs(rate[a]) > epochs(rate[b]) for a, b in itertools.pairwise((0.01, 0.03, 0.1, 0.3))),
        "spiral: at lr 0.001 no run converges":
            converged(rate[0.001]) == 0,
        "spiral: at lr 1.0 some runs never converge and the median test loss is over ten times that at 0.3":
            converged(rate[1.0]) < 1 and median(rate[1.0]) > 10 * median(rate[0.3]),
        "circle: every rate from 0.003 to 1.0 converges on every seed, 0.001 on fewer than half":
            all(converged(circle_rate[r]) == 1 for r in circle_rate if r >= 0.003)
            and converged(circle_rate[0.001]) < 0.5,
        "spiral: tanh has the lowest median test loss of the four activations":
            min(activation, key=lambda name: median(activation[name])) == "tanh",
        "circle: the median test losses of tanh and ReLU each lie within the other's range over seeds":
            within(median(circle_activation["tanh"]), circle_activation["relu"]["test_losses"])
            and within(median(circle_activation["relu"]), circle_activation["tanh"]["test_losses"]),
        "circle: ReLU converges in the fewest median epochs":
            min(circle_activation, key=lambda name: epochs(circle_activation[name])) == "relu",
        "spiral: sigmoid converges on fewer than half of the seeds":
            converged(activation["sigmoid"]) < 0.5,
        "circle: sigmoid converges on every seed, but its median epochs are over ten times tanh's":
            converged(circle_activation["sigmoid"]) == 1
            and epochs(circle_activation["sigmoid"]) > 10 * epochs(circle_activation["tanh"]),
        "a linear activation never converges, on the spiral or the circle":
            converged(activation["linear"]) == converged(circle_activation["linear"]) == 0,
        "no hidden layer never converges; one or more converge on every seed, on the spiral and the circle":
            converged(depth[0]) == converged(circle_depth[0]) == 0
            and all(converged(d[n]) == 1 for d in (depth, circle_depth) for n in d if n > 0),
        "spiral: one hidden layer converges more slowly (median epochs) than two to six":
            all(epochs(depth[1]) > epochs(depth[n]) for n in range(2, pg.MAX_LAYERS + 1)),
        "spiral: the medians of three to six layers lie within the seeds' range at two layers":
            all(within(epochs(depth[n]), infinite_if_never(depth[2]["converge_epochs"]))
                and within(median(depth[n]), depth[2]["test_losses"]) for n in range(3, pg.MAX_LAYERS + 1)),
        "spiral and circle: no penalty has the lowest median test loss":
            all(min(p, key=lambda v: median(p[v])) == "none" for p in (penalty, circle_penalty)),
        "spiral and circle: the median epochs to converge never fall as the L1 or L2 rate grows from no penalty":
            all(a <= b for p in (penalty, circle_penalty) for kind in ("L1", "L2")
                for a, b in itertools.pairwise(epochs(p[v]) for v in ["none"] + rates(p, kind))),
        "spiral: L1 removes links (some links dead at every L1 rate)":
            all(penalty[v]["dead_link_fraction"] > 0 for v in penalty if v.startswith("L1")),
        "spiral: L1 0.01 never converges, L2 0.01 on most seeds":
            converged(penalty["L1 0.01"]) == 0 and converged(penalty["L2 0.01"]) > 0.5,
        "spiral and circle: at L1 0.1 and L2 0.1 no run converges and the median test loss is near 0.5":
            all(converged(p[v]) == 0 and 0.45 < median(p[v]) < 0.55
                for p in (penalty, circle_penalty) for v in ("L1 0.1", "L2 0.1")),
        "noisy circle: without a penalty the median training loss is under half the test loss":
            2 * statistics.median(noisy["none"]["train_losses"]) < median(noisy["none"]),
        f"noisy circle: {', '.join(NOISY_HELPED)} each lower the median test loss, and the test loss on most seeds":
            all(median(noisy[v]) < median(noisy["none"])
                and 2 * sum(a < b for a, b in zip(noisy[v]["test_losses"], noisy["none"]["test_losses"]))
                > noisy["none"]["runs"] for v in NOISY_HELPED),
        "noisy circle: no regularized run reaches the convergence threshold":
            all(converged(noisy[v]) == 0 for v in noisy if v != "none"),
        "|w| after training is most often in the lowest bin of the histogram":
            pruning["weight_histogram"]["counts"][0] == max(pruning["weight_histogram"]["counts"]),
        "fewer than 20 % of the weights have |w| < 0.1":
            pruning["share_below"]["0.1"] < 0.2,
        "without retraining, pruning 20 % keeps the median test loss within 1.5 times the full's, 40 % raises "
        "it over five times":
            curve["pruned"][0.2] < 1.5 * full and curve["pruned"][0.4] > 5 * full,
        "after retraining, pruning up to 60 % stays within twice the full network's median test loss, with at most "
        "half its parameters":
            all(curve["pruned and retrained"][f] < 2 * full for f in (0.2, 0.4, 0.5, 0.6))
            and 2 * by_fraction["pruned and retrained"][0.6]["parameters"] <= pruning["full_parameters"],
        "the smallest network trained directly within twice the full network's median test loss has at most half "
        "its parameters":
            2 * enough["parameters"] <= pruning["full_parameters"],
        "networks of fewer than 20 parameters do not learn the spiral (median test loss above 0.3)":
            all(median(e) > 0.3 for e in pruning["curves"]["trained small"] if e["parameters"] < 20),
    }


def check_claims(results: dict, committed: dict) -> int:
    """Print whether another run chose the committed configuration and whether each claim holds for it."""
    try:
        chosen, expected = (pg.Config(**r["best"]["config"]).describe() for r in (results, committed))
        verdicts = claims(results)
    except (KeyError, IndexError, TypeError, ValueError) as err:
        raise common.UserError(f"these results lack what the report's claims read ({err!r}): give the results "
                               "file of a full Q1 run") from err
    print(f"chosen configuration: {chosen}\n  {'the same as' if chosen == expected else 'NOT'} the committed one")
    for sentence, holds in verdicts.items():
        print(f"{'holds ' if holds else 'FAILS '} {sentence}")
    return 0 if chosen == expected and all(verdicts.values()) else 1


def main(argv: list[str] | None = None) -> int:
    parser = cli.script_parser(__doc__)
    parser.add_argument("--epochs", type=cli.positive_int, default=EPOCHS, help="epochs per run (default: %(default)s)")
    parser.add_argument("--seeds", type=cli.positive_int, default=SEEDS,
                        help="seeds per point of the Q1.2/Q1.3 curves (default: %(default)s)")
    parser.add_argument("--output-dir", type=cli.given_path, default=None,
                        help="where results, figures and the snippet go (default: results/, report/figures/ and "
                        "report/generated/ for the full run, results/runs/q1_playground-<settings>-<hash>/ otherwise)")
    parser.add_argument("--plot-only", action="store_true", help="redraw the figures from the saved results")
    parser.add_argument("--check-claims", type=cli.given_path, metavar="RESULTS",
                        help="check another full run's results file (a rerun on another CPU, say) against the "
                        "report: the same chosen configuration and every claim of Q1.2 and Q1.3; exit 1 if not")
    args = parser.parse_args(argv)
    if args.check_claims:
        return check_claims(read_q1_results(args.check_claims), read_q1_results(cli.RESULTS_DIR / RESULTS_FILE))
    paths = cli.output_paths("q1_playground", vars(args), cli.defaults(parser, ("epochs", "seeds")), args.output_dir)
    paths.claim("q1")
    paths.announce()
    results_path = paths.results / RESULTS_FILE
    if not args.plot_only:
        start = time.perf_counter()
        best, table = search(args.epochs)
        print(f"Q1.1 best of {len(table)} configurations: {best.describe()}")
        fresh_seeds = range(FIRST_FRESH_SEED, FIRST_FRESH_SEED + args.seeds)
        retrained = pg.train([replace(best, seed=s) for s in fresh_seeds], args.epochs)
        shown = median_run(retrained)
        results = {
            "question": "Q1", "epochs": args.epochs, "seeds": args.seeds, "settings_changed": paths.changed,
            "search": table, "best": next(row for row in table if row["config"] == asdict(best)),
            "best_fresh": summary(retrained), "shown_seed": shown.config.seed,
            "shown_run": asdict(shown) | {part: [a.tolist() for a in getattr(shown, part)]
                                          for part in ("weights", "biases", "dead")},
            "sweeps": sweeps(best, args.epochs, fresh_seeds), "pruning": pruning(retrained, args.epochs),
            "seconds": time.perf_counter() - start, "machine": runs.cpu_name(),
        }
        runs.write_atomic(results_path, results)
        print(f"results: {results_path} ({results['seconds']:.0f} s)")
    results = read_q1_results(results_path)
    paths.refuse_other_run(results, results_path)
    print(f"snippet: {runs.write_atomic(paths.generated / 'q1.tex', snippet(results))}")
    print("\n".join(f"figure: {figure}" for figure in plot(results, paths.figures)))
    paths.announce()
    return 0


if __name__ == "__main__":
    cli.run_main(main)
