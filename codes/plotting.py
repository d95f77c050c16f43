"""Figure helpers shared by the MNIST scripts: one style, the error axis, saving."""
from __future__ import annotations

import os
from pathlib import Path

# files only, no display: drawn with Agg, whatever backend MPLBACKEND names for interactive use
# (matplotlib's import fails on a name it does not know)
os.environ.pop("MPLBACKEND", None)
import matplotlib  # noqa: E402
import matplotlib.ticker  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import runs  # noqa: E402

plt.rcParams.update({"figure.dpi": 150, "savefig.dpi": 200, "font.size": 9, "axes.grid": True, "grid.alpha": 0.3})

# Figures drawn at the size the report prints them, the text width, so that their type prints at 7 pt.
TEXT_WIDTH = 6.7  # inches
PRINTED_TYPE = {"font.size": 7, "legend.fontsize": 7}


def error_axis(ax) -> None:
    """A symmetric-log error axis: readable from 100% down to exactly 0%."""
    # linear below 0.01%, so that an error of exactly 0 is drawn (the smallest nonzero one is 1 in 48,000: 0.002%)
    ax.set_yscale("symlog", linthresh=0.01, linscale=0.5)
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    ax.set_ylabel("error (% misclassified)")


def run_label(results: dict) -> str:
    """A second title line for a run not at the assignment's settings, so it is never mistaken for it."""
    changed = results.get("settings_changed")
    return f"\nNOT THE ASSIGNMENT'S RUN ({', '.join(changed)})" if changed else ""


def save(fig, path: Path) -> Path:
    """Write a figure as runs.write_atomic writes every output: a kill or a full disk never leaves half an image."""
    fig.tight_layout()
    try:
        return runs.write_atomic(path, lambda file: fig.savefig(file, format=path.suffix.lstrip(".")))
    finally:
        plt.close(fig)
