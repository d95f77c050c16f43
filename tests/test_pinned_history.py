"""Histories pinned before the core was redesigned: the same short seeded CPU runs of Q5.2,
a 3-level x 2-seed flooding sweep and the CNN must give exactly the recorded numbers, so the
committed results stay valid for the current code. tests/pinned_histories.json was written by
`pinned_runs` at the code before the redesign and is never rewritten by the tests."""
from __future__ import annotations

import json
from pathlib import Path

from conftest import run_script, write_mnist

PINNED = Path(__file__).with_name("pinned_histories.json")
COMMON = ("--epochs", "3", "--batch-size", "16", "--device", "cpu", "--offline", "--no-progress")
RUNS = {
    "q5_2": ("q5_2_mlp.py", "q5_2_mlp.json", ()),
    "q5_3": ("q5_3_flooding.py", "q5_3_flooding_lr0.1.json", ("--flood-levels", "0,0.05,0.1", "--seeds", "2", "--lrs", "0.1")),
    "q5_5": ("q5_5_cnn.py", "q5_5_cnn.json", ()),
}
KEPT = ("history", "diverged_at_epoch", "copies", "final_val_ece")


def pinned_runs(root: Path) -> dict:
    """Every run's trained numbers (history, divergence, copies, calibration), from its results file."""
    data = write_mnist(root / "data")
    recorded = {}
    for name, (script, results_file, flags) in RUNS.items():
        out = root / "out"
        done = run_script(script, *COMMON, "--data-dir", str(data), "--output-dir", str(out), *flags)
        assert done.returncode == 0, done.stderr
        results = json.loads((out / results_file).read_text())
        recorded[name] = {key: results[key] for key in KEPT if key in results}
    return recorded


def test_short_runs_give_the_pinned_histories_bit_for_bit(tmp_path):
    pinned = json.loads(PINNED.read_text())
    recorded = pinned_runs(tmp_path)
    assert set(recorded) == set(pinned)
    for name in pinned:  # the keys pinned then; the history has gained more since
        history = {key: recorded[name]["history"][key] for key in pinned[name]["history"]}
        assert {**recorded[name], "history": history} == pinned[name], name
