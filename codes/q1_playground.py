"""Q1: the Neural Network Playground experiments, reproduced offline (codes/playground.py).

Q1.1  a search over configurations for the spiral, judged by the test loss
      (mean over seeds), and a playground-style picture of the best one;
Q1.2  controlled sweeps from that configuration, each over several seeds:
      learning rate, activation, number of hidden layers, regularization type
      and rate, on the spiral and the circle: final test loss and the epochs
      until the training loss first falls below a threshold;
Q1.3  the distribution of |weights| after training, pruning of the smallest
      weights with and without retraining, and smaller networks trained
      directly: test loss against the number of parameters kept.

    python codes/q1_playground.py                      # the full Q1 run (minutes on a CPU)
    python codes/q1_playground.py --epochs 20 --seeds 2  # a quick check
    python codes/q1_playground.py --plot-only          # redraw from the saved results

Writes results/q1_playground.json, report/figures/q1_1_spiral_best.png,
q1_2_sweeps.png, q1_3_pruning.png and report/generated/q1.tex; a run at
other settings writes under results/runs/q1_playground-<settings>/.
"""
from __future__ import annotations

import argparse
import itertools
import math
import statistics
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
from matplotlib.colors import LinearSegmentedColormap

import cli
import latex
import playground as pg
import plotting
import runs

EPOCHS = 500  # per training run, for the search and the sweeps
SEEDS = 10  # per point of every Q1.2 and Q1.3 curve
SEARCH_SEEDS = 2  # per configuration of the Q1.1 search
CONVERGED_BELOW = 0.05  # training loss that counts as converged (0.5 (out - y)^2, labels +-1)
RETRAIN_EPOCHS = 100  # the short retraining after pruning
PRUNE_FRACTIONS = [0.0, 0.2, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95]
SWEEP_DATASETS = ("spiral", "circle")
RESULTS_FILE = "q1_playground.json"

SEARCH_SPACE = {  # the Q1.1 grid on the spiral (noise 0, 50 % training data, batch 10)
    "features": [("x1", "x2"), ("x1", "x2", "sin(x1)", "sin(x2)"), pg.FEATURES],
    "hidden": [(6, 6), (8, 8), (8, 6, 4), (8, 8, 8)],
    "activation": ["tanh", "relu"],
    "lr": [0.01, 0.03, 0.1],
    "regularization": [("none", 0.0), ("L2", 0.001)],
}
SWEEPS = {  # Q1.2: what each sweep varies, as Config changes
    "learning rate": [{"lr": lr} for lr in (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)],
    "activation": [{"activation": a} for a in pg.ACTIVATION_NAMES],
    "hidden layers": [{"hidden": (8,) * depth} for depth in range(0, pg.MAX_LAYERS + 1)],
    "regularization": [{"regularization": "none", "reg_rate": 0.0}]
    + [{"regularization": r, "reg_rate": rate} for r in ("L1", "L2") for rate in (0.001, 0.003, 0.01, 0.03)],
}
SMALL_NETWORKS = [(), (1,), (2,), (4,), (2, 2), (4, 2), (4, 4), (6, 4), (6, 6), (8, 8)]


def config_from_dict(record: dict) -> pg.Config:
    return pg.Config(**{k: tuple(v) if isinstance(v, list) else v for k, v in record.items()})


def run_dict(run: pg.Run) -> dict:
    return {"config": asdict(run.config), "train_loss": run.train_loss, "test_loss": run.test_loss,
            "weights": [w.tolist() for w in run.weights], "biases": [b.tolist() for b in run.biases],
            "dead": [d.tolist() for d in run.dead]}


def run_from_dict(record: dict) -> pg.Run:
    return pg.Run(config_from_dict(record["config"]), record["train_loss"], record["test_loss"],
                  [np.array(w, dtype=pg.DTYPE) for w in record["weights"]],
                  [np.array(b, dtype=pg.DTYPE) for b in record["biases"]],
                  [np.array(d, dtype=bool) for d in record["dead"]])


def chunks(runs: list, size: int) -> list[list]:
    """Consecutive groups of `size`: the seeds of one point, as the runs were listed."""
    return [runs[i:i + size] for i in range(0, len(runs), size)]


def summary(runs: list[pg.Run]) -> dict:
    """Final test and training loss (mean, std over the runs) and epochs to converge (median; None if most never do)."""
    test = [r.test_loss[-1] for r in runs]
    train = [r.train_loss[-1] for r in runs]
    converge = [next((e for e, loss in enumerate(r.train_loss) if loss < CONVERGED_BELOW), None) for r in runs]
    reached = sorted(e for e in converge if e is not None)
    return {
        "test_losses": test,
        "test_loss": [statistics.fmean(test), statistics.stdev(test) if len(test) > 1 else 0.0],
        "train_loss": [statistics.fmean(train), statistics.stdev(train) if len(train) > 1 else 0.0],
        "epochs_to_converge": statistics.median(reached) if len(reached) * 2 > len(converge) else None,
        "converged_runs": len(reached),
        "runs": len(runs),
    }


def search(epochs: int) -> tuple[pg.Config, list[dict]]:
    """Q1.1: every grid configuration with SEARCH_SEEDS seeds; the best by mean final test loss."""
    grid = [
        pg.Config(features=f, hidden=h, activation=a, lr=lr, regularization=r, reg_rate=rate)
        for f, h, a, lr, (r, rate) in itertools.product(*SEARCH_SPACE.values())
    ]
    runs = pg.train([replace(c, seed=s) for c in grid for s in range(SEARCH_SEEDS)], epochs)
    table = [{"config": asdict(c), **summary(group)} for c, group in zip(grid, chunks(runs, SEARCH_SEEDS))]
    best = min(range(len(grid)), key=lambda i: table[i]["test_loss"][0])
    return grid[best], table


def fresh_seeds(count: int) -> range:
    """Seeds of Q1.2 and Q1.3: none of them was used by the Q1.1 search, so the best configuration's
    scores there are not the ones it was picked on."""
    return range(SEARCH_SEEDS, SEARCH_SEEDS + count)


def sweep_value(change: dict):
    """The swept value as it appears in tables: a number, a name, a layer count or 'L1 0.001'."""
    if "hidden" in change:
        return len(change["hidden"])
    if "regularization" in change:
        return "none" if change["regularization"] == "none" else f"{change['regularization']} {change['reg_rate']:g}"
    return next(iter(change.values()))


def sweeps(best: pg.Config, epochs: int, seeds: int) -> dict:
    """Q1.2: from the best configuration, vary one control at a time, per dataset, over fresh seeds."""
    points = [(name, change, dataset) for name, changes in SWEEPS.items() for change in changes
              for dataset in SWEEP_DATASETS]
    runs = pg.train([replace(best, dataset=dataset, seed=seed, **change)
                     for _, change, dataset in points for seed in fresh_seeds(seeds)], epochs)
    result: dict = {}
    for (name, change, dataset), group in zip(points, chunks(runs, seeds)):
        entry = summary(group)
        if group[0].config.regularization == "L1":
            entry["dead_link_fraction"] = statistics.fmean(
                float(np.mean(np.concatenate([d.ravel() for d in r.dead]))) for r in group)
        result.setdefault(name, {}).setdefault(dataset, []).append({"value": sweep_value(change), **entry})
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
    as_is = pg.train([r.config for r in pruned], 0, start=pruned)
    retrained = pg.train([r.config for r in pruned], min(RETRAIN_EPOCHS, epochs), start=pruned)

    def kept(run: pg.Run) -> int:
        return int(sum((~d).sum() for d in run.dead) + sum(b.size for b in run.biases))

    curves = {"pruned": [], "pruned and retrained": [], "trained small": []}
    for fraction, as_is_runs, retrained_runs in zip(PRUNE_FRACTIONS, chunks(as_is, seeds), chunks(retrained, seeds)):
        for name, runs in (("pruned", as_is_runs), ("pruned and retrained", retrained_runs)):
            curves[name].append({"fraction": fraction, "parameters": statistics.fmean(kept(r) for r in runs),
                                 **summary(runs)})
    small = pg.train([replace(r.config, hidden=h) for h in SMALL_NETWORKS for r in trained], epochs)
    for hidden, runs in zip(SMALL_NETWORKS, chunks(small, seeds)):
        curves["trained small"].append({"hidden": list(hidden), "parameters": runs[0].config.parameter_count(),
                                        **summary(runs)})
    counts, edges = np.histogram(magnitudes, bins=np.linspace(0, float(magnitudes.max()), 31))
    return {"weight_histogram": {"edges": edges.tolist(), "counts": counts.tolist()},
            "share_below": {f"{t:g}": float((magnitudes < t).mean()) for t in (0.01, 0.05, 0.1)},
            "curves": curves, "full_parameters": trained[0].config.parameter_count()}


# ----------------------------------------------------------------------------- figures

ORANGE, GREY, BLUE = "#f59322", "#e8eaeb", "#0877bd"


def draw_network(ax, run: pg.Run) -> None:
    """Neurons in columns; each link's width grows with |weight|, its colour gives the sign."""
    sizes = [len(run.config.features), *run.config.hidden, 1]
    positions = [[(layer, (n - 1) / 2 - i) for i in range(n)] for layer, n in enumerate(sizes)]
    largest = max(float(np.abs(w).max()) for w in run.weights) or 1.0
    for layer, (w, dead) in enumerate(zip(run.weights, run.dead)):
        for i, j in zip(*np.nonzero(~dead)):  # row by row, as the links are listed
            (x0, y0), (x1, y1) = positions[layer][i], positions[layer + 1][j]
            ax.plot([x0, x1], [y0, y1], color=BLUE if w[i, j] > 0 else ORANGE,
                    linewidth=0.2 + 3.5 * abs(w[i, j]) / largest, alpha=0.8, zorder=1)
    for x, y in itertools.chain(*positions):
        ax.scatter([x], [y], s=140, color="white", edgecolor="k", zorder=2)
    for (x, y), name in zip(positions[0], run.config.features):
        ax.text(x - 0.15, y, name, ha="right", va="center", fontsize=7)
    ax.set_xlim(-1.0, len(sizes) - 0.5)
    ax.axis("off")
    ax.set_title("network (link width ~ |weight|;\nblue +, orange -)", fontsize=9)


def draw_heatmap(ax, run: pg.Run) -> None:
    cmap = LinearSegmentedColormap.from_list("playground", [ORANGE, GREY, BLUE], N=31)
    ax.imshow(pg.output_grid(run), origin="lower", extent=(-pg.DOMAIN, pg.DOMAIN, -pg.DOMAIN, pg.DOMAIN), cmap=cmap,
              vmin=-1, vmax=1, alpha=0.85)
    points, labels = pg.make_dataset(run.config.dataset, run.config.noise, run.config.seed)
    train_x, train_y, test_x, test_y = pg.train_test_split(points, labels, run.config.train_percent, run.config.seed)
    for x, y, edge, name in ((train_x, train_y, "white", "training"), (test_x, test_y, "black", "test")):
        ax.scatter(x[:, 0], x[:, 1], c=np.where(y > 0, BLUE, ORANGE), edgecolors=edge, linewidths=0.6, s=14)
        ax.scatter([], [], color="grey", edgecolors=edge, linewidths=0.6, s=14, label=f"{name} points ({edge} edge)")
    ax.set(xlim=(-pg.DOMAIN, pg.DOMAIN), ylim=(-pg.DOMAIN, pg.DOMAIN), aspect="equal")
    ax.legend(fontsize=7, loc="lower left")
    ax.set_title("output (orange -1, blue +1)", fontsize=9)


def spread(entries: list[dict]) -> tuple[list[float], list[float], list[float]]:
    """Median final test loss of each entry and the distances down to its minimum and up to its maximum
    (seeds spread over orders of magnitude, where mean +- std would cross zero on a log axis)."""
    medians = [statistics.median(e["test_losses"]) for e in entries]
    low = [m - min(e["test_losses"]) for m, e in zip(medians, entries)]
    high = [max(e["test_losses"]) - m for m, e in zip(medians, entries)]
    return medians, low, high


def plot(results: dict, figures_dir: Path) -> list[Path]:
    label = plotting.run_label(results)
    seeds = results["seeds"]
    best = run_from_dict(results["best_run"])
    fig, (ax_net, ax_map, ax_loss) = plotting.plt.subplots(1, 3, figsize=(11, 3.9),
                                                           gridspec_kw={"width_ratios": [1.1, 1, 1]})
    draw_network(ax_net, best)
    draw_heatmap(ax_map, best)
    ax_loss.plot(best.train_loss, color="grey", label=f"training loss {best.train_loss[-1]:.4f}")
    ax_loss.plot(best.test_loss, color="black", label=f"test loss {best.test_loss[-1]:.4f}")
    ax_loss.set(yscale="log", xlabel="epoch", ylabel="mean 0.5 (out - y)^2")
    ax_loss.legend(fontsize=8)
    ax_loss.set_title(f"loss (seed {best.config.seed})", fontsize=9)
    fig.suptitle(f"Q1.1 best configuration found for the spiral:\n{best.config.describe()}{label}", fontsize=10)
    paths = [plotting.save(fig, figures_dir / "q1_1_spiral_best.png")]

    # one row per control: final test loss on the left, epochs to converge on the right
    fig, axes = plotting.plt.subplots(len(results["sweeps"]), 2, figsize=(8.5, 2.6 * len(results["sweeps"])),
                                      squeeze=False)
    for (ax_loss, ax_epochs), (name, by_dataset) in zip(axes, results["sweeps"].items()):
        for i, (dataset, entries) in enumerate(by_dataset.items()):
            x = np.arange(len(entries)) + (i - 0.5) * 0.15
            median, low, high = spread(entries)
            ax_loss.errorbar(x, median, yerr=[low, high], marker="o", markersize=3, capsize=2, linestyle="",
                             color=f"C{i}", label=dataset)
            epochs = [math.nan if e["epochs_to_converge"] is None else e["epochs_to_converge"] for e in entries]
            ax_epochs.plot(x, epochs, marker="o", markersize=4, linestyle="", color=f"C{i}", label=dataset)
            for ax in (ax_loss, ax_epochs):
                ax.set_xticks(np.arange(len(entries)), [str(e["value"]) for e in entries],
                              rotation=30 if len(entries) > 5 else 0)
        ax_loss.set(yscale="log", ylabel="final test loss", xlabel=name)
        ax_epochs.set(ylabel=f"epochs to loss < {CONVERGED_BELOW}", xlabel=name)
    axes[0, 0].set_title(f"final test loss (median; bars: min to max of {seeds} seeds)", fontsize=9)
    axes[0, 1].set_title(f"epochs until the training loss < {CONVERGED_BELOW}\n(median; no point: most runs never)",
                         fontsize=9)
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(f"Q1.2 one control at a time, from the best spiral configuration ({results['epochs']} epochs){label}",
                 fontsize=10)
    paths.append(plotting.save(fig, figures_dir / "q1_2_sweeps.png"))

    fig, (ax_hist, ax_curve) = plotting.plt.subplots(1, 2, figsize=(10, 4))
    edges, counts = results["pruning"]["weight_histogram"]["edges"], results["pruning"]["weight_histogram"]["counts"]
    ax_hist.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color="C0")
    ax_hist.set(xlabel="|weight| after training", ylabel=f"links ({seeds} networks)",
                title="distribution of |weights| (best configuration)")
    for i, (name, entries) in enumerate(results["pruning"]["curves"].items()):
        entries = sorted(entries, key=lambda e: e["parameters"])
        median, low, high = spread(entries)
        ax_curve.errorbar([e["parameters"] for e in entries], median, yerr=[low, high], marker="o", markersize=3,
                          capsize=2, color=f"C{i + 1}", label=name)
    ax_curve.set(xscale="log", yscale="log", xlabel="parameters kept (weights + biases)",
                 ylabel=f"final test loss (median, bars: min to max of {seeds} seeds)",
                 title=f"pruned (with and without {RETRAIN_EPOCHS} epochs of retraining)\nvs smaller networks trained directly")
    ax_curve.legend(fontsize=8)
    fig.suptitle(f"Q1.3 do small weights mean a smaller model would do?{label}", fontsize=10)
    paths.append(plotting.save(fig, figures_dir / "q1_3_pruning.png"))
    return paths


# ----------------------------------------------------------------------------- LaTeX snippet


def tex(text) -> str:
    return str(text).replace("_", "\\_").replace("^", "\\textasciicircum{}")


def snippet(results: dict) -> str:
    best, fresh = results["best"], results["best_fresh"]["test_loss"]
    macros = {
        "QOneBestConfig": tex(config_from_dict(best["config"]).describe()),
        "QOneBestTestLoss": f"${best['test_loss'][0]:.4f} \\pm {best['test_loss'][1]:.4f}$",
        "QOneSearchSize": len(results["search"]),
        "QOneSearchSeeds": best["runs"],
        "QOneBestFreshTestLoss": f"${fresh[0]:.4f} \\pm {fresh[1]:.4f}$",
        "QOneEpochs": results["epochs"],
        "QOneSeeds": results["seeds"],
        "QOneSeconds": f"{results['seconds']:.0f}",
        "QOneMachine": results["machine"],
        "QOneConvergedBelow": CONVERGED_BELOW,
    }
    for name, by_dataset in results["sweeps"].items():
        datasets = list(by_dataset)
        rows = []
        for same_value in zip(*by_dataset.values()):  # one row per swept value, the datasets side by side
            cells = [tex(same_value[0]["value"])]
            for e in same_value:
                epochs = "--" if e["epochs_to_converge"] is None else f"{e['epochs_to_converge']:.0f}"
                cells += [f"${e['test_loss'][0]:.3f} \\pm {e['test_loss'][1]:.3f}$", epochs]
            rows.append(" & ".join(cells) + " \\\\")
        header = " & ".join(f"\\multicolumn{{2}}{{c}}{{{d}}}" for d in datasets)
        sub = " & ".join("test loss & epochs" for _ in datasets)
        macros["QOneSweep" + "".join(word.capitalize() for word in name.split())] = (
            f"\\begin{{tabular}}{{l{'rr' * len(datasets)}}}\\toprule {tex(name)} & {header} \\\\ & {sub} \\\\ "
            f"\\midrule {' '.join(rows)} \\bottomrule\\end{{tabular}}")
    macros["QOneShareBelowPointOne"] = f"{100 * results['pruning']['share_below']['0.1']:.0f}"
    # the pruning study's medians over seeds that the text cites
    curves = results["pruning"]["curves"]
    median = lambda entry: statistics.median(entry["test_losses"])
    by_fraction = {name: {e["fraction"]: median(e) for e in curves[name]} for name in ("pruned", "pruned and retrained")}
    full = by_fraction["pruned"][0.0]
    for fraction, word in ((0.2, "Twenty"), (0.5, "Half"), (0.7, "Seventy")):
        macros[f"QOnePruned{word}"] = f"{by_fraction['pruned'][fraction]:.3f}"
        macros[f"QOneRetrained{word}"] = f"{by_fraction['pruned and retrained'][fraction]:.3f}"
    # the smallest network trained directly whose median test loss is within twice the full network's
    enough = min((e for e in curves["trained small"] if median(e) <= 2 * full), key=lambda e: e["parameters"])
    macros.update(QOneFullLoss=f"{full:.3f}", QOneFullParameters=results["pruning"]["full_parameters"],
                  QOneSmallEnoughHidden="--".join(map(str, enough["hidden"])), QOneSmallEnoughParameters=enough["parameters"],
                  QOneSmallEnoughLoss=f"{median(enough):.3f}")
    return latex.latex_macros("codes/q1_playground.py from results/q1_playground.json", macros)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=cli.positive_int, default=EPOCHS,
                        help="epochs per run (default: %(default)s)")
    parser.add_argument("--seeds", type=cli.positive_int, default=SEEDS,
                        help="seeds per point of the Q1.2/Q1.3 curves (default: %(default)s)")
    parser.add_argument("--output-dir", type=Path, default=None,
                        help="where results, figures and the snippet go (default: results/, report/figures/ and "
                        "report/generated/ for the full run, results/runs/q1_playground-<settings>/ otherwise)")
    parser.add_argument("--plot-only", action="store_true", help="redraw the figures from the saved results")
    args = parser.parse_args(argv)
    paths = cli.output_paths(args, "q1_playground", cli.defaults(parser, ("epochs", "seeds")))
    paths.claim("q1")
    paths.announce()
    results_path = paths.results / RESULTS_FILE
    if not args.plot_only:
        start = time.perf_counter()
        best, table = search(args.epochs)
        print(f"Q1.1 best of {len(table)} configurations: {best.describe()}")
        sweep_results = sweeps(best, args.epochs, args.seeds)
        retrained = pg.train([replace(best, seed=s) for s in fresh_seeds(args.seeds)], args.epochs)
        results = {
            "question": "Q1", "epochs": args.epochs, "seeds": args.seeds, "settings_changed": paths.changed,
            "search": table, "best": next(row for row in table if row["config"] == asdict(best)),
            "best_fresh": summary(retrained), "best_run": run_dict(retrained[0]),
            "sweeps": sweep_results, "pruning": pruning(retrained, args.epochs),
            "seconds": time.perf_counter() - start, "machine": runs.cpu_name(),
        }
        runs.write_json_atomic(results_path, results)
        print(f"results: {results_path} ({results['seconds']:.0f} s)")
    results = runs.read_results(results_path, ("search", "best", "best_fresh", "best_run", "sweeps", "pruning"))
    snippet_path = paths.generated / "q1.tex"
    runs.write_text_atomic(snippet_path, snippet(results))
    print(f"snippet: {snippet_path}")
    for figure in plot(results, paths.figures):
        print(f"figure: {figure}")
    return 0


if __name__ == "__main__":
    cli.run_main(main)
