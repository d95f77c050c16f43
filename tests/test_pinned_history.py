"""Histories pinned before the core was redesigned: the same short seeded CPU runs of Q5.2,
a 3-level x 2-seed flooding sweep and the CNN must give the recorded numbers, so the committed
results stay valid for the current code. tests/pinned_histories.json was written by `pinned_runs`
at the code before the redesign and is never rewritten by the tests.

The pins were recorded on one CPU; another CPU computes the same float32 operations with other
SIMD kernels (other summation orders), so its numbers differ in the last bits from the first
epoch on and drift apart a little over three epochs of SGD. Measured against the pins on a CPU
with AVX-512 under its own kernels, under AVX2 and under the plain (no SIMD) kernels, every
value lies within 1e-4 of its pin relative to its size: PIN_TOLERANCE allows ten times that.
A learning rate 1% smaller moves the Q5.2 run's numbers by up to 10%, another batch order by far
more (test below), so the tolerance still catches a change of what is computed.
Bit-for-bit equality is kept where both sides run on one machine (resumed runs, tests/test_robustness.py).
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import torch

import common
import q5_2_mlp
import q5_3_flooding
import q5_5_cnn
from conftest import REPO_ROOT, write_mnist

PINNED = Path(__file__).with_name("pinned_histories.json")
PIN_TOLERANCE = 1e-3  # relative; see the docstring
COMMON = ("--epochs", "3", "--batch-size", "16", "--device", "cpu", "--offline", "--no-progress")
RUNS = {
    "q5_2": (q5_2_mlp, "q5_2_mlp.json", ()),
    "q5_3": (q5_3_flooding, "q5_3_flooding_lr0.1.json", ("--flood-levels", "0,0.05,0.1", "--seeds", "2", "--lrs", "0.1")),
    "q5_5": (q5_5_cnn, "q5_5_cnn.json", ()),
}
KEPT = ("history", "diverged_at_epoch", "copies", "final_val_ece")
# the kernels of a CPU without any SIMD extension, whatever this machine has
PLAIN_KERNELS = {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "ONEDNN_MAX_CPU_ISA": "SSE41"}


def pinned_runs(root: Path, names=tuple(RUNS)) -> dict:
    """Every run's trained numbers (history, divergence, copies, calibration), from its results file."""
    data = write_mnist(root / "data")
    recorded = {}
    for name in names:
        script, results_file, flags = RUNS[name]
        out = root / name
        assert script.main([*COMMON, "--data-dir", str(data), "--output-dir", str(out), *flags]) == 0
        results = json.loads((out / results_file).read_text())
        recorded[name] = {key: results[key] for key in KEPT if key in results}
    return recorded


def differences(recorded, pinned, where: str = "") -> list[str]:
    """Where `recorded` differs from `pinned`: structure, integers and None exactly, floats beyond PIN_TOLERANCE."""
    if isinstance(pinned, dict) and isinstance(recorded, dict):
        # the keys pinned then; the history has gained more since
        return [d for key in pinned for d in differences(recorded.get(key), pinned[key], f"{where}/{key}")]
    if isinstance(pinned, list) and isinstance(recorded, list) and len(pinned) == len(recorded):
        return [d for i, (r, p) in enumerate(zip(recorded, pinned)) for d in differences(r, p, f"{where}[{i}]")]
    if isinstance(pinned, float) and isinstance(recorded, (int, float)):
        close = math.isclose(recorded, pinned, rel_tol=PIN_TOLERANCE, abs_tol=0.0)
        return [] if close else [f"{where}: {recorded!r}, pinned {pinned!r}"]
    return [] if recorded == pinned else [f"{where}: {recorded!r}, pinned {pinned!r}"]


def test_short_runs_give_the_pinned_histories(tmp_path):
    pinned = json.loads(PINNED.read_text())
    recorded = pinned_runs(tmp_path)
    assert set(recorded) == set(pinned)
    assert differences(recorded, pinned) == []


def history_by_hand(data: Path, build, lr: float, batch_seed: int = 0) -> dict:
    """A pinned single-model run (Q5.2's MLP or the CNN, initialisation seed 0) built from the core
    directly, with the given learning rate and batch order."""
    splits = common.prepare_splits(data, torch.device("cpu"), download=False)
    model = common.StackedCopies(common.seeded_copies(build, [0]))
    trainer = common.StackedTrainer(model, splits, lr=lr, momentum=0.9, batch_size=16, seed=batch_seed)
    return common.fit(trainer, 3, progress=False)["history"]


def test_the_tolerance_catches_another_learning_rate_or_batch_order(tmp_path):
    pinned = json.loads(PINNED.read_text())["q5_2"]["history"]
    data = write_mnist(tmp_path / "data")
    assert differences(history_by_hand(data, common.mlp, 0.1), pinned) == []  # the pinned run itself passes
    for lr, batch_seed in ((0.099, 0), (0.1, 1)):
        assert differences(history_by_hand(data, common.mlp, lr, batch_seed), pinned), (lr, batch_seed)


def test_pinned_runs_hold_on_the_kernels_of_a_cpu_without_simd(tmp_path):
    """PyTorch, MKL and oneDNN choose their kernels at start-up from these variables, so a second
    interpreter computes as a CPU without AVX would: the MLP's matrix products and the CNN's convolutions."""
    code = ("import sys, json, torch; from pathlib import Path; sys.path.insert(0, 'tests'); "
            "import conftest, common, q5_5_cnn, test_pinned_history as t; data = conftest.write_mnist(Path(sys.argv[1])); "
            "print(torch.backends.cpu.get_cpu_capability()); "
            "print(json.dumps({'q5_2': t.history_by_hand(data, common.mlp, 0.1), "
            "'q5_5': t.history_by_hand(data, q5_5_cnn.cnn, q5_5_cnn.LEARNING_RATE)}))")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=300,
                          cwd=REPO_ROOT, env={**os.environ, **PLAIN_KERNELS})
    assert done.returncode == 0, done.stderr
    capability, recorded = done.stdout.splitlines()
    assert capability == "DEFAULT"
    pinned = json.loads(PINNED.read_text())
    assert differences(json.loads(recorded), {name: pinned[name]["history"] for name in ("q5_2", "q5_5")}) == []
